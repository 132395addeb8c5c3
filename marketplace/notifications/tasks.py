"""django-q2 entry points: take ids, call services."""

from marketplace.notifications.services import email_send as _email_send
from marketplace.notifications.services import outbox_flush as _outbox_flush


def email_send(outbox_id: int) -> bool:
    """Send one outbox row (queued on commit by `email_queue`); a second run sends nothing."""
    return _email_send(outbox_id=outbox_id)


def outbox_flush() -> dict[str, int]:
    """The periodic sweep (every minute): due and retryable rows, and the stuck-row report."""
    return _outbox_flush()
