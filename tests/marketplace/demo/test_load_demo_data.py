"""`manage.py load_demo_data`: the curated demo through the services, and the `--scale N` bulk path."""

import shutil
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import F, Q
from django.test.utils import CaptureQueriesContext

from marketplace.accounts.models import User
from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.catalog.models import Category, Listing
from marketplace.demo.demo import FIXTURES_DIR
from marketplace.demo.generator import ScalePlan, scale_load
from marketplace.disputes.models import Dispute
from marketplace.jobs.models import JobApplication
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.messaging.models import Conversation, Message
from marketplace.notifications.models import EmailOutbox, Notification
from marketplace.partners.models import Partner, PartnerMembership, PayoutAccount
from marketplace.partners.selectors import partner_for_user
from marketplace.payments.models import Payment, PaymentMethod, Refund
from marketplace.payouts.models import Payout, PayoutAttempt
from marketplace.payouts.reconciliation import ledger_reconcile
from marketplace.reviews.models import Review

pytestmark = pytest.mark.django_db

COUNTED = [
    User,
    Partner,
    PartnerMembership,
    PayoutAccount,
    Category,
    Listing,
    JobApplication,
    Booking,
    PaymentMethod,
    Payment,
    Refund,
    Dispute,
    Payout,
    PayoutAttempt,
    Review,
    Conversation,
    Message,
    LedgerTransaction,
    LedgerEntry,
    Event,
    Notification,
    EmailOutbox,
]
STAFF = {
    "admin@demo.test": [],
    "agent@demo.test": ["Operations agent"],
    "agent2@demo.test": ["Operations agent"],
    "lead@demo.test": ["Operations lead"],
    "finance@demo.test": ["Finance"],
    "finance2@demo.test": ["Finance"],
    "support@demo.test": ["Support"],
    "editor@demo.test": ["Content editor"],
    "partnermgr@demo.test": ["Partner manager"],
}


def row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in COUNTED}


def statuses(model) -> set[str]:
    return set(model.objects.values_list("status", flat=True).distinct())


