"""Action permissions are checked against what the models declare, with no database needed."""

from django.contrib import admin
from unfold.decorators import action

from marketplace.catalog.models import Listing
from marketplace.core.admin import WorkflowAdmin, _declared_permission


class _Broken(WorkflowAdmin):
    actions_detail = ["good", "typo", "method_backed", "missing_method"]

    @action(description="Good", permissions=["catalog.moderate_listing"])
    def good(self, request, object_id):
        return None

    @action(description="Typo", permissions=["catalog.moderate_listings"])
    def typo(self, request, object_id):
        return None

    @action(description="Method", permissions=["review"])
    def method_backed(self, request, object_id):
        return None

    @action(description="Missing", permissions=["approve_everything"])
    def missing_method(self, request, object_id):
        return None

    def has_review_permission(self, request, obj=None):
        return True


def test_declared_permissions_are_known_without_the_database():
    assert _declared_permission("catalog.moderate_listing")
    assert _declared_permission("catalog.view_listing")
    assert not _declared_permission("catalog.moderate_listings")
    assert not _declared_permission("nosuchapp.view_thing")


def test_the_check_names_each_unknown_permission():
    errors = _Broken(Listing, admin.AdminSite()).check()
    messages = [e.msg for e in errors if e.id == "admin.E129"]
    assert len(messages) == 2
    assert any("'catalog.moderate_listings'" in m for m in messages)
    assert any("'approve_everything'" in m for m in messages)
