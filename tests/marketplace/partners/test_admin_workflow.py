"""Partners in the admin: the change form edits plain fields through `partner_update` (audited);
status, risk flag and members are read-only on it and change only through steps with a
confirmation page (a reason for risk and status), each calling one service."""

import pytest
from django.forms import MultiWidget
from django.test import Client
from django.urls import reverse

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.partners.models import Partner, PartnerMembership
from tests.factories import MembershipFactory, PartnerFactory, ProviderFactory, StaffFactory
from tests.factories.settlement import staff
from tests.factories.states import operator_with

pytestmark = pytest.mark.django_db

S = Partner.Status


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def _events(partner, verb):
    return Event.objects.filter(verb=verb, target_id=str(partner.pk))


def _form_data(url: str) -> dict:
    """What the change form posts unchanged (inline management forms included), as a superuser sees it."""
    reader = Client()
    reader.force_login(StaffFactory(is_superuser=True))
    context = reader.get(url).context
    forms = [context["adminform"].form]
    data = {}
    for inline in context["inline_admin_formsets"]:
        formset = inline.formset
        data |= {f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()}
        forms += formset.forms
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if field.disabled or isinstance(field.widget, MultiWidget):
                continue
            if isinstance(value, bool):
                if value:
                    data[form[name].html_name] = "on"
            else:
                data[form[name].html_name] = "" if value is None else getattr(value, "pk", value)
    return data


# --- The change form -------------------------------------------------------------------------------


def test_partner_change_form_saves_the_name_through_the_service_but_not_status_risk_or_members(client):
    # given a lead on an active, unflagged partner's change form
    partner = PartnerFactory(name="Acme")
    newcomer = ProviderFactory()
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)
    url = reverse("admin:partners_partner_change", args=[partner.pk])
    data = _form_data(url)

    # when the form is posted with a new name, and (as an old form would) a status, a risk flag and a new member
    data |= {"name": "Acme Ltd", "status": S.SUSPENDED, "risk_flag": "on"}
    data |= {"memberships-TOTAL_FORMS": "1", "memberships-0-user": newcomer.pk, "memberships-0-role": "owner"}
    response = client.post(url, data)

    # then the name changed through partner_update (audited); status, flag and members did not
    assert response.status_code == 302
    partner.refresh_from_db()
    assert (partner.name, partner.status, partner.risk_flag) == ("Acme Ltd", S.ACTIVE, False)
    assert not PartnerMembership.objects.filter(partner=partner).exists()
    event = _events(partner, "partner.updated").get()
    assert (event.actor, event.data) == (lead, {"name": {"from": "Acme", "to": "Acme Ltd"}})


def test_partner_change_form_shows_status_and_risk_flag_read_only(client):
    partner = PartnerFactory()
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    form = client.get(reverse("admin:partners_partner_change", args=[partner.pk])).context["adminform"].form
    assert {"name", "slug", "kind", "contact_email"} <= set(form.fields)
    assert not {"status", "risk_flag"} & set(form.fields)


def test_partner_add_form_creates_through_the_service(client):
    # given a partner manager (no all-partners scope)
    manager = staff(StaffGroup.PARTNER_MANAGER)
    client.force_login(manager)
    data = {"name": "Brightside", "slug": "brightside", "kind": "provider", "contact_email": ""}
    data |= {f"{prefix}-{k}": v for prefix in ("memberships", "payout_account") for k, v in _EMPTY_INLINE.items()}

    # when
    response = client.post(reverse("admin:partners_partner_add"), data)

    # then partner_create wrote it (audited) and its creator may open it
    partner = Partner.objects.get(slug="brightside")
    assert response.status_code == 302
    assert _events(partner, "partner.created").get().actor == manager
    assert client.get(reverse("admin:partners_partner_change", args=[partner.pk])).status_code == 200


_EMPTY_INLINE = {"TOTAL_FORMS": "0", "INITIAL_FORMS": "0", "MIN_NUM_FORMS": "0", "MAX_NUM_FORMS": "1000"}


# --- Status and risk flag steps -----------------------------------------------------------------------------


@pytest.mark.parametrize("group", [StaffGroup.OPERATIONS_LEAD, StaffGroup.FINANCE])
def test_suspend_step_asks_for_a_reason_then_suspends_once(client, group):
    partner = PartnerFactory()
    actor = staff(group)
    client.force_login(actor)
    url = reverse("admin:partners_partner_suspend", args=[partner.pk])

    page = client.get(url)
    assert page.status_code == 200 and partner.name in page.content.decode()
    refused = client.post(url, {"reason": " "})
    assert refused.status_code == 200 and refused.context["form"].errors == {"reason": ["This field is required."]}

    done = client.post(url, {"reason": "Chargebacks."}, follow=True)

    partner.refresh_from_db()
    assert partner.status == S.SUSPENDED
    assert f"{partner} is suspended: its listings are hidden, new bookings refused and payouts held." in _messages(done)
    event = _events(partner, "partner.suspended").get()
    assert (event.actor, event.reason) == (actor, "Chargebacks.")
    again = client.post(url, {"reason": "Chargebacks."}, follow=True)
    assert f"{partner} is already suspended; nothing to do." in _messages(again)
    assert _events(partner, "partner.suspended").count() == 1


