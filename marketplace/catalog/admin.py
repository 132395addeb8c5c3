from django.contrib import admin
from treebeard.admin import TreeAdmin
from treebeard.forms import movenodeform_factory
from unfold.admin import ModelAdmin
from unfold.decorators import action

from marketplace.catalog import services
from marketplace.catalog.models import Category, Listing
from marketplace.catalog.selectors import listing_for_user
from marketplace.core.admin import Step, WorkflowAdmin


@admin.register(Category)
class CategoryAdmin(TreeAdmin, ModelAdmin):
    form = movenodeform_factory(Category)
    list_display = ["name", "slug", "commission_rate", "is_active"]
    search_fields = ["name", "slug"]


@admin.register(Listing)
class ListingAdmin(WorkflowAdmin):
    scope = staticmethod(listing_for_user)
    list_display = ["id", "title", "kind", "status", "partner", "category", "price", "currency", "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["title"]
    list_select_related = ("partner", "category")
    ordering = ("-created_at", "-id")
    actions_detail = ["approve"]

    # Each step: a button (shown to holders of the permission), a confirmation page, one service call.
    @action(description="Approve", icon="check_circle", permissions=["catalog.moderate_listing"], url_path="approve")
    def approve(self, request, object_id):
        return self.workflow(
            request,
            object_id,
            Step(
                title="Approve",
                call=lambda listing, actor, data: services.listing_approve(listing=listing, actor=actor),
                success="{obj} is approved and published.",
                done_state=Listing.Status.PUBLISHED,
            ),
        )
