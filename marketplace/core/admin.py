"""Shared admin base: every marketplace changelist reads through its model's scope selector, and
every workflow button calls one service through `WorkflowAdmin.workflow`."""

from collections.abc import Callable
from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.core import checks
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import cached_property
from unfold.admin import ModelAdmin
from unfold.checks import UnfoldModelAdminChecks
from unfold.widgets import UnfoldAdminTextareaWidget

from marketplace.core.exceptions import ApplicationError, TransitionNotAllowed


class EstimatedCountPaginator(Paginator):
    """A changelist paginator for large tables: no `COUNT(*)` over the table, no wide deep OFFSET.

    - The count is exact up to THRESHOLD rows (`SELECT COUNT(*) FROM (... LIMIT n)`); past that it
      is PostgreSQL's planner estimate for the same filtered query (`EXPLAIN`), never less than the
      threshold. Both queries always run on PostgreSQL, so a page's query count does not depend on
      how many rows there are. On SQLite (development data) the count is exact.
    - A page is read ids first (`SELECT id ... ORDER BY ... OFFSET k LIMIT n`, narrow, mostly from
      the ordering index), then its rows with their joins by id: a deep page no longer drags every
      joined column through the OFFSET.
    """

    THRESHOLD = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list.order_by()
        capped = queryset[: self.THRESHOLD + 1].count()
        if connections[queryset.db].vendor != "postgresql":
            return capped if capped <= self.THRESHOLD else queryset.count()
        try:
            sql, params = queryset.values("pk").query.sql_with_params()
        except EmptyResultSet:  # a queryset known to be empty (`.none()`, `pk__in=[]`): nothing to ask
            return capped
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        if capped <= self.THRESHOLD:
            return capped
        if isinstance(plan, str):
            import json

            plan = json.loads(plan)
        return max(int(plan[0]["Plan"]["Plan Rows"]), self.THRESHOLD + 1)

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        object_list = self.object_list
        if not hasattr(object_list, "values_list"):  # a plain list
            return self._get_page(object_list[bottom:top], number, self)
        ids = list(object_list.values_list("pk", flat=True)[bottom:top])
        rows = {row.pk: row for row in object_list.filter(pk__in=ids)}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)


def _declared_permission(dotted: str) -> bool:
    """Whether a model of the app declares this permission (default or Meta), without the database."""
    from django.apps import apps
    from django.contrib.auth.management import _get_all_permissions

    app_label, codename = dotted.split(".", 1)
    try:
        models = apps.get_app_config(app_label).get_models()
    except LookupError:
        return False
    return any(codename == name for model in models for name, _ in _get_all_permissions(model._meta))


class DeclaredPermissionChecks(UnfoldModelAdminChecks):
    """Unfold checks a dotted action permission ("app.codename") by querying `auth_permission`,
    which breaks `manage.py check` (and `check --deploy`) on a database not migrated yet. The same
    check, against the permissions the models declare."""

    def _check_unfold_action_permission_methods(self, obj):
        errors = []
        for action in [
            *obj._get_base_actions_list(),
            *obj._get_base_actions_detail(),
            *obj._get_base_actions_row(),
            *obj._get_base_actions_submit_line(),
        ]:
            for permission in getattr(action.method, "allowed_permissions", ()):
                known = (
                    _declared_permission(permission)
                    if "." in permission
                    else hasattr(obj, f"has_{permission}_permission")
                )
                if not known:
                    errors.append(
                        checks.Error(
                            f"{obj.__class__.__name__}.{action.method.original_function_name}() asks for "
                            f"permission {permission!r}, which no model or admin method declares.",
                            obj=obj.__class__,
                            id="admin.E129",
                        )
                    )
        return errors


def object_once(request, model, object_id, from_field, read):
    """The object through the admin's scoped queryset (`read`: its `get_object`), read once per
    request (the change page, its timeline and a workflow step all ask for it)."""
    cache = request.__dict__.setdefault("_scoped_objects", {})
    key = (model, str(object_id), from_field)
    if key not in cache:
        cache[key] = read(request, object_id, from_field)
    return cache[key]


def not_in_scope(opts, object_id):
    """Answer 404 for an object not in the user's scope (an admin's `_get_obj_does_not_exist_redirect`).

    Django redirects to the changelist for a missing object; an object outside the user's scope is
    indistinguishable from a missing one, and both answer 404 (change, history, delete, password).
    """
    raise Http404(f"No {opts.verbose_name} with id {object_id!r} in your scope.")


