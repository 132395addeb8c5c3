"""In-app notifications and the email outbox. Emails are rows; a task sends them after commit.

An outbox row is sent at most once. `email_send` claims it first (`sending`, committed before any
SMTP traffic), sends outside every transaction, then marks it `sent`, or `failed` with the time of
its next attempt (the backoff doubles) until the attempts run out. `outbox_flush`, a sweep run every
minute, sends the pending rows and the failed ones whose backoff has passed. A row still `sending`
long after its claim belongs to a process that died mid-send: it may have gone out, so nothing
resends it; the sweep reports it for a person to check.
"""

import hashlib
import logging
import time
import uuid
from datetime import timedelta
from urllib.parse import urljoin

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import select_template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from marketplace.audit.services import event_record
from marketplace.core.exceptions import TransitionNotAllowed
from marketplace.core.transitions import guard, lock
from marketplace.notifications.models import EmailOutbox, Notification

logger = logging.getLogger(__name__)

S = EmailOutbox.Status

DEFAULT_TEMPLATE = "notifications/email/default"
# Settings (with these defaults when unset): attempts before a row stays failed, the first retry
# delay (doubling, capped), rows per sweep, and how long a claim may last before it is reported.
MAX_ATTEMPTS_SETTING = ("MARKETPLACE_EMAIL_MAX_ATTEMPTS", 5)
BACKOFF_SETTING = ("MARKETPLACE_EMAIL_RETRY_BACKOFF_SECONDS", 60)
BACKOFF_CAP = timedelta(hours=6)
FLUSH_BATCH_SETTING = ("MARKETPLACE_EMAIL_FLUSH_BATCH", 100)
# A sweep claims no new row after this long, well inside django-q2's task timeout: a sweep killed
# by the timeout mid-send would leave a row stuck in `sending`. The rest waits for the next sweep.
FLUSH_SECONDS_SETTING = ("MARKETPLACE_EMAIL_FLUSH_SECONDS", 50)
STUCK_SETTING = ("MARKETPLACE_EMAIL_STUCK_MINUTES", 15)
# What a person may do with a row the sweep reports: send it again (failed, or stuck in `sending`
# and checked not to have gone out), or record that a stuck row did go out.
TRANSITIONS = {
    "retry": ({S.FAILED, S.SENDING}, S.PENDING),
    "mark_sent": ({S.SENDING}, S.SENT),
}
# Counts in the sweep's report stop here, so a long-neglected outbox never costs a full count.
REPORT_COUNT_LIMIT = 1000


def _setting(pair: tuple[str, int]) -> int:
    return int(getattr(settings, pair[0], pair[1]))


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
        email_queue(
            to=user.email,
            template=f"notifications/email/{verb}",
            subject=title,
            context={
                "title": title,
                "body": body,
                "user_name": user.get_short_name(),
                "verb": verb,
                "url": _target_url(target, user),
            },
            dedupe_key=dedupe_key or f"{verb}:{target_type}:{target_id}:{user.pk}:{uuid.uuid4().hex}",
        )
    return notification


def email_queue(
    *,
    to: str,
    template: str,
    subject: str,
    context: dict,
    dedupe_key: str,
    from_email: str = "",
    reply_to: str = "",
) -> tuple[EmailOutbox, bool]:
    """Write one outbox row and send it by a task once the caller's transaction commits.

    `template` names a pair `<template>.txt` / `<template>.html` (see `email_template_candidates`
    for the fallbacks). A second call with the same `dedupe_key`, even from another process at the
    same moment, writes nothing and returns the first row with `created` False.
    """
    defaults = {
        "to": to,
        "template": template,
        # A header cannot hold a line break; Django refuses such a subject at send time.
        "subject": " ".join(subject.split())[:200],
        "context": context,
        "from_email": from_email,
        "reply_to": reply_to,
    }
    if len(dedupe_key) > 200:
        dedupe_key = f"{dedupe_key[:150]}:{hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]}"
    outbox, created = EmailOutbox.objects.get_or_create(dedupe_key=dedupe_key, defaults=defaults)
    if created:
        transaction.on_commit(lambda: _enqueue_send(outbox.pk))
    return outbox, created


