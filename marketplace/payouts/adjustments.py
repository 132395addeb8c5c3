"""Manual balance adjustments: a credit or debit to a partner's balance, posted to the ledger.

Finance credits a partner (a goodwill payment, a fee waived) or debits them (a recovered overpayment).
Above MARKETPLACE_ADJUSTMENT_SECOND_APPROVAL_ABOVE (per currency, on the absolute amount) the
adjustment waits for a second person; at or below it, it is posted at once. Either way the next
payouts pay (or net) it: it becomes part of the partner's carried balance (`balances.py`).
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.core.money import ZERO, currency_check, quantize, threshold
from marketplace.ledger.services import ledger_post_adjustment
from marketplace.partners.models import Partner
from marketplace.partners.selectors import partner_for_user
from marketplace.payouts.models import BalanceAdjustment

ST = BalanceAdjustment.Status


def _require(actor, permission: str, partner: Partner, doing: str) -> None:
    if not actor.has_perm(permission):
        raise NotPermitted(f"You do not have the permission to {doing}.")
    if not partner_for_user(actor).filter(pk=partner.pk).exists():
        raise NotPermitted(f"Partner {partner} is outside your scope.")


def adjustment_create(*, partner: Partner, amount: Decimal, currency: str, reason: str, actor) -> BalanceAdjustment:
    """Credit (amount > 0) or debit (amount < 0) a partner in one currency, with a reason.

    Needs `payouts.add_balanceadjustment` and the partner in scope. Posted at once up to the
    threshold; above it, it waits for `adjustment_approve` by someone else.
    """
    _require(actor, "payouts.add_balanceadjustment", partner, "adjust partner balances")
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to adjust a balance.")
    if isinstance(amount, float):
        raise InvalidInput("Money is never a float.")
    amount = quantize(amount)
    if amount == ZERO:
        raise InvalidInput("An adjustment of 0.00 changes nothing.")
    currency = currency_check(currency)
    limit = threshold("MARKETPLACE_ADJUSTMENT_SECOND_APPROVAL_ABOVE", currency)
    with transaction.atomic():
        partner = Partner.objects.select_for_update(no_key=True).get(pk=partner.pk)
        adjustment = BalanceAdjustment.objects.create(
            partner=partner,
            amount=amount,
            currency=currency,
            reason=reason.strip(),
            requested_by=actor,
            status=ST.AWAITING_APPROVAL if abs(amount) > limit else ST.POSTED,
            decided_at=None if abs(amount) > limit else timezone.now(),
        )
        event_record(
            verb="adjustment.requested" if adjustment.status == ST.AWAITING_APPROVAL else "adjustment.posted",
            actor=actor,
            target=partner,
            to_state=adjustment.status,
            reason=adjustment.reason,
            data={"adjustment": adjustment.pk, "amount": str(amount), "currency": currency, "threshold": str(limit)},
        )
        if adjustment.status == ST.POSTED:
            ledger_post_adjustment(adjustment=adjustment)
    return adjustment


def adjustment_approve(*, adjustment: BalanceAdjustment, actor) -> BalanceAdjustment:
    """The second person posts an adjustment above the threshold. Never its requester."""
    return _decide(adjustment, actor=actor, approve=True, reason="")


def adjustment_reject(*, adjustment: BalanceAdjustment, actor, reason: str) -> BalanceAdjustment:
    """Refuse an adjustment waiting for approval, with a reason; nothing is posted."""
    if not (reason or "").strip():
        raise InvalidInput("A reason is required to reject an adjustment.")
    return _decide(adjustment, actor=actor, approve=False, reason=reason)


def _decide(adjustment: BalanceAdjustment, *, actor, approve: bool, reason: str) -> BalanceAdjustment:
    with transaction.atomic():
        adjustment = BalanceAdjustment.objects.select_for_update().select_related("partner").get(pk=adjustment.pk)
        if adjustment.status != ST.AWAITING_APPROVAL:
            raise TransitionNotAllowed(adjustment, "approve" if approve else "reject", state=adjustment.status)
        _require(actor, "payouts.approve_balanceadjustment", adjustment.partner, "approve balance adjustments")
        if adjustment.requested_by_id == actor.pk:
            raise NotPermitted(f"You requested adjustment #{adjustment.pk}; a second person must decide on it.")
        adjustment.status = ST.POSTED if approve else ST.REJECTED
        adjustment.approved_by = actor if approve else None
        adjustment.decided_at = timezone.now()
        adjustment.save(update_fields=["status", "approved_by", "decided_at"])
        event_record(
            verb="adjustment.approved" if approve else "adjustment.rejected",
            actor=actor,
            target=adjustment.partner,
            from_state=ST.AWAITING_APPROVAL,
            to_state=adjustment.status,
            reason=reason or adjustment.reason,
            data={"adjustment": adjustment.pk, "amount": str(adjustment.amount), "currency": adjustment.currency},
        )
        if approve:
            ledger_post_adjustment(adjustment=adjustment)
    return adjustment
