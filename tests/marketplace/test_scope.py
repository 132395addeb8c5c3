"""The one staff scope, applied by every `<model>_for_user` selector: partner grants (direct or
through a group), category grants (a category and everything below it), single disputes granted on
assignment, and the global roles. Scope is SQL (subqueries over the grant tables), never a list of
ids pulled into Python, so a selector costs the same number of queries however many grants the user holds."""

import re
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from marketplace.bookings.selectors import booking_for_user
from marketplace.catalog.models import Category, Listing
from marketplace.catalog.selectors import listing_for_user
from marketplace.disputes.models import Dispute
from marketplace.disputes.selectors import dispute_for_user
from marketplace.disputes.services import dispute_assign, dispute_open
from marketplace.partners.models import Partner
from marketplace.partners.selectors import partner_for_user
from marketplace.partners.services import partner_scope_grant
from marketplace.payouts.selectors import payout_for_user
from marketplace.payouts.services import payout_create
from tests.factories import CategoryFactory, ListingFactory, PartnerFactory, StaffFactory, flows
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db

SELECTORS = {
    "listings": listing_for_user,
    "bookings": booking_for_user,
    "disputes": dispute_for_user,
    "payouts": payout_for_user,
    "partners": partner_for_user,
}


@dataclass
class World:
    """Two partners, a category tree, and a listing, booking, dispute or payout in each corner.

    Home ─┬─ Cleaning ── Windows        Other (a second root)
          └─ Gardening
    Partner A: listings in Cleaning and Windows.   Partner B: listings in Windows, Gardening, Other.
    Payouts: A's Cleaning booking, B's Gardening booking. Disputes: on both Windows bookings and B's Other.
    """

    a: Partner
    b: Partner
    categories: dict[str, Category]
    listings: dict[str, Listing]
    bookings: dict[str, object]
    disputes: dict[str, Dispute]
    payouts: dict[str, object]

    def ids(self, kind: str, *names: str) -> set[int]:
        if kind == "partners":
            return {getattr(self, name).pk for name in names}
        return {getattr(self, kind)[name].pk for name in names}


def category(name: str, parent: Category | None = None) -> Category:
    # re-read the parent: treebeard computes the child's path from the parent row as it is now
    parent = Category.objects.get(pk=parent.pk) if parent else None
    return CategoryFactory(name=name, slug=name.lower().replace(" ", "-"), parent=parent)


@pytest.fixture
def world() -> World:
    # categories first: a root added later in name order could shift the paths of these
    home = category("Home")
    cleaning = category("Cleaning", home)
    windows = category("Windows", cleaning)
    gardening = category("Gardening", home)
    other = category("Other")
    a, b = PartnerFactory(name="A"), PartnerFactory(name="B")
    where = {
        "a_cleaning": (a, cleaning),
        "a_windows": (a, windows),
        "b_windows": (b, windows),
        "b_gardening": (b, gardening),
        "b_other": (b, other),
    }
    listings = {
        name: ListingFactory(partner=partner, category=cat, status=Listing.Status.PUBLISHED)
        for name, (partner, cat) in where.items()
    }
    bookings = {name: flows.settled_booking(window_open=True, listing=listing) for name, listing in listings.items()}
    payouts = {
        name: payout_create(partner=bookings[name].partner, bookings=[bookings[name]])
        for name in ("a_cleaning", "b_gardening")
    }
    disputes = {
        name: dispute_open(
            booking=bookings[name], actor=bookings[name].client, reason_code="quality", description="Streaks"
        )
        for name in ("a_windows", "b_windows", "b_other")
    }
    categories = {"home": home, "cleaning": cleaning, "windows": windows, "gardening": gardening, "other": other}
    return World(a, b, categories, listings, bookings, disputes, payouts)


def seen(user) -> dict[str, set[int]]:
    user = User.objects.get(pk=user.pk)  # no permission cache from an earlier call
    return {kind: set(selector(user).values_list("pk", flat=True)) for kind, selector in SELECTORS.items()}


