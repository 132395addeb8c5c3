"""The scope's SQL shape: grants compile to `col = ANY(ARRAY(SELECT ...))` on PostgreSQL (an InitPlan
whose array an index scan can use) and to `col IN (SELECT ...)` elsewhere; bookings' grants to one
`id IN (<granted rows> UNION ALL ...)` (`granted_rows_q`). Always the same rows as the `IN (subquery)`
form the selectors used before."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Q
from django.db.utils import ConnectionHandler
from guardian.shortcuts import assign_perm

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from marketplace.bookings.models import Booking
from marketplace.bookings.selectors import booking_for_user
from marketplace.catalog.models import Category, CategoryGroupObjectPermission, Listing
from marketplace.catalog.selectors import granted_category_ids, listing_for_user
from marketplace.disputes.models import Dispute, DisputeGroupObjectPermission, DisputeUserObjectPermission
from marketplace.disputes.selectors import dispute_for_user
from marketplace.disputes.services import dispute_assign, dispute_open
from marketplace.partners.models import Partner, PartnerGroupObjectPermission, PartnerUserObjectPermission
from marketplace.partners.selectors import granted_ids, partner_for_user
from marketplace.partners.services import partner_scope_grant
from marketplace.payouts.models import Payout
from marketplace.payouts.selectors import payout_for_user
from marketplace.payouts.services import payout_create
from tests.factories import CategoryFactory, ListingFactory, PartnerFactory, flows
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db


# --- The previous form, kept here as the reference for "same rows" ---------------------------


def _old_partner_q(user, field):
    direct, via_group = granted_ids(
        user,
        PartnerUserObjectPermission,
        PartnerGroupObjectPermission,
        app_label="partners",
        codename="operate_partner",
    )
    return Q(**{f"{field}__in": direct}) | Q(**{f"{field}__in": via_group})


def _old_category_q(user, field):
    return Q(**{f"{field}__in": granted_category_ids(user)})


def _old_dispute_grant_q(user):
    direct, via_group = granted_ids(
        user, DisputeUserObjectPermission, DisputeGroupObjectPermission, app_label="disputes", codename="handle_dispute"
    )
    return Q(pk__in=direct) | Q(pk__in=via_group)


OLD_SCOPES = {
    "bookings": (
        booking_for_user,
        lambda u: Booking.objects.filter(_old_partner_q(u, "partner") | _old_category_q(u, "category")),
    ),
    "listings": (
        listing_for_user,
        lambda u: Listing.objects.filter(_old_partner_q(u, "partner") | _old_category_q(u, "category")),
    ),
    "disputes": (
        dispute_for_user,
        lambda u: Dispute.objects.filter(
            _old_partner_q(u, "partner") | _old_category_q(u, "booking__category") | _old_dispute_grant_q(u)
        ),
    ),
    "payouts": (payout_for_user, lambda u: Payout.objects.filter(_old_partner_q(u, "partner"))),
    "partners": (partner_for_user, lambda u: Partner.objects.filter(_old_partner_q(u, "pk"))),
}


def _category(name, parent=None):
    parent = Category.objects.get(pk=parent.pk) if parent else None  # treebeard reads the parent row as it is now
    return CategoryFactory(name=name, slug=name.lower(), parent=parent)


@pytest.fixture
def corners():
    """Partners A and B; Home > Cleaning > Windows and a second root Other; a booking in each corner,
    disputes on two of them and a payout for each partner."""
    home = _category("Home")
    cleaning = _category("Cleaning", home)
    windows = _category("Windows", cleaning)
    other = _category("Other")
    a, b = PartnerFactory(name="A"), PartnerFactory(name="B")
    bookings = {
        name: flows.settled_booking(
            window_open=True, listing=ListingFactory(partner=partner, category=cat, status=Listing.Status.PUBLISHED)
        )
        for name, (partner, cat) in {
            "a_cleaning": (a, cleaning),
            "a_windows": (a, windows),
            "b_windows": (b, windows),
            "b_other": (b, other),
        }.items()
    }
    disputes = {
        name: dispute_open(booking=bookings[name], actor=bookings[name].client, reason_code="quality", description="x")
        for name in ("a_windows", "b_other")
    }
    for partner, name in ((a, "a_cleaning"), (b, "b_windows")):
        payout_create(partner=partner, bookings=[bookings[name]])
    return {"a": a, "b": b, "cleaning": cleaning, "other": other, "disputes": disputes}


def _grantees(corners):
    """The users of the matrix: partner grant, group grant, category subtree grant (direct and
    through a group), a single assigned dispute, all of them at once, and no grant."""
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    users = {}

    users["partner grant"] = staff(StaffGroup.OPERATIONS_AGENT, scope=corners["a"])

    team = Group.objects.create(name="Team B")
    users["group grant"] = staff(StaffGroup.OPERATIONS_AGENT)
    users["group grant"].groups.add(team)
    partner_scope_grant(partner=corners["b"], grantee=team)

    users["category subtree grant"] = staff(StaffGroup.OPERATIONS_AGENT)
    assign_perm("catalog.operate_category", users["category subtree grant"], corners["cleaning"])

    cat_team = Group.objects.create(name="Team Other")
    users["category grant through a group"] = staff(StaffGroup.OPERATIONS_AGENT)
    users["category grant through a group"].groups.add(cat_team)
    assign_perm("catalog.operate_category", cat_team, corners["other"])
    assert CategoryGroupObjectPermission.objects.filter(group=cat_team).exists()

    users["assigned dispute"] = staff(StaffGroup.OPERATIONS_AGENT)
    dispute_assign(dispute=corners["disputes"]["b_other"], actor=lead, assignee=users["assigned dispute"])

    users["every kind"] = staff(StaffGroup.OPERATIONS_AGENT, scope=corners["a"])
    users["every kind"].groups.add(team)
    assign_perm("catalog.operate_category", users["every kind"], corners["other"])
    dispute_assign(dispute=corners["disputes"]["a_windows"], actor=lead, assignee=users["every kind"])

    users["no grant"] = staff(StaffGroup.OPERATIONS_AGENT)
    return {name: User.objects.get(pk=user.pk) for name, user in users.items()}


def test_scope_selectors_return_the_same_rows_as_the_in_subquery_form(corners, subtests):
    # given agents with each kind of grant, and none
    users = _grantees(corners)

    for who, user in users.items():
        for kind, (selector, old) in OLD_SCOPES.items():
            with subtests.test(who=who, kind=kind):
                # when the selector reads, then it returns exactly the rows the IN (subquery) form returned
                got = set(selector(user).values_list("pk", flat=True))
                assert got == set(old(user).values_list("pk", flat=True))
                # and the matrix is not vacuous: every grant shows something, no grant shows nothing
                if kind == "bookings":
                    assert bool(got) == (who not in ("no grant", "assigned dispute")), got


def test_booking_for_user_compiles_grants_to_one_semi_join_on_the_union_of_granted_rows(corners):
    # given an agent granted a partner
    assert connection.vendor == "postgresql"
    user = User.objects.get(pk=staff(StaffGroup.OPERATIONS_AGENT, scope=corners["a"]).pk)

    # when the scope's SQL is built
    sql = str(booking_for_user(user).query)
    outer, _, inner = sql.partition(' WHERE "bookings_booking"."id" IN ((SELECT ')

    # then the outer query has one condition, the booking's id in the union of the granted rows: no OR
    # and no array, whose size PostgreSQL cannot know when it plans (it assumes ~70% of the table)
    assert inner, sql
    assert "JOIN" not in outer, outer
    assert inner.count(") UNION ALL (SELECT ") == 2, sql
    # and each branch is a plain IN (subquery) on the grant tables, which becomes a join sized by them
    assert inner.count('"partner_id" IN (SELECT V0."content_object_id"') == 2, sql
    assert inner.count('"category_id" IN (SELECT W0."id"') == 1, sql
    assert "ANY(" not in sql, sql
    assert " OR " not in sql.replace(") OR EXISTS(", ""), sql  # only inside the category subtree


def test_dispute_for_user_keeps_bookings_out_of_the_outer_query(corners):
    # given an agent
    user = User.objects.get(pk=staff(StaffGroup.OPERATIONS_AGENT, scope=corners["a"]).pk)

    # when the dispute scope's SQL is built
    sql = str(dispute_for_user(user).query)

    # then partner and assignment grants are arrays, and the category branch reads bookings only
    # inside its subquery (the outer query joins nothing)
    assert sql.count('"disputes_dispute"."partner_id" = ANY(ARRAY(SELECT') == 2, sql
    assert sql.count('"disputes_dispute"."id" = ANY(ARRAY(SELECT') == 2, sql
    assert '"disputes_dispute"."booking_id" IN (SELECT' in sql, sql
    outer_from = sql.split(" WHERE ", 1)[0]
    assert "JOIN" not in outer_from, outer_from


def test_scope_grants_compile_to_in_subquery_on_sqlite(corners):
    # given an agent, and a SQLite connection (the `make run` database), used only to compile
    user = User.objects.get(pk=staff(StaffGroup.OPERATIONS_AGENT, scope=corners["a"]).pk)
    sqlite = ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})["default"]

    for selector in (booking_for_user, dispute_for_user, partner_for_user):
        # when the scope is compiled for SQLite
        sql, _ = selector(user).query.get_compiler(connection=sqlite).as_sql()

        # then it falls back to IN (subquery), which SQLite understands
        assert "ANY(" not in sql, sql
        assert " IN (SELECT" in sql, sql


# --- Built once per user object ---------------------------------------------------------------


def _timed(fn, *args) -> float:
    import time

    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def test_a_scope_is_built_once_per_user_object_and_still_reads_the_grants_when_it_runs():
    import pickle
    import time

    from django.test.utils import CaptureQueriesContext

    from marketplace.partners.services import partner_scope_revoke

    # given an agent granted one partner that has a booking
    booking = flows.booking_in("requested")
    agent = User.objects.get(pk=staff(StaffGroup.OPERATIONS_AGENT, scope=booking.partner).pk)

    # when the scope is asked for twice
    started = time.perf_counter()
    first = booking_for_user(agent)
    built = time.perf_counter() - started
    second = booking_for_user(agent)
    cloned = min(_timed(booking_for_user, agent) for _ in range(5))  # the best of 5: no GC pause

    # then the second is a clone of the first (the same SQL, its own object) and far cheaper
    assert second is not first and str(second.query) == str(first.query)
    assert cloned < built / 10, (cloned, built)
    assert list(second) == [booking]

    # and the grants are still read when the query runs: a revoke empties the very same user's scope
    partner_scope_revoke(partner=booking.partner, grantee=agent)
    assert list(booking_for_user(agent)) == []
    # and a change of the user's flags is a different key: a deactivated user sees nothing
    agent.is_active = False
    assert booking_for_user(agent).query.is_empty()

    # and pickling the user neither runs the cached queries nor carries them along
    with CaptureQueriesContext(connection) as queries:
        copy = pickle.loads(pickle.dumps(agent))
    assert len(queries) == 0
    assert not copy.__dict__.get("_scope_querysets")
