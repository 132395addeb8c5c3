"""The base of every partner API view: key authentication, scope permission, JSON only, the
one error shape. Set per view class, so the rest of the site keeps DRF's defaults."""

from django.http import JsonResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from marketplace.api.common.authentication import PartnerKeyAuthentication
from marketplace.api.common.errors import api_exception_handler, error_body
from marketplace.api.common.permissions import HasKeyScope


class PartnerAPIView(APIView):
    """Declare `required_scope = PartnerAPIKey.Scope.X` (None: any valid key)."""

    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [HasKeyScope]
    renderer_classes = [JSONRenderer]
    throttle_classes = []
    required_scope = None

    def get_exception_handler(self):
        return api_exception_handler

    @property
    def partner(self):
        return self.request.user.partner


def api_not_found(request, *args, **kwargs):
    """An unknown path under /api/: 404 in the API's error shape (no authentication needed)."""
    return JsonResponse(error_body(404, [{"code": "not_found", "detail": "Not found.", "attr": None}]), status=404)
