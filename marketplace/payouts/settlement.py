"""What a payout settles and for how much: a payout made from a partner's balance in one currency
(its bookings' payable plus the carried balance), and a live payout shrunk after a refund.

Part of the payout services' API (re-exported by `payouts.services`); the state machine itself is
in services.py.
"""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.bookings.models import Booking
from marketplace.core.exceptions import ApplicationError, InvalidInput, NotPermitted
from marketplace.core.money import ZERO, currency_check
from marketplace.core.transitions import lock, lock_many
from marketplace.partners.models import Partner
from marketplace.partners.selectors import partner_for_user, partner_payouts_blocked
from marketplace.payments.models import Payment
from marketplace.payments.payable import booking_payable
from marketplace.payouts.balances import partner_balances
from marketplace.payouts.models import Payout, PayoutHold, PayoutItem
from marketplace.payouts.services import PAYABLE_STATES, S, _apply, _release_for_good


def booking_payable_amount(*, booking: Booking, payment: Payment) -> Decimal:
    """What the provider is owed for a booking now (`payments.payable`, the one definition)."""
    return booking_payable(booking=booking, payment=payment)


def payout_create(*, partner: Partner, bookings, actor=None, currency: str | None = None, run=None) -> Payout:
    """Pay a partner's bookings in one currency, netted with the rest of their balance in it.

    The payout's amount is its bookings' payable plus the partner's carried balance in that currency
    (`balances.Balance.carried`): a negative balance left by refunds or chargebacks after earlier
    payouts is taken off here, a credit adjustment added. The payout accrues through the hold period
    (until the last booking's hold and dispute window are over).

    Refuses, writing nothing, if any booking is of another partner or currency, not settled, held by
    an open dispute or already in a live payout, or if the netted amount is not above zero. With
    `bookings` empty it pays a positive carried balance alone (in `currency`). A person (`actor`)
    needs `payouts.add_payout` and the partner in scope; actor None is the system (the payout run).
    """
    if actor is not None:
        if not actor.has_perm("payouts.add_payout"):
            raise NotPermitted("You do not have the permission to create payouts.")
        if not partner_for_user(actor).filter(pk=partner.pk).exists():
            raise NotPermitted(f"Partner {partner} is outside your scope.")
    with transaction.atomic():
        # The partner row serialises payout creation (and payout runs) for this partner: the
        # carried balance read below cannot be given to two payouts.
        # NO KEY UPDATE: rows referencing the partner (a dispute opened meanwhile) still take their
        # key-share lock on it, so this lock cannot deadlock with them.
        partner = Partner.objects.select_for_update(no_key=True).get(pk=partner.pk)
        locked = lock_many(Booking, [b.pk for b in bookings])
        currencies = {b.currency for b in locked} | ({currency} if currency else set())
        if len(currencies) > 1:
            raise InvalidInput(
                f"A payout is in one currency; these bookings are in {', '.join(sorted(currencies))}. "
                "Create one payout per currency."
            )
        if not currencies:
            raise InvalidInput("A payout needs at least one booking, or a currency to pay a balance in.")
        code = currency_check(currencies.pop())
        payments = {p.booking_id: p for p in Payment.objects.filter(booking__in=locked)}
        items, total = [], ZERO
        for booking in locked:
            if booking.partner_id != partner.pk:
                raise InvalidInput(f"Booking #{booking.pk} belongs to another partner.")
            if booking.status == Booking.Status.DISPUTED:
                raise ApplicationError(f"Booking #{booking.pk} is held by an open dispute and cannot be paid out.")
            if booking.status not in PAYABLE_STATES:
                raise ApplicationError(
                    f"Booking #{booking.pk} is '{booking.status}', not settled; it cannot be paid out."
                )
            payment = payments.get(booking.pk)
            if payment is None or payment.captured_amount <= ZERO:
                raise ApplicationError(f"Booking #{booking.pk} has no captured payment to pay out.")
            amount = booking_payable(booking=booking, payment=payment)
            items.append(PayoutItem(booking=booking, amount=amount))
            total += amount
        if PayoutItem.objects.filter(booking__in=locked, is_active=True).exists():
            raise ApplicationError("One of these bookings is already in a live payout.")
        balance = partner_balances(partner_ids=[partner.pk], currency=code).get((partner.pk, code))
        carried = balance.carried if balance else ZERO
        if total + carried <= ZERO:
            if carried < ZERO:
                raise InvalidInput(
                    f"{partner} owes {-carried} {code} from refunds or chargebacks after earlier payouts; "
                    f"these bookings' {total} {code} is netted against it, so nothing is paid now."
                )
            raise InvalidInput("Nothing is owed for these bookings; no payout was created.")
        hold = timedelta(days=settings.MARKETPLACE_PAYOUT_HOLD_DAYS)
        ends = [
            max(filter(None, [(b.completed_at or b.cancelled_at or timezone.now()) + hold, b.dispute_window_ends_at]))
            for b in locked
        ]
        payout = Payout.objects.create(
            partner=partner,
            amount=total + carried,
            carried=carried,
            currency=code,
            hold_until=max(ends) if ends else timezone.now(),
            run=run,
        )
        for item in items:
            item.payout = payout
        try:
            with transaction.atomic():
                PayoutItem.objects.bulk_create(items)
        except IntegrityError as exc:
            raise ApplicationError("One of these bookings is already in a live payout.") from exc
        event_record(
            verb="payout.created",
            actor=actor,
            target=payout,
            to_state=payout.status,
            data={
                "amount": str(payout.amount),
                "items": str(total),
                "carried": str(carried),
                "bookings": [b.pk for b in locked],
                **({"run": run.pk, "actor": "system"} if run is not None else {}),
            },
        )
        if blocked := partner_payouts_blocked(partner):
            PayoutHold.objects.create(payout=payout, kind=PayoutHold.Kind.RISK, reason=blocked)
            _apply(payout, actor=None, transition="hold", reason=blocked)
    return payout


