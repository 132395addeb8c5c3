from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.core.exceptions import TransitionNotAllowed
from marketplace.notifications.models import EmailOutbox
from marketplace.notifications.services import (
    email_backoff,
    email_outbox_mark_sent,
    email_outbox_retry,
    email_queue,
    email_send,
    notify,
    outbox_flush,
)
from marketplace.notifications.tasks import email_send as email_send_task
from marketplace.notifications.tasks import outbox_flush as outbox_flush_task
from tests.factories import ClientFactory, StaffFactory
from tests.processes import run_in_processes

S = EmailOutbox.Status


def _row(n: int = 0, **fields) -> EmailOutbox:
    """A pending outbox row written directly: nothing is queued, nothing sent yet."""
    defaults = dict(
        to=f"person{n}@example.test",
        template="notifications/email/booking.accept",
        subject=f"Booking #{n} is now accepted",
        context={"title": f"Booking #{n} is now accepted", "body": "", "user_name": "Ann"},
        dedupe_key=f"test:{n}",
    )
    return EmailOutbox.objects.create(**{**defaults, **fields})


def _due_now(row: EmailOutbox) -> None:
    """Let a failed row's backoff pass."""
    EmailOutbox.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


# --- claim, send, mark -------------------------------------------------------------------


@pytest.mark.django_db
def test_email_send_claims_sends_and_marks_sent():
    # given a pending row
    row = _row()

    # when the task sends it
    sent = email_send_task(row.pk)

    # then one message went out with text and HTML parts, and the row says sent
    assert sent is True
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (S.SENT, 1, "")
    assert row.sent_at is not None and row.claimed_at is not None
    [message] = mail.outbox
    assert message.to == [row.to] and message.subject == row.subject
    assert "Booking #0 is now accepted" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and "<html" in html and "Booking #0 is now accepted" in html


@pytest.mark.django_db
def test_email_send_run_twice_sends_once():
    # given a pending row
    row = _row()

    # when the task runs twice in a row (django-q2 delivers at least once)
    first, second = email_send(outbox_id=row.pk), email_send(outbox_id=row.pk)

    # then only the first call sent
    assert (first, second) == (True, False)
    assert len(mail.outbox) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (S.SENT, 1)


@pytest.mark.django_db
def test_email_send_unknown_row_sends_nothing():
    assert email_send(outbox_id=987654) is False
    assert mail.outbox == []


# --- failures, backoff, max attempts -------------------------------------------------------


@pytest.mark.django_db
def test_email_send_failure_then_retry_after_backoff_then_success(flaky_email):
    # given a row and a mail server that refuses the first send
    row = _row()
    flaky_email.failures_left = 1

    # when the task runs
    before = timezone.now()
    assert email_send(outbox_id=row.pk) is False

    # then the row is failed, with the error and a retry time one backoff away
    row.refresh_from_db()
    assert (row.status, row.attempts) == (S.FAILED, 1)
    assert "SmtpDown" in row.last_error and "421" in row.last_error
    assert before + email_backoff(1) <= row.next_attempt_at <= timezone.now() + email_backoff(1)

    # when the task and the sweep run again before the backoff has passed
    assert email_send(outbox_id=row.pk) is False
    counts = outbox_flush()

    # then nothing was tried
    assert (counts["sent"], counts["failed"], counts["skipped"]) == (0, 0, 0)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (S.FAILED, 1)

    # when the backoff has passed and the sweep runs
    _due_now(row)
    counts = outbox_flush_task()

    # then the second attempt sent it, once
    assert counts["sent"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error, row.next_attempt_at) == (S.SENT, 2, "", None)
    assert len(mail.outbox) == 1


def test_email_backoff_doubles_from_the_base_and_is_capped(settings):
    settings.MARKETPLACE_EMAIL_RETRY_BACKOFF_SECONDS = 30
    assert [email_backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert email_backoff(40) == timedelta(hours=6)


@pytest.mark.django_db
def test_email_send_gives_up_after_max_attempts_and_the_row_stays_failed(flaky_email, settings):
    # given a mail server that is down for good, and three attempts allowed
    settings.MARKETPLACE_EMAIL_MAX_ATTEMPTS = 3
    row = _row()
    flaky_email.failures_left = -1

    # when the sweep retries each time the backoff has passed
    waits = []
    for _ in range(3):
        counts = outbox_flush()
        assert counts["failed"] == 1
        row.refresh_from_db()
        waits.append(row.next_attempt_at and round((row.next_attempt_at - row.claimed_at).total_seconds()))
        if row.next_attempt_at:
            _due_now(row)

    # then the waits doubled, and after the third attempt there is no next one
    assert waits == [60, 120, None]
    assert (row.status, row.attempts, row.next_attempt_at) == (S.FAILED, 3, None)

    # when the server is back and the sweep and the task run again
    flaky_email.failures_left = 0
    counts = outbox_flush()
    assert email_send(outbox_id=row.pk) is False

    # then nothing is tried any more; the row stays failed, with its error, and is reported
    row.refresh_from_db()
    assert (row.status, row.attempts) == (S.FAILED, 3) and "SmtpDown" in row.last_error
    assert (counts["sent"], counts["failed"], counts["gave_up"]) == (0, 0, 1)
    assert mail.outbox == []


@pytest.mark.django_db
def test_email_send_template_error_counts_as_a_failed_attempt(settings):
    # given a row whose text template cannot be found at all (not even the default)
    row = _row(template="notifications/email/booking.accept")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "APP_DIRS": False, "DIRS": []}]

    # when the task runs
    assert email_send(outbox_id=row.pk) is False

    # then the row is failed with the error, to be retried
    row.refresh_from_db()
    assert row.status == S.FAILED and "TemplateDoesNotExist" in row.last_error
    assert row.next_attempt_at is not None


