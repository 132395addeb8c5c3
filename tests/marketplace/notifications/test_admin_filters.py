"""The email outbox changelist: filters, a deep link, search by shape, and a filtered page's
query count at 10, 200 and 400 emails."""

from datetime import UTC, datetime

import pytest

from marketplace.notifications.models import EmailOutbox
from tests.factories import StaffFactory
from tests.marketplace.changelist import listed, listed_from_bookmark, queries_by_size

pytestmark = pytest.mark.django_db
S = EmailOutbox.Status
MODEL = "notifications.emailoutbox"


def _row(n, *, created=datetime(2026, 11, 2, 12, tzinfo=UTC), **fields):
    defaults = dict(to=f"p{n}@example.test", template="notifications/email/booking.accept", subject="Booking accepted")
    row = EmailOutbox.objects.create(dedupe_key=f"filters-test:{n}", **{**defaults, **fields})
    EmailOutbox.objects.filter(pk=row.pk).update(created_at=created)
    return row


@pytest.fixture
def superuser():
    return StaffFactory(is_superuser=True)


def test_outbox_changelist_filters_by_status_and_days(client, superuser):
    match = _row(1, status=S.FAILED, attempts=5, last_error="SmtpDown")
    _row(2, status=S.PENDING)
    _row(3, status=S.FAILED, created=datetime(2026, 11, 3, 0, 0, tzinfo=UTC))
    client.force_login(superuser)
    params = {"status__exact": S.FAILED, "created_at_from": "2026-11-01", "created_at_to": "2026-11-02"}

    assert listed(client, MODEL, params) == {match.pk}
    assert listed_from_bookmark(superuser, MODEL, params) == {match.pk}


def test_outbox_search_finds_by_id_recipient_dedupe_key_and_subject_start(client, superuser):
    match, other = _row(1, subject="Payout sent"), _row(2)
    client.force_login(superuser)

    assert listed(client, MODEL, {"q": str(match.pk)}) == {match.pk}
    assert listed(client, MODEL, {"q": "P1@example.test"}) == {match.pk}
    assert listed(client, MODEL, {"q": "filters-test:2"}) == {other.pk}
    assert listed(client, MODEL, {"q": "payout"}) == {match.pk}
    assert listed(client, MODEL, {"q": "sent"}) == set()  # a prefix, not a substring


def test_outbox_changelist_filtered_costs_the_same_queries_for_10_200_and_400_emails(client, superuser):
    client.force_login(superuser)

    def grow_to(n):
        have = EmailOutbox.objects.count()
        EmailOutbox.objects.bulk_create(
            EmailOutbox(to=f"b{i}@example.test", template="t", subject="s", dedupe_key=f"bulk:{i}")
            for i in range(have, n)
        )

    counts = queries_by_size(client, MODEL, {"status__exact": S.PENDING, "created_at_from": "2000-01-01"}, grow_to)

    # session, user, count and estimate, the rows, and the sidebar's badges and alerts
    assert counts[10] == OUTBOX_FILTERED_QUERIES


# With the verified second-factor device that django-otp reads once per request.
OUTBOX_FILTERED_QUERIES = 12
