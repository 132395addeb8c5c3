"""The booking timers: expiry (with the void of the authorisation), auto-completion, closing after
the review window, reminders; and the redelivery rule of issue 3 for the tasks that run them.

Each app runs the timers it owns (issue 9: imports flow upward): bookings auto-completes and reminds
providers (`bookings.tasks.booking_timers_run`), payments expires and voids
(`payments.tasks.booking_expiry_run`), reviews closes and reminds reviewers
(`reviews.tasks.review_timers_run`). `run_timers` runs the three, as the schedules do every minute."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from marketplace.audit.models import Event
from marketplace.bookings import tasks as booking_tasks
from marketplace.bookings.models import Booking
from marketplace.notifications.models import EmailOutbox, Notification
from marketplace.payments import tasks as payment_tasks
from marketplace.payments.models import Payment
from marketplace.reviews import tasks as review_tasks
from marketplace.reviews.models import Review
from marketplace.reviews.services import review_submit
from tests.factories.states import booking_at
from tests.processes import run_in_processes

S = Booking.Status
P = Payment.Status
ZERO_COUNTS = {"expired": 0, "completed": 0, "closed": 0, "reminded": 0, "skipped": 0, "failed": 0}


def run_timers() -> dict[str, int]:
    """Run every booking timer once, as the three schedules do, and add up their counts."""
    counts = dict(ZERO_COUNTS)
    for run in (payment_tasks.booking_expiry_run, booking_tasks.booking_timers_run, review_tasks.review_timers_run):
        for key, value in run().items():
            counts[key] += value
    return counts


def _move(booking: Booking, **fields) -> Booking:
    Booking.objects.filter(pk=booking.pk).update(**fields)
    booking.refresh_from_db()
    return booking


def _events(booking: Booking, verb: str) -> list[Event]:
    return list(Event.objects.filter(verb=verb, target_id=str(booking.pk)).order_by("pk"))


def _notified(verb: str, *bookings: Booking) -> list[tuple[int, str]]:
    """(user id, target id) of every notification with this verb (about these bookings), sorted."""
    qs = Notification.objects.filter(verb=verb)
    if bookings:
        qs = qs.filter(target_type="bookings.booking", target_id__in=[str(b.pk) for b in bookings])
    return sorted(qs.values_list("user_id", "target_id"))


def _outbox(verb: str, *bookings: Booking) -> list[str]:
    """The addresses of every email with this verb (to the parties of these bookings), sorted."""
    qs = EmailOutbox.objects.filter(template=f"notifications/email/{verb}")
    if bookings:
        qs = qs.filter(to__in=[u.email for b in bookings for u in (b.client, b.provider)])
    return sorted(qs.values_list("to", flat=True))


def _gateway_calls(gateway, operation: str) -> int:
    return sum(1 for op, _ in gateway.calls if op == operation)


def _ago(**delta):
    return timezone.now() - timedelta(**delta)


def _ahead(**delta):
    return timezone.now() + timedelta(**delta)


def _grace() -> timedelta:
    return timedelta(hours=settings.MARKETPLACE_COMPLETION_GRACE_HOURS)


# --- Expiry -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_booking_timers_expire_unpaid_and_unaccepted_bookings_past_their_deadline(sandbox_gateway):
    # given a booking waiting for payment and a paid one waiting for acceptance, both past their
    # deadline, and one of each still within it
    unpaid = _move(booking_at(S.PENDING_PAYMENT), expires_at=_ago(minutes=1))
    unaccepted = _move(booking_at(S.AUTHORIZED), expires_at=_ago(minutes=1))
    unpaid_in_time = booking_at(S.PENDING_PAYMENT)
    unaccepted_in_time = booking_at(S.AUTHORIZED)  # 48 h to go: no reminder yet either
    voids_before = _gateway_calls(sandbox_gateway, "void")

    # when the timers run
    counts = run_timers()

    # then both overdue bookings expired, and nothing else happened
    assert counts == {**ZERO_COUNTS, "expired": 2}
    for booking, from_state in ((unpaid, S.PENDING_PAYMENT), (unaccepted, S.AUTHORIZED)):
        booking.refresh_from_db()
        assert (booking.status, booking.expires_at) == (S.EXPIRED, None)
        [event] = _events(booking, "booking.expire")
        assert (event.actor_id, event.from_state, event.to_state) == (None, from_state, S.EXPIRED)
    for booking in (unpaid_in_time, unaccepted_in_time):
        status = booking.status
        booking.refresh_from_db()
        assert booking.status == status
    # the authorisation of the unaccepted one was voided at the gateway, once; nothing was captured
    payment = Payment.objects.get(booking=unaccepted)
    assert (payment.status, payment.captured_amount) == (P.VOIDED, 0)
    assert _gateway_calls(sandbox_gateway, "void") - voids_before == 1
    assert Event.objects.filter(verb="payment.voided", target_id=str(payment.pk), actor=None).count() == 1
    assert Payment.objects.get(booking=unaccepted_in_time).status == P.AUTHORIZED
    # both parties of both bookings were told, in-app and by email
    parties = [unpaid.client, unpaid.provider, unaccepted.client, unaccepted.provider]
    assert _notified("booking.expire") == sorted(
        [(u.pk, str(b.pk)) for b in (unpaid, unaccepted) for u in (b.client, b.provider)]
    )
    assert _outbox("booking.expire") == sorted(u.email for u in parties)


@pytest.mark.django_db
def test_booking_timers_leave_a_booking_whose_void_fails_for_the_next_run(sandbox_gateway):
    # given an unaccepted booking past its deadline, and a gateway that refuses the next void
    booking = _move(booking_at(S.AUTHORIZED), expires_at=_ago(minutes=1))
    payment = Payment.objects.get(booking=booking)
    sandbox_gateway.fail_next("void")

    # when the timers run
    counts = run_timers()

    # then the row failed and nothing was written: still authorised, the money still held
    assert counts == {**ZERO_COUNTS, "failed": 1}
    booking.refresh_from_db()
    assert booking.status == S.AUTHORIZED
    assert Payment.objects.get(pk=payment.pk).status == P.AUTHORIZED
    assert _events(booking, "booking.expire") == []
    assert _notified("booking.expire") == []

    # and the next run, the gateway answering again, expires it and voids once
    assert run_timers() == {**ZERO_COUNTS, "expired": 1}
    assert Payment.objects.get(pk=payment.pk).status == P.VOIDED
    assert Event.objects.filter(verb="payment.voided", target_id=str(payment.pk)).count() == 1


# --- Auto-completion ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_booking_timers_complete_bookings_after_end_plus_grace():
    # given an accepted and an in-progress booking that ended more than the grace period ago,
    # and an in-progress one still within its grace period
    accepted = _move(booking_at(S.ACCEPTED), starts_at=_ago(days=3), ends_at=_ago(hours=1) - _grace())
    in_progress = _move(booking_at(S.IN_PROGRESS), starts_at=_ago(days=3), ends_at=_ago(hours=1) - _grace())
    in_grace = _move(booking_at(S.IN_PROGRESS), starts_at=_ago(days=3), ends_at=_ahead(hours=1) - _grace())

    # when the timers run
    counts = run_timers()

    # then the two overdue ones are completed by the system, with their review and dispute windows
    assert counts == {**ZERO_COUNTS, "completed": 2}
    for booking, from_state in ((accepted, S.ACCEPTED), (in_progress, S.IN_PROGRESS)):
        booking.refresh_from_db()
        assert booking.status == S.COMPLETED
        assert booking.completed_at is not None
        assert booking.review_window_ends_at == booking.completed_at + timedelta(
            days=settings.MARKETPLACE_REVIEW_WINDOW_DAYS
        )
        [event] = _events(booking, "booking.complete")
        assert (event.actor_id, event.from_state, event.to_state) == (None, from_state, S.COMPLETED)
        assert event.reason == "Completed automatically 24 hours after the end of the booking."
    in_grace.refresh_from_db()
    assert in_grace.status == S.IN_PROGRESS
    assert _events(in_grace, "booking.complete") == []
    # and both parties of each were told once
    assert _notified("booking.complete", accepted, in_progress) == sorted(
        [(u.pk, str(b.pk)) for b in (accepted, in_progress) for u in (b.client, b.provider)]
    )
    assert len(_outbox("booking.complete", accepted, in_progress)) == 4


# --- Closing after the review window ------------------------------------------------------------


@pytest.mark.django_db
def test_booking_timers_close_after_the_review_window_and_publish_the_reviews():
    # given a completed booking reviewed by the client only, its review window over, and one
    # whose window is still open
    over = booking_at(S.COMPLETED)
    review = review_submit(booking=over, author=over.client, rating=4, comment="Fine")
    assert review.published_at is None  # double blind: waits for the provider or the window
    over = _move(over, review_window_ends_at=_ago(minutes=5), dispute_window_ends_at=_ago(minutes=5))
    open_window = booking_at(S.COMPLETED)

    # when the timers run
    counts = run_timers()

    # then the first is closed by the system and its review is published; the other is untouched
    assert counts == {**ZERO_COUNTS, "closed": 1}
    over.refresh_from_db()
    assert over.status == S.CLOSED and over.closed_at is not None
    [event] = _events(over, "booking.close")
    assert (event.actor_id, event.from_state, event.to_state) == (None, S.COMPLETED, S.CLOSED)
    review.refresh_from_db()
    assert review.published_at is not None
    [published] = _events(over, "review.published")
    assert published.data == {"count": 1}
    open_window.refresh_from_db()
    assert open_window.status == S.COMPLETED
    # closing tells nobody
    assert Notification.objects.filter(verb="booking.close").count() == 0


@pytest.mark.django_db
def test_booking_timers_do_not_close_before_a_longer_dispute_window_ends():
    # given a completed booking whose review window is over but whose dispute window is not
    booking = _move(
        booking_at(S.COMPLETED), review_window_ends_at=_ago(minutes=5), dispute_window_ends_at=_ahead(days=2)
    )

    # when the timers run
    counts = run_timers()

    # then it stays open to a dispute
    assert counts == ZERO_COUNTS
    booking.refresh_from_db()
    assert booking.status == S.COMPLETED


@pytest.mark.django_db
def test_booking_timers_close_a_resolved_booking_after_its_review_window():
    # given a booking whose dispute was resolved, its windows over
    booking = _move(booking_at(S.RESOLVED), review_window_ends_at=_ago(hours=1), dispute_window_ends_at=_ago(hours=1))

    # when the timers run
    counts = run_timers()

    # then it is closed
    assert counts == {**ZERO_COUNTS, "closed": 1}
    booking.refresh_from_db()
    assert booking.status == S.CLOSED
    [event] = _events(booking, "booking.close")
    assert (event.from_state, event.to_state) == (S.RESOLVED, S.CLOSED)


# --- Reminders ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_booking_timers_remind_the_provider_before_the_acceptance_deadline():
    # given a paid booking 3 hours from its acceptance deadline, and one 30 hours from it
    soon = _move(booking_at(S.AUTHORIZED), expires_at=_ahead(hours=3))
    later = _move(booking_at(S.AUTHORIZED), expires_at=_ahead(hours=30))

    # when the timers run
    counts = run_timers()

    # then only the provider of the first is reminded, with the deadline in the dedupe key
    assert counts == {**ZERO_COUNTS, "reminded": 1}
    [reminder] = Notification.objects.filter(verb="booking.accept_reminder")
    assert (reminder.user_id, reminder.target_id) == (soon.provider_id, str(soon.pk))
    assert reminder.dedupe_key == f"reminder:booking-accept:{soon.pk}:{soon.expires_at.isoformat()}"
    assert _outbox("booking.accept_reminder") == [soon.provider.email]
    assert EmailOutbox.objects.get(dedupe_key=reminder.dedupe_key).to == soon.provider.email
    assert not Notification.objects.filter(verb="booking.accept_reminder", target_id=str(later.pk)).exists()
    # and no transition happened
    soon.refresh_from_db()
    assert soon.status == S.AUTHORIZED


@pytest.mark.django_db
def test_booking_timers_remind_only_the_parties_who_have_not_reviewed():
    # given a completed booking the client has reviewed, 5 hours before its review window closes
    booking = booking_at(S.COMPLETED)
    review_submit(booking=booking, author=booking.client, rating=5)
    booking = _move(booking, review_window_ends_at=_ahead(hours=5))
    # and one nobody reviewed, 2 hours before, and one 3 days before
    both = _move(booking_at(S.COMPLETED), review_window_ends_at=_ahead(hours=2))
    _move(booking_at(S.COMPLETED), review_window_ends_at=_ahead(days=3))

    # when the timers run
    counts = run_timers()

    # then the provider of the first and both parties of the second are reminded
    assert counts == {**ZERO_COUNTS, "reminded": 3}
    assert _notified("booking.review_reminder") == sorted(
        [(booking.provider_id, str(booking.pk)), (both.client_id, str(both.pk)), (both.provider_id, str(both.pk))]
    )
    assert _outbox("booking.review_reminder") == sorted(
        [booking.provider.email, both.client.email, both.provider.email]
    )
    assert Review.objects.filter(booking=booking).count() == 1


# --- Redelivery: twice in a row, twice at once ---------------------------------------------------


def _all_due_bookings() -> dict[str, Booking]:
    """One booking for each thing the booking timers do."""
    reviewed = booking_at(S.COMPLETED)
    review_submit(booking=reviewed, author=reviewed.provider, rating=5)
    return {
        "unpaid": _move(booking_at(S.PENDING_PAYMENT), expires_at=_ago(minutes=1)),
        "unaccepted": _move(booking_at(S.AUTHORIZED), expires_at=_ago(minutes=1)),
        "ended": _move(booking_at(S.IN_PROGRESS), starts_at=_ago(days=3), ends_at=_ago(hours=1) - _grace()),
        "reviewed": _move(reviewed, review_window_ends_at=_ago(minutes=1), dispute_window_ends_at=_ago(minutes=1)),
        "to_accept": _move(booking_at(S.AUTHORIZED), expires_at=_ahead(hours=2)),
        "to_review": _move(booking_at(S.COMPLETED), review_window_ends_at=_ahead(hours=2)),
    }


def _snapshot() -> tuple[int, int, int]:
    return Event.objects.count(), Notification.objects.count(), EmailOutbox.objects.count()


def _assert_done_once(bookings: dict[str, Booking]) -> None:
    status = {name: Booking.objects.get(pk=b.pk).status for name, b in bookings.items()}
    assert status == {
        "unpaid": S.EXPIRED,
        "unaccepted": S.EXPIRED,
        "ended": S.COMPLETED,
        "reviewed": S.CLOSED,
        "to_accept": S.AUTHORIZED,
        "to_review": S.COMPLETED,
    }
    for name, verb in (("unpaid", "expire"), ("unaccepted", "expire"), ("ended", "complete"), ("reviewed", "close")):
        assert len(_events(bookings[name], f"booking.{verb}")) == 1, name
    payment = Payment.objects.get(booking=bookings["unaccepted"])
    assert payment.status == P.VOIDED
    assert Event.objects.filter(verb="payment.voided", target_id=str(payment.pk)).count() == 1
    assert len(_events(bookings["reviewed"], "review.published")) == 1
    expire_parties = [
        (u.pk, str(b.pk)) for b in (bookings["unpaid"], bookings["unaccepted"]) for u in (b.client, b.provider)
    ]
    assert _notified("booking.expire") == sorted(expire_parties)
    assert len(_outbox("booking.expire")) == 4
    ended = bookings["ended"]
    assert _notified("booking.complete", ended) == sorted(
        [(ended.client_id, str(ended.pk)), (ended.provider_id, str(ended.pk))]
    )
    assert _outbox("booking.complete", ended) == sorted([ended.client.email, ended.provider.email])
    to_accept, to_review = bookings["to_accept"], bookings["to_review"]
    assert _notified("booking.accept_reminder") == [(to_accept.provider_id, str(to_accept.pk))]
    assert _outbox("booking.accept_reminder") == [to_accept.provider.email]
    assert _notified("booking.review_reminder") == sorted(
        [(to_review.client_id, str(to_review.pk)), (to_review.provider_id, str(to_review.pk))]
    )
    assert len(_outbox("booking.review_reminder")) == 2


@pytest.mark.django_db
def test_booking_timers_run_twice_in_a_row_does_everything_once():
    # given one booking due for each timer
    bookings = _all_due_bookings()

    # when the task runs, and is delivered again
    first = run_timers()
    after_first = _snapshot()
    second = run_timers()

    # then the first run did it all, the second nothing at all
    assert first == {**ZERO_COUNTS, "expired": 2, "completed": 1, "closed": 1, "reminded": 3}
    assert second == ZERO_COUNTS
    assert _snapshot() == after_first
    _assert_done_once(bookings)


@pytest.mark.django_db(transaction=True)
def test_booking_timers_run_twice_at_once_in_two_processes_does_everything_once():
    # given one booking due for each timer
    bookings = _all_due_bookings()

    # when two workers run the task at the same moment
    outcomes = run_in_processes(run_timers, run_timers)

    # then neither failed, and between them each effect happened exactly once
    assert outcomes.all_ok()
    totals = {key: sum(o.value[key] for o in outcomes) for key in ZERO_COUNTS}
    # (a row the other process got to first may show up as skipped, or not at all)
    assert {**totals, "skipped": 0} == {**ZERO_COUNTS, "expired": 2, "completed": 1, "closed": 1, "reminded": 3}
    _assert_done_once(bookings)
    # and a third delivery afterwards finds nothing to do
    assert run_timers() == ZERO_COUNTS
