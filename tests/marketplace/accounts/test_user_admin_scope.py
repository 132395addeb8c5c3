"""The user admin reads through `user_for_user`: a scoped agent's list, popups, autocompletes and
user pages hold only the people connected to their scope (out of scope: 404, like a missing one),
and a staff member's timeline (their exports) is shown only to holders of `view_staff_timeline`."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from marketplace.accounts.models import User
from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.partners.models import PartnerMembership
from marketplace.partners.services import partner_scope_grant
from tests.factories import ListingFactory, PartnerFactory
from tests.factories.settlement import staff, staff_with
from tests.marketplace.changelist import listed, offered, queries_by_size

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene():
    """An agent and a colleague granted the own partner; an owner of a listing of each partner."""
    own, other = PartnerFactory(), PartnerFactory()
    return {
        "own": own,
        "agent": staff(StaffGroup.OPERATIONS_AGENT, scope=own, full_name="Dana Agent"),
        "colleague": staff(StaffGroup.OPERATIONS_AGENT, scope=own, full_name="Dana Colleague"),
        "own_owner": ListingFactory(partner=own, owner__full_name="Dana Own").owner,
        "other_owner": ListingFactory(partner=other, owner__full_name="Dana Other").owner,
    }


def user_url(view: str, user: User) -> str:
    if view == "password":  # Django names it auth_user_password_change whatever the user model
        return reverse("admin:accounts_user_change", args=[user.pk]).replace("/change/", "/password/")
    return reverse(f"admin:accounts_user_{view}", args=[user.pk])


def test_user_change_and_history_pages_are_404_out_of_the_agents_scope(client, scene):
    # given an agent granted the own partner
    client.force_login(scene["agent"])
    # when they open the other partner's listing owner (was 200: the user admin was not scoped)
    # then it is not found, on the change page and its history alike; the own owner's pages open
    assert client.get(user_url("change", scene["other_owner"])).status_code == 404
    assert client.get(user_url("history", scene["other_owner"])).status_code == 404
    assert client.get(user_url("change", scene["own_owner"])).status_code == 200
    assert client.get(user_url("history", scene["own_owner"])).status_code == 200


def test_user_password_page_is_404_out_of_scope_for_a_scoped_user_editor(client, scene):
    # given a scoped staff member who may change users
    editor = staff_with("view_user", "change_user")
    partner_scope_grant(partner=scene["own"], grantee=editor)
    client.force_login(User.objects.get(pk=editor.pk))
    # then another partner's person's password page is not found, the own partner's opens
    assert client.get(user_url("password", scene["other_owner"])).status_code == 404
    assert client.get(user_url("password", scene["own_owner"])).status_code == 200


def test_user_changelist_and_raw_id_popup_list_only_people_in_scope(client, scene):
    client.force_login(scene["agent"])
    changelist = reverse("admin:accounts_user_changelist")
    for params in ({}, {"_popup": "1", "_to_field": "id"}):
        # when the agent opens the people list, or the popup of a raw-id user field
        response = client.get(changelist, params)
        # then it holds themselves and the own partner's owner: no colleague, no other partner's people
        assert response.status_code == 200
        assert {u.pk for u in response.context["cl"].result_list} == {scene["agent"].pk, scene["own_owner"].pk}


def test_user_autocompletes_offer_only_people_in_scope(client, scene):
    client.force_login(scene["agent"])
    agent, own_owner = scene["agent"], scene["own_owner"]
    # the owner and client filters search people: in scope only
    assert offered(client, "catalog.listing", "owner", term="dana") == {agent.pk, own_owner.pk}
    assert offered(client, "bookings.booking", "client", term="dana") == {agent.pk, own_owner.pk}
    assert offered(client, "audit.event", "actor", term="dana") == {agent.pk, own_owner.pk}
    # the assignee filter offers staff in scope: the agent, not their colleague
    assert offered(client, "disputes.dispute", "assignee", term="dana") == {agent.pk}
    # while a lead (global scope) is offered everyone, and every active member of staff to assign
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD, full_name="Lee Lead"))
    assert offered(client, "catalog.listing", "owner", term="dana") == {
        scene[name].pk for name in ("agent", "colleague", "own_owner", "other_owner")
    }
    assert offered(client, "disputes.dispute", "assignee", term="dana") == {scene["agent"].pk, scene["colleague"].pk}


def test_staff_timeline_is_hidden_from_an_agent_and_shown_to_a_lead(client, scene):
    # given an agent who exported their listings (the export hangs on their own timeline)
    agent = scene["agent"]
    client.force_login(agent)
    export = client.post(reverse("admin:catalog_listing_export"), {"format": "0", "resource": "0"})
    assert export.status_code == 200
    # when the agent opens their own page: it opens, without the timeline, and takes no note
    page = client.get(user_url("change", agent))
    assert page.status_code == 200
    assert page.context.get("timeline") is None
    assert b"data-timeline" not in page.content
    note = client.post(reverse("admin:accounts_user_note_add", args=[agent.pk]), {"body": "Hi"})
    assert note.status_code == 403
    # a person who is not staff keeps their timeline on their page
    assert client.get(user_url("change", scene["own_owner"])).context["timeline"] == []
    # then a lead (accounts.view_staff_timeline) sees the agent's export on it
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    page = client.get(user_url("change", agent))
    assert [(entry.title, entry.data["rows"]) for entry in page.context["timeline"]] == [("export", 1)]
    assert b"data-timeline" in page.content


def test_user_changelist_of_an_agent_costs_the_same_queries_for_10_200_and_400_people(client, scene):
    # given an agent whose partner has more and more members
    client.force_login(scene["agent"])

    def grow_to(n):
        have = User.objects.filter(memberships__partner=scene["own"]).count() + 2  # the agent, the owner
        people = User.objects.bulk_create(
            User(email=f"member{i}@own.test", role=User.Role.WORKER) for i in range(have, n)
        )
        PartnerMembership.objects.bulk_create(PartnerMembership(partner=scene["own"], user=p) for p in people)

    # when the list is read at each size, then it costs the same (the SQL is printed otherwise)
    counts = queries_by_size(client, "accounts.user", {}, grow_to)
    assert counts[10] == AGENT_USER_CHANGELIST_QUERIES


# As many as a lead's list (tests/marketplace/accounts/test_admin_filters.py): the scope adds no
# query of its own, only subqueries inside the page's and its count's SQL.
AGENT_USER_CHANGELIST_QUERIES = 13


def test_audit_log_leaves_staff_timelines_out_for_finance_and_shows_them_to_a_lead(client, scene):
    # given an event on an agent's timeline (their export) and one on a client's
    people = ContentType.objects.get_for_model(User)
    on_staff = Event.objects.create(verb="export", target_type=people, target_id=str(scene["agent"].pk))
    on_client = Event.objects.create(verb="export", target_type=people, target_id=str(scene["own_owner"].pk))
    # when Finance (the whole log, not view_staff_timeline) reads the log: the staff event is left out
    client.force_login(staff(StaffGroup.FINANCE))
    assert listed(client, "audit.event", {"verb": "export"}) == {on_client.pk}
    # then a lead reads both
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    assert listed(client, "audit.event", {"verb": "export"}) == {on_staff.pk, on_client.pk}


def test_user_filter_deep_link_names_no_person_out_of_scope(client, scene):
    # given an agent who opens the listings filtered by a person's id, typed into the address
    client.force_login(scene["agent"])
    url = reverse("admin:catalog_listing_changelist")
    # when it is another partner's owner, then the owner filter does not name them
    page = client.get(url, {"owner__id__exact": scene["other_owner"].pk})
    assert page.status_code == 200
    assert scene["other_owner"].email not in page.content.decode()
    # while an owner of their own partner is named in the filter
    assert scene["own_owner"].email in client.get(url, {"owner__id__exact": scene["own_owner"].pk}).content.decode()
