"""django-q2 entry points: take ids, call services."""

from marketplace.notifications.services import email_send as _email_send


def email_send(outbox_id: int) -> bool:
    return _email_send(outbox_id=outbox_id)