# --- rows stuck in `sending` ---------------------------------------------------------------


@pytest.mark.django_db
def test_sending_row_is_never_resent_and_is_reported_when_stuck(settings):
    # given a row a worker claimed 20 minutes ago and never finished (it died mid-send), and a
    # row claimed a moment ago (still being sent)
    settings.MARKETPLACE_EMAIL_STUCK_MINUTES = 15
    stuck = _row(1, status=S.SENDING, attempts=1, claimed_at=timezone.now() - timedelta(minutes=20))
    busy = _row(2, status=S.SENDING, attempts=1, claimed_at=timezone.now())

    # when the task and the sweep run
    assert email_send(outbox_id=stuck.pk) is False
    counts = outbox_flush()

    # then nothing was sent; only the old claim is reported
    assert mail.outbox == []
    assert (counts["sent"], counts["stuck_sending"]) == (0, 1)
    stuck.refresh_from_db()
    busy.refresh_from_db()
    assert (stuck.status, stuck.attempts, busy.status) == (S.SENDING, 1, S.SENDING)


@pytest.mark.django_db
def test_email_send_process_killed_mid_send_leaves_the_row_sending(monkeypatch):
    # given a worker that dies while talking to the mail server (the claim is already made)
    row = _row()

    def die(self, fail_silently=False):
        raise SystemExit("worker killed")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", die)
    with pytest.raises(SystemExit):
        email_send(outbox_id=row.pk)
    monkeypatch.undo()

    # when the task runs again
    assert email_send(outbox_id=row.pk) is False

    # then the row stays `sending`: it may have gone out, so it is not sent again
    row.refresh_from_db()
    assert (row.status, row.attempts) == (S.SENDING, 1)
    assert mail.outbox == []


# --- the sweep ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_outbox_flush_sends_due_rows_in_a_bounded_batch_oldest_first():
    # given three pending rows, one sent row and one failed row not due yet
    pending = [_row(n) for n in range(3)]
    _row(10, status=S.SENT, sent_at=timezone.now(), attempts=1)
    _row(11, status=S.FAILED, attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=5))

    # when the sweep runs with a batch of two, then again
    first = outbox_flush(batch_size=2)
    second = outbox_flush(batch_size=2)

    # then the two oldest went first, the third next, and the others were left alone
    assert (first["sent"], second["sent"]) == (2, 1)
    assert [m.to[0] for m in mail.outbox] == [r.to for r in pending]
    assert sorted(EmailOutbox.objects.values_list("status", flat=True)) == [S.FAILED] + [S.SENT] * 4


# --- queuing ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_email_queue_with_the_same_key_writes_once(django_capture_on_commit_callbacks):
    # given / when the same email is queued twice
    with django_capture_on_commit_callbacks() as callbacks:
        first, created_first = email_queue(
            to="a@example.test", template="x/y", subject="Hi\nthere", context={}, dedupe_key="same"
        )
        second, created_second = email_queue(
            to="a@example.test", template="x/y", subject="Hi", context={}, dedupe_key="same"
        )

    # then one row, one task queued for after the commit, and a subject fit for a header
    assert (created_first, created_second, first.pk) == (True, False, second.pk)
    assert len(callbacks) == 1
    assert first.subject == "Hi there"


@pytest.mark.django_db
def test_notify_queues_the_email_and_a_task_sends_it_after_commit(django_capture_on_commit_callbacks):
    # given a user
    user = ClientFactory(full_name="Ann Example")

    # when a transition notifies them; nothing is sent before the commit
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notify(user=user, verb="booking.accept", title="Booking #7 is now accepted", body="See you soon.")
    assert mail.outbox == []
    row = EmailOutbox.objects.get(to=user.email)
    assert row.status == S.PENDING

    # when the transaction commits (tests run django-q2 tasks inline)
    for callback in callbacks:
        callback()

    # then the task sent it
    row.refresh_from_db()
    assert row.status == S.SENT
    [message] = mail.outbox
    assert "See you soon." in message.body and "See you soon." in message.alternatives[0][0]


