"""In the browser: an agent sees only their partner's moderation queue, approves one listing and
rejects another with a reason."""

import pytest

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.catalog.models import Listing
from tests.factories import PartnerFactory
from tests.factories.settlement import staff
from tests.factories.states import listing_in

pytestmark = pytest.mark.django_db(transaction=True)
S = Listing.Status


def test_agent_moderates_only_their_partners_queue(page, admin_login):
    own, other = PartnerFactory(name="Own Gardens"), PartnerFactory(name="Other Cleaners")
    good = listing_in(S.PENDING_REVIEW, partner=own, title="Hedge trimming, same week")
    bad = listing_in(S.PENDING_REVIEW, partner=own, title="Miracle lawn in one hour")
    foreign = listing_in(S.PENDING_REVIEW, partner=other, title="Window cleaning elsewhere")
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=own)

    admin_login(agent)
    page.shot("admin-home")
    page.goto("/admin/catalog/listing/?status__exact=pending_review")
    body = page.inner_text("body")
    assert good.title in body and bad.title in body
    assert foreign.title not in body
    page.shot("queue-own-partner-only")

    # approve the first one from its page
    page.click(f"a[href*='/catalog/listing/{good.pk}/change/']")
    page.click("a:has-text('Approve')")
    page.shot("approve-confirmation")
    page.submit("form[data-workflow] button[type=submit]")
    assert f"{good} is approved and published." in page.inner_text("body")
    page.shot("approved")

    # reject the second with a reason
    page.goto(f"/admin/catalog/listing/{bad.pk}/change/")
    page.click("a:has-text('Reject')")
    page.fill("textarea[name=reason]", "Claims we cannot verify; please describe the actual service.")
    page.shot("reject-with-reason")
    page.submit("form[data-workflow] button[type=submit]")
    page.shot("rejected")

    good.refresh_from_db()
    bad.refresh_from_db()
    foreign.refresh_from_db()
    assert (good.status, bad.status, foreign.status) == (S.PUBLISHED, S.REJECTED, S.PENDING_REVIEW)
    rejection = Event.objects.get(verb="listing.reject", target_id=str(bad.pk))
    assert rejection.reason == "Claims we cannot verify; please describe the actual service."
    assert rejection.actor_id == agent.pk

    # the other partner's listing answers 404 even by URL
    response = page.goto(f"/admin/catalog/listing/{foreign.pk}/change/")
    assert response.status == 404
