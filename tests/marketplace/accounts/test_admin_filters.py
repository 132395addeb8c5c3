"""The users changelist: filters, a deep link, prefix search, and the user autocomplete behind the
owner, client and assignee filters (the assignee filter offers staff only)."""

from datetime import UTC, datetime

import pytest

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from tests.factories import ClientFactory, ProviderFactory, StaffFactory
from tests.factories.settlement import staff
from tests.marketplace.changelist import autocomplete, listed, listed_from_bookmark, offered, queries_by_size

pytestmark = pytest.mark.django_db
MODEL = "accounts.user"


@pytest.fixture
def users():
    made = {
        "match": ProviderFactory(email="dana.provider@example.test", full_name="Dana Smith"),
        "client": ClientFactory(email="dana.client@example.test", full_name="Dana Jones"),
        "inactive": ProviderFactory(is_active=False),
        "older": ProviderFactory(),
    }
    User.objects.filter(pk__in=[u.pk for u in made.values()]).update(date_joined=datetime(2026, 8, 5, 10, tzinfo=UTC))
    User.objects.filter(pk=made["older"].pk).update(date_joined=datetime(2026, 8, 4, 10, tzinfo=UTC))
    return made


FILTERS = {
    "role__exact": User.Role.SERVICE_PROVIDER,
    "is_active__exact": "1",
    "is_staff__exact": "0",
    "date_joined_from": "2026-08-05",
    "date_joined_to": "2026-08-05",
}


def test_user_changelist_filters_by_role_activity_staff_and_days(client, users):
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)

    assert listed(client, MODEL, FILTERS) == {users["match"].pk}
    assert listed_from_bookmark(lead, MODEL, FILTERS) == {users["match"].pk}


def test_user_search_finds_by_id_email_start_and_name_start(client, users):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    match, other = users["match"], users["client"]

    assert listed(client, MODEL, {"q": str(match.pk)}) == {match.pk}
    assert listed(client, MODEL, {"q": "Dana.Provider@"}) == {match.pk}
    assert listed(client, MODEL, {"q": "dana."}) == {match.pk, other.pk}
    assert listed(client, MODEL, {"q": "dana s"}) == {match.pk}
    assert listed(client, MODEL, {"q": "smith"}) == set()  # a prefix, not a substring


def test_the_assignee_filter_offers_active_staff_only_and_owner_filter_any_user(client, users):
    agent = staff(StaffGroup.OPERATIONS_AGENT, full_name="Dana Agent")
    former = StaffFactory(full_name="Dana Former", is_active=False)
    client.force_login(
        staff(StaffGroup.OPERATIONS_LEAD, full_name="Lee Lead")
    )  # global scope: every person (see test_user_admin_scope)

    assert offered(client, "disputes.dispute", "assignee", term="dana") == {agent.pk}
    everyone = {agent.pk, former.pk, users["match"].pk, users["client"].pk}
    assert offered(client, "catalog.listing", "owner", term="dana") == everyone


def test_user_autocomplete_refuses_staff_who_may_not_view_users(client):
    client.force_login(StaffFactory())
    assert autocomplete(client, "disputes.dispute", "assignee").status_code == 403


def test_user_changelist_filtered_costs_the_same_queries_for_10_200_and_400_users(client):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))

    def grow_to(n):
        have = User.objects.filter(role=User.Role.CLIENT).count()
        User.objects.bulk_create(User(email=f"bulk{i}@example.test", role=User.Role.CLIENT) for i in range(have, n))

    params = {"role__exact": User.Role.CLIENT, "is_active__exact": "1", "date_joined_from": "2000-01-01"}
    counts = queries_by_size(client, MODEL, params, grow_to)

    # Django's own paginator (show_full_result_count off), flat at every size
    assert counts[10] == USER_FILTERED_QUERIES


# With the lead's verified second-factor device, read once per request (django-otp).
USER_FILTERED_QUERIES = 13
