"""Categories (marketplace/catalog/services.py, the category half): creation, edits, moves and the
commission rate, each a service with a permission, a scope and an audit event. A rate change
applies to new bookings only: a booking keeps the rate and the fee it was made at."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from guardian.shortcuts import assign_perm

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.bookings.services import booking_create
from marketplace.catalog.models import Category, Listing
from marketplace.catalog.services import (
    category_commission_set,
    category_create,
    category_move,
    category_update,
)
from marketplace.core.exceptions import InvalidInput, NotPermitted
from marketplace.core.money import fee_and_share
from tests.factories import CategoryFactory, ClientFactory
from tests.factories.settlement import staff
from tests.factories.states import listing_in, operator_with

pytestmark = pytest.mark.django_db


def _book(listing):
    starts_at = timezone.now() + timedelta(days=3)
    return booking_create(
        listing=listing, client=ClientFactory(), starts_at=starts_at, ends_at=starts_at + timedelta(hours=2)
    )


def _events(category, verb):
    return Event.objects.filter(verb=verb, target_id=str(category.pk))


# --- The commission rate: new bookings only --------------------------------------------------------


def test_category_commission_set_applies_to_new_bookings_only_and_is_audited():
    # given a 10% category and a booking of 10.50 made at that rate
    category = CategoryFactory(commission_rate=Decimal("0.1000"))
    listing = listing_in(Listing.Status.PUBLISHED, category=category, price=Decimal("10.50"))
    before = _book(listing)
    assert (before.commission_rate, before.platform_fee) == (Decimal("0.1000"), Decimal("1.05"))
    lead = staff(StaffGroup.OPERATIONS_LEAD)

    # when a lead sets the rate to 12.5%
    category_commission_set(category=category, rate=Decimal("0.1250"), actor=lead, reason="New pricing, Q3.")

    # then the booking already made keeps its rate and its fee
    before.refresh_from_db()
    assert (before.commission_rate, before.platform_fee) == (Decimal("0.1000"), Decimal("1.05"))
    # and a new booking of the same listing is at the new rate: 10.50 x 0.1250 = 1.3125 -> 1.31
    after = _book(listing)
    assert (after.commission_rate, after.platform_fee) == (Decimal("0.1250"), Decimal("1.31"))
    # and the change is in the audit log with both rates, the actor and the reason
    event = _events(category, "category.commission_changed").get()
    assert (event.actor, event.from_state, event.to_state, event.reason) == (
        lead,
        "0.1000",
        "0.1250",
        "New pricing, Q3.",
    )
    assert event.data == {"commission_rate": {"from": "0.1000", "to": "0.1250"}}


@pytest.mark.parametrize(
    ("price", "rate", "fee"),
    [
        (Decimal("1.00"), Decimal("0.1250"), Decimal("0.13")),  # 0.125: a tie, half up (half-even says 0.12)
        (Decimal("2.50"), Decimal("0.0500"), Decimal("0.13")),  # 0.125 again
        (Decimal("10.50"), Decimal("0.1250"), Decimal("1.31")),  # 1.3125
        (Decimal("0.10"), Decimal("0.0500"), Decimal("0.01")),  # 0.005: a tie at the smallest cent
        (Decimal("99.99"), Decimal("0.1250"), Decimal("12.50")),  # 12.49875
    ],
)
def test_booking_fee_is_the_rate_of_the_amount_rounded_half_up(price, rate, fee):
    # given a category at `rate` (set through the service) and a listing at `price`
    category = CategoryFactory(commission_rate=Decimal("0.2000"))
    category_commission_set(category=category, rate=rate, actor=staff(StaffGroup.FINANCE), reason="Pricing.")
    listing = listing_in(Listing.Status.PUBLISHED, category=category, price=price)

    # when booked
    booking = _book(listing)

    # then the fee is the hand-computed one, by the one formula, and the provider gets the rest
    booking.refresh_from_db()
    assert (booking.amount, booking.commission_rate, booking.platform_fee) == (price, rate, fee)
    assert fee_and_share(price, rate) == (fee, price - fee)


@pytest.mark.parametrize("group", [StaffGroup.OPERATIONS_AGENT, StaffGroup.SUPPORT, StaffGroup.PARTNER_MANAGER])
def test_category_commission_set_without_the_permission_is_refused(group):
    category = CategoryFactory(commission_rate=Decimal("0.1500"))

    with pytest.raises(NotPermitted, match="You may not change commission rates"):
        category_commission_set(category=category, rate=Decimal("0.2000"), actor=staff(group), reason="Why not.")

    category.refresh_from_db()
    assert category.commission_rate == Decimal("0.1500")
    assert not _events(category, "category.commission_changed").exists()


def test_category_commission_set_outside_the_actors_category_scope_is_refused():
    # given someone who may change rates, without the all-partners scope, granted one subtree
    granted = CategoryFactory()
    below = CategoryFactory(parent=granted)
    elsewhere = CategoryFactory()
    actor = operator_with("change_category_commission", scope=None)
    assign_perm("catalog.operate_category", actor, granted)

    # then a category below the grant can be changed, one elsewhere cannot
    category_commission_set(category=below, rate=Decimal("0.0800"), actor=actor, reason="Promotion.")
    with pytest.raises(NotPermitted, match="outside your scope"):
        category_commission_set(category=elsewhere, rate=Decimal("0.0800"), actor=actor, reason="Promotion.")
    elsewhere.refresh_from_db()
    assert elsewhere.commission_rate == Decimal("0.1500")


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        ("1.5", "between 0 and 1"),
        ("-0.01", "between 0 and 1"),
        ("0.12345", "at most four decimal places"),
        ("twelve", "is not a commission rate"),
        ("NaN", "between 0 and 1"),
    ],
)
def test_category_commission_set_refuses_a_rate_outside_0_to_1_or_past_four_places(rate, message):
    category = CategoryFactory(commission_rate=Decimal("0.1500"))
    with pytest.raises(InvalidInput, match=message):
        category_commission_set(category=category, rate=rate, actor=staff(StaffGroup.FINANCE), reason="x")
    category.refresh_from_db()
    assert category.commission_rate == Decimal("0.1500")


def test_category_commission_set_needs_a_reason_and_a_change():
    category = CategoryFactory(commission_rate=Decimal("0.1500"))
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    with pytest.raises(InvalidInput, match="A reason is required"):
        category_commission_set(category=category, rate=Decimal("0.2000"), actor=lead, reason="  ")
    with pytest.raises(InvalidInput, match="already 0.1500"):
        category_commission_set(category=category, rate="0.15", actor=lead, reason="Same.")
    assert not _events(category, "category.commission_changed").exists()


# --- Creation, edits, moves -----------------------------------------------------------------------


def test_category_create_is_audited_with_its_rate_and_parent():
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    home = category_create(actor=lead, name="Home", slug="home", commission_rate="0.1")
    cleaning = category_create(actor=lead, name="Cleaning", slug="cleaning", commission_rate="0.125", parent=home)

    cleaning.refresh_from_db()
    assert cleaning.get_parent() == home
    assert cleaning.commission_rate == Decimal("0.1250")
    event = _events(cleaning, "category.created").get()
    assert event.actor == lead
    assert event.data == {"name": "Cleaning", "slug": "cleaning", "parent": "home", "commission_rate": "0.1250"}


def test_category_create_without_the_permission_or_with_a_taken_slug_is_refused():
    CategoryFactory(slug="taken")
    with pytest.raises(NotPermitted):
        category_create(actor=staff(StaffGroup.OPERATIONS_AGENT), name="X", slug="x", commission_rate="0.1")
    with pytest.raises(InvalidInput, match="already exists"):
        category_create(actor=staff(StaffGroup.OPERATIONS_LEAD), name="T", slug="taken", commission_rate="0.1")
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        category_create(actor=staff(StaffGroup.OPERATIONS_LEAD), name="Y", slug="y", commission_rate="2")
    assert set(Category.objects.values_list("slug", flat=True)) == {"taken"}


def test_category_update_records_what_changed_and_refuses_the_rate():
    category = CategoryFactory(name="Cleanin", slug="cleanin")
    lead = staff(StaffGroup.OPERATIONS_LEAD)

    category_update(category=category, actor=lead, data={"name": "Cleaning", "slug": "cleanin", "is_active": False})

    category.refresh_from_db()
    assert (category.name, category.is_active) == ("Cleaning", False)
    event = _events(category, "category.updated").get()
    assert event.data == {"name": {"from": "Cleanin", "to": "Cleaning"}, "is_active": {"from": True, "to": False}}
    with pytest.raises(InvalidInput, match="commission_rate"):
        category_update(category=category, actor=lead, data={"commission_rate": Decimal("0.5")})
    with pytest.raises(NotPermitted):
        category_update(category=category, actor=staff(StaffGroup.FINANCE), data={"name": "Other"})


def test_category_move_takes_the_subtree_and_is_audited():
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    home, garden = CategoryFactory(slug="home"), CategoryFactory(slug="garden")
    hedges = CategoryFactory(slug="hedges", parent=garden)
    garden.refresh_from_db()

    category_move(category=garden, parent=home, actor=lead)

    hedges.refresh_from_db()
    assert [c.slug for c in hedges.get_ancestors()] == ["home", "garden"]
    event = _events(garden, "category.moved").get()
    assert (event.from_state, event.to_state, event.actor) == ("(top level)", "home", lead)
    with pytest.raises(InvalidInput, match="cannot move under itself"):
        category_move(category=Category.objects.get(slug="home"), parent=hedges, actor=lead)