def payout_active_for_booking(*, booking: Booking) -> Payout | None:
    """The live payout that settles a booking, if any."""
    item = (
        PayoutItem.objects.filter(booking=booking, is_active=True)
        .exclude(payout__status__in=[S.PAID, S.CANCELLED, S.REVERSED])
        .select_related("payout")
        .first()
    )
    return item.payout if item else None


def payout_recompute_for_booking(*, booking: Booking, actor, reason: str) -> Payout | None:
    """After a refund, shrink the live payout that settles `booking` to what is still owed.

    A payout left with nothing to pay is cancelled. A payout already submitted or paid is not
    touched here: the refund then shows as a provider balance the ledger carries forward.
    """
    payout = payout_active_for_booking(booking=booking)
    if payout is None:
        return None
    payout = lock(Payout, payout.pk)
    if payout.status in (S.SUBMITTED, S.PAID, S.CANCELLED, S.REVERSED):
        return payout
    item = payout.items.get(booking=booking, is_active=True)
    new_amount = booking_payable_amount(booking=booking, payment=Payment.objects.get(booking=booking))
    if new_amount == item.amount:
        return payout
    item.amount = new_amount
    item.save(update_fields=["amount"])
    total = (payout.items.filter(is_active=True).aggregate(t=Sum("amount"))["t"] or ZERO) + payout.carried
    event_record(
        verb="payout.amount_adjusted",
        actor=actor,
        target=payout,
        reason=reason,
        data={"from": str(payout.amount), "to": str(total), "booking": booking.pk},
    )
    if total <= ZERO:
        _apply(payout, actor=actor, transition="cancel", reason=f"Nothing left to pay: {reason}")
        _release_for_good(payout, actor)
        return payout
    payout.amount = total
    payout.save(update_fields=["amount", "updated_at"])
    return payout
