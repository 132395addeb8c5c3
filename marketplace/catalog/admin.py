from urllib.parse import urlencode, urlsplit

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.defaultfilters import linebreaksbr
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from treebeard.admin import TreeAdmin
from treebeard.forms import movenodeform_factory
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import BooleanRadioFilter, ChoicesDropdownFilter, RangeNumericFilter
from unfold.decorators import action, display
from unfold.enums import ActionVariant
from unfold.widgets import UnfoldAdminDecimalFieldWidget

from marketplace.catalog import services
from marketplace.catalog.models import Category, Listing
from marketplace.catalog.resources import (
    CategoryExportResource,
    CategoryImportResource,
    ListingExportResource,
    ListingImportResource,
)
from marketplace.catalog.selectors import listing_for_user
from marketplace.core.admin import (
    DeclaredPermissionChecks,
    ServiceFormMixin,
    Step,
    TimelineMixin,
    WorkflowAdmin,
    WorkflowStepsMixin,
    offered_in,
    step_action,
)
from marketplace.core.admin_filters import DayRangeFilter, ScopedAutocompleteFilter, search_by_shape
from marketplace.core.exceptions import ApplicationError
from marketplace.transfers.admin import ScopedImportExportMixin


def _parent_chosen(form):
    """The parent the tree form asks for: `treebeard_ref_node` with its position (sorted tree)."""
    ref = form.cleaned_data.get("treebeard_ref_node")
    if ref is None:
        return None
    return ref if form.cleaned_data.get("treebeard_position") == "sorted-child" else ref.get_parent()


@admin.register(Category)
class CategoryAdmin(
    ScopedImportExportMixin, ServiceFormMixin, WorkflowStepsMixin, TimelineMixin, TreeAdmin, ModelAdmin
):
    """The category tree. The form creates, renames, (de)activates and moves a category through
    `category_create` / `category_update` / `category_move`; the commission rate is set on the add
    form and afterwards changes only through the "Change commission rate" step (its own permission,
    a reason, an audit event with both rates; new bookings only)."""

    import_resource_class = CategoryImportResource
    export_resource_class = CategoryExportResource
    checks_class = DeclaredPermissionChecks
    form = movenodeform_factory(Category)
    list_display = ["name", "slug", "commission_rate", "is_active"]
    list_filter = [("is_active", BooleanRadioFilter)]
    # A small table: substring search is fine. Also what the category filters' autocomplete searches.
    search_fields = ["name", "slug"]
    actions_detail = ["commission"]

    def get_readonly_fields(self, request, obj=None):
        return ["commission_rate"] if obj is not None else []

    def form_save_service(self, request, form, change):
        data = form.cleaned_data
        parent = _parent_chosen(form)
        if not change:
            return services.category_create(
                actor=request.user,
                name=data["name"],
                slug=data["slug"],
                commission_rate=data["commission_rate"],
                parent=parent,
                is_active=data.get("is_active", True),
            )
        category = form.instance
        edited = {f: data[f] for f in services.CATEGORY_FIELDS if f in form.changed_data}
        if edited:
            category = services.category_update(category=category, actor=request.user, data=edited)
        current = Category.objects.get(pk=category.pk).get_parent()
        if (current.pk if current else None) != (parent.pk if parent else None):
            category = services.category_move(category=category, parent=parent, actor=request.user)
        return category

    def try_to_move_node(self, as_child, node, pos, request, target):
        """The changelist's drag and drop: the same move service as the form (audited)."""
        try:
            services.category_move(
                category=node, parent=target if as_child else target.get_parent(), actor=request.user
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return HttpResponseBadRequest(exc.message)
        messages.info(request, f"Moved {node} {'under' if as_child else 'beside'} {target}.")
        return HttpResponse("OK")

    @action(
        description="Change commission rate",
        icon="percent",
        permissions=[services.COMMISSION_PERMISSION],
        url_path="commission",
    )
    def commission(self, request, object_id):
        category = self.get_object(request, object_id)
        now = f" (now {category.commission_rate})" if category is not None else ""
        return self.workflow(
            request,
            object_id,
            Step(
                title="Change commission rate",
                call=lambda category, actor, data: services.category_commission_set(
                    category=category, rate=data["rate"], actor=actor, reason=data["reason"]
                ),
                success="{obj}'s commission rate is now {obj.commission_rate}: bookings made from now on use it; "
                "bookings already made keep theirs.",
                reason="required",
                fields={
                    "rate": forms.DecimalField(
                        label=f"New commission rate{now}",
                        help_text="From 0 to 1, four decimal places: 0.1250 is 12.5%.",
                        min_value=0,
                        max_value=1,
                        max_digits=5,
                        decimal_places=4,
                        widget=UnfoldAdminDecimalFieldWidget,
                    ),
                },
            ),
        )


S = Listing.Status
MODERATE = services.MODERATE_PERMISSION

STATE_COLOURS = {
    S.DRAFT: "info",
    S.PENDING_REVIEW: "warning",
    S.CHANGES_REQUESTED: "warning",
    S.REJECTED: "danger",
    S.PUBLISHED: "success",
    S.PAUSED: "info",
    S.SUSPENDED: "danger",
    S.EXPIRED: "info",
    S.ARCHIVED: "info",
}
# Fields of a pending edit, as the "Proposed changes" table names them (see services.MATERIAL_FIELDS).
REVISION_LABELS = {"title": "Title", "description": "Description", "price": "Price", "category_id": "Category"}
REVISION_STEPS = {"Approve revision", "Reject revision"}


class ReviewQueueFilter(admin.SimpleListFilter):
    """The moderation queue: new listings waiting for review, and material edits of live ones."""

    title = "review queue"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("pending", "Waiting for review"), ("revision", "Edited, waiting for re-review")]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(status=S.PENDING_REVIEW)
        if self.value() == "revision":
            return queryset.filter(pending_changes__isnull=False)
        return queryset