def agent(**kwargs) -> User:
    return staff(StaffGroup.OPERATIONS_AGENT, **kwargs)


NOTHING = {kind: set() for kind in SELECTORS}


def partner_a_only(world: World) -> dict[str, set[int]]:
    return {
        "listings": world.ids("listings", "a_cleaning", "a_windows"),
        "bookings": world.ids("bookings", "a_cleaning", "a_windows"),
        "disputes": world.ids("disputes", "a_windows"),
        "payouts": world.ids("payouts", "a_cleaning"),
        "partners": world.ids("partners", "a"),
    }


def test_scope_partner_grant_sees_only_that_partners_rows(world):
    # given an agent granted Partner A
    user = agent()
    partner_scope_grant(partner=world.a, grantee=user)

    # when they read through the selectors, then they see exactly A's rows and none of B's
    assert seen(user) == partner_a_only(world)


def test_scope_partner_grant_through_a_group(world):
    # given an agent in a team (group) that was granted Partner A
    team = Group.objects.create(name="Team A")
    user = agent()
    user.groups.add(team)
    partner_scope_grant(partner=world.a, grantee=team)

    # then the agent sees exactly what a direct grant would show
    assert seen(user) == partner_a_only(world)
    # and someone outside the team sees nothing
    assert seen(agent()) == NOTHING


# the granted category -> the listings (and their bookings) and the disputes it covers
CATEGORY_CASES = {
    "cleaning": ({"a_cleaning", "a_windows", "b_windows"}, {"a_windows", "b_windows"}),
    "windows": ({"a_windows", "b_windows"}, {"a_windows", "b_windows"}),
    "gardening": ({"b_gardening"}, set()),
    "home": ({"a_cleaning", "a_windows", "b_windows", "b_gardening"}, {"a_windows", "b_windows"}),
    "other": ({"b_other"}, {"b_other"}),
}


@pytest.mark.parametrize("through", ["user", "group"])
def test_scope_category_grant_covers_the_category_and_below_not_siblings(world, subtests, through):
    for granted, (listings, disputes) in CATEGORY_CASES.items():
        with subtests.test(granted=granted):
            # given an agent granted one category, directly or through a group
            user = agent()
            grantee = user
            if through == "group":
                grantee = Group.objects.create(name=f"Team {granted}")
                user.groups.add(grantee)
            assign_perm("catalog.operate_category", grantee, world.categories[granted])

            # then they see the listings and bookings of that category and below, across partners, but
            # not of its siblings, parents or other roots; payouts (partner-wide) and partners not at all
            assert seen(user) == {
                "listings": world.ids("listings", *listings),
                "bookings": world.ids("bookings", *listings),
                "disputes": world.ids("disputes", *disputes),
                "payouts": set(),
                "partners": set(),
            }


def test_scope_assigned_dispute_is_visible_outside_partner_scope(world):
    # given an agent granted Partner A, assigned a dispute of Partner B
    user = agent()
    partner_scope_grant(partner=world.a, grantee=user)
    dispute_assign(dispute=world.disputes["b_other"], actor=staff(StaffGroup.OPERATIONS_LEAD), assignee=user)

    # then they see that one dispute besides A's, and still none of B's other rows
    expected = partner_a_only(world)
    expected["disputes"] = world.ids("disputes", "a_windows", "b_other")
    assert seen(user) == expected


def test_scope_reassigned_dispute_leaves_the_previous_assignee(world):
    # given a dispute of Partner B assigned to one agent, then reassigned to another
    first, second = agent(), agent()
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    dispute_assign(dispute=world.disputes["b_other"], actor=lead, assignee=first)
    dispute_assign(dispute=world.disputes["b_other"], actor=lead, assignee=second)

    # then only the new assignee sees it
    assert seen(first)["disputes"] == set()
    assert seen(second)["disputes"] == world.ids("disputes", "b_other")


