"""In-app notifications and the email outbox. Emails are rows; a task sends them after commit."""

import uuid

from django.db import IntegrityError, transaction

from marketplace.notifications.models import EmailOutbox, Notification


def notify(
    *, user, verb: str, title: str, body: str = "", target=None, email: bool = True, dedupe_key: str | None = None
) -> Notification:
    """Write an in-app notification and, when `email`, queue the same message in the outbox.

    Call it inside the transition's transaction: if the transition rolls back, so do both rows.
    With `dedupe_key` (a caller that may run twice: a timer, a reminder) the second call, even a
    concurrent one from another process, writes nothing and returns the first notification.
    """
    target_type = target._meta.label_lower if target is not None else ""
    target_id = str(target.pk) if target is not None else ""
    fields = dict(user=user, verb=verb, title=title, body=body, target_type=target_type, target_id=target_id)
    if dedupe_key:
        existing = Notification.objects.filter(dedupe_key=dedupe_key).first()
        if existing is not None:
            return existing
        try:
            # A concurrent twin blocks on the unique key until we commit, then fails here.
            with transaction.atomic():
                notification = Notification.objects.create(dedupe_key=dedupe_key, **fields)
        except IntegrityError:
            return Notification.objects.get(dedupe_key=dedupe_key)
    else:
        notification = Notification.objects.create(**fields)
    if email and user.email:
        outbox, created = EmailOutbox.objects.get_or_create(
            dedupe_key=dedupe_key or f"{verb}:{target_type}:{target_id}:{user.pk}:{uuid.uuid4().hex}",
            defaults={
                "to": user.email,
                "template": f"notifications/email/{verb}",
                "subject": title,
                "context": {"title": title, "body": body, "user_name": user.get_short_name()},
            },
        )
        if created:
            transaction.on_commit(lambda: _enqueue_send(outbox.pk))
    return notification


def _enqueue_send(outbox_id: int) -> None:
    from django_q.tasks import async_task

    async_task("marketplace.notifications.tasks.email_send", outbox_id)


def email_send(*, outbox_id: int) -> bool:
    """Send one outbox email at most once: claim the row with a lock, send, mark sent."""
    from django.core.mail import EmailMultiAlternatives
    from django.template import TemplateDoesNotExist
    from django.template.loader import render_to_string
    from django.utils import timezone

    with transaction.atomic():
        outbox = EmailOutbox.objects.select_for_update(skip_locked=True).filter(pk=outbox_id).first()
        if outbox is None or outbox.status == EmailOutbox.Status.SENT:
            return False
        try:
            text = render_to_string(f"{outbox.template}.txt", outbox.context)
        except TemplateDoesNotExist:
            text = render_to_string("notifications/email/default.txt", outbox.context)
        try:
            html = render_to_string(f"{outbox.template}.html", outbox.context)
        except TemplateDoesNotExist:
            html = render_to_string("notifications/email/default.html", outbox.context)
        message = EmailMultiAlternatives(outbox.subject, text, to=[outbox.to])
        message.attach_alternative(html, "text/html")
        outbox.attempts += 1
        try:
            message.send()
        except Exception as exc:  # the backend's errors vary; the row records them for a retry
            outbox.last_error = str(exc)[:2000]
            outbox.status = EmailOutbox.Status.FAILED
            outbox.save(update_fields=["attempts", "last_error", "status"])
            return False
        outbox.status = EmailOutbox.Status.SENT
        outbox.sent_at = timezone.now()
        outbox.save(update_fields=["attempts", "status", "sent_at"])
        return True