def load(*args) -> str:
    out = StringIO()
    call_command("load_demo_data", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def demo():
    return load()


# --- The curated demo ----------------------------------------------------------------------


def test_load_demo_data_reaches_every_listing_and_booking_state(demo):
    # given the curated demo loaded through the services
    # then every listing and booking state is present
    assert statuses(Listing) == set(Listing.Status.values)
    assert statuses(Booking) == set(Booking.Status.values)
    # and one published listing has a material edit waiting for review
    assert Listing.objects.filter(status="published", pending_changes__isnull=False).count() == 1
    # and the job listings have applications in every state, the hired one with its booking
    assert Listing.objects.filter(kind=Listing.Kind.JOB, status="published").count() == 2
    assert statuses(JobApplication) == set(JobApplication.Status.values)
    hired = JobApplication.objects.get(status="hired")
    assert hired.booking.provider == hired.applicant
    assert hired.booking.status == "accepted"
    # and the cancelled bookings were refunded (in full, and the late one by half)
    refunds = sorted(Refund.objects.filter(payment__booking__status="cancelled").values_list("amount", flat=True))
    assert [str(r) for r in refunds] == ["42.50", "120.00"]


def test_load_demo_data_reaches_every_dispute_and_payout_state(demo):
    assert statuses(Dispute) == {
        "opened",
        "awaiting_response",
        "under_review",
        "escalated",
        "resolved_release",
        "resolved_partial_refund",
        "withdrawn",
    }
    # a refund above the threshold proposed by one person, waiting for a second approval
    proposal = Dispute.objects.get(~Q(proposed_outcome=""))
    assert proposal.proposed_refund > 500
    assert proposal.proposed_by.email == "agent@demo.test"
    assert proposal.status == "under_review"
    # one dispute assigned to agent@demo.test, with its object permission
    assigned = Dispute.objects.get(assignee__email="agent@demo.test")
    assert assigned.assignee.has_perm("disputes.handle_dispute", assigned)
    # the partial refund was refunded
    partial = Dispute.objects.get(status="resolved_partial_refund")
    assert Refund.objects.filter(idempotency_key=f"dispute:{partial.pk}", amount=partial.refund_amount).exists()

    assert statuses(Payout) == {"accruing", "on_hold", "ready", "awaiting_approval", "approved", "paid", "failed"}
    assert Payout.objects.get(status="awaiting_approval").requested_by.email == "finance@demo.test"
    approved = Payout.objects.get(status="approved")
    assert (approved.requested_by.email, approved.approved_by.email) == ("finance@demo.test", "finance2@demo.test")
    failed = Payout.objects.get(status="failed")
    assert failed.partner.payout_account.gateway_reference.startswith("acct_fail")
    assert failed.attempts.get().status == PayoutAttempt.Status.FAILED
    assert set(Payout.objects.filter(status="on_hold").values_list("holds__kind", flat=True)) == {"dispute", "risk"}
    assert LedgerTransaction.objects.filter(kind="payout").count() == Payout.objects.filter(status="paid").count()


def test_load_demo_data_ledger_reconciles(demo):
    reconciliation = ledger_reconcile()

    assert reconciliation.balanced, reconciliation.mismatches
    assert reconciliation.totals["EUR"]["refunds"] > 0
    assert reconciliation.totals["EUR"]["payouts"] > 0
    assert "Ledger reconciled" in demo


def test_load_demo_data_staff_accounts_groups_and_scopes(demo):
    for email, groups in STAFF.items():
        user = User.objects.get(email=email)
        assert user.is_staff
        assert user.check_password("demo12345")
        assert sorted(user.groups.values_list("name", flat=True)) == groups
    assert User.objects.get(email="admin@demo.test").is_superuser
    agent, agent2 = User.objects.get(email="agent@demo.test"), User.objects.get(email="agent2@demo.test")
    assert list(partner_for_user(agent).values_list("slug", flat=True)) == ["brightside-cleaning"]
    assert list(partner_for_user(agent2).values_list("slug", flat=True)) == ["northwind-handyman"]


def test_load_demo_data_public_users_and_partners(demo):
    public = User.objects.filter(is_staff=False)
    assert {role for role in public.values_list("role", flat=True)} == {"client", "worker", "service_provider"}
    assert public.filter(email_verified_at__isnull=False).count() > public.count() / 2
    assert public.filter(email_verified_at__isnull=True).exists()
    assert Partner.objects.count() == 4
    assert Partner.objects.filter(risk_flag=True).count() == 1
    assert PayoutAccount.objects.count() == 4
    assert PartnerMembership.objects.count() > 0


def test_load_demo_data_writes_audit_notifications_reviews_and_messages(demo):
    # the services wrote their side effects: audit events, notifications, queued emails
    verbs = set(Event.objects.values_list("verb", flat=True))
    assert {"listing.approve", "booking.accept", "payment.captured", "dispute.opened", "payout.mark_failed"} <= verbs
    assert {"scope.granted", "dispute.assigned", "payment.refunded", "review.published"} <= verbs
    assert Notification.objects.exists()
    assert EmailOutbox.objects.filter(template="notifications/email/account.verify_email").exists()
    # a published pair of reviews and a hidden single one
    assert Review.objects.filter(published_at__isnull=False).count() >= 2
    assert Review.objects.filter(published_at__isnull=True).count() == 1
    assert Conversation.objects.filter(listing__isnull=False, booking__isnull=True).exists()
    assert Message.objects.count() >= 5


def test_load_demo_data_rolls_back_when_a_fixture_state_is_not_reached(tmp_path):
    # given fixtures asking for a payout state the services do not leave it in: a risk-flagged
    # partner's payout goes on hold when created, never merely accruing
    for path in FIXTURES_DIR.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    payouts = tmp_path / "08_payouts.toml"
    text = payouts.read_text()
    assert 'bookings = ["payout-risk-hold"]\nmatured = true\nstate = "on_hold"' in text
    payouts.write_text(
        text.replace(
            '["payout-risk-hold"]\nmatured = true\nstate = "on_hold"', '["payout-risk-hold"]\nstate = "accruing"'
        )
    )

    # when the demo is loaded from them
    with pytest.raises(CommandError, match="is 'on_hold', the fixtures want 'accruing'"):
        load("--fixtures", str(tmp_path))

    # then nothing was written
    assert not User.objects.exists()
    assert not Booking.objects.exists()
    assert not Event.objects.exists()


def test_load_demo_data_second_run_changes_nothing(demo):
    before = row_counts()

    out = load()

    assert "nothing changed" in out
    assert row_counts() == before


# --- The scale path ------------------------------------------------------------------------


def test_load_demo_data_scale_creates_exactly_n_bookings():
    out = load("--scale", "2000", "--run-label", "t2000")

    plan = ScalePlan.for_bookings(2000)
    assert Booking.objects.count() == 2000
    assert Listing.objects.count() == plan.listings
    assert User.objects.filter(role="client").count() == plan.clients
    assert User.objects.filter(role="service_provider").count() == plan.providers
    assert Partner.objects.count() == plan.partners == 3
    assert statuses(Booking) == set(Booking.Status.values)
    assert statuses(Listing) == set(Listing.Status.values)
    assert "Loaded 2,000 bookings" in out


def test_load_demo_data_scale_satisfies_constraints_and_reconciles():
    load("--scale", "2000", "--run-label", "c2000")

    # the database checked CHECK and UNIQUE constraints on the way in; foreign keys too, and again here
    connection.check_constraints()
    assert not Booking.objects.filter(platform_fee__gt=F("amount")).exists()
    assert not Booking.objects.filter(ends_at__lte=F("starts_at")).exists()
    assert not Booking.objects.filter(client=F("provider")).exists()
    assert not Booking.objects.exclude(partner=F("listing__partner")).exists()
    assert not Payment.objects.filter(refunded_amount__gt=F("captured_amount")).exists()
    assert not Refund.objects.exclude(amount=F("provider_share") + F("platform_share")).exists()
    # a payment for every booking past authorisation, a capture posting for every captured payment
    assert not Booking.objects.filter(status__in=["accepted", "completed", "closed"], payment__isnull=True).exists()
    captured = Payment.objects.filter(captured_amount__gt=0).count()
    assert LedgerTransaction.objects.filter(kind="capture").count() == captured
    assert LedgerTransaction.objects.filter(kind="refund").count() == Refund.objects.count()
    assert set(Dispute.objects.values_list("booking__status", flat=True)) == {"disputed", "resolved"}
    # the category tree is a valid treebeard tree
    assert Category.find_problems() == ([], [], [], [], [])
    reconciliation = ledger_reconcile()
    assert reconciliation.balanced, reconciliation.mismatches


def test_load_demo_data_scale_runs_again_with_another_label():
    load("--scale", "300", "--run-label", "first")
    load("--scale", "300", "--run-label", "second")

    assert Booking.objects.count() == 600
    assert ledger_reconcile().balanced
    with pytest.raises(CommandError, match="was used already"):
        load("--scale", "300", "--run-label", "second")
    assert Booking.objects.count() == 600


def test_load_demo_data_scale_after_the_curated_demo(demo):
    load("--scale", "500", "--run-label", "mixed")

    assert Booking.objects.filter(client__email__startswith="mixed.").count() == 500
    assert ledger_reconcile().balanced
    assert Category.find_problems() == ([], [], [], [], [])
    assert Category.get_root_nodes().count() == 3 + 4


def test_load_demo_data_scale_writes_nothing_when_the_database_refuses_a_batch(monkeypatch):
    # given a generator that writes a currency code longer than the column
    monkeypatch.setattr("marketplace.demo.rows.CURRENCY", "EURO")

    # when the scale load runs
    with pytest.raises(CommandError, match="refused a batch.*Nothing was written"):
        load("--scale", "200", "--run-label", "broken")

    # then the whole load rolled back, and the connection is usable
    assert not User.objects.exists()
    assert not Partner.objects.exists()
    assert not Booking.objects.exists()


def test_scale_load_query_count_does_not_grow_with_n():
    # given two loads of very different sizes that each fit in one batch
    with CaptureQueriesContext(connection) as small:
        scale_load(n=500, run_label="q500")
    with CaptureQueriesContext(connection) as large:
        scale_load(n=2000, run_label="q2000")

    # then they send the same statements (COPYs and id reservations counted)
    assert len(small) == len(large), "\n".join(q["sql"][:120] for q in large.captured_queries)
    assert any(q["sql"].startswith('COPY "bookings_booking"') for q in large.captured_queries)


def test_scale_load_query_count_grows_only_with_the_number_of_batches():
    with CaptureQueriesContext(connection) as two_batches:
        scale_load(n=500, batch_size=250, run_label="b500")
    with CaptureQueriesContext(connection) as eight_batches:
        scale_load(n=2000, batch_size=250, run_label="b2000")

    # each booking batch reserves ids for and COPYs into 6 tables
    assert len(eight_batches) - len(two_batches) == 6 * (6 + 6)


@pytest.mark.parametrize(
    "production",
    [{"SETTINGS_MODULE": "config.settings.production"}, {"ENVIRONMENT_NAME": "production"}],
    ids=["production-settings", "environment-production"],
)
def test_load_demo_data_refuses_production_without_the_flag(settings, production):
    # given production settings, or another settings module labelled DJANGO_ENVIRONMENT=production
    for name, value in production.items():
        setattr(settings, name, value)
    # when the demo loader runs without the flag  # then it refuses before writing anything
    with pytest.raises(CommandError, match="Refusing to load demo data into production.*i-know-this-is-production"):
        call_command("load_demo_data", stdout=StringIO())
    assert not User.objects.exists()


def test_load_demo_data_in_production_with_the_flag_goes_ahead(settings, tmp_path):
    # given production settings and the explicit flag
    settings.ENVIRONMENT_NAME = "production"
    out = StringIO()
    # when it runs (on an empty fixtures folder, to stay quick)
    with pytest.raises(CommandError) as refused:
        call_command("load_demo_data", "--i-know-this-is-production", fixtures=tmp_path, stdout=out)
    # then it got past the production guard to the loading itself
    assert "Refusing" not in str(refused.value)
    assert "Loading the curated demo" in out.getvalue()
