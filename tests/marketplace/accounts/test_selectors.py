"""`user_for_user`: the people a staff user may see. Global scope (superusers, leads, Finance) sees
everyone; anyone else sees themselves and the people connected to the objects in their scope
(members, listing owners, booking clients, dispute openers and evidence submitters, job
applicants); someone who is not staff sees no one."""

import pytest
from django.db import connection

from marketplace.accounts.models import User
from marketplace.accounts.selectors import user_for_user
from marketplace.accounts.services import StaffGroup
from marketplace.disputes import services as disputes
from marketplace.disputes.models import Dispute, DisputeEvidence
from tests.factories import (
    BookingFactory,
    ClientFactory,
    ListingFactory,
    MembershipFactory,
    PartnerFactory,
    StaffFactory,
    WorkerFactory,
)
from tests.factories.settlement import staff
from tests.factories.states import application_in, job_listing

pytestmark = pytest.mark.django_db


def connected_people(partner, tag: str) -> dict[str, User]:
    """One person per kind of connection to `partner`'s objects, named `<kind>@<tag>.test`."""
    people = {kind: WorkerFactory(email=f"{kind}@{tag}.test") for kind in ("member", "owner", "client")}
    people |= {kind: WorkerFactory(email=f"{kind}@{tag}.test") for kind in ("opener", "witness", "applicant")}
    people["poster"] = ClientFactory(email=f"poster@{tag}.test")
    MembershipFactory(partner=partner, user=people["member"])
    listing = ListingFactory(partner=partner, owner=people["owner"])
    booking = BookingFactory(listing=listing, client=people["client"])
    dispute = Dispute.objects.create(
        booking=booking, partner=partner, opened_by=people["opener"], reason_code="other", description="x"
    )
    DisputeEvidence.objects.create(dispute=dispute, submitted_by=people["witness"], text="A photo")
    application_in(
        "submitted", listing=job_listing(partner=partner, owner=people["poster"]), applicant=people["applicant"]
    )
    return people


@pytest.fixture
def world():
    own, other = PartnerFactory(), PartnerFactory()
    return {
        "own": own,
        "other": other,
        "own_people": connected_people(own, "own"),
        "other_people": connected_people(other, "other"),
    }


def emails(queryset) -> set[str]:
    return set(queryset.values_list("email", flat=True))


def test_user_for_user_scoped_agent_sees_self_and_people_connected_to_their_partner(world):
    # given an agent granted the own partner, another agent, and a client connected to nothing
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=world["own"], email="agent@staff.test")
    staff(StaffGroup.OPERATIONS_AGENT, scope=world["own"], email="colleague@staff.test")
    ClientFactory(email="stranger@nowhere.test")
    # when the agent's people are read
    seen = emails(user_for_user(agent))
    # then they are the agent and the own partner's people, not the other partner's, not other staff
    assert seen == {
        "agent@staff.test",
        "member@own.test",
        "owner@own.test",
        "client@own.test",
        "opener@own.test",
        "witness@own.test",
        "applicant@own.test",
        "poster@own.test",
    }


def test_user_for_user_an_assigned_dispute_brings_its_people_only(world):
    # given an agent with no partner, assigned one of the other partner's disputes by a lead
    agent = staff(StaffGroup.OPERATIONS_AGENT, email="agent@staff.test")
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    dispute = Dispute.objects.get(partner=world["other"])
    disputes.dispute_assign(dispute=dispute, actor=lead, assignee=agent)
    # then they see the dispute's opener and evidence submitter, and themselves
    assert emails(user_for_user(User.objects.get(pk=agent.pk))) == {
        "agent@staff.test",
        "opener@other.test",
        "witness@other.test",
    }


def test_user_for_user_global_staff_see_everyone_and_non_staff_no_one(world):
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    finance = staff(StaffGroup.FINANCE)
    superuser = StaffFactory(is_superuser=True)
    client = world["own_people"]["client"]
    everyone = User.objects.count()

    assert user_for_user(lead).count() == everyone
    assert user_for_user(finance).count() == everyone
    assert user_for_user(superuser).count() == everyone
    assert user_for_user(client).count() == 0
    assert user_for_user(StaffFactory(is_active=False)).count() == 0


def test_user_for_user_one_person_is_found_through_indexes_only(world):
    # given a scoped agent and one of their people
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=world["own"])
    person = world["own_people"]["applicant"]
    query = user_for_user(agent).filter(pk=person.pk)
    sql, params = query.query.sql_with_params()
    # when PostgreSQL plans the single-person check with sequential scans priced out
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    # then every big table is read through an index (the small category table is read whole to
    # resolve the subtrees), and the ids never left SQL
    whole = {line.split(" on ")[1].split()[0] for line in plan.splitlines() if "Seq Scan on" in line}
    assert whole <= {"catalog_category"}, plan
    assert query.get() == person
    assert "UNION ALL" in sql
