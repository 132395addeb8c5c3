from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from marketplace.partners.models import Partner, PartnerMembership, PayoutAccount
from marketplace.partners.selectors import partner_for_user


class MembershipInline(TabularInline):
    model = PartnerMembership
    extra = 0
    autocomplete_fields = ["user"]


class PayoutAccountInline(TabularInline):
    model = PayoutAccount
    extra = 0


@admin.register(Partner)
class PartnerAdmin(ModelAdmin):
    list_display = ["name", "kind", "status", "risk_flag", "created_at"]
    list_filter = ["kind", "status", "risk_flag"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, PayoutAccountInline]

    def get_queryset(self, request):
        return partner_for_user(request.user)
