"""Listing moderation from the admin: every step, the re-review queue and its diff, the changelist."""

import re
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.catalog import services as catalog
from marketplace.catalog.models import Listing
from tests.factories import CategoryFactory, ListingFactory, PartnerFactory
from tests.factories.states import listing_in, operator_with

pytestmark = pytest.mark.django_db
S = Listing.Status


def _moderator(partner):
    """An agent who moderates listings of `partner` and may open the listings admin."""
    return operator_with("moderate_listing", "view_listing", scope=partner)


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_approve_asks_for_confirmation_then_calls_the_service_once(client):
    listing = listing_in(S.PENDING_REVIEW)
    moderator = _moderator(listing.partner)
    client.force_login(moderator)
    url = reverse("admin:catalog_listing_approve", args=[listing.pk])

    page = client.get(url)
    assert page.status_code == 200
    assert listing.title in page.content.decode()
    listing.refresh_from_db()
    assert listing.status == S.PENDING_REVIEW  # a GET changes nothing

    done = client.post(url, follow=True)
    listing.refresh_from_db()
    assert listing.status == S.PUBLISHED
    assert f"{listing} is approved and published." in _messages(done)
    assert Event.objects.filter(verb="listing.approve", target_id=str(listing.pk)).count() == 1

    # a double click: the second post finds it published, says so, writes nothing
    again = client.post(url, follow=True)
    assert f"{listing} is already published; nothing to do." in _messages(again)
    assert Event.objects.filter(verb="listing.approve", target_id=str(listing.pk)).count() == 1


def test_approve_of_a_listing_outside_scope_is_404(client):
    listing = listing_in(S.PENDING_REVIEW)
    moderator = _moderator(PartnerFactory())
    client.force_login(moderator)
    response = client.post(reverse("admin:catalog_listing_approve", args=[listing.pk]))
    assert response.status_code == 404
    listing.refresh_from_db()
    assert listing.status == S.PENDING_REVIEW


def test_a_refused_step_shows_the_service_message_and_changes_nothing(client):
    listing = listing_in(S.DRAFT)
    client.force_login(_moderator(listing.partner))
    response = client.post(reverse("admin:catalog_listing_approve", args=[listing.pk]), follow=True)
    assert f"Listing #{listing.pk} is 'draft': cannot approve." in _messages(response)
    listing.refresh_from_db()
    assert listing.status == S.DRAFT


# --- Every moderation step through the admin ---------------------------------------------------


def _url(step: str, listing: Listing) -> str:
    return reverse(f"admin:catalog_listing_{step}", args=[listing.pk])


def _events(verb: str, listing: Listing) -> list[Event]:
    return list(Event.objects.filter(verb=verb, target_id=str(listing.pk)))


def _revised(**data) -> Listing:
    """A published listing whose owner proposed a material edit (held in `pending_changes`)."""
    listing = listing_in(S.PUBLISHED)
    return catalog.listing_update(listing=listing, actor=listing.owner, data=data)


# step -> (state it starts from, state it leads to, audit verb, success message, reason or None)
STATE_STEPS = {
    "reject": (S.PENDING_REVIEW, S.REJECTED, "listing.reject", "{} is rejected.", "Prohibited service."),
    "request_changes": (
        S.PENDING_REVIEW,
        S.CHANGES_REQUESTED,
        "listing.request_changes",
        "Changes to {} are requested from its owner.",
        "Add photos of your work.",
    ),
    "suspend": (
        S.PUBLISHED,
        S.SUSPENDED,
        "listing.suspend",
        "{} is suspended and hidden from the catalogue.",
        "Complaints about no-shows.",
    ),
    "reinstate": (S.SUSPENDED, S.PUBLISHED, "listing.reinstate", "{} is reinstated and published again.", None),
}
ALREADY = {
    "reject": "already rejected",
    "request_changes": "already changes requested",
    "suspend": "already suspended",
    "reinstate": "already published",
}