class ScopedReadOnlyAdmin(ModelAdmin):
    """A read-only admin whose rows come from `scope(user)`, the model's `<model>_for_user` selector.

    Writes go through the services (admin actions, added with the workflows), never through the
    change form, so the form is read-only and add/delete are off.
    """

    scope = None  # a callable user -> queryset
    list_select_related = ()
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    checks_class = DeclaredPermissionChecks

    def get_queryset(self, request):
        qs = type(self).scope(request.user) if type(self).scope else super().get_queryset(request)
        if self.list_select_related:
            qs = qs.select_related(*self.list_select_related)
        return qs.order_by(*(self.ordering or ("-pk",)))

    def get_object(self, request, object_id, from_field=None):
        return object_once(request, self.model, object_id, from_field, super().get_object)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        not_in_scope(opts, object_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@dataclass
class Step:
    """One workflow step as the admin offers it: a title, what it asks for, and the service call.

    `call(obj, actor, data)` runs the service and returns the object; `data` is the confirmation
    form's cleaned data. `reason` asks for a reason ("required", "optional" or None); `fields` adds
    more form fields (name -> Django form field). `done_state` is the state the step leads to: a
    second click that finds the object already there is told so, not shown an error.
    """

    title: str
    call: Callable
    success: str = "{obj} updated."
    reason: str | None = None
    reason_label: str = "Reason"
    fields: dict = field(default_factory=dict)
    done_state: str | None = None
    danger: bool = False


class WorkflowForm(forms.Form):
    def __init__(self, *args, step: Step, **kwargs):
        super().__init__(*args, **kwargs)
        if step.reason:
            self.fields["reason"] = forms.CharField(
                label=step.reason_label,
                required=step.reason == "required",  # CharField strips: blanks count as missing
                help_text="Kept in the audit log and sent to the people concerned.",
                widget=UnfoldAdminTextareaWidget(attrs={"rows": 3}),
            )
        self.fields.update(step.fields)


def _safe_next(request, url: str | None) -> str | None:
    """A `next` address only if it stays on this site (no open redirect through a crafted link)."""
    from django.utils.http import url_has_allowed_host_and_scheme

    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


def step_action(name: str, step: Step, **action_options):
    """An unfold detail action that runs a fixed `step` through `WorkflowAdmin.workflow`.

        approve = step_action("approve", Step(title="Approve", call=...), icon="check_circle",
                              permissions=["catalog.moderate_listing"])

    The button's label defaults to the step's title and its URL to the name. `name` must be the
    attribute it is assigned to (unfold looks actions up by name). Steps whose
    form depends on the object are written as methods calling `self.workflow` instead.
    """
    from unfold.decorators import action

    def run(self, request, object_id):
        return self.workflow(request, object_id, step)

    run.__name__ = run.__qualname__ = name
    action_options.setdefault("url_path", name.replace("_", "-"))
    action_options.setdefault("description", step.title)
    return action(**action_options)(run)


def offered_in(table, *transitions: str) -> Callable:
    """A detail button's test for `WorkflowAdmin.step_offered`: the object's state is one that any of
    `transitions` (names in the app's TRANSITIONS table) may start from."""
    sources = frozenset().union(*(table[name][0] for name in transitions))
    return lambda obj: obj.status in sources


class TimelineMixin:
    """Below each change form: the object's timeline (audit events and internal notes) and a note box.

    The object is read through the admin's own `get_object` (its scope); anyone who may see the
    object may read its timeline and add a note to it, unless the admin's `timeline_visible` says
    otherwise (a staff member's timeline: holders of `accounts.view_staff_timeline` only).
    """

    change_form_outer_after_template = "admin/workflow/timeline.html"

    def get_urls(self):
        from django.urls import path

        name = f"{self.opts.app_label}_{self.opts.model_name}_note_add"
        return [
            path(
                "<path:object_id>/notes/add/",
                self.admin_site.admin_view(self.note_add_view),
                name=name,
            ),
            *super().get_urls(),
        ]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = extra_context or {}
        if object_id:
            obj = self.get_object(request, object_id)
            if obj is not None and self.timeline_visible(request, obj):
                from marketplace.audit.selectors import timeline_for

                extra_context["timeline"] = timeline_for(obj=obj)
                extra_context["note_add_url"] = reverse(
                    f"admin:{self.opts.app_label}_{self.opts.model_name}_note_add", args=[obj.pk]
                )
            if obj is not None:
                extra_context.update(self.change_page_panels(request, obj))
        return super().changeform_view(request, object_id, form_url, extra_context)

    def timeline_visible(self, request, obj) -> bool:
        """Whether the user, who may see the object, may also read and write its timeline."""
        return True

    def change_page_panels(self, request, obj) -> dict:
        """More context for the panels above the timeline (e.g. `money`, a BookingMoney)."""
        return {}

    def note_add_view(self, request, object_id):
        """POST a note onto the object's timeline: anyone who may see the object (in scope)."""
        from django.core.exceptions import PermissionDenied
        from django.http import HttpResponseNotAllowed

        from marketplace.audit.services import note_add

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied  # the model permission first (403), then the scope (404)
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r} in your scope.")
        if not self.timeline_visible(request, obj):
            raise PermissionDenied  # a timeline the user may not read takes no note from them either
        try:
            note_add(target=obj, author=request.user, body=request.POST.get("body", ""))
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Note added to the timeline.")
        return redirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]))


