"""GET /api/partner/v1/partner/: the calling key's own partner (any valid key)."""

from django.http import Http404
from rest_framework import serializers
from rest_framework.response import Response

from marketplace.api.common.views import PartnerAPIView
from marketplace.partners.models import Partner
from marketplace.partners.selectors import partner_for_partner


class PartnerProfileSerializer(serializers.ModelSerializer):
    """What a partner may read about itself: no risk flag, no commission internals."""

    class Meta:
        model = Partner
        fields = ["id", "name", "slug", "kind", "status", "created_at"]
        read_only_fields = fields


class PartnerProfileView(PartnerAPIView):
    required_scope = None

    def get(self, request):
        partner = partner_for_partner(self.partner).only(*PartnerProfileSerializer.Meta.fields).first()
        if partner is None:
            raise Http404
        return Response(PartnerProfileSerializer(partner).data)
