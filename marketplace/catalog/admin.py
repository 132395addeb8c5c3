from django.contrib import admin
from treebeard.admin import TreeAdmin
from treebeard.forms import movenodeform_factory
from unfold.admin import ModelAdmin

from marketplace.catalog.models import Category, Listing
from marketplace.catalog.selectors import listing_for_user
from marketplace.core.admin import ScopedReadOnlyAdmin


@admin.register(Category)
class CategoryAdmin(TreeAdmin, ModelAdmin):
    form = movenodeform_factory(Category)
    list_display = ["name", "slug", "commission_rate", "is_active"]
    search_fields = ["name", "slug"]


@admin.register(Listing)
class ListingAdmin(ScopedReadOnlyAdmin):
    scope = staticmethod(listing_for_user)
    list_display = ["id", "title", "kind", "status", "partner", "category", "price", "currency", "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["title"]
    list_select_related = ("partner", "category")
    ordering = ("-created_at", "-id")