class WorkflowStepsMixin:
    """Workflow steps on a model admin: each button opens a confirmation page and calls one service.

    A step's button (an unfold detail or row action) opens a confirmation page (GET) that names the
    object and asks for what the step needs; POSTing it calls the service once. The object is read
    through the admin's `get_object` (its scope) first, so an object outside the user's scope is a
    404. The service checks permission and state itself: a refusal is shown as its message and
    nothing is written (the service's transaction rolls back). A double click posts twice: the
    second finds the object already moved and says so.

    `WorkflowAdmin` is the read-only kind; an admin whose change form still edits plain fields
    (partners, categories) mixes this in for the fields that need a service and a reason.
    """

    workflow_template = "admin/workflow/confirm.html"
    # The detail buttons the object's state offers: action name -> test on the object (see
    # `offered_in`). A button not listed is always shown. This only spares people buttons that
    # cannot apply now; the service still checks the state of whatever is posted.
    step_offered: dict[str, Callable] = {}

    def get_actions_detail(self, request, object_id):
        actions = super().get_actions_detail(request, object_id)
        obj = self.get_object(request, object_id) if self.step_offered else None
        if obj is None:
            return actions
        prefix = f"{self.opts.app_label}_{self.opts.model_name}_"
        return [
            action
            for action in actions
            if (offered := self.step_offered.get(action.action_name.removeprefix(prefix))) is None or offered(obj)
        ]

    def workflow(self, request, object_id, step: Step) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r} in your scope.")
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
        form = WorkflowForm(request.POST if request.method == "POST" else None, step=step)
        if request.method == "POST" and form.is_valid():
            self.workflow_apply(request, obj, step, form.cleaned_data)
            return redirect(_safe_next(request, request.POST.get("next")) or change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "object": obj,
            "step": step,
            "form": form,
            "title": f"{step.title}: {obj}",
            "change_url": change_url,
            "next": _safe_next(request, request.GET.get("next")) or "",
        }
        return TemplateResponse(request, self.workflow_template, context)

    def workflow_apply(self, request, obj, step: Step, data: dict) -> bool:
        """Call the step's service and report; True when it changed the object."""
        try:
            result = step.call(obj, request.user, data)
        except TransitionNotAllowed as exc:
            if step.done_state and exc.state == step.done_state:
                messages.info(request, f"{obj} is already {exc.state.replace('_', ' ')}; nothing to do.")
            else:
                messages.error(request, exc.message)
            return False
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return False
        messages.success(request, step.success.format(obj=result if result is not None else obj))
        return True


class ServiceFormMixin:
    """An add/change form written by a service instead of `form.save()`.

    The form still parses and validates the input; `form_save_service(request, form, change)` then
    calls the service (which checks the permission, the scope and the rules, and writes the audit
    event) and returns the saved object, against which the admin saves the inlines and logs the
    change. A refusal by the service rolls the whole save back (the admin's transaction) and is
    shown as a message over the form.
    """

    def form_save_service(self, request, form, change):
        raise NotImplementedError

    def save_form(self, request, form, change):
        # Validated, not saved: the service writes. The form's own many-to-many fields would be saved
        # after it (`save_related`); these forms have none the service does not write itself.
        form.save_m2m = lambda: None
        return form.instance

    def save_model(self, request, obj, form, change):
        saved = self.form_save_service(request, form, change)
        if not change:
            obj.pk = saved.pk
            obj._state.adding = False
        obj.refresh_from_db()  # what the service wrote (it may normalise a value)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            if request.method != "POST":
                raise
            messages.error(request, exc.message)
            return redirect(request.get_full_path())


class WorkflowAdmin(WorkflowStepsMixin, TimelineMixin, ScopedReadOnlyAdmin):
    """A scoped admin whose state changes are workflow steps, never form saves."""


# django-q2's tasks, failures and schedules in the unfold theme.
from marketplace.core import q_admin  # noqa: E402, F401
