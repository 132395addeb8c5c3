"""What the demo database holds: counts per model and per state, printed after a load.

Each line is one aggregate query (a count, or a count per status), never rows pulled into Python.
"""

from django.contrib.auth.models import Group
from django.db.models import Count, Q

from marketplace.accounts.models import User
from marketplace.audit.models import Event
from marketplace.bookings.models import Booking
from marketplace.catalog.models import Category, Listing
from marketplace.disputes.models import Dispute
from marketplace.jobs.models import JobApplication
from marketplace.ledger.models import LedgerEntry, LedgerTransaction
from marketplace.messaging.models import Conversation, Message
from marketplace.notifications.models import EmailOutbox, Notification
from marketplace.partners.models import Partner, PartnerMembership, PartnerUserObjectPermission, PayoutAccount
from marketplace.payments.models import Payment, Refund
from marketplace.payouts.models import Payout, PayoutAttempt
from marketplace.reviews.models import Review

Section = tuple[str, list[tuple[str, int]]]


def _by_status(model) -> list[tuple[str, int]]:
    """Every state of the model's Status choices in their order, with its row count (zeros too)."""
    counts = dict(model.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return [(value, counts.get(value, 0)) for value in model.Status.values]


def demo_summary() -> list[Section]:
    users = User.objects.aggregate(
        staff=Count("pk", filter=Q(is_staff=True)),
        clients=Count("pk", filter=Q(role=User.Role.CLIENT)),
        workers=Count("pk", filter=Q(role=User.Role.WORKER)),
        providers=Count("pk", filter=Q(role=User.Role.SERVICE_PROVIDER)),
        verified=Count("pk", filter=Q(email_verified_at__isnull=False, is_staff=False)),
    )
    return [
        (
            "Accounts",
            [
                ("staff", users["staff"]),
                ("staff groups", Group.objects.count()),
                ("clients", users["clients"]),
                ("workers", users["workers"]),
                ("service providers", users["providers"]),
                ("public users with a verified email", users["verified"]),
            ],
        ),
        (
            "Partners",
            [
                ("partners", Partner.objects.count()),
                ("risk-flagged", Partner.objects.filter(risk_flag=True).count()),
                ("payout accounts", PayoutAccount.objects.count()),
                ("memberships", PartnerMembership.objects.count()),
                ("scope grants to staff", PartnerUserObjectPermission.objects.count()),
            ],
        ),
        ("Categories", [("categories", Category.objects.count())]),
        (
            "Listings",
            [
                *_by_status(Listing),
                ("(jobs)", Listing.objects.filter(kind=Listing.Kind.JOB).count()),
                ("(with a pending edit)", Listing.objects.filter(pending_changes__isnull=False).count()),
            ],
        ),
        ("Job applications", _by_status(JobApplication)),
        ("Bookings", _by_status(Booking)),
        ("Payments", [*_by_status(Payment), ("refunds", Refund.objects.count())]),
        (
            "Disputes",
            [
                *_by_status(Dispute),
                ("(assigned)", Dispute.objects.filter(assignee__isnull=False).count()),
                ("(refund waiting for a second approval)", Dispute.objects.exclude(proposed_outcome="").count()),
            ],
        ),
        ("Payouts", [*_by_status(Payout), ("attempts", PayoutAttempt.objects.count())]),
        (
            "Reviews and messages",
            [
                ("reviews published", Review.objects.filter(published_at__isnull=False).count()),
                ("reviews hidden (double-blind)", Review.objects.filter(published_at__isnull=True).count()),
                ("conversations", Conversation.objects.count()),
                ("messages", Message.objects.count()),
            ],
        ),
        (
            "Ledger, audit, notifications",
            [
                ("ledger transactions", LedgerTransaction.objects.count()),
                ("ledger entries", LedgerEntry.objects.count()),
                ("audit events", Event.objects.count()),
                ("notifications", Notification.objects.count()),
                ("emails in the outbox", EmailOutbox.objects.count()),
            ],
        ),
    ]


def summary_lines(sections: list[Section]) -> list[str]:
    """The sections as a two-column text table."""
    width = max(len(label) for _, rows in sections for label, _ in rows) + 4
    lines = []
    for title, rows in sections:
        lines.append(title)
        lines.extend(f"  {label:<{width}}{count:>10,}" for label, count in rows)
    return lines
