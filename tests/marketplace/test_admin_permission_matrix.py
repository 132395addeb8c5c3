"""The admin's permission matrix: role x scope x action, every cell asserted through the admin.

How to read it
--------------
- Roles: the six staff groups (marketplace.accounts.services.GROUP_PERMISSIONS), a superuser and a
  signed-in user who is not staff. Every staff role user is granted the OWN partner
  (`partner_scope_grant`); Operations lead and Finance see every partner through their group
  (`partners.operate_all_partners`), so for them "own" and "other" are both in scope.
- Scopes: "own" is an object of the partner the user was granted, "other" one of another partner.
  Disputes have two more: "unassigned" (another partner's dispute, assigned to nobody) and
  "assigned" (another partner's dispute assigned to this user, which puts it in their scope);
  "other" is then another partner's dispute assigned to someone else. Categories belong to no
  partner: their one scope is "global". People are scoped through what they are connected to
  (`user_for_user`): "own" is a member of the own partner, "other" a member of the other one. The
  non-staff user cannot be assigned a dispute: its "assigned" cell targets the unassigned dispute
  (the answer is the login page either way).
- More cells on people (history and password pages, raw-id popups, user autocompletes) and on
  transfer file downloads are in test_admin_permission_matrix_people.py, over the same objects.
- Outcomes, written in POLICY below (the policy as it should be, not read from the code):
    ok      changelist: the object's row is listed; change page: 200; change or workflow step:
            the POST redirects and the row changed (a row button: it leads to its step, which then
            changes the row)
    hidden  changelist: 200, but the object's row is not listed
    404     out of the user's scope: the object is not found (nothing changes)
    403     no model permission for the page or the step (nothing changes)
    absent  bulk action the user may not take: it is not offered, and posting it anyway is answered
            with the changelist again (Django ignores an action it does not offer; nothing changes)
    noop    bulk action on a selected row outside the user's scope: it is not touched
    login   not staff: sent to the admin login page (nothing changes)
  A model permission is checked before the scope, so a user without the permission gets 403 on
  any object, in scope or not.
- Besides the model's own steps, every workflow model has "note": an internal note on the object's
  timeline, open to whoever may see the object.

Export and import
-----------------
"export" posts the CSV export form and looks for the object's row in the file ("hidden": the file
came without it). "import" uploads a one-row file that creates a new object next to the target
(its partner, its parent category) and confirms it; "ok" when the new row exists.

Speed: the objects are built once per module (and worker) inside a transaction that is rolled back
at the end; each test runs in a savepoint of it, so a step that succeeds is undone for the next.
"""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import messages
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.forms import MultiWidget
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup, staff_groups_ensure
from marketplace.audit.models import Note
from marketplace.bookings.models import Booking
from marketplace.catalog import services as catalog
from marketplace.catalog.models import Category, Listing
from marketplace.disputes import services as disputes
from marketplace.disputes.models import Dispute
from marketplace.partners.models import Partner, PartnerMembership
from marketplace.payouts.models import Payout
from tests.factories import (
    CategoryFactory,
    ClientFactory,
    MembershipFactory,
    PartnerFactory,
    ProviderFactory,
    StaffFactory,
)
from tests.factories.flows import booking_in
from tests.factories.settlement import dispute_in, payout_in, staff
from tests.factories.states import listing_in

pytestmark = pytest.mark.django_db

# --- Roles -------------------------------------------------------------------------------------

AGENT, LEAD, FINANCE, SUPPORT, EDITOR, PMGR, SUPER, NOSTAFF = ROLES = (
    "agent",
    "lead",
    "finance",
    "support",
    "editor",
    "partner_manager",
    "superuser",
    "non_staff",
)
GROUP_OF = {
    AGENT: StaffGroup.OPERATIONS_AGENT,
    LEAD: StaffGroup.OPERATIONS_LEAD,
    FINANCE: StaffGroup.FINANCE,
    SUPPORT: StaffGroup.SUPPORT,
    EDITOR: StaffGroup.CONTENT_EDITOR,
    PMGR: StaffGroup.PARTNER_MANAGER,
}

