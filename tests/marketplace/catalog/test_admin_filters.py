"""The listings and categories changelists: filters, deep links, search, the partner autocomplete's
scope, and a query count that does not grow with rows."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from marketplace.accounts.services import StaffGroup
from marketplace.catalog.models import Category, Listing
from tests.factories import CategoryFactory, ListingFactory, PartnerFactory, ProviderFactory
from tests.factories.settlement import staff, staff_with
from tests.marketplace.changelist import autocomplete, listed, listed_from_bookmark, offered, queries_by_size

pytestmark = pytest.mark.django_db
S = Listing.Status


def _listing(*, created: datetime, **kwargs) -> Listing:
    listing = ListingFactory(**kwargs)
    Listing.objects.filter(pk=listing.pk).update(created_at=created)
    return listing


@pytest.fixture
def listings():
    partner, other_partner = PartnerFactory(), PartnerFactory()
    category, other_category = CategoryFactory(), CategoryFactory()
    march = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)  # the afternoon of the range's last day
    base = {"partner": partner, "category": category, "status": S.PENDING_REVIEW, "price": Decimal("150.00")}
    return {
        "match": _listing(created=march, title="Garden tidy-up", **base),
        "other_status": _listing(created=march, **{**base, "status": S.PUBLISHED}),
        "other_partner": _listing(created=march, **{**base, "partner": other_partner}),
        "other_category": _listing(created=march, **{**base, "category": other_category}),
        "too_cheap": _listing(created=march, **{**base, "price": Decimal("50.00")}),
        "too_late": _listing(created=datetime(2026, 3, 11, 0, 0, tzinfo=UTC), **base),
        "too_early": _listing(created=datetime(2026, 2, 28, 23, 59, tzinfo=UTC), **base),
    }


def _filters(listings) -> dict:
    match = listings["match"]
    return {
        "status__exact": S.PENDING_REVIEW,
        "partner__id__exact": match.partner_id,
        "category__id__exact": match.category_id,
        "price_from": "100",
        "price_to": "200",
        "created_at_from": "2026-03-01",
        "created_at_to": "2026-03-10",
    }


def test_listing_changelist_filters_by_status_partner_category_price_and_days(client, listings):
    # given a lead (every partner) and listings each missing one of the filters
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)

    # when the changelist is filtered on all of them, then only the listing matching all is shown
    assert listed(client, "catalog.listing", _filters(listings)) == {listings["match"].pk}
    # and each filter on its own keeps the listings it should
    assert listed(client, "catalog.listing", {"price_to": "100"}) == {listings["too_cheap"].pk}
    assert listed(client, "catalog.listing", {"created_at_from": "2026-03-11"}) == {listings["too_late"].pk}
    assert listed(client, "catalog.listing", {"created_at_to": "2026-02-28"}) == {listings["too_early"].pk}


def test_listing_changelist_filtered_address_is_a_bookmark(client, listings):
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    assert listed_from_bookmark(lead, "catalog.listing", _filters(listings)) == {listings["match"].pk}
    # the review queue filter and an owner filter travel in the address too
    owner = listings["match"].owner
    bookmark = {"review": "pending", "owner__id__exact": owner.pk}
    assert listed_from_bookmark(lead, "catalog.listing", bookmark) == {listings["match"].pk}


def test_listing_search_finds_by_id_owner_email_and_title_start(client, listings):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    match = listings["match"]

    assert listed(client, "catalog.listing", {"q": str(match.pk)}) == {match.pk}
    assert listed(client, "catalog.listing", {"q": f"#{match.pk}"}) == {match.pk}
    assert listed(client, "catalog.listing", {"q": match.owner.email.upper()}) == {match.pk}
    assert listed(client, "catalog.listing", {"q": "garden TIDY"}) == {match.pk}
    assert listed(client, "catalog.listing", {"q": "tidy-up"}) == set()  # a prefix, not a substring


def test_listing_partner_autocomplete_offers_only_the_agents_partners(client, listings):
    # given an agent granted the partner of the matching listing only
    mine, theirs = listings["match"].partner, listings["other_partner"].partner
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT, scope=mine))

    # then the partner filter's autocomplete offers that partner and never the other
    assert offered(client, "catalog.listing", "partner") == {mine.pk}
    assert offered(client, "catalog.listing", "partner", term=theirs.name) == set()
    # and a hand-made link to the other partner's listings shows none of them
    assert listed(client, "catalog.listing", {"partner__id__exact": theirs.pk}) == set()


def test_listing_partner_autocomplete_refuses_staff_who_may_not_view_partners(client, listings):
    client.force_login(staff_with("view_listing", "moderate_listing"))
    assert autocomplete(client, "catalog.listing", "partner").status_code == 403


# With the verified second-factor device that django-otp reads once per request.
LISTING_FILTERED_QUERIES = 20


def test_listing_changelist_filtered_costs_the_same_queries_for_10_200_and_400_listings(client):
    # given listings of one partner, category and owner, filtered on every filter with a value
    partner, category, owner = PartnerFactory(), CategoryFactory(), ProviderFactory()
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    params = {
        "status__exact": S.PENDING_REVIEW,
        "partner__id__exact": partner.pk,
        "category__id__exact": category.pk,
        "owner__id__exact": owner.pk,
        "price_from": "1",
        "created_at_from": "2000-01-01",
    }

    def grow_to(n):
        have = Listing.objects.count()
        Listing.objects.bulk_create(
            Listing(
                title=f"Listing {i}",
                owner=owner,
                partner=partner,
                category=category,
                price=Decimal("100.00"),
                status=S.PENDING_REVIEW,
            )
            for i in range(have, n)
        )

    counts = queries_by_size(client, "catalog.listing", params, grow_to)

    # session, user, permissions, count and estimate, the rows, the sidebar's badges, and
    # the chosen partner, category and owner shown in their filters (2 each)
    assert counts[10] == LISTING_FILTERED_QUERIES


def test_category_changelist_filters_and_searches(client):
    active, inactive = CategoryFactory(name="Gardening"), CategoryFactory(name="Plumbing", is_active=False)
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))

    assert listed(client, "catalog.category", {"is_active__exact": "1"}) == {active.pk}
    assert listed(client, "catalog.category", {"q": "plumb"}) == {inactive.pk}
    assert Category.objects.count() == 2