def _target_url(target, user) -> str:
    """An absolute link to `target` for `user`: its public page, or for staff its admin page."""
    if target is None:
        return ""
    path = ""
    if hasattr(target, "get_absolute_url"):
        path = target.get_absolute_url()
    elif user.is_staff:
        try:
            path = reverse(f"admin:{target._meta.app_label}_{target._meta.model_name}_change", args=[target.pk])
        except NoReverseMatch:
            path = ""
    if not path:
        return ""
    base = getattr(settings, "MARKETPLACE_SITE_URL", "") or settings.WAGTAILADMIN_BASE_URL
    return urljoin(base.rstrip("/") + "/", path.lstrip("/"))


def _enqueue_send(outbox_id: int) -> None:
    from django_q.tasks import async_task

    async_task("marketplace.notifications.tasks.email_send", outbox_id)


def email_template_candidates(template: str) -> list[str]:
    """The templates tried for an email, most specific first, the default last.

    `notifications/email/booking.accept_reminder` tries itself, then `notifications/email/reminder`,
    then the family `notifications/email/booking`, then `notifications/email/default`.
    """
    directory, _, leaf = template.rpartition("/")
    prefix = f"{directory}/" if directory else ""
    family, dot, action = leaf.partition(".")
    names = [template]
    if action.endswith("reminder"):
        names.append(f"{prefix}reminder")
    if dot:
        names.append(f"{prefix}{family}")
    names.append(DEFAULT_TEMPLATE)
    return list(dict.fromkeys(names))