@pytest.mark.django_db
def test_notify_rolled_back_leaves_no_email():
    user = ClientFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        notify(user=user, verb="booking.accept", title="Accepted")
        raise RuntimeError("the transition failed")
    assert not EmailOutbox.objects.filter(to=user.email).exists()


# --- two processes at once ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_email_send_from_two_processes_at_once_sends_once(file_email):
    # given a committed pending row
    row = _row()

    # when two workers run the task for it at the same moment
    outcomes = run_in_processes(lambda: email_send(outbox_id=row.pk), lambda: email_send(outbox_id=row.pk))

    # then both finished, exactly one sent, and one message was written
    assert outcomes.all_ok()
    assert sorted(o.value for o in outcomes) == [False, True]
    assert file_email() == [row.to]
    row.refresh_from_db()
    assert (row.status, row.attempts) == (S.SENT, 1)


@pytest.mark.django_db(transaction=True)
def test_outbox_flush_from_two_processes_at_once_sends_each_row_once(file_email):
    # given eight committed pending rows and a failed one whose backoff has passed
    rows = [_row(n) for n in range(8)]
    rows.append(
        _row(8, status=S.FAILED, attempts=1, last_error="timeout", next_attempt_at=timezone.now() - timedelta(1))
    )

    # when two sweeps run at the same moment
    outcomes = run_in_processes(lambda: outbox_flush(), lambda: outbox_flush())

    # then between them every row was sent exactly once
    assert outcomes.all_ok()
    assert sum(o.value["sent"] for o in outcomes) == 9
    assert sum(o.value["failed"] for o in outcomes) == 0
    assert file_email() == sorted(r.to for r in rows)
    assert set(EmailOutbox.objects.values_list("status", flat=True)) == {S.SENT}
    assert sorted(EmailOutbox.objects.values_list("attempts", flat=True)) == [1] * 8 + [2]


# --- a person handles what the sweep reports ----------------------------------------------


@pytest.mark.django_db
def test_email_outbox_retry_sends_a_failed_row_once_more(django_capture_on_commit_callbacks):
    # given a row that used up its attempts, and a person from operations
    row = _row(status=S.FAILED, attempts=5, last_error="SmtpDown: 421", next_attempt_at=None)
    staff = StaffFactory()

    # when they send it again
    with django_capture_on_commit_callbacks(execute=True):
        email_outbox_retry(outbox=row, actor=staff, reason="The mail server is back.")

    # then it went out once, and the audit trail says who did it
    row.refresh_from_db()
    assert (row.status, row.attempts) == (S.SENT, 6)
    assert len(mail.outbox) == 1
    event = Event.objects.get(verb="email.retried")
    assert (event.actor, event.from_state, event.to_state) == (staff, S.FAILED, S.PENDING)


@pytest.mark.django_db
def test_email_outbox_stuck_row_can_be_marked_sent_or_retried_but_not_while_in_flight(settings):
    settings.MARKETPLACE_EMAIL_STUCK_MINUTES = 15
    staff = StaffFactory()
    in_flight = _row(1, status=S.SENDING, attempts=1, claimed_at=timezone.now())
    stuck = _row(2, status=S.SENDING, attempts=1, claimed_at=timezone.now() - timedelta(hours=1))

    # a row claimed a moment ago is being sent: nobody may touch it
    for service in (email_outbox_retry, email_outbox_mark_sent):
        with pytest.raises(TransitionNotAllowed, match="being sent right now"):
            service(outbox=in_flight, actor=staff)

    # a stuck row that did go out is recorded as sent, and is then neither resent nor retried
    email_outbox_mark_sent(outbox=stuck, actor=staff, reason="In the SMTP log.")
    stuck.refresh_from_db()
    assert stuck.status == S.SENT and stuck.sent_at is not None
    with pytest.raises(TransitionNotAllowed):
        email_outbox_retry(outbox=stuck, actor=staff)
    assert email_send(outbox_id=stuck.pk) is False
    assert mail.outbox == []


@pytest.mark.django_db
def test_outbox_flush_past_its_time_budget_leaves_the_rest_for_the_next_sweep(settings):
    # given three due rows and a sweep with no time to spare
    settings.MARKETPLACE_EMAIL_FLUSH_SECONDS = -1
    [_row(n) for n in range(3)]

    # when it runs, then it claims nothing and says so; the next sweep with time sends them
    assert outbox_flush()["deferred"] == 3 and mail.outbox == []
    settings.MARKETPLACE_EMAIL_FLUSH_SECONDS = 50
    assert outbox_flush()["sent"] == 3
