"""django-q2 entry points: take ids, call services."""

from marketplace.payouts.services import payout_attempt_process as _process


def payout_attempt_process(attempt_id: int) -> None:
    _process(attempt_id=attempt_id)
