from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from marketplace.notifications.models import EmailOutbox
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

S = EmailOutbox.Status
URL = reverse("admin:notifications_emailoutbox_changelist")


def _row(n, **fields):
    defaults = dict(to=f"p{n}@example.test", template="notifications/email/booking.accept", subject="Hi")
    return EmailOutbox.objects.create(dedupe_key=f"admin-test:{n}", **{**defaults, **fields})


@pytest.fixture
def superuser_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


def test_email_outbox_changelist_shows_failed_and_stuck_rows(superuser_client):
    _row(1, status=S.FAILED, attempts=5, last_error="SmtpDown")
    _row(2, status=S.SENDING, attempts=1, claimed_at=timezone.now())
    response = superuser_client.get(URL, {"status__exact": "failed"})
    assert response.status_code == 200
    assert "p1@example.test" in response.content.decode() and "p2@example.test" not in response.content.decode()


def test_email_outbox_retry_action_sends_failed_rows_again(superuser_client, django_capture_on_commit_callbacks):
    # given a failed row and one that was sent
    failed = _row(1, status=S.FAILED, attempts=5, last_error="SmtpDown")
    sent = _row(2, status=S.SENT, attempts=1, sent_at=timezone.now())

    # when an operator runs "send again" on both
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(
            URL, {"action": "retry", "_selected_action": [failed.pk, sent.pk]}, follow=True
        )

    # then the failed one went out; the sent one was refused with a message
    assert response.status_code == 200
    failed.refresh_from_db()
    assert failed.status == S.SENT and [m.to for m in mail.outbox] == [["p1@example.test"]]
    text = response.content.decode()
    assert "1 email(s) queued again." in text and "cannot retry" in text


def test_email_outbox_mark_sent_action_records_a_stuck_row(superuser_client):
    stuck = _row(1, status=S.SENDING, attempts=1, claimed_at=timezone.now() - timedelta(hours=2))
    superuser_client.post(URL, {"action": "mark_sent", "_selected_action": [stuck.pk]})
    stuck.refresh_from_db()
    assert stuck.status == S.SENT


def test_email_outbox_actions_need_the_change_permission(client):
    # given a staff member who may only look at the outbox
    viewer = StaffFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_emailoutbox"))
    client.force_login(viewer)
    assert client.get(URL).status_code == 200
    stuck = _row(1, status=S.SENDING, attempts=1, claimed_at=timezone.now() - timedelta(hours=2))
    client.post(URL, {"action": "mark_sent", "_selected_action": [stuck.pk]})
    stuck.refresh_from_db()
    assert stuck.status == S.SENDING
