"""Partner API permissions: a valid key, and the scope the view declares."""

from rest_framework.permissions import BasePermission

from marketplace.api.common.authentication import PartnerPrincipal
from marketplace.partners.api_keys import api_key_has_scope


class HasKeyScope(BasePermission):
    """A partner key is present, and holds the view's `required_scope` (None: any valid key).

    No key: DRF answers 401 (NotAuthenticated, with `WWW-Authenticate: Bearer`); a key without
    the scope: 403 naming the scope.
    """

    def has_permission(self, request, view):
        if not isinstance(request.user, PartnerPrincipal):
            return False
        scope = getattr(view, "required_scope", None)
        if scope is None:
            return True
        if api_key_has_scope(request.auth, scope):
            return True
        self.message = f"This API key lacks the '{scope}' scope."
        return False