OUTCOMES = {"ok", "hidden", "404", "403", "absent", "noop", "login"}
PARTNER_SCOPES = ("own", "other")
DISPUTE_SCOPES = ("own", "other", "unassigned", "assigned")
GLOBAL_SCOPES = ("global",)
SCOPES = {
    "listing": PARTNER_SCOPES,
    "booking": PARTNER_SCOPES,
    "dispute": DISPUTE_SCOPES,
    "payout": PARTNER_SCOPES,
    "partner": PARTNER_SCOPES,
    "category": GLOBAL_SCOPES,
    "user": PARTNER_SCOPES,
}


def row(*cells: str) -> dict[str, tuple[str, ...]]:
    """One action's line of the table: a cell per role (in ROLES order), its outcome per scope."""
    assert len(cells) == len(ROLES), cells
    return {role: tuple(cell.split()) for role, cell in zip(ROLES, cells, strict=True)}


# --- The policy --------------------------------------------------------------------------------
# Columns:           agent            lead             finance          support          editor           partner manager  superuser        non-staff

_NONE = row("403 403", "403 403", "403 403", "403 403", "403 403", "403 403", "ok ok", "login login")

POLICY: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    # scopes: own other
    "listing": {
        "changelist":        row("ok hidden", "ok ok", "ok ok", "ok hidden", "403 403", "ok hidden", "ok ok", "login login"),
        "view":              row("ok 404",    "ok ok", "ok ok", "ok 404",    "403 403", "ok 404",    "ok ok", "login login"),
        # the change form is read-only for everyone: state changes are workflow steps
        "change":            row("403 403",   "403 403", "403 403", "403 403", "403 403", "403 403", "403 403", "login login"),
        "note":              row("ok 404",    "ok ok", "ok ok", "ok 404",    "403 403", "ok 404",    "ok ok", "login login"),
        "approve":           row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "request_changes":   row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "reject":            row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "suspend":           row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "reinstate":         row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "approve_revision":  row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "reject_revision":   row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "approve_from_list": row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "reject_from_list":  row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        # transfers.export_data (agents, leads, finance) and view permission; rows limited to the scope
        "export":            row("ok hidden", "ok ok", "ok ok", "403 403", "403 403", "403 403", "ok ok", "login login"),
        # transfers.import_data and catalog.add_listing (leads); a new listing of the object's partner
        "import":            _NONE | {LEAD: ("ok", "ok")},
    },
    # scopes: own other
    "booking": {
        "changelist":        row("ok hidden", "ok ok", "ok ok", "ok hidden", "403 403", "403 403",   "ok ok", "login login"),
        "view":              row("ok 404",    "ok ok", "ok ok", "ok 404",    "403 403", "403 403",   "ok ok", "login login"),
        "change":            row("403 403",   "403 403", "403 403", "403 403", "403 403", "403 403", "403 403", "login login"),
        "note":              row("ok 404",    "ok ok", "ok ok", "ok 404",    "403 403", "403 403",   "ok ok", "login login"),
        "accept":            row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "decline":           row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "complete":          row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "cancel":            row("ok 404",    "ok ok", "403 403", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "export":            row("ok hidden", "ok ok", "ok ok", "403 403",   "403 403", "403 403",   "ok ok", "login login"),
    },
    # scopes: own other unassigned assigned
    "dispute": {
        "changelist":         row("ok hidden hidden ok", "ok ok ok ok", "ok ok ok ok", "ok hidden hidden ok", "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        "view":               row("ok 404 404 ok",       "ok ok ok ok", "ok ok ok ok", "ok 404 404 ok",       "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        "change":             row("403 403 403 403",     "403 403 403 403", "403 403 403 403", "403 403 403 403", "403 403 403 403", "403 403 403 403", "403 403 403 403", "login login login login"),
        "note":               row("ok 404 404 ok",       "ok ok ok ok", "ok ok ok ok", "ok 404 404 ok",       "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        # assign: disputes.assign_dispute (leads)
        "assign":             row("403 403 403 403",     "ok ok ok ok", "403 403 403 403", "403 403 403 403", "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        # handling: disputes.change_dispute (agents, leads, support)
        "request_response":   row("ok 404 404 ok",       "ok ok ok ok", "403 403 403 403", "ok 404 404 ok",   "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        "start_review":       row("ok 404 404 ok",       "ok ok ok ok", "403 403 403 403", "ok 404 404 ok",   "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        "escalate":           row("ok 404 404 ok",       "ok ok ok ok", "403 403 403 403", "ok 404 404 ok",   "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        # resolving: disputes.resolve_dispute (agents, leads)
        "resolve":            row("ok 404 404 ok",       "ok ok ok ok", "403 403 403 403", "403 403 403 403", "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        "withdraw":           row("ok 404 404 ok",       "ok ok ok ok", "403 403 403 403", "403 403 403 403", "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        # a refund above the threshold, proposed by someone else: disputes.approve_refund (leads, finance)
        "approve_resolution": row("403 403 403 403",     "ok ok ok ok", "ok ok ok ok", "403 403 403 403", "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
        "export":             row("ok hidden hidden ok", "ok ok ok ok", "ok ok ok ok", "403 403 403 403", "403 403 403 403", "403 403 403 403", "ok ok ok ok", "login login login login"),
    },
    # scopes: own other
    "payout": {
        "changelist":        row("ok hidden", "ok ok", "ok ok", "403 403", "403 403", "ok hidden", "ok ok", "login login"),
        "view":              row("ok 404",    "ok ok", "ok ok", "403 403", "403 403", "ok 404",    "ok ok", "login login"),
        "change":            row("403 403",   "403 403", "403 403", "403 403", "403 403", "403 403", "403 403", "login login"),
        "note":              row("ok 404",    "ok ok", "ok ok", "403 403", "403 403", "ok 404",    "ok ok", "login login"),
        # payouts.hold_payout (leads, finance)
        "hold":              row("403 403",   "ok ok", "ok ok", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "release_hold":      row("403 403",   "ok ok", "ok ok", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        # payouts.change_payout (leads, finance)
        "request_approval":  row("403 403",   "ok ok", "ok ok", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "retry":             row("403 403",   "ok ok", "ok ok", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "cancel":            row("403 403",   "ok ok", "ok ok", "403 403", "403 403", "403 403",   "ok ok", "login login"),
        # payouts.approve_payout (finance): the second person of the four eyes
        "approve":           row("403 403",   "403 403", "ok ok", "403 403", "403 403", "403 403", "ok ok", "login login"),
        "reject":            row("403 403",   "403 403", "ok ok", "403 403", "403 403", "403 403", "ok ok", "login login"),
        # the changelist's bulk action: not offered to those who see the list but may not approve
        "approve_selected":  row("absent absent", "absent absent", "ok ok", "403 403", "403 403", "absent absent", "ok ok", "login login"),
        "export":            row("ok hidden", "ok ok", "ok ok", "403 403", "403 403", "403 403", "ok ok", "login login"),
    },
    # scopes: own other (the partner itself)
    "partner": {
        "changelist":        row("ok hidden", "ok ok", "ok ok", "ok hidden", "403 403", "ok hidden", "ok ok", "login login"),
        "view":              row("ok 404",    "ok ok", "ok ok", "ok 404",    "403 403", "ok 404",    "ok ok", "login login"),
        # partners.change_partner (leads, partner managers), in scope: the plain fields only
        "change":            row("403 403",   "ok ok", "403 403", "403 403", "403 403", "ok 404",    "ok ok", "login login"),
        # partners.change_partner_risk (leads, finance): status and risk flag, with a reason
        "suspend":           row("403 403",   "ok ok", "ok ok",   "403 403", "403 403", "403 403",   "ok ok", "login login"),
        "flag_risk":         row("403 403",   "ok ok", "ok ok",   "403 403", "403 403", "403 403",   "ok ok", "login login"),
        # partners.add/delete_partnermembership (leads, partner managers), in scope
        "add_member":        row("403 403",   "ok ok", "403 403", "403 403", "403 403", "ok 404",    "ok ok", "login login"),
        "remove_member":     row("403 403",   "ok ok", "403 403", "403 403", "403 403", "ok 404",    "ok ok", "login login"),
        "export":            row("ok hidden", "ok ok", "ok ok", "403 403", "403 403", "403 403", "ok ok", "login login"),
        # transfers.import_data and partners.add_partner (leads, partner managers): a new partner
        "import":            _NONE | {LEAD: ("ok", "ok"), PMGR: ("ok", "ok")},
    },
    # scope: global (categories belong to no partner)
    "category": {
        "changelist":        row("ok", "ok", "ok", "403", "403", "ok", "ok", "login"),
        "view":              row("ok", "ok", "ok", "403", "403", "ok", "ok", "login"),
        # catalog.change_category (leads): name, slug, active, place in the tree; not the rate
        "change":            row("403", "ok", "403", "403", "403", "403", "ok", "login"),
        # catalog.change_category_commission (leads, finance), with a reason
        "commission":        row("403", "ok", "ok", "403", "403", "403", "ok", "login"),
        "export":            row("ok", "ok", "ok", "403", "403", "403", "ok", "login"),
        "import":            row("403", "ok", "403", "403", "403", "403", "ok", "login"),
    },
    # scopes: own other (a member of the partner: the people connected to the user's scope)
    "user": {
        "changelist":        row("ok hidden", "ok ok", "ok ok", "ok hidden", "403 403", "403 403", "ok ok", "login login"),
        "view":              row("ok 404",    "ok ok", "ok ok", "ok 404",    "403 403", "403 403", "ok ok", "login login"),
        # accounts.change_user: superusers only
        "change":            row("403 403",   "403 403", "403 403", "403 403", "403 403", "403 403", "ok ok", "login login"),
        # no export of people (personal data: the user admin has no export); import:
        # transfers.import_data and accounts.add_user (leads)
        "import":            row("403 403",   "ok ok", "403 403", "403 403", "403 403", "403 403", "ok ok", "login login"),
    },
}  # fmt: skip

# Actions left out of the parametrisation (none: export and import are driven below).
ACTIONS_PENDING: set[str] = set()

ADMIN_NAME = {
    "listing": "catalog_listing",
    "booking": "bookings_booking",
    "dispute": "disputes_dispute",
    "payout": "payouts_payout",
    "partner": "partners_partner",
    "category": "catalog_category",
    "user": "accounts_user",
}
MODEL = {
    "listing": Listing,
    "booking": Booking,
    "dispute": Dispute,
    "payout": Payout,
    "partner": Partner,
    "category": Category,
    "user": User,
}

# The object a step acts on must be in a state the step starts from: which one, per step.
TARGET = {
    "listing": {
        "suspend": "published",
        "reinstate": "suspended",
        "approve_revision": "revised",
        "reject_revision": "revised",
    },
    "booking": {"complete": "accepted"},
    "dispute": {"approve_resolution": "proposed"},
    "payout": {
        "release_hold": "on_hold",
        "approve": "awaiting",
        "reject": "awaiting",
        "approve_selected": "awaiting",
        "retry": "failed",
    },
}
DEFAULT_TARGET = {"listing": "pending", "booking": "authorized", "dispute": "opened", "payout": "ready"}

# What each step's confirmation form is posted with.
STEP_DATA = {
    "request_changes": {"reason": "Add photos of your work."},
    "reject": {"reason": "Not allowed here."},
    "suspend": {"reason": "Complaints."},
    "reject_revision": {"reason": "Keep the old title."},
    "decline": {"reason": "Fully booked."},
    "complete": {"reason": ""},
    "cancel": {"reason": "Plans changed.", "refund": "policy", "refund_amount": ""},
    "escalate": {"reason": "Needs a lead."},
    "resolve": {"outcome": "release", "reason_code": "work_delivered", "reason": "", "refund_amount": ""},
    "withdraw": {"reason": "Sorted it out."},
    "hold": {"reason": "Bank details look wrong."},
    "release_hold": {"reason": ""},
    "request_approval": {"reason": ""},
    "flag_risk": {"reason": "Odd refunds."},
    "commission": {"rate": "0.2000", "reason": "New pricing."},
    "remove_member": {"reason": ""},
}
ROW_BUTTONS = {"approve_from_list": "approve", "reject_from_list": "reject"}


# --- The objects, built once per module --------------------------------------------------------


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Users of every role and an object of every model in every scope and starting state.

    Built in a transaction held open for the module and rolled back after it (each test is a
    savepoint inside it); the database is reachable only while building and rolling back.
    """
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            data = _build_world()
        except BaseException as exc:
            outer.__exit__(type(exc), exc, exc.__traceback__)  # rolls back
            raise
    yield data
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


def _build_world() -> dict:
    staff_groups_ensure()
    own, other = PartnerFactory(), PartnerFactory()
    partners = {"own": own, "other": other}
    users = {role: staff(group, scope=own) for role, group in GROUP_OF.items()}
    users[SUPER] = StaffFactory(is_superuser=True)
    users[NOSTAFF] = ClientFactory()
    helper_lead = staff(StaffGroup.OPERATIONS_LEAD)  # assigns disputes and proposes refunds
    someone_else = staff(StaffGroup.OPERATIONS_AGENT)  # the assignee of the "other" disputes
    assign_to = staff(StaffGroup.OPERATIONS_AGENT)  # whom the assign step picks: never assigned before

    objects: dict[tuple[str, str, str], object] = {}
    for scope, partner in partners.items():
        objects["listing", "pending", scope] = listing_in(Listing.Status.PENDING_REVIEW, partner=partner)
        objects["listing", "published", scope] = listing_in(Listing.Status.PUBLISHED, partner=partner)
        objects["listing", "suspended", scope] = listing_in(Listing.Status.SUSPENDED, partner=partner)
        live = listing_in(Listing.Status.PUBLISHED, partner=partner)
        objects["listing", "revised", scope] = catalog.listing_update(
            listing=live, actor=live.owner, data={"title": "A better title"}
        )
        objects["booking", "authorized", scope] = booking_in("authorized", listing__partner=partner)
        objects["booking", "accepted", scope] = booking_in("accepted", listing__partner=partner)
        objects["payout", "ready", scope] = payout_in(Payout.Status.READY, listing__partner=partner)
        objects["payout", "on_hold", scope] = payout_in(Payout.Status.ON_HOLD, listing__partner=partner)
        objects["payout", "awaiting", scope] = payout_in(Payout.Status.AWAITING_APPROVAL, listing__partner=partner)
        objects["payout", "failed", scope] = payout_in(Payout.Status.FAILED, listing__partner=partner)
        objects["partner", "partner", scope] = partner
        objects["user", "user", scope] = MembershipFactory(partner=partner).user

    def dispute_pair(partner, assignee=None) -> dict[str, Dispute]:
        opened = dispute_in(Dispute.Status.OPENED, listing__partner=partner)
        proposed = dispute_in(Dispute.Status.OPENED, listing__partner=partner, listing__price=Decimal("800.00"))
        disputes.dispute_resolve(dispute=proposed, actor=helper_lead, outcome="full_refund", reason_code="agreed")
        pair = {"opened": opened, "proposed": proposed}
        for dispute in pair.values():
            if assignee is not None:
                disputes.dispute_assign(dispute=dispute, actor=helper_lead, assignee=assignee)
        return pair

    scoped_disputes = {
        "own": dispute_pair(own),
        "other": dispute_pair(other, assignee=someone_else),
        "unassigned": dispute_pair(other),
    }
    for role, user in users.items():
        scoped_disputes[f"assigned:{role}"] = (
            dispute_pair(other, assignee=user) if user.is_staff else scoped_disputes["unassigned"]
        )
    for scope, pair in scoped_disputes.items():
        for kind, dispute in pair.items():
            objects["dispute", kind, scope] = dispute

    objects["category", "category", "global"] = CategoryFactory()
    objects["user", "user", "global"] = ProviderFactory()
    return {"users": users, "objects": objects, "assign_to": assign_to}


def target_of(world, model: str, action: str, scope: str, role: str):
    kind = TARGET.get(model, {}).get(action, DEFAULT_TARGET.get(model, model))
    if scope == "assigned":
        scope = f"assigned:{role}"
    return world["objects"][model, kind, scope]


# --- Drivers: one per kind of action, each answering with an outcome of the table -------------


def snapshot(obj) -> dict:
    fresh = type(obj).objects.get(pk=obj.pk)
    data = model_to_dict(fresh)
    for name in ("updated_at", "modified_at"):
        if hasattr(fresh, name):
            data[name] = getattr(fresh, name)
    return data


def refused(response) -> str:
    """The outcome of an answer that changed nothing."""
    if response.status_code == 302 and reverse("admin:login") in response["Location"]:
        return "login"
    if response.status_code in (403, 404):
        return str(response.status_code)
    shown = response.context["messages"] if response.context and "messages" in response.context else []
    notes = "; ".join(str(m) for m in [*shown, *get_messages(response.wsgi_request)])
    return f"unchanged {response.status_code} {response.get('Location', '')} {notes}".strip()


def succeeded(response) -> bool:
    """Whether the answer carries a success message (what the admin says after a write)."""
    return any(m.level == messages.SUCCESS for m in get_messages(response.wsgi_request))


def changed_by(client, url: str, obj, data: dict) -> str:
    """POST and compare the row: "ok" when the POST redirected and the row changed."""
    before = snapshot(obj)
    response = client.post(url, data)
    after = snapshot(obj)
    if response.status_code == 302 and after != before:
        assert succeeded(response), f"{url} changed the row but said nothing"
        return "ok"
    assert after == before, f"{url} answered {response.status_code} but changed the row"
    return refused(response)


def drive_changelist(client, model, obj, action, world):
    response = client.get(reverse(f"admin:{ADMIN_NAME[model]}_changelist"))
    if response.status_code != 200:
        return refused(response)
    listed = {row.pk for row in response.context["cl"].result_list}
    return "ok" if obj.pk in listed else "hidden"


def drive_view(client, model, obj, action, world):
    response = client.get(reverse(f"admin:{ADMIN_NAME[model]}_change", args=[obj.pk]))
    return "ok" if response.status_code == 200 else refused(response)


EDIT = {"partner": ("name", "Renamed partner"), "category": ("name", "Renamed category"), "user": ("full_name", "X")}


def drive_change(client, model, obj, action, world):
    url = reverse(f"admin:{ADMIN_NAME[model]}_change", args=[obj.pk])
    if model in EDIT:
        data = change_form_data(world, url)
        field, value = EDIT[model]
        data[field] = value
    else:  # a read-only change form: try to write a field anyway
        data = {"title": "Changed through the form", "status": "published", "reason": "x"}
    return changed_by(client, url, obj, data)


def drive_step(client, model, obj, action, world):
    url = reverse(f"admin:{ADMIN_NAME[model]}_{action}", args=[obj.pk])
    data = dict(STEP_DATA.get(action, {}))
    if action == "assign":
        data["assignee"] = world["assign_to"].pk
    if action == "add_member":
        data |= {"email": world["objects"]["user", "user", "global"].email, "role": "member"}
    if action == "remove_member":  # one of the partner's members (its listings' owners)
        data["member"] = PartnerMembership.objects.filter(partner=obj).values_list("pk", flat=True).first()
    if action == "request_response":
        due = timezone.now() + timedelta(days=2)
        data |= {"due_at_0": due.date().isoformat(), "due_at_1": due.strftime("%H:%M")}
    return changed_by(client, url, obj, data)


def drive_row_button(client, model, obj, action, world):
    """A changelist row button sends to its step's confirmation page, which then does the step."""
    response = client.post(reverse(f"admin:{ADMIN_NAME[model]}_{action}", args=[obj.pk]))
    if response.status_code != 302 or reverse("admin:login") in response["Location"]:
        return refused(response)
    step = ROW_BUTTONS[action]
    assert response["Location"].startswith(reverse(f"admin:{ADMIN_NAME[model]}_{step}", args=[obj.pk]))
    return changed_by(client, response["Location"], obj, STEP_DATA.get(step, {}))


def drive_bulk(client, model, obj, action, world):
    url = reverse(f"admin:{ADMIN_NAME[model]}_changelist")
    outcome = changed_by(client, url, obj, {"action": action, "_selected_action": [obj.pk], "index": 0})
    if outcome.startswith("unchanged") and "Approved 0 of 0" in outcome:
        return "noop"  # the selected row is not in the user's scoped changelist
    if outcome == "unchanged 200":
        return "absent"  # Django ignores an action it does not offer: the changelist again, unchanged
    return outcome


def drive_note(client, model, obj, action, world):
    """An internal note on the object's timeline: "ok" when the note was written."""
    notes = Note.objects.filter(target_id=str(obj.pk), target_type=ContentType.objects.get_for_model(obj))
    before = notes.count()
    response = client.post(reverse(f"admin:{ADMIN_NAME[model]}_note_add", args=[obj.pk]), {"body": "Called them."})
    if response.status_code == 302 and notes.count() == before + 1:
        assert succeeded(response)
        return "ok"
    assert notes.count() == before
    return refused(response)


def drive_export(client, model, obj, action, world):
    """POST the export form (CSV): "ok" when the file holds the object's row, "hidden" when not."""
    response = client.post(reverse(f"admin:{ADMIN_NAME[model]}_export"), {"format": "0", "resource": "0"})
    if response.status_code != 200 or "attachment" not in response.get("Content-Disposition", ""):
        return refused(response)
    ids = {r["id"] for r in csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))}
    return "ok" if str(obj.pk) in ids else "hidden"


def _import_row(model: str, obj) -> tuple[bytes, object]:
    """A one-row file creating a new object next to `obj` (its partner, its parent), and where it lands."""
    tag = f"matrix-{model}-{obj.pk}"
    if model == "listing":
        PartnerMembership.objects.get_or_create(partner=obj.partner, user=obj.owner)
        body = (
            f"title,partner,owner,category,price\n{tag},{obj.partner.slug},{obj.owner.email},{obj.category.slug},10\n"
        )
        return body.encode(), Listing.objects.filter(title=tag, partner=obj.partner)
    if model == "partner":
        return f"name,slug\n{tag},{tag}\n".encode(), Partner.objects.filter(slug=tag)
    if model == "category":
        return f"name,slug,parent,commission_rate\n{tag},{tag},{obj.slug},0.1\n".encode(), Category.objects.filter(
            slug=tag
        )
    return f"email\n{tag}@example.test\n".encode(), type(obj).objects.filter(email=f"{tag}@example.test")


def drive_import(client, model, obj, action, world):
    """Upload a one-row file, then confirm it: "ok" when the new row exists, else nothing written."""
    body, created = _import_row(model, obj)
    name = ADMIN_NAME[model]
    response = client.post(
        reverse(f"admin:{name}_import"),
        {"format": "0", "resource": "0", "import_file": SimpleUploadedFile("matrix.csv", body)},
    )
    confirm = response.context.get("confirm_form") if response.status_code == 200 and response.context else None
    if confirm is None:
        assert not created.exists()
        return refused(response)
    done = client.post(reverse(f"admin:{name}_process_import"), confirm.initial)
    if done.status_code == 302 and created.count() == 1:
        return "ok"
    assert not created.exists()
    return refused(done)


DRIVERS = {
    "changelist": drive_changelist,
    "view": drive_view,
    "change": drive_change,
    "approve_from_list": drive_row_button,
    "reject_from_list": drive_row_button,
    "approve_selected": drive_bulk,
    "note": drive_note,
    "export": drive_export,
    "import": drive_import,
}


def change_form_data(world, url: str) -> dict:
    """What the change form posts unchanged (inlines included), read as the superuser sees it."""
    reader = Client()
    reader.force_login(world["users"][SUPER])
    context = reader.get(url).context
    data = form_data(context["adminform"].form)
    for inline in context["inline_admin_formsets"]:
        formset = inline.formset
        data |= {f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()}
        for form in formset.forms:
            data |= form_data(form)
    return data


def form_data(form) -> dict:
    data = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        bound = form[name]
        value = bound.value()
        if isinstance(field.widget, MultiWidget):
            parts = field.widget.decompress(value)
            data |= {f"{bound.html_name}_{i}": "" if part is None else part for i, part in enumerate(parts)}
        elif isinstance(value, bool):
            if value:
                data[bound.html_name] = "on"
        elif isinstance(value, list | tuple):
            data[bound.html_name] = [getattr(v, "pk", v) for v in value]
        else:
            data[bound.html_name] = "" if value is None else value
    return data


# --- The matrix --------------------------------------------------------------------------------


def cells():
    for model, actions in POLICY.items():
        for action, by_role in actions.items():
            if action in ACTIONS_PENDING:
                continue
            for role in ROLES:
                for scope, expected in zip(SCOPES[model], by_role[role], strict=True):
                    yield pytest.param(model, action, role, scope, expected, id=f"{model}-{action}-{role}-{scope}")


def test_policy_table_covers_every_role_and_scope():
    for model, actions in POLICY.items():
        for action, by_role in actions.items():
            assert set(by_role) == set(ROLES), (model, action)
            for role, outcomes in by_role.items():
                assert len(outcomes) == len(SCOPES[model]), (model, action, role)
                assert set(outcomes) <= OUTCOMES, (model, action, role, outcomes)
            # a step without a driver of its own is posted to its URL: it must exist
            if action not in DRIVERS:
                reverse(f"admin:{ADMIN_NAME[model]}_{action}", args=[1])


@pytest.mark.parametrize(("model", "action", "role", "scope", "expected"), list(cells()))
def test_admin_permission_matrix(client, world, model, action, role, scope, expected):
    # given a user of the role and an object of the model in the scope, in the step's starting state
    obj = target_of(world, model, action, scope, role)
    client.force_login(world["users"][role])
    # when the user takes the action in the admin
    outcome = DRIVERS.get(action, drive_step)(client, model, obj, action, world)
    # then the answer is the policy's (a refused action changed nothing: the drivers check that)
    assert outcome == expected
