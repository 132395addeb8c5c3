"""The bookings changelist: filters, deep links, search, the autocomplete filters' scope, and a
query count that does not grow with rows."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketplace.accounts.services import StaffGroup
from marketplace.bookings.models import Booking
from tests.factories import BookingFactory, ClientFactory, ListingFactory, PartnerFactory
from tests.factories.settlement import staff
from tests.marketplace.changelist import listed, listed_from_bookmark, offered, queries_by_size

pytestmark = pytest.mark.django_db
S = Booking.Status
MODEL = "bookings.booking"


def _booking(*, created: datetime, **kwargs) -> Booking:
    booking = BookingFactory(**kwargs)
    Booking.objects.filter(pk=booking.pk).update(created_at=created)
    return booking


@pytest.fixture
def bookings():
    listing = ListingFactory(status="published", title="Boiler service")
    other_partner_listing = ListingFactory(status="published")
    other_category_listing = ListingFactory(status="published", partner=listing.partner)
    day = datetime(2026, 4, 30, 23, 0, tzinfo=UTC)
    base = {"listing": listing, "amount": Decimal("80.00"), "status": S.REQUESTED}
    return {
        "match": _booking(created=day, **base),
        "other_status": _booking(created=day, **{**base, "status": S.CANCELLED}),
        "other_partner": _booking(created=day, **{**base, "listing": other_partner_listing}),
        "other_category": _booking(created=day, **{**base, "listing": other_category_listing}),
        "too_dear": _booking(created=day, **{**base, "amount": Decimal("500.00")}),
        "too_late": _booking(created=day + timedelta(hours=1), **base),  # 1 May, 00:00
    }


def _filters(bookings) -> dict:
    match = bookings["match"]
    return {
        "status__exact": S.REQUESTED,
        "partner__id__exact": match.partner_id,
        "category__id__exact": match.category_id,
        "amount_from": "50",
        "amount_to": "100",
        "created_at_from": "2026-04-01",
        "created_at_to": "2026-04-30",
    }


def test_booking_changelist_filters_by_status_partner_category_amount_and_days(client, bookings):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))

    assert listed(client, MODEL, _filters(bookings)) == {bookings["match"].pk}
    assert listed(client, MODEL, {"amount_from": "100"}) == {bookings["too_dear"].pk}
    assert listed(client, MODEL, {"created_at_from": "2026-05-01"}) == {bookings["too_late"].pk}
    match = bookings["match"]
    assert listed(client, MODEL, {"listing__id__exact": match.listing_id, "client__id__exact": match.client_id}) == {
        match.pk
    }


def test_booking_changelist_filtered_address_is_a_bookmark(bookings):
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    assert listed_from_bookmark(lead, MODEL, _filters(bookings)) == {bookings["match"].pk}


def test_booking_search_finds_by_id_client_email_and_listing_title_start(client, bookings):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    match = bookings["match"]

    assert listed(client, MODEL, {"q": str(match.pk)}) == {match.pk}
    assert listed(client, MODEL, {"q": f" {match.client.email.upper()} "}) == {match.pk}
    expected = {b.pk for b in bookings.values() if b.listing_id == match.listing_id}
    assert listed(client, MODEL, {"q": "boiler"}) == expected
    assert listed(client, MODEL, {"q": "service"}) == set()  # a prefix, not a substring
    assert listed(client, MODEL, {"q": "nobody@example.test"}) == set()


def test_booking_autocomplete_filters_offer_only_the_agents_partner(client, bookings):
    # given an agent granted the partner of the matching booking only
    mine, theirs = bookings["match"].partner, bookings["other_partner"].partner
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT, scope=mine))

    assert offered(client, MODEL, "partner") == {mine.pk}
    assert offered(client, MODEL, "partner", term=theirs.name) == set()
    # the listing filter offers the listings in the agent's scope only
    assert bookings["other_partner"].listing_id not in offered(client, MODEL, "listing")
    assert bookings["match"].listing_id in offered(client, MODEL, "listing", term="Boiler")
    # and a hand-made link to the other partner shows nothing of it
    assert listed(client, MODEL, {"partner__id__exact": theirs.pk}) == set()


def test_booking_changelist_filtered_costs_the_same_queries_for_10_200_and_400_bookings(client):
    listing, customer = ListingFactory(status="published", partner=PartnerFactory()), ClientFactory()
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    params = {
        "status__exact": S.REQUESTED,
        "partner__id__exact": listing.partner_id,
        "category__id__exact": listing.category_id,
        "client__id__exact": customer.pk,
        "amount_from": "1",
        "created_at_from": "2000-01-01",
    }

    def grow_to(n):
        have = Booking.objects.count()
        Booking.objects.bulk_create(BookingFactory.build(listing=listing, client=customer) for _ in range(have, n))

    counts = queries_by_size(client, MODEL, params, grow_to)

    # session, user, permissions, count and estimate, the rows, the sidebar's badges, and
    # the chosen partner, category and client shown in their filters (2 each)
    assert counts[10] == BOOKING_FILTERED_QUERIES


# With the verified second-factor device that django-otp reads once per request.
BOOKING_FILTERED_QUERIES = 20
