"""The payout run's portable path, for SQLite (the embedded development database): the same steps
as the set-based SQL of runs.py, through the services, per partner and currency. For the demo, not
for scale.
"""

from django.db import transaction
from django.utils import timezone

from marketplace.core.money import ZERO
from marketplace.partners.models import Partner
from marketplace.payments.payable import mature_q
from marketplace.payouts.balances import partner_balances, payout_cutoff
from marketplace.payouts.models import Payout, PayoutRun

S = Payout.Status


def gather(run: PayoutRun, *, now) -> None:
    """Per partner and currency with something to pay now: its mature bookings through `payout_create`."""
    from marketplace.payouts.balances import unpaid_bookings
    from marketplace.payouts.services import payout_create

    mature = mature_q(cutoff=payout_cutoff(now), now=now)
    for (partner_id, currency), balance in sorted(partner_balances(now=now).items()):
        if balance.payable_now <= ZERO:
            continue
        bookings = list(
            unpaid_bookings(partner_ids=[partner_id], currency=currency).filter(mature, payable__gt=0).order_by("pk")
        )
        with transaction.atomic():
            payout = payout_create(
                partner=Partner.objects.get(pk=partner_id), bookings=bookings, currency=currency, run=run
            )
            run.payouts_created += 1
            run.bookings += len(bookings)
            run.amount_created += payout.amount
            if payout.status == S.ACCRUING:
                _mature_and_approve(payout, run)
            run.save()


def _mature_and_approve(payout: Payout, run: PayoutRun) -> None:
    from marketplace.payouts.services import payout_auto_approve, payout_mature, payout_needs_approval

    Payout.objects.filter(pk=payout.pk).update(hold_until=timezone.now())
    payout = payout_mature(payout=payout)
    if not payout_needs_approval(payout):
        payout_auto_approve(payout=payout)
        run.auto_approved += 1


def retry(now) -> int:
    from marketplace.payouts.services import payout_auto_retry

    count = 0
    for payout in Payout.objects.filter(status=S.FAILED, next_retry_at__lte=now):
        payout_auto_retry(payout=payout)
        count += 1
    return count


def submit() -> int:
    from marketplace.payouts.services import payout_submit

    count = 0
    for payout in Payout.objects.filter(status=S.APPROVED).order_by("pk"):
        payout_submit(payout=payout, actor=None)
        count += 1
    return count