@pytest.mark.parametrize("step", STATE_STEPS)
def test_state_step_moves_the_listing_records_the_reason_and_a_double_post_is_told_already(client, step):
    # given a listing in the step's starting state and a moderator of its partner
    start, target, verb, success, reason = STATE_STEPS[step]
    listing = listing_in(start)
    client.force_login(_moderator(listing.partner))
    data = {"reason": reason} if reason else {}

    # when the confirmation page is opened, then posted
    page = client.get(_url(step, listing))
    assert page.status_code == 200
    if reason:
        assert 'name="reason"' in page.content.decode()
    done = client.post(_url(step, listing), data, follow=True)

    # then the listing moved, one audit event names the reason, and the message says so
    listing.refresh_from_db()
    assert listing.status == target
    assert success.format(listing) in _messages(done)
    [event] = _events(verb, listing)
    assert (event.from_state, event.to_state) == (start, target)
    if reason:
        assert event.reason == reason
        assert listing.moderation_reason == reason

    # and a double click is told "already ..." and writes nothing
    again = client.post(_url(step, listing), data, follow=True)
    assert f"{listing} is {ALREADY[step]}; nothing to do." in _messages(again)
    assert len(_events(verb, listing)) == 1


@pytest.mark.parametrize("step", ["reject", "request_changes", "suspend", "reject_revision"])
def test_step_without_a_reason_shows_a_form_error_and_changes_nothing(client, step):
    listing = _revised(title="Garden and hedge tidy-up") if step in ("suspend", "reject_revision") else None
    listing = listing or listing_in(S.PENDING_REVIEW)
    client.force_login(_moderator(listing.partner))
    before = Event.objects.filter(target_id=str(listing.pk)).count()

    response = client.post(_url(step, listing), {"reason": "   "})

    assert response.status_code == 200  # the confirmation page again, with the error
    assert response.context["form"].errors["reason"]  # "This field is required."
    assert 'name="reason"' in response.content.decode()
    fresh = Listing.objects.get(pk=listing.pk)
    assert (fresh.status, fresh.pending_changes, fresh.moderation_reason) == (
        listing.status,
        listing.pending_changes,
        listing.moderation_reason,
    )
    assert Event.objects.filter(target_id=str(listing.pk)).count() == before


def test_approve_revision_makes_the_edit_live_and_a_double_post_is_told_already(client):
    listing = _revised(title="Garden and hedge tidy-up", price="120.00")
    client.force_login(_moderator(listing.partner))

    done = client.post(_url("approve_revision", listing), follow=True)

    listing.refresh_from_db()
    assert (listing.title, listing.price, listing.status) == (
        "Garden and hedge tidy-up",
        Decimal("120.00"),
        S.PUBLISHED,
    )
    assert listing.pending_changes is None
    assert f"The edit of {listing} is live." in _messages(done)
    [event] = _events("listing.revision_approved", listing)
    assert event.data == {"title": "Garden and hedge tidy-up", "price": "120.00"}

    again = client.post(_url("approve_revision", listing), follow=True)
    assert f"{listing} has no edit waiting for review (already reviewed?); nothing to do." in _messages(again)
    assert len(_events("listing.revision_approved", listing)) == 1


def test_reject_revision_keeps_the_live_version_and_records_the_reason(client):
    listing = _revised(title="Cheapest garden work in town")
    client.force_login(_moderator(listing.partner))

    done = client.post(_url("reject_revision", listing), {"reason": "Superlatives are not allowed."}, follow=True)

    listing.refresh_from_db()
    assert (listing.title, listing.pending_changes) == ("Garden tidy-up", None)
    assert "The edit of Garden tidy-up is rejected; the live version stays." in _messages(done)
    [event] = _events("listing.revision_rejected", listing)
    assert event.reason == "Superlatives are not allowed."

    again = client.post(_url("reject_revision", listing), {"reason": "Again."}, follow=True)
    assert "Garden tidy-up has no edit waiting for review (already reviewed?); nothing to do." in _messages(again)
    assert len(_events("listing.revision_rejected", listing)) == 1


DETAIL_STEPS = ["approve", "request_changes", "reject", "suspend", "reinstate", "approve_revision", "reject_revision"]
ALL_STEPS = [*DETAIL_STEPS, "approve_from_list", "reject_from_list"]


