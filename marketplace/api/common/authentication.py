"""Partner API key authentication: `Authorization: Bearer <prefix>.<secret>`.

The API accepts keys only, never sessions: `request.user` is a `PartnerPrincipal` (not a staff
user), `request.auth` is the `PartnerAPIKey`.
"""

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from marketplace.partners.api_keys import api_key_authenticate
from marketplace.partners.models import Partner, PartnerAPIKey

# One message for every refused key: saying which check failed would help someone guessing keys.
INVALID_KEY = "Invalid API key."


@dataclass(frozen=True)
class PartnerPrincipal:
    """Who is calling: a partner, through one of its keys. Never staff, never a session."""

    partner: Partner
    key: PartnerAPIKey
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self):
        return None

    def __str__(self):
        return f"partner {self.partner.pk} (key {self.key.prefix})"


class PartnerKeyAuthentication(BaseAuthentication):
    """Bearer key -> (PartnerPrincipal, key). No header: None, so the permission answers 401."""

    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword:
            raise AuthenticationFailed(INVALID_KEY)
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed(INVALID_KEY) from None
        key = api_key_authenticate(raw)
        if key is None:
            raise AuthenticationFailed(INVALID_KEY)
        return PartnerPrincipal(partner=key.partner, key=key), key

    def authenticate_header(self, request):
        return "Bearer"
