"""Payout reads. `payout_for_user` is the one scope for payouts: partner grants only, since a
payout spans the partner's categories."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DecimalField, ExpressionWrapper, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from marketplace.bookings.models import Booking
from marketplace.core.money import ZERO
from marketplace.partners.selectors import can_operate, partner_scope_q, scope_is_global, scope_selector
from marketplace.payments.models import Refund
from marketplace.payouts.models import Payout, PayoutItem

SETTLED = ("completed", "resolved", "closed")


@scope_selector
def payout_for_user(user):
    if not can_operate(user):
        return Payout.objects.none()
    if scope_is_global(user):
        return Payout.objects.all()
    return Payout.objects.filter(partner_scope_q(user, "partner"))


def payout_awaiting_approval_for(user):
    """Payouts this user could approve: in scope, waiting, and not requested by them."""
    return (
        payout_for_user(user)
        .filter(status=Payout.Status.AWAITING_APPROVAL)
        .exclude(requested_by=user)
        .order_by("updated_at", "pk")
    )


def payout_run_preview() -> dict[int, tuple[int, object]]:
    """What a payout run would gather now, per partner: (bookings, amount). Computed with the ORM,
    independently of the run's SQL, so tests and the benchmark can hold the run to it."""
    cutoff = timezone.now() - timedelta(days=settings.MARKETPLACE_PAYOUT_HOLD_DAYS)
    platform_refunded = (
        Refund.objects.filter(payment=OuterRef("payment"))
        .values("payment")
        .annotate(t=Sum("platform_share"))
        .values("t")
    )
    money = DecimalField(max_digits=14, decimal_places=2)
    rows = (
        Booking.objects.filter(status__in=SETTLED, completed_at__lte=cutoff, payment__captured_amount__gt=0)
        .exclude(pk__in=PayoutItem.objects.filter(is_active=True).values("booking_id"))
        .annotate(
            payable=ExpressionWrapper(
                F("payment__captured_amount")
                - F("payment__refunded_amount")
                - (F("platform_fee") - Coalesce(Subquery(platform_refunded, output_field=money), Value(ZERO))),
                output_field=money,
            )
        )
        .filter(payable__gt=0)
        .values("partner_id")
        .annotate(n=Count("pk"), total=Sum("payable"))
    )
    return {row["partner_id"]: (row["n"], row["total"]) for row in rows}