@pytest.mark.parametrize("step", ALL_STEPS)
def test_every_step_on_a_listing_of_another_partner_is_404(client, step):
    listing = listing_in(S.PENDING_REVIEW)
    client.force_login(_moderator(PartnerFactory()))

    assert client.get(_url(step, listing)).status_code == 404
    assert client.post(_url(step, listing), {"reason": "Not yours."}).status_code == 404
    listing.refresh_from_db()
    assert listing.status == S.PENDING_REVIEW
    assert (
        Event.objects.filter(target_id=str(listing.pk)).exclude(verb__in=["listing.created", "listing.submit"]).count()
        == 0
    )


def test_an_agent_without_moderate_listing_sees_no_button_and_a_direct_post_is_403(client):
    # given an agent of the partner who may view listings but not moderate them
    listing = _revised(title="Garden and hedge tidy-up")
    Listing.objects.filter(pk=listing.pk).update(status=S.PENDING_REVIEW)  # every button applies
    agent = operator_with("view_listing", scope=listing.partner)
    client.force_login(agent)

    change = client.get(reverse("admin:catalog_listing_change", args=[listing.pk])).content.decode()
    changelist = client.get(reverse("admin:catalog_listing_changelist")).content.decode()

    assert all(_url(step, listing) not in change for step in DETAIL_STEPS)
    assert all(_url(step, listing) not in changelist for step in ALL_STEPS)
    # the unfold action refuses before the service is asked: 403, nothing written
    for step in ALL_STEPS:
        assert client.post(_url(step, listing), {"reason": "I should not."}).status_code == 403
    listing.refresh_from_db()
    assert (listing.status, listing.pending_changes) == (S.PENDING_REVIEW, {"title": "Garden and hedge tidy-up"})

    # and a moderator of the same partner sees every button the state allows (a listing pending
    # review with a pending edit cannot be suspended or reinstated)
    client.force_login(_moderator(listing.partner))
    change = client.get(reverse("admin:catalog_listing_change", args=[listing.pk])).content.decode()
    shown = {step for step in DETAIL_STEPS if _url(step, listing) in change}
    assert shown == set(DETAIL_STEPS) - {"suspend", "reinstate"}


def test_row_buttons_open_the_confirmation_page_and_return_to_the_filtered_changelist(client):
    listing = listing_in(S.PENDING_REVIEW)
    client.force_login(_moderator(listing.partner))
    changelist = reverse("admin:catalog_listing_changelist")

    page = client.get(changelist, {"review": "pending"}).content.decode()
    assert _url("approve_from_list", listing) in page
    assert _url("reject_from_list", listing) in page

    # the row button leads to the step's page, carrying the changelist (and its filter) as `next`
    hop = client.get(_url("reject_from_list", listing), HTTP_REFERER=f"http://testserver{changelist}?review=pending")
    assert hop.status_code == 302
    assert hop["Location"] == f"{_url('reject', listing)}?{urlencode({'next': f'{changelist}?review=pending'})}"
    confirm = client.get(hop["Location"]).content.decode()
    assert f'name="next" value="{changelist}?review=pending"' in confirm

    done = client.post(
        _url("reject", listing), {"reason": "Prohibited service.", "next": f"{changelist}?review=pending"}
    )
    assert done.status_code == 302
    assert done["Location"] == f"{changelist}?review=pending"
    listing.refresh_from_db()
    assert listing.status == S.REJECTED

    # a referer from elsewhere is not followed: the row button returns to the plain changelist
    other = listing_in(S.PENDING_REVIEW, partner=listing.partner)
    hop = client.get(_url("approve_from_list", other), HTTP_REFERER="https://evil.example/admin/catalog/listing/")
    assert hop["Location"] == f"{_url('approve', other)}?{urlencode({'next': changelist})}"


# --- The re-review queue ----------------------------------------------------------------------


