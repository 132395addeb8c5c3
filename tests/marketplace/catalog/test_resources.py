"""The listing import (marketplace/catalog/resources.py) applies `listing_create`'s rules to every row:
a currency of the allow-list, a partner that is not suspended, an owner who is a member. A row that
breaks one is an error in the dry-run preview, with its spreadsheet row number, and nothing is written."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from marketplace.accounts.services import StaffGroup
from marketplace.catalog.models import Listing
from marketplace.partners.models import Partner
from tests.factories import CategoryFactory, MembershipFactory, PartnerFactory
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db

HEADER = "title,partner,owner,category,price,currency\n"


@pytest.fixture
def catalogue():
    partner = PartnerFactory(slug="acme")
    MembershipFactory(partner=partner, user__email="owner@acme.test")
    CategoryFactory(slug="cleaning")
    return partner


def _preview(client, body: str):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    response = client.post(
        reverse("admin:catalog_listing_import"),
        {"format": "0", "resource": "0", "import_file": SimpleUploadedFile("rows.csv", body.encode())},
    )
    assert response.status_code == 200
    return response


def _errors(response) -> dict:
    return {row.number: row.error_dict for row in response.context["result"].invalid_rows}


def test_listing_import_refuses_a_currency_outside_the_allow_list_as_a_row_error(client, catalogue, settings):
    # given the allow-list EUR, USD, GBP and a file with one good row and two bad currencies
    settings.MARKETPLACE_CURRENCIES = ("EUR", "USD", "GBP")
    body = (
        HEADER
        + "Windows,acme,owner@acme.test,cleaning,40,usd\n"
        + "Ovens,acme,owner@acme.test,cleaning,60,XYZ\n"
        + "Floors,acme,owner@acme.test,cleaning,60,JPY\n"
    )

    # when previewed
    response = _preview(client, body)

    # then rows 3 and 4 are errors naming the allow-list, the file cannot be confirmed, nothing is written
    message = "Currency {!r} is not accepted here; use one of EUR, USD, GBP."
    assert _errors(response) == {3: {"currency": [message.format("XYZ")]}, 4: {"currency": [message.format("JPY")]}}
    assert response.context.get("confirm_form") is None
    assert not Listing.objects.exists()


def test_listing_import_refuses_rows_of_a_suspended_partner(client, catalogue):
    Partner.objects.filter(pk=catalogue.pk).update(status=Partner.Status.SUSPENDED)

    response = _preview(client, HEADER + "Windows,acme,owner@acme.test,cleaning,40,EUR\n")

    assert _errors(response) == {2: {"partner": ["This partner is suspended and takes no new listings."]}}
    assert not Listing.objects.exists()


def test_listing_import_without_a_currency_takes_the_default_one(client, catalogue, settings):
    response = _preview(client, "title,partner,owner,category,price\nWindows,acme,owner@acme.test,cleaning,40\n")
    client.post(reverse("admin:catalog_listing_process_import"), response.context["confirm_form"].initial)
    assert Listing.objects.get().currency == settings.MARKETPLACE_DEFAULT_CURRENCY
