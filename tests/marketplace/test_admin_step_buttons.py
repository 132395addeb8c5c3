"""A change page offers the workflow buttons its object's state allows, and no others: a resolved
dispute has no Resolve button, a paid payout no Approve. The steps' URLs still answer with the
service's refusal (see each app's test_admin_workflow.py); this is what the page shows."""

import pytest
from django.urls import reverse

from marketplace.catalog.models import Listing
from tests.factories import StaffFactory
from tests.factories.flows import booking_in
from tests.factories.settlement import dispute_in, payout_in
from tests.factories.states import listing_in

pytestmark = pytest.mark.django_db

STEPS = {
    "catalog.listing": [
        "approve",
        "request_changes",
        "reject",
        "approve_revision",
        "reject_revision",
        "suspend",
        "reinstate",
    ],
    "bookings.booking": ["accept", "decline", "complete", "cancel"],
    "disputes.dispute": [
        "assign",
        "request_response",
        "start_review",
        "escalate",
        "resolve",
        "approve_resolution",
        "withdraw",
    ],
    "payouts.payout": ["hold", "release_hold", "request_approval", "approve", "reject", "retry", "cancel"],
}


def _listing_with_pending_edit():
    listing = listing_in("published")
    Listing.objects.filter(pk=listing.pk).update(pending_changes={"title": "A new title"})
    return listing


CASES = [
    ("listing pending review", lambda: listing_in("pending_review"), {"approve", "request_changes", "reject"}),
    ("listing published", lambda: listing_in("published"), {"suspend"}),
    ("listing with an edit", _listing_with_pending_edit, {"suspend", "approve_revision", "reject_revision"}),
    ("listing suspended", lambda: listing_in("suspended"), {"reinstate"}),
    ("booking authorized", lambda: booking_in("authorized"), {"accept", "decline", "cancel"}),
    ("booking accepted", lambda: booking_in("accepted"), {"complete", "cancel"}),
    ("booking completed", lambda: booking_in("completed"), set()),
    (
        "dispute under review",
        lambda: dispute_in("under_review"),
        {"assign", "request_response", "escalate", "resolve", "withdraw"},
    ),
    ("dispute resolved", lambda: dispute_in("resolved_partial_refund"), set()),
    ("payout awaiting approval", lambda: payout_in("awaiting_approval"), {"hold", "approve", "reject", "cancel"}),
    ("payout failed", lambda: payout_in("failed"), {"hold", "retry", "cancel"}),
    ("payout paid", lambda: payout_in("paid"), set()),
]


@pytest.mark.parametrize(("case", "make", "offered"), CASES, ids=[case[0] for case in CASES])
def test_change_page_offers_only_the_steps_the_state_allows(client, case, make, offered):
    # given an object in a state, and a superuser (every permission, every scope)
    obj = make()
    client.force_login(StaffFactory(is_superuser=True))
    label = obj._meta.label_lower
    prefix = f"admin:{obj._meta.app_label}_{obj._meta.model_name}"

    # when its change page is opened
    response = client.get(reverse(f"{prefix}_change", args=[obj.pk]))

    # then exactly the steps its state allows have a button
    assert response.status_code == 200
    html = response.content.decode()
    shown = {step for step in STEPS[label] if f'href="{reverse(f"{prefix}_{step}", args=[obj.pk])}"' in html}
    assert shown == offered, (case, obj.status)