def test_review_filter_separates_new_listings_from_edits_of_live_ones(client):
    new = listing_in(S.PENDING_REVIEW, title="New listing")
    edited = listing_in(S.PUBLISHED, title="Live listing", partner=new.partner)
    edited = catalog.listing_update(listing=edited, actor=edited.owner, data={"title": "Edited title"})
    untouched = listing_in(S.PUBLISHED, title="Quiet listing", partner=new.partner)
    client.force_login(_moderator(new.partner))
    url = reverse("admin:catalog_listing_changelist")

    def shown(params):
        page = client.get(url, params).content.decode()
        return {
            name
            for name, obj in (("new", new), ("edited", edited), ("untouched", untouched))
            if reverse("admin:catalog_listing_change", args=[obj.pk]) in page
        }

    assert shown({"review": "pending"}) == {"new"}
    assert shown({"review": "revision"}) == {"edited"}
    assert shown({}) == {"new", "edited", "untouched"}


def test_proposed_changes_show_the_live_and_the_proposed_value_of_each_field_escaped(client):
    # given a live listing whose owner proposed a new title (with markup), price and category
    listing = listing_in(S.PUBLISHED, title="Garden tidy-up")
    new_category = CategoryFactory(name="Landscaping")
    catalog.listing_update(
        listing=listing,
        actor=listing.owner,
        data={
            "title": "<b>Garden</b> & hedge",
            "price": "135.50",
            "category_id": new_category.pk,
            "description": "Hedges.\nLawns.",
        },
    )
    client.force_login(_moderator(listing.partner))

    page = client.get(reverse("admin:catalog_listing_change", args=[listing.pk])).content.decode()

    table = page[page.index("data-proposed-changes") : page.index("</table>", page.index("data-proposed-changes"))]
    rows = {
        label: (live, proposed)
        for label, live, proposed in re.findall(
            r'<th[^>]*>([^<]+)</th><td[^>]*data-revision="live">(.*?)</td><td[^>]*data-revision="proposed">(.*?)</td>',
            table,
        )
    }
    assert rows == {
        "Title": ("Garden tidy-up", "&lt;b&gt;Garden&lt;/b&gt; &amp; hedge"),
        "Price": ("100.00 EUR", "135.50 EUR"),
        "Category": (listing.category.name, "Landscaping"),
        "Description": ("-", "Hedges.<br>Lawns."),
    }
    assert "<b>Garden</b>" not in page


def test_proposed_changes_say_so_when_there_is_no_edit(client):
    listing = listing_in(S.PUBLISHED)
    client.force_login(_moderator(listing.partner))
    page = client.get(reverse("admin:catalog_listing_change", args=[listing.pk])).content.decode()
    assert "No edit is waiting for review." in page


# --- The changelist ---------------------------------------------------------------------------


def test_changelist_shows_badges_and_columns_in_the_same_number_of_queries_for_3_and_30_listings(client):
    partner = PartnerFactory()
    client.force_login(_moderator(partner))
    url = reverse("admin:catalog_listing_changelist")

    def load(n):
        have = Listing.objects.filter(partner=partner).count()
        for i in range(have, n):
            ListingFactory(
                partner=partner,
                status=S.PENDING_REVIEW,
                title=f"Listing {i}",
                category=CategoryFactory(),
                submitted_at=timezone.now(),
            )
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert html.count("Pending review") >= n  # a badge per row
        assert all(
            reverse("admin:catalog_listing_change", args=[pk]) in html
            for pk in Listing.objects.filter(partner=partner).values_list("pk", flat=True)
        )
        return queries

    three = load(3)
    thirty = load(30)

    assert len(thirty) == len(three), "\n".join(q["sql"] for q in thirty.captured_queries)
    assert len(three) <= 15, "\n".join(q["sql"] for q in three.captured_queries)


def test_a_next_address_off_site_is_ignored(client):
    listing = listing_in(S.PENDING_REVIEW)
    client.force_login(_moderator(listing.partner))
    url = reverse("admin:catalog_listing_approve", args=[listing.pk])
    page = client.get(url + "?next=https://evil.example/steal")
    assert "evil.example" not in page.content.decode()
    response = client.post(url, {"next": "https://evil.example/steal"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:catalog_listing_change", args=[listing.pk])