@admin.register(Listing)
class ListingAdmin(ScopedImportExportMixin, WorkflowAdmin):
    import_resource_class = ListingImportResource
    export_resource_class = ListingExportResource
    scope = staticmethod(listing_for_user)
    list_display = [
        "id",
        "title",
        "display_status",
        "kind",
        "partner",
        "category",
        "display_price",
        "submitted_at",
        "created_at",
    ]
    list_filter = [
        ReviewQueueFilter,
        ("status", ChoicesDropdownFilter),
        ("kind", ChoicesDropdownFilter),
        ("partner", ScopedAutocompleteFilter),
        ("category", ScopedAutocompleteFilter),
        ("owner", ScopedAutocompleteFilter),
        ("price", RangeNumericFilter),
        ("submitted_at", DayRangeFilter),
        ("created_at", DayRangeFilter),
    ]
    list_filter_submit = True
    # What get_search_results tries, by the term's shape: an id, the owner's exact email, a title prefix.
    search_fields = ["=id", "=owner__email", "^title"]
    search_help_text = "Listing id, owner's email address, or the start of the title."
    list_select_related = ("partner", "category")
    ordering = ("-created_at", "-id")
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "title",
                    "kind",
                    "status",
                    "moderation_reason",
                    "owner",
                    "partner",
                    "category",
                    "price",
                    "currency",
                    "description",
                ]
            },
        ),
        (
            "Review",
            {
                "fields": [
                    "display_proposed_changes",
                    "pending_changes_at",
                    "submitted_at",
                    "published_at",
                    "ends_at",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    readonly_fields = ["display_proposed_changes", "created_at", "updated_at"]
    actions_row = ["approve_from_list", "reject_from_list"]
    actions_detail = [
        "approve",
        "request_changes",
        "reject",
        {"title": "Revision", "icon": "difference", "items": ["approve_revision", "reject_revision"]},
        "suspend",
        "reinstate",
    ]
    step_offered = {
        **{name: offered_in(services.TRANSITIONS, name) for name in services.TRANSITIONS},
        "approve_revision": lambda listing: listing.pending_changes is not None,
        "reject_revision": lambda listing: listing.pending_changes is not None,
    }

    def get_search_results(self, request, queryset, search_term):
        # One indexed predicate per search, chosen by what was typed (see search_by_shape).
        return search_by_shape(
            queryset, search_term, number=("pk",), email=("owner__email",), text=("title__istartswith",)
        )

    @display(description="Status", label=STATE_COLOURS, ordering="status")
    def display_status(self, obj):
        return obj.status, obj.get_status_display()

    @display(description="Price", ordering="price")
    def display_price(self, obj):
        return f"{obj.price} {obj.currency}"

    @display(description="Proposed changes")
    def display_proposed_changes(self, obj):
        """The pending material edit: each changed field's live value beside the proposed one."""
        changes = obj.pending_changes or {}
        if not changes:
            return "No edit is waiting for review."
        proposed_category = None
        if "category_id" in changes:
            proposed_category = Category.objects.filter(pk=changes["category_id"]).first()
        rows = []
        for field, proposed in changes.items():
            if field == "category_id":
                live = obj.category
                proposed = proposed_category or f"#{proposed} (no longer exists)"
            elif field == "price":
                live, proposed = f"{obj.price} {obj.currency}", f"{proposed} {obj.currency}"
            else:
                live = getattr(obj, field, "")
            # Escaped, line breaks kept (a description is several lines); an empty value shows as "-".
            rows.append((REVISION_LABELS.get(field, field), linebreaksbr(live) or "-", linebreaksbr(proposed) or "-"))
        cell = "px-3 py-2 align-top border-t border-base-200 dark:border-base-800"
        body = format_html_join(
            "",
            '<tr><th class="{} text-left font-semibold">{}</th>'
            '<td class="{}" data-revision="live">{}</td><td class="{}" data-revision="proposed">{}</td></tr>',
            ((cell, label, cell, live, cell, new) for label, live, new in rows),
        )
        return format_html(
            '<table class="w-full table-fixed" data-proposed-changes>'
            '<thead><tr><th class="px-3 py-2 text-left">Field</th><th class="px-3 py-2 text-left">Live</th>'
            '<th class="px-3 py-2 text-left">Proposed</th></tr></thead><tbody>{}</tbody></table>',
            body,
        )

    def workflow_apply(self, request, obj, step, data):
        # A revision step leads to no state, so `done_state` cannot catch a double click: the second
        # post finds no pending edit and is told so (the service still checks under its lock).
        if step.title in REVISION_STEPS and not obj.pending_changes:
            messages.info(request, f"{obj} has no edit waiting for review (already reviewed?); nothing to do.")
            return False
        return super().workflow_apply(request, obj, step, data)

    def _from_changelist(self, request, object_id, step: str):
        """A row button: the step's confirmation page, which returns to the changelist it came from."""
        if self.get_object(request, object_id) is None:
            raise Http404(f"No listing with id {object_id!r} in your scope.")
        back = reverse("admin:catalog_listing_changelist")
        referer = urlsplit(request.META.get("HTTP_REFERER", ""))
        if referer.path == back and (not referer.netloc or referer.netloc == request.get_host()):
            back = f"{back}?{referer.query}" if referer.query else back
        url = reverse(f"admin:catalog_listing_{step}", args=[object_id])
        return redirect(f"{url}?{urlencode({'next': back})}")

    # Each step: a button (shown to holders of the permission), a confirmation page, one service
    # call. The service checks the state and the scope and says why a step does not apply now.
    approve = step_action(
        "approve",
        Step(
            title="Approve",
            call=lambda listing, actor, data: services.listing_approve(listing=listing, actor=actor),
            success="{obj} is approved and published.",
            done_state=S.PUBLISHED,
        ),
        icon="check_circle",
        permissions=[MODERATE],
    )

    request_changes = step_action(
        "request_changes",
        Step(
            title="Request changes",
            call=lambda listing, actor, data: services.listing_request_changes(
                listing=listing, actor=actor, reason=data["reason"]
            ),
            success="Changes to {obj} are requested from its owner.",
            reason="required",
            reason_label="What should the owner change?",
            done_state=S.CHANGES_REQUESTED,
        ),
        icon="edit_note",
        permissions=[MODERATE],
    )

    reject = step_action(
        "reject",
        Step(
            title="Reject",
            call=lambda listing, actor, data: services.listing_reject(
                listing=listing, actor=actor, reason=data["reason"]
            ),
            success="{obj} is rejected.",
            reason="required",
            done_state=S.REJECTED,
        ),
        icon="do_not_disturb_on",
        permissions=[MODERATE],
    )

    suspend = step_action(
        "suspend",
        Step(
            title="Suspend",
            call=lambda listing, actor, data: services.listing_suspend(
                listing=listing, actor=actor, reason=data["reason"]
            ),
            success="{obj} is suspended and hidden from the catalogue.",
            reason="required",
            done_state=S.SUSPENDED,
            danger=True,
        ),
        icon="block",
        permissions=[MODERATE],
        variant=ActionVariant.DANGER,
    )

    reinstate = step_action(
        "reinstate",
        Step(
            title="Reinstate",
            call=lambda listing, actor, data: services.listing_reinstate(listing=listing, actor=actor),
            success="{obj} is reinstated and published again.",
            done_state=S.PUBLISHED,
        ),
        icon="settings_backup_restore",
        permissions=[MODERATE],
    )

    approve_revision = step_action(
        "approve_revision",
        Step(
            title="Approve revision",
            call=lambda listing, actor, data: services.listing_approve_revision(listing=listing, actor=actor),
            success="The edit of {obj} is live.",
        ),
        icon="published_with_changes",
        permissions=[MODERATE],
    )

    reject_revision = step_action(
        "reject_revision",
        Step(
            title="Reject revision",
            call=lambda listing, actor, data: services.listing_reject_revision(
                listing=listing, actor=actor, reason=data["reason"]
            ),
            success="The edit of {obj} is rejected; the live version stays.",
            reason="required",
        ),
        icon="undo",
        permissions=[MODERATE],
    )

    # Row buttons for the common steps; they open the same confirmation page, which then returns
    # to the changelist (unfold builds a row button's URL from the row's pk alone, so no `?next=`).
    @action(description="Approve", icon="check_circle", permissions=[MODERATE], url_path="approve-from-list")
    def approve_from_list(self, request, object_id):
        return self._from_changelist(request, object_id, "approve")

    @action(description="Reject", icon="do_not_disturb_on", permissions=[MODERATE], url_path="reject-from-list")
    def reject_from_list(self, request, object_id):
        return self._from_changelist(request, object_id, "reject")
