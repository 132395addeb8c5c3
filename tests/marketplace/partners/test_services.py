"""Partner services (marketplace/partners/services.py): creation and edits, status and risk flag,
members. Each checks a permission and the actor's partner scope, locks the partner and writes an
audit event with the old and the new value; suspension hides the partner's listings, refuses new
bookings and holds its payouts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.bookings.services import booking_create
from marketplace.catalog.models import Listing
from marketplace.catalog.selectors import listing_public_list
from marketplace.core.exceptions import InvalidInput, NotPermitted, TransitionNotAllowed
from marketplace.notifications.models import Notification
from marketplace.partners.models import Partner, PartnerMembership
from marketplace.partners.selectors import partner_for_user, partner_payouts_blocked, partner_payouts_blocked_q
from marketplace.partners.services import (
    partner_create,
    partner_membership_add,
    partner_membership_remove,
    partner_membership_role_set,
    partner_risk_flag_set,
    partner_status_set,
    partner_update,
)
from tests.factories import ClientFactory, MembershipFactory, PartnerFactory, ProviderFactory
from tests.factories.settlement import staff
from tests.factories.states import listing_in, operator_with

pytestmark = pytest.mark.django_db

S = Partner.Status
LEAD, FINANCE, AGENT, PMGR, SUPPORT = (
    StaffGroup.OPERATIONS_LEAD,
    StaffGroup.FINANCE,
    StaffGroup.OPERATIONS_AGENT,
    StaffGroup.PARTNER_MANAGER,
    StaffGroup.SUPPORT,
)


def _events(partner, verb):
    return Event.objects.filter(verb=verb, target_id=str(partner.pk))


def _row(partner) -> tuple:
    return Partner.objects.filter(pk=partner.pk).values_list("name", "slug", "kind", "status", "risk_flag").get()


def _book(listing):
    starts_at = timezone.now() + timedelta(days=3)
    return booking_create(
        listing=listing, client=ClientFactory(), starts_at=starts_at, ends_at=starts_at + timedelta(hours=2)
    )


# --- Status ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", [LEAD, FINANCE])
def test_partner_suspend_hides_listings_refuses_bookings_holds_payouts_and_reinstate_undoes_it(group):
    # given a partner with a published listing and an owner
    listing = listing_in(Listing.Status.PUBLISHED)
    partner = listing.partner
    owner = MembershipFactory(partner=partner, role=PartnerMembership.Role.OWNER).user
    actor = staff(group)
    assert list(listing_public_list()) == [listing]

    # when suspended
    partner = partner_status_set(partner=partner, status=S.SUSPENDED, actor=actor, reason="Chargebacks.")

    # then the listing leaves the catalogue (keeping its own state), a booking is refused, payouts held
    assert partner.status == S.SUSPENDED
    assert list(listing_public_list()) == []
    listing.refresh_from_db()
    assert listing.status == Listing.Status.PUBLISHED
    with pytest.raises(InvalidInput, match="is suspended: a new booking is refused"):
        _book(listing)
    assert partner_payouts_blocked(partner) == "Partner is suspended"
    assert Partner.objects.filter(partner_payouts_blocked_q("")).get() == partner
    # and it is audited with both states and the reason, and the owner is told
    event = _events(partner, "partner.suspended").get()
    assert (event.actor, event.from_state, event.to_state, event.reason) == (
        actor,
        "active",
        "suspended",
        "Chargebacks.",
    )
    assert Notification.objects.filter(user=owner, verb="partner.suspend").count() == 1

    # when reinstated
    partner = partner_status_set(partner=partner, status=S.ACTIVE, actor=actor, reason="Cleared by the bank.")

    # then everything is back
    assert list(listing_public_list()) == [listing]
    assert _book(listing).partner == partner
    assert partner_payouts_blocked(partner) is None
    event = _events(partner, "partner.reinstated").get()
    assert (event.from_state, event.to_state, event.reason) == ("suspended", "active", "Cleared by the bank.")


def test_partner_status_set_twice_says_the_partner_is_already_there():
    partner = PartnerFactory()
    lead = staff(LEAD)
    partner_status_set(partner=partner, status=S.SUSPENDED, actor=lead, reason="Fraud.")
    with pytest.raises(TransitionNotAllowed) as raised:
        partner_status_set(partner=partner, status=S.SUSPENDED, actor=lead, reason="Fraud.")
    assert raised.value.state == S.SUSPENDED
    assert _events(partner, "partner.suspended").count() == 1


@pytest.mark.parametrize("reason", ["", "   "])
def test_partner_status_set_needs_a_reason(reason):
    partner = PartnerFactory()
    with pytest.raises(InvalidInput, match="A reason is required"):
        partner_status_set(partner=partner, status=S.SUSPENDED, actor=staff(LEAD), reason=reason)
    assert _row(partner)[3] == S.ACTIVE


@pytest.mark.parametrize("group", [AGENT, PMGR, SUPPORT])
def test_partner_status_and_risk_without_the_permission_are_refused(group):
    # given staff of the group, with the partner in their scope
    partner = PartnerFactory()
    actor = staff(group, scope=partner)
    before = _row(partner)
    # when / then
    with pytest.raises(NotPermitted, match="You may not suspend or reinstate partners"):
        partner_status_set(partner=partner, status=S.SUSPENDED, actor=actor, reason="x")
    with pytest.raises(NotPermitted, match="You may not risk-flag partners"):
        partner_risk_flag_set(partner=partner, flagged=True, actor=actor, reason="x")
    assert _row(partner) == before
    assert not Event.objects.filter(verb__startswith="partner.", target_id=str(partner.pk)).exists()


def test_partner_status_set_outside_the_actors_scope_is_refused():
    # given someone holding the permission, granted another partner only
    partner = PartnerFactory()
    actor = operator_with("change_partner_risk", scope=PartnerFactory())
    with pytest.raises(NotPermitted, match=f"Partner #{partner.pk} is outside your scope."):
        partner_status_set(partner=partner, status=S.SUSPENDED, actor=actor, reason="x")
    with pytest.raises(NotPermitted, match="outside your scope"):
        partner_risk_flag_set(partner=partner, flagged=True, actor=actor, reason="x")
    assert _row(partner)[3:] == (S.ACTIVE, False)


# --- Risk flag ---------------------------------------------------------------------------------------


def test_partner_risk_flag_set_and_clear_are_audited_and_hold_payouts():
    partner = PartnerFactory()
    finance = staff(FINANCE)

    partner = partner_risk_flag_set(partner=partner, flagged=True, actor=finance, reason="Unusual refunds.")

    assert partner.risk_flag and partner_payouts_blocked(partner) == "Partner is risk-flagged"
    event = _events(partner, "partner.risk_flagged").get()
    assert (event.actor, event.from_state, event.to_state, event.reason) == (
        finance,
        "unflagged",
        "risk-flagged",
        "Unusual refunds.",
    )
    with pytest.raises(TransitionNotAllowed) as raised:
        partner_risk_flag_set(partner=partner, flagged=True, actor=finance, reason="Again.")
    assert raised.value.state == "risk-flagged"

    partner = partner_risk_flag_set(partner=partner, flagged=False, actor=finance, reason="Reviewed: fine.")

    assert not partner.risk_flag and partner_payouts_blocked(partner) is None
    cleared = _events(partner, "partner.risk_cleared").get()
    assert (cleared.from_state, cleared.to_state) == ("risk-flagged", "unflagged")


# --- Creation and edits --------------------------------------------------------------------------------


def test_partner_create_is_audited_and_its_creator_gets_its_scope():
    # given a partner manager (no all-partners scope)
    manager = staff(PMGR)
    # when
    partner = partner_create(actor=manager, name="Acme Plumbing", contact_email="ops@acme.test")
    # then the partner is active, audited, and the manager may go on to manage it
    assert (partner.slug, partner.status, partner.risk_flag) == ("acme-plumbing", S.ACTIVE, False)
    event = _events(partner, "partner.created").get()
    assert (event.actor, event.to_state) == (manager, S.ACTIVE)
    assert event.data["slug"] == "acme-plumbing"
    assert _events(partner, "scope.granted").get().actor == manager
    assert partner_for_user(type(manager).objects.get(pk=manager.pk)).filter(pk=partner.pk).exists()


def test_partner_create_without_the_permission_or_with_a_taken_slug_is_refused():
    PartnerFactory(slug="acme")
    with pytest.raises(NotPermitted, match="You may not create partners"):
        partner_create(actor=staff(AGENT), name="Other")
    with pytest.raises(InvalidInput, match="already exists"):
        partner_create(actor=staff(LEAD), name="Acme")
    assert Partner.objects.count() == 1


def test_partner_update_records_each_change_and_refuses_status_and_risk():
    partner = PartnerFactory(name="Acme", contact_email="")
    lead = staff(LEAD)

    partner_update(partner=partner, actor=lead, data={"name": "Acme Ltd", "contact_email": "a@acme.test"})

    event = _events(partner, "partner.updated").get()
    assert event.data == {
        "name": {"from": "Acme", "to": "Acme Ltd"},
        "contact_email": {"from": "", "to": "a@acme.test"},
    }
    for field, value in (("status", S.SUSPENDED), ("risk_flag", True)):
        with pytest.raises(InvalidInput, match=f"cannot be changed here: {field}"):
            partner_update(partner=partner, actor=lead, data={field: value})
    assert _row(partner)[3:] == (S.ACTIVE, False)


def test_partner_update_by_a_partner_manager_of_another_partner_is_refused():
    partner = PartnerFactory(name="Acme")
    manager = staff(PMGR, scope=PartnerFactory())
    with pytest.raises(NotPermitted, match="outside your scope"):
        partner_update(partner=partner, actor=manager, data={"name": "Mine now"})
    assert _row(partner)[0] == "Acme"


# --- Members ---------------------------------------------------------------------------------------------


def test_partner_membership_add_role_set_and_remove_are_audited():
    partner = PartnerFactory()
    manager = staff(PMGR, scope=partner)
    user = ProviderFactory()

    membership = partner_membership_add(partner=partner, user=user, actor=manager)
    assert membership.role == PartnerMembership.Role.MEMBER
    added = _events(partner, "partner.member_added").get()
    assert (added.actor, added.data) == (manager, {"user": user.pk, "email": user.email, "role": "member"})

    partner_membership_role_set(partner=partner, user=user, role=PartnerMembership.Role.OWNER, actor=manager)
    changed = _events(partner, "partner.member_role_changed").get()
    assert (changed.from_state, changed.to_state) == ("member", "owner")

    partner_membership_remove(partner=partner, user=user, actor=manager, reason="Left the company.")
    assert not PartnerMembership.objects.filter(partner=partner, user=user).exists()
    removed = _events(partner, "partner.member_removed").get()
    assert (removed.from_state, removed.reason) == ("owner", "Left the company.")


def test_partner_membership_refusals_change_nothing():
    partner = PartnerFactory()
    member = MembershipFactory(partner=partner).user
    outsider = ProviderFactory()
    manager = staff(PMGR, scope=partner)
    with pytest.raises(InvalidInput, match="is already a member"):
        partner_membership_add(partner=partner, user=member, actor=manager)
    with pytest.raises(InvalidInput, match="is not a member"):
        partner_membership_remove(partner=partner, user=outsider, actor=manager)
    with pytest.raises(InvalidInput, match="not a member role"):
        partner_membership_role_set(partner=partner, user=member, role="boss", actor=manager)
    # without the permission (an agent), or outside the scope (another partner's manager)
    with pytest.raises(NotPermitted, match="You may not add partner members"):
        partner_membership_add(partner=partner, user=outsider, actor=staff(AGENT, scope=partner))
    with pytest.raises(NotPermitted, match="outside your scope"):
        partner_membership_remove(partner=partner, user=member, actor=staff(PMGR, scope=PartnerFactory()))
    assert list(PartnerMembership.objects.filter(partner=partner).values_list("user", "role")) == [
        (member.pk, "member")
    ]
    assert not Event.objects.filter(verb__startswith="partner.member", target_id=str(partner.pk)).exists()
