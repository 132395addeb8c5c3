"""Categories in the admin: the form creates, renames and moves through the category services
(audited); the commission rate is read-only on the change form and changes only through the
"Change commission rate" step (its own permission, a reason, an audit event with both rates)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.catalog.models import Category
from tests.factories import CategoryFactory
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def _events(category, verb):
    return Event.objects.filter(verb=verb, target_id=str(category.pk))


def _form(category, **changes) -> dict:
    """The change form as posted: the tree's position fields and the plain fields."""
    parent = category.get_parent()
    data = {
        "name": category.name,
        "slug": category.slug,
        "is_active": "on" if category.is_active else "",
        "treebeard_position": "sorted-child",
        "treebeard_ref_node": parent.pk if parent else "",
    }
    return {k: v for k, v in (data | changes).items() if v != ""}


def test_category_change_form_no_longer_saves_the_commission_rate(client):
    # given a lead on a 15% category's change form
    category = CategoryFactory(name="Cleanin", commission_rate=Decimal("0.1500"))
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)
    url = reverse("admin:catalog_category_change", args=[category.pk])
    assert "commission_rate" not in client.get(url).context["adminform"].form.fields

    # when the form is posted with a new name and (as the old form took it) a new rate
    response = client.post(url, _form(category, name="Cleaning", commission_rate="0.9000"))

    # then the name changed through category_update (audited) and the rate did not change
    assert response.status_code == 302
    category.refresh_from_db()
    assert (category.name, category.commission_rate) == ("Cleaning", Decimal("0.1500"))
    assert _events(category, "category.updated").get().data == {"name": {"from": "Cleanin", "to": "Cleaning"}}
    assert not _events(category, "category.commission_changed").exists()


@pytest.mark.parametrize("group", [StaffGroup.OPERATIONS_LEAD, StaffGroup.FINANCE])
def test_commission_step_changes_the_rate_with_a_reason_and_an_audit_event(client, group):
    category = CategoryFactory(commission_rate=Decimal("0.1500"))
    actor = staff(group)
    client.force_login(actor)
    url = reverse("admin:catalog_category_commission", args=[category.pk])
    assert "(now 0.1500)" in client.get(url).content.decode()

    done = client.post(url, {"rate": "0.1250", "reason": "New pricing."}, follow=True)

    category.refresh_from_db()
    assert category.commission_rate == Decimal("0.1250")
    assert any("commission rate is now 0.1250" in m for m in _messages(done))
    event = _events(category, "category.commission_changed").get()
    assert (event.actor, event.from_state, event.to_state, event.reason) == (actor, "0.1500", "0.1250", "New pricing.")


def test_commission_step_refuses_a_rate_above_one_on_the_form(client):
    category = CategoryFactory(commission_rate=Decimal("0.1500"))
    client.force_login(staff(StaffGroup.FINANCE))
    response = client.post(
        reverse("admin:catalog_category_commission", args=[category.pk]), {"rate": "1.5", "reason": "x"}
    )
    assert response.status_code == 200 and "rate" in response.context["form"].errors
    category.refresh_from_db()
    assert category.commission_rate == Decimal("0.1500")


@pytest.mark.parametrize("group", [StaffGroup.OPERATIONS_AGENT, StaffGroup.PARTNER_MANAGER, StaffGroup.SUPPORT])
def test_commission_step_without_the_permission_is_403(client, group):
    category = CategoryFactory(commission_rate=Decimal("0.1500"))
    client.force_login(staff(group))
    response = client.post(
        reverse("admin:catalog_category_commission", args=[category.pk]), {"rate": "0.5", "reason": "x"}
    )
    assert response.status_code == 403
    category.refresh_from_db()
    assert category.commission_rate == Decimal("0.1500")


def test_category_add_form_creates_through_the_service(client):
    home = CategoryFactory(slug="home")
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    client.force_login(lead)
    data = {
        "name": "Cleaning",
        "slug": "cleaning",
        "commission_rate": "0.1250",
        "is_active": "on",
        "treebeard_position": "sorted-child",
        "treebeard_ref_node": home.pk,
    }

    response = client.post(reverse("admin:catalog_category_add"), data)

    assert response.status_code == 302
    cleaning = Category.objects.get(slug="cleaning")
    assert (cleaning.get_parent(), cleaning.commission_rate) == (home, Decimal("0.1250"))
    event = _events(cleaning, "category.created").get()
    assert (event.actor, event.data["commission_rate"], event.data["parent"]) == (lead, "0.1250", "home")


@pytest.mark.parametrize("rate", ["0.12345", "1.5", "-0.1"])
def test_category_add_form_refuses_a_rate_outside_0_to_1_or_past_four_places(client, rate):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    data = {"name": "Bad", "slug": "bad", "commission_rate": rate, "treebeard_position": "sorted-child"}

    response = client.post(reverse("admin:catalog_category_add"), data)

    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert not Category.objects.exists()
    assert not Event.objects.filter(verb="category.created").exists()


def test_category_move_through_the_form_is_audited(client):
    home, garden = CategoryFactory(slug="home"), CategoryFactory(slug="garden")
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))

    response = client.post(
        reverse("admin:catalog_category_change", args=[garden.pk]), _form(garden, treebeard_ref_node=home.pk)
    )

    assert response.status_code == 302
    garden.refresh_from_db()
    assert garden.get_parent() == home
    event = _events(garden, "category.moved").get()
    assert (event.from_state, event.to_state) == ("(top level)", "home")


def test_category_drag_and_drop_move_goes_through_the_service(client):
    home, garden = CategoryFactory(slug="home"), CategoryFactory(slug="garden")
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))

    response = client.post(
        reverse("admin:catalog_category_changelist") + "move/",
        {"node_id": garden.pk, "sibling_id": home.pk, "as_child": 1},
    )

    assert response.status_code == 200
    garden.refresh_from_db()
    assert garden.get_parent() == home
    assert _events(garden, "category.moved").get().to_state == "home"