def test_risk_flag_steps_set_and_clear_the_flag(client):
    partner = PartnerFactory()
    client.force_login(staff(StaffGroup.FINANCE))

    client.post(reverse("admin:partners_partner_flag_risk", args=[partner.pk]), {"reason": "Odd refunds."})
    partner.refresh_from_db()
    assert partner.risk_flag
    client.post(reverse("admin:partners_partner_clear_risk", args=[partner.pk]), {"reason": "Reviewed."})
    partner.refresh_from_db()
    assert not partner.risk_flag
    assert [e.verb for e in Event.objects.filter(target_id=str(partner.pk)).order_by("pk")] == [
        "partner.risk_flagged",
        "partner.risk_cleared",
    ]


def test_the_change_page_offers_only_the_steps_the_partner_allows(client):
    partner = PartnerFactory(status=S.SUSPENDED, risk_flag=True)
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    page = client.get(reverse("admin:partners_partner_change", args=[partner.pk])).content.decode()
    assert reverse("admin:partners_partner_reinstate", args=[partner.pk]) in page
    assert reverse("admin:partners_partner_clear_risk", args=[partner.pk]) in page
    assert reverse("admin:partners_partner_suspend", args=[partner.pk]) not in page
    assert reverse("admin:partners_partner_flag_risk", args=[partner.pk]) not in page


@pytest.mark.parametrize("group", [StaffGroup.OPERATIONS_AGENT, StaffGroup.PARTNER_MANAGER, StaffGroup.SUPPORT])
@pytest.mark.parametrize("step", ["suspend", "flag_risk"])
def test_status_and_risk_steps_without_the_permission_are_403(client, group, step):
    partner = PartnerFactory()
    client.force_login(staff(group, scope=partner))
    response = client.post(reverse(f"admin:partners_partner_{step}", args=[partner.pk]), {"reason": "x"})
    assert response.status_code == 403
    partner.refresh_from_db()
    assert (partner.status, partner.risk_flag) == (S.ACTIVE, False)


def test_status_step_on_a_partner_outside_the_scope_is_404(client):
    partner = PartnerFactory()
    client.force_login(operator_with("change_partner_risk", "view_partner", scope=PartnerFactory()))
    response = client.post(reverse("admin:partners_partner_suspend", args=[partner.pk]), {"reason": "x"})
    assert response.status_code == 404
    partner.refresh_from_db()
    assert partner.status == S.ACTIVE


# --- Member steps -------------------------------------------------------------------------------------------


def test_member_steps_add_change_role_and_remove_through_the_services(client):
    partner = PartnerFactory()
    user = ProviderFactory(email="nils@example.test")
    manager = staff(StaffGroup.PARTNER_MANAGER, scope=partner)
    client.force_login(manager)

    added = client.post(
        reverse("admin:partners_partner_add_member", args=[partner.pk]),
        {"email": "NILS@example.test", "role": "member"},
        follow=True,
    )
    membership = PartnerMembership.objects.get(partner=partner, user=user)
    assert f"{user} is now member of {partner}." in _messages(added)

    client.post(
        reverse("admin:partners_partner_set_member_role", args=[partner.pk]),
        {"member": membership.pk, "role": "owner"},
    )
    membership.refresh_from_db()
    assert membership.role == "owner"

    client.post(
        reverse("admin:partners_partner_remove_member", args=[partner.pk]), {"member": membership.pk, "reason": "Left."}
    )
    assert not PartnerMembership.objects.filter(partner=partner).exists()
    member_events = Event.objects.filter(target_id=str(partner.pk), verb__startswith="partner.member").order_by("pk")
    assert [e.verb for e in member_events] == [
        "partner.member_added",
        "partner.member_role_changed",
        "partner.member_removed",
    ]


def test_add_member_of_an_unknown_email_says_so_and_changes_nothing(client):
    partner = PartnerFactory()
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    response = client.post(
        reverse("admin:partners_partner_add_member", args=[partner.pk]),
        {"email": "nobody@example.test", "role": "member"},
        follow=True,
    )
    assert "There is no user with the email address nobody@example.test." in _messages(response)
    assert not PartnerMembership.objects.exists()


def test_member_steps_are_403_without_the_permission_and_404_outside_the_scope(client):
    partner = PartnerFactory()
    member = MembershipFactory(partner=partner)
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT, scope=partner))
    url = reverse("admin:partners_partner_remove_member", args=[partner.pk])
    assert client.post(url, {"member": member.pk}).status_code == 403
    client.force_login(staff(StaffGroup.PARTNER_MANAGER, scope=PartnerFactory()))
    assert client.post(url, {"member": member.pk}).status_code == 404
    assert PartnerMembership.objects.filter(pk=member.pk).exists()