def test_scope_global_roles_see_everything(world, subtests):
    everything = {
        kind: world.ids(kind, *getattr(world, kind)) for kind in ("listings", "bookings", "disputes", "payouts")
    }
    everything["partners"] = world.ids("partners", "a", "b")
    for role in (StaffGroup.OPERATIONS_LEAD, StaffGroup.FINANCE, "superuser"):
        with subtests.test(role=role):
            # given a lead or finance user (operate_all_partners) or a superuser, with no grants
            user = StaffFactory(is_superuser=True) if role == "superuser" else staff(role)

            # then they see every row
            assert seen(user) == everything


def test_scope_non_staff_and_inactive_users_see_nothing(world, subtests):
    people = {
        "client": lambda: world.bookings["a_cleaning"].client,
        "provider": lambda: world.listings["a_cleaning"].owner,
        "inactive staff": lambda: agent(is_active=False),
        "inactive lead": lambda: staff(StaffGroup.OPERATIONS_LEAD, is_active=False),
    }
    for who, make in people.items():
        with subtests.test(who=who):
            # given someone who is not active staff, granted Partner A (or holding a global role)
            user = make()
            partner_scope_grant(partner=world.a, grantee=user)

            # then every selector returns nothing
            assert seen(user) == NOTHING
    with subtests.test(who="staff without grants"):
        assert seen(agent()) == NOTHING


def test_scope_selectors_are_sql_not_id_lists(world, subtests):
    # given an agent with grants on a partner, a category and an assigned dispute
    user = agent()
    partner_scope_grant(partner=world.a, grantee=user)
    assign_perm("catalog.operate_category", user, world.categories["windows"])
    dispute_assign(dispute=world.disputes["b_other"], actor=staff(StaffGroup.OPERATIONS_LEAD), assignee=user)
    user = User.objects.get(pk=user.pk)

    for kind, selector in SELECTORS.items():
        with subtests.test(kind=kind):
            # when the selector's SQL is built
            sql = str(selector(user).query)

            # then the grants are read inside the query from guardian's tables (on PostgreSQL as
            # `= ANY(ARRAY(SELECT ...))`, an array the index scans can use, or for bookings as one
            # `id IN (<granted rows> UNION ALL ...)`), and no id is inlined as a literal IN list or array
            assert "objectpermission" in sql
            assert "= ANY(ARRAY(SELECT" in sql or '"id" IN ((SELECT' in sql and " UNION ALL (SELECT " in sql, sql
            assert not re.search(r" IN \(\s*[0-9'%]", sql), sql
            assert not re.search(r"ARRAY\[", sql), sql


@pytest.mark.parametrize("grant", ["partner", "category"])
def test_scope_selector_query_count_does_not_grow_with_grants(world, django_assert_num_queries, subtests, grant):
    # given two agents, one granted one scope object, the other twenty
    def granted(n: int) -> User:
        user = agent()
        if grant == "partner":
            for partner in [world.a] + [PartnerFactory() for _ in range(n - 1)]:
                partner_scope_grant(partner=partner, grantee=user)
        else:
            for cat in [world.categories["cleaning"]] + [category(f"Zz {user.pk} {i}") for i in range(n - 1)]:
                assign_perm("catalog.operate_category", user, cat)
        return user

    one, twenty = granted(1), granted(20)

    for kind, selector in SELECTORS.items():
        with subtests.test(kind=kind):
            # when each evaluates the selector (fresh users: two permission lookups for the global check,
            # then one SELECT)
            first, second = User.objects.get(pk=one.pk), User.objects.get(pk=twenty.pk)
            with django_assert_num_queries(3):
                rows_one = list(selector(first))
            with django_assert_num_queries(3):
                rows_twenty = list(selector(second))

            # then the count is the same; the extra grants only add their own (empty) partners/categories
            assert {r.pk for r in rows_one} <= {r.pk for r in rows_twenty}