def email_message_build(outbox: EmailOutbox) -> EmailMultiAlternatives:
    """Render an outbox row's text and HTML parts into one message."""
    names = email_template_candidates(outbox.template)
    context = {"site_name": settings.WAGTAIL_SITE_NAME, "subject": outbox.subject, **outbox.context}
    text = select_template([f"{name}.txt" for name in names]).render(context)
    html = select_template([f"{name}.html" for name in names]).render(context)
    message = EmailMultiAlternatives(
        outbox.subject,
        text,
        from_email=outbox.from_email or None,
        to=[outbox.to],
        reply_to=[outbox.reply_to] if outbox.reply_to else None,
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    return message


def email_backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: the base delay, doubling, capped."""
    delay = timedelta(seconds=_setting(BACKOFF_SETTING)) * (2 ** max(attempts - 1, 0))
    return min(delay, BACKOFF_CAP)


def _due(now) -> Q:
    return Q(status=S.PENDING) | Q(status=S.FAILED, next_attempt_at__isnull=False, next_attempt_at__lte=now)


def _claim(outbox_id: int) -> EmailOutbox | None:
    """Move a due row to `sending` and commit; None when it is not due or another worker holds it."""
    now = timezone.now()
    with transaction.atomic():
        outbox = EmailOutbox.objects.select_for_update(skip_locked=True).filter(_due(now), pk=outbox_id).first()
        if outbox is None:
            return None
        outbox.status = S.SENDING
        outbox.attempts += 1
        outbox.claimed_at = now
        outbox.next_attempt_at = None
        outbox.save(update_fields=["status", "attempts", "claimed_at", "next_attempt_at"])
    return outbox


def _send(outbox_id: int) -> str:
    """Claim, send and mark one row; say what happened: "sent", "failed" or "skipped"."""
    outbox = _claim(outbox_id)
    if outbox is None:
        return "skipped"
    try:
        email_message_build(outbox).send()
    except Exception as exc:  # noqa: BLE001 - templates and backends fail in many ways; the row keeps the error
        retry_at = timezone.now() + email_backoff(outbox.attempts)
        gave_up = outbox.attempts >= _setting(MAX_ATTEMPTS_SETTING)
        EmailOutbox.objects.filter(pk=outbox.pk, status=S.SENDING).update(
            status=S.FAILED,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            next_attempt_at=None if gave_up else retry_at,
        )
        logger.warning(
            "Email outbox #%s to %s failed (attempt %s%s): %s",
            outbox.pk,
            outbox.to,
            outbox.attempts,
            ", giving up" if gave_up else f", retry at {retry_at:%H:%M:%S}",
            exc,
        )
        return "failed"
    EmailOutbox.objects.filter(pk=outbox.pk, status=S.SENDING).update(
        status=S.SENT, sent_at=timezone.now(), last_error=""
    )
    return "sent"


def email_send(*, outbox_id: int) -> bool:
    """Send one outbox row if it is due, at most once; True when this call sent it.

    Call it outside any transaction (a task does): the claim must be committed before the send,
    so that a second worker sees the row taken.
    """
    return _send(outbox_id) == "sent"


def outbox_flush(*, batch_size: int | None = None) -> dict[str, int]:
    """Send due rows (pending, or failed with their backoff passed), oldest first, a bounded batch.

    Safe to run twice at once: each row is claimed before it is sent. Past the time budget the
    remaining rows are left (`deferred`) for the next sweep. The report also counts the
    rows that need a person: `stuck_sending` (claimed longer ago than the stuck limit, maybe sent)
    and `gave_up` (failed with no attempts left); both counts stop at REPORT_COUNT_LIMIT.
    """
    now = timezone.now()
    batch_size = batch_size or _setting(FLUSH_BATCH_SETTING)
    due = list(EmailOutbox.objects.filter(_due(now)).order_by("pk").values_list("pk", flat=True)[:batch_size])
    counts = {"sent": 0, "failed": 0, "skipped": 0, "deferred": 0}
    deadline = time.monotonic() + _setting(FLUSH_SECONDS_SETTING)
    for index, outbox_id in enumerate(due):
        if time.monotonic() > deadline:
            counts["deferred"] = len(due) - index
            break
        counts[_send(outbox_id)] += 1
    stuck_before = now - timedelta(minutes=_setting(STUCK_SETTING))
    counts["stuck_sending"] = EmailOutbox.objects.filter(status=S.SENDING, claimed_at__lt=stuck_before)[
        :REPORT_COUNT_LIMIT
    ].count()
    counts["gave_up"] = EmailOutbox.objects.filter(status=S.FAILED, next_attempt_at__isnull=True)[
        :REPORT_COUNT_LIMIT
    ].count()
    if counts["stuck_sending"]:
        logger.error(
            "Email outbox: %s row(s) stuck in 'sending' since before %s; they may have gone out, "
            "so they are not resent. Check them and mark them by hand.",
            counts["stuck_sending"],
            stuck_before.isoformat(),
        )
    return counts


def _require_stuck(outbox: EmailOutbox, transition: str) -> None:
    """A `sending` row may be handled by a person only once its claim is old: else it is in flight."""
    stuck_before = timezone.now() - timedelta(minutes=_setting(STUCK_SETTING))
    if outbox.status == S.SENDING and outbox.claimed_at and outbox.claimed_at >= stuck_before:
        raise TransitionNotAllowed(
            outbox, transition, detail="It is being sent right now; wait until the sweep reports it as stuck."
        )


def email_outbox_retry(*, outbox: EmailOutbox, actor, reason: str = "") -> EmailOutbox:
    """Queue a failed or stuck row again, for one more attempt, after a person checked it.

    A stuck row must first be checked not to have gone out (the mail server's log): this sends it.
    """
    with transaction.atomic():
        outbox = lock(EmailOutbox, outbox.pk)
        target = guard(outbox, TRANSITIONS, "retry")
        _require_stuck(outbox, "retry")
        from_state = outbox.status
        outbox.status = target
        outbox.next_attempt_at = None
        outbox.save(update_fields=["status", "next_attempt_at"])
        event_record(
            verb="email.retried", actor=actor, target=outbox, from_state=from_state, to_state=target, reason=reason
        )
        transaction.on_commit(lambda: _enqueue_send(outbox.pk))
    return outbox


def email_outbox_mark_sent(*, outbox: EmailOutbox, actor, reason: str = "") -> EmailOutbox:
    """Record that a row stuck in `sending` did go out (checked by a person), so it is never sent again."""
    with transaction.atomic():
        outbox = lock(EmailOutbox, outbox.pk)
        target = guard(outbox, TRANSITIONS, "mark_sent")
        _require_stuck(outbox, "mark_sent")
        from_state = outbox.status
        outbox.status = target
        outbox.sent_at = timezone.now()
        outbox.save(update_fields=["status", "sent_at"])
        event_record(
            verb="email.marked_sent", actor=actor, target=outbox, from_state=from_state, to_state=target, reason=reason
        )
    return outbox
