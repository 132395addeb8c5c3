"""The payout pages of the admin show what the background work did: runs, attempts, failures."""

import pytest
from django.urls import reverse

from marketplace.accounts.services import StaffGroup
from marketplace.payouts.models import Payout, PayoutRun
from marketplace.payouts.runs import payout_run_execute
from tests.factories.flows import settled_booking
from tests.factories.settlement import payout_in, staff

pytestmark = pytest.mark.django_db


def test_finance_reads_the_payout_runs_with_their_report(client):
    settled_booking()
    run = payout_run_execute()
    client.force_login(staff(StaffGroup.FINANCE))

    listing = client.get(reverse("admin:payouts_payoutrun_changelist"))
    page = client.get(reverse("admin:payouts_payoutrun_change", args=[run.pk]))

    assert listing.status_code == 200 and page.status_code == 200
    assert f">{run.pk}<" in listing.content.decode()
    assert "Finished" in listing.content.decode()
    assert "&quot;held&quot;: []" in page.content.decode()  # the report, JSON escaped into the page


def test_a_scoped_agent_does_not_see_payout_runs(client):
    run = PayoutRun.objects.create(cutoff="2026-01-01T00:00:00Z")
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT))

    assert client.get(reverse("admin:payouts_payoutrun_changelist")).status_code == 403
    assert client.get(reverse("admin:payouts_payoutrun_change", args=[run.pk])).status_code == 403


def test_a_failed_payout_shows_its_reason_next_retry_and_attempts(client):
    payout = payout_in(Payout.Status.FAILED)
    client.force_login(staff(StaffGroup.FINANCE))

    listing = client.get(reverse("admin:payouts_payout_changelist")).content.decode()
    page = client.get(reverse("admin:payouts_payout_change", args=[payout.pk])).content.decode()

    assert "sandbox: injected payout failure" in listing
    assert "Failed" in listing
    assert f"payout-{payout.pk}-attempt-1" in page  # the attempt inline, with its idempotency key
    assert "sandbox: injected payout failure" in page
