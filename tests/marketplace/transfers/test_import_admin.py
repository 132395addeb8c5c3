"""Imports through the admin's real pages: upload -> dry-run preview (row errors) -> confirm -> rows.

A file with one bad row writes nothing; Excel's CSV (BOM, `;`, CRLF) and XLSX both work; duplicates
are found in the file and in the table; the importer's scope limits what a row may reference.
"""

import io
from decimal import Decimal

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from marketplace.accounts.models import User
from marketplace.audit.models import Event
from marketplace.catalog.models import Category, Listing
from marketplace.partners.models import Partner, PartnerMembership
from tests.factories import CategoryFactory, ListingFactory, MembershipFactory, PartnerFactory

pytestmark = pytest.mark.django_db

LISTING_HEADER = "title,partner,owner,category,price,currency,kind,description\n"
CSV, XLSX = "0", "1"  # the import form's format choices, in IMPORT_FORMATS order


@pytest.fixture
def lead(make_staff):
    return make_staff("Operations lead")


@pytest.fixture
def catalogue():
    partner = PartnerFactory(slug="acme")
    owner = MembershipFactory(partner=partner, user__email="owner@acme.test").user
    category = CategoryFactory(slug="cleaning")
    return partner, owner, category


def upload(client, model: str, content: bytes, *, fmt: str = CSV, name: str = "rows.csv"):
    """Step 1: the import form (a dry run). Returns the response with its preview or errors."""
    return client.post(
        reverse(f"admin:{model}_import"),
        {"format": fmt, "resource": "0", "import_file": SimpleUploadedFile(name, content)},
    )


def confirm(client, model: str, response):
    """Step 2: the confirmation the preview page offers."""
    form = response.context["confirm_form"]
    return client.post(reverse(f"admin:{model}_process_import"), form.initial, follow=True)


def test_listing_import_preview_then_confirm_writes_rows_and_audit(client, lead, catalogue):
    # given a clean CSV of two listings
    partner, owner, category = catalogue
    body = (
        LISTING_HEADER
        + "Window cleaning,acme,owner@acme.test,cleaning,45.50,EUR,service,Streak free\n"
        + "Oven cleaning,acme,OWNER@acme.test,cleaning,60,eur,Service,\n"
    )
    client.force_login(lead)
    # when the lead uploads it
    preview = upload(client, "catalog_listing", body.encode())
    # then the dry run lists both rows as new and writes nothing
    assert preview.status_code == 200
    result = preview.context["result"]
    assert not result.has_validation_errors() and not result.has_errors()
    assert result.totals["new"] == 2
    assert Listing.objects.count() == 0
    # and when they confirm, both listings exist, in the moderation queue, to the cent
    done = confirm(client, "catalog_listing", preview)
    assert done.status_code == 200
    listings = {lst.title: lst for lst in Listing.objects.all()}
    assert set(listings) == {"Window cleaning", "Oven cleaning"}
    window = listings["Window cleaning"]
    assert window.price == Decimal("45.50") and window.currency == "EUR"
    assert window.partner == partner and window.owner == owner and window.category == category
    assert window.status == Listing.Status.PENDING_REVIEW and window.submitted_at is not None
    assert listings["Oven cleaning"].price == Decimal("60.00")
    # one audit event per listing and one for the file
    assert Event.objects.filter(verb="listing.imported", actor=lead).count() == 2
    file_event = Event.objects.get(verb="import")
    assert file_event.data == {"model": "catalog.listing", "rows": 2, "file": "rows.csv"}


def test_listing_import_one_bad_row_shows_row_error_and_writes_nothing(client, lead, catalogue):
    body = (
        LISTING_HEADER
        + "Good one,acme,owner@acme.test,cleaning,10.00,EUR,service,\n"
        + "Bad price,acme,owner@acme.test,cleaning,ten,EUR,service,\n"
        + "Unknown partner,nope,owner@acme.test,cleaning,10.00,EUR,service,\n"
    )
    client.force_login(lead)
    preview = upload(client, "catalog_listing", body.encode())
    result = preview.context["result"]
    assert result.has_validation_errors()
    errors = {row.number: row.error_dict for row in result.invalid_rows}
    # spreadsheet rows: the header is row 1
    assert errors[3] == {"price": ["'ten' is not a number."]}
    assert errors[4] == {"partner": ["No partner 'nope' (or not one you may use)."]}
    assert "confirm_form" not in preview.context
    html = preview.content.decode()
    assert "2 row(s) have errors, so nothing will be imported" in html
    assert "&#x27;ten&#x27; is not a number." in html
    assert Listing.objects.count() == 0
    # and forcing the second step with the same file still writes nothing
    from import_export.tmp_storages import MediaStorage

    storage = MediaStorage(read_mode="rb")
    storage.save(body.encode())
    forced = client.post(
        reverse("admin:catalog_listing_process_import"),
        {"import_file_name": storage.name, "original_file_name": "rows.csv", "format": CSV, "resource": "0"},
        follow=True,
    )
    assert "Nothing was imported" in forced.content.decode()
    assert Listing.objects.count() == 0
    assert not Event.objects.filter(verb__in=["import", "listing.imported"]).exists()


def test_listing_import_reads_excel_csv_with_bom_semicolons_and_crlf(client, lead, catalogue):
    body = (
        "\ufefftitle;partner;owner;category;price;currency\r\n"
        '"Garden; hedges";acme;owner@acme.test;cleaning;1234,50;EUR\r\n'
        "\r\n"
        "Roof;acme;owner@acme.test;cleaning;99;EUR\r\n"
    )
    client.force_login(lead)
    preview = upload(client, "catalog_listing", body.encode("utf-8"))
    result = preview.context["result"]
    assert not result.has_validation_errors(), [r.error_dict for r in result.invalid_rows]
    confirm(client, "catalog_listing", preview)
    prices = dict(Listing.objects.values_list("title", "price"))
    assert prices == {"Garden; hedges": Decimal("1234.50"), "Roof": Decimal("99.00")}


def test_listing_import_not_utf8_is_a_clear_form_error(client, lead, catalogue):
    body = (LISTING_HEADER + "Café,acme,owner@acme.test,cleaning,10,EUR,service,\n").encode("cp1252")
    client.force_login(lead)
    response = upload(client, "catalog_listing", body)
    assert response.status_code == 200
    assert "not UTF-8" in str(response.context["form"].errors["import_file"])
    assert Listing.objects.count() == 0


def test_listing_import_unknown_column_is_named(client, lead, catalogue):
    client.force_login(lead)
    response = upload(client, "catalog_listing", b"title,partner,owner,category,price,colour\nA,acme,a@b.c,x,1,red\n")
    result = response.context["result"]
    assert result.has_errors()
    assert "Unknown column(s): colour" in str(result.base_errors[0].error)
    assert Listing.objects.count() == 0


def test_listing_import_from_xlsx(client, lead, catalogue):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Title", "Partner", "Owner", "Category", "Price"])
    sheet.append(["Deep clean", "acme", "owner@acme.test", "cleaning", 80.5])
    sheet.append([None, None, None, None, None])
    sheet.append(["Quick clean", "acme", "owner@acme.test", "cleaning", 20])
    data = io.BytesIO()
    book.save(data)
    client.force_login(lead)
    preview = upload(client, "catalog_listing", data.getvalue(), fmt=XLSX, name="rows.xlsx")
    assert not preview.context["result"].has_validation_errors()
    confirm(client, "catalog_listing", preview)
    assert dict(Listing.objects.values_list("title", "price")) == {
        "Deep clean": Decimal("80.50"),
        "Quick clean": Decimal("20.00"),
    }


def test_listing_import_duplicates_in_file_and_in_table(client, lead, catalogue):
    partner, owner, category = catalogue
    existing = ListingFactory(partner=partner, owner=owner, category=category, title="Window cleaning")
    body = (
        LISTING_HEADER
        + "window CLEANING,acme,owner@acme.test,cleaning,10,EUR,service,\n"
        + "Ironing,acme,owner@acme.test,cleaning,10,EUR,service,\n"
        + "Ironing,acme,owner@acme.test,cleaning,12,EUR,service,\n"
    )
    client.force_login(lead)
    result = upload(client, "catalog_listing", body.encode()).context["result"]
    errors = {row.number: row.error_dict for row in result.invalid_rows}
    assert errors == {
        2: {"__all__": [f"Already exists: listing #{existing.pk}."]},
        4: {"__all__": ["Duplicate of row 3 in this file."]},
    }
    assert Listing.objects.count() == 1


def test_listing_import_owner_must_be_member_of_partner(client, lead, catalogue):
    PartnerFactory(slug="other")
    body = LISTING_HEADER + "Stray,other,owner@acme.test,cleaning,10,EUR,service,\n"
    client.force_login(lead)
    result = upload(client, "catalog_listing", body.encode()).context["result"]
    assert result.invalid_rows[0].error_dict == {"owner": ["The owner is not a member of this partner."]}


def test_category_import_builds_the_tree_from_parents_in_file(client, lead):
    CategoryFactory(slug="home", name="Home")
    body = (
        b"name,slug,parent,commission_rate\n"
        b"Cleaning,cleaning,home,0.12\n"
        b"Windows,windows,cleaning,0.1\n"
        b"Garden,garden,,0.2\n"
    )
    client.force_login(lead)
    preview = upload(client, "catalog_category", body)
    assert not preview.context["result"].has_validation_errors()
    confirm(client, "catalog_category", preview)
    windows = Category.objects.get(slug="windows")
    assert windows.get_parent().slug == "cleaning"
    assert windows.get_parent().get_parent().slug == "home"
    assert Category.objects.get(slug="garden").is_root()
    assert windows.commission_rate == Decimal("0.1000")


def test_category_import_rejects_unknown_parent_and_rate_above_one(client, lead):
    body = b"name,slug,parent,commission_rate\nA,a,missing,0.1\nB,b,,1.5\n"
    client.force_login(lead)
    result = upload(client, "catalog_category", body).context["result"]
    errors = {row.number: row.error_dict for row in result.invalid_rows}
    assert errors == {
        2: {"parent": ["No category 'missing' here or in an earlier row."]},
        3: {"commission_rate": ["Must be at most 1."]},
    }
    assert not Category.objects.exists()


def test_partner_import_and_existing_slug(client, lead):
    PartnerFactory(slug="taken")
    client.force_login(lead)
    bad = upload(client, "partners_partner", b"name,slug,kind\nNew Co,new-co,provider\nX,taken,integrator\n")
    assert {r.number for r in bad.context["result"].invalid_rows} == {3}
    good = upload(client, "partners_partner", b"name,slug,kind,risk_flag\nNew Co,new-co,Integrator,yes\n")
    confirm(client, "partners_partner", good)
    new = Partner.objects.get(slug="new-co")
    assert new.kind == Partner.Kind.INTEGRATOR and new.risk_flag and new.status == Partner.Status.ACTIVE


def test_user_import_creates_users_without_password_and_memberships(client, lead, catalogue):
    client.force_login(lead)
    body = (
        b"email,full_name,role,email_verified,partner,partner_role\n"
        b"Ann@Example.test,Ann,worker,yes,acme,owner\n"
        b"bob@example.test,Bob,,no,,\n"
    )
    preview = upload(client, "accounts_user", body)
    assert not preview.context["result"].has_validation_errors()
    confirm(client, "accounts_user", preview)
    ann = User.objects.get(email="ann@example.test")
    assert ann.role == User.Role.WORKER and ann.email_verified and not ann.has_usable_password()
    assert not ann.is_staff
    assert PartnerMembership.objects.get(user=ann).role == PartnerMembership.Role.OWNER
    assert User.objects.get(email="bob@example.test").role == User.Role.CLIENT
    # importing Ann again, in another case, is a duplicate
    again = upload(client, "accounts_user", b"email\nANN@example.test\n")
    assert again.context["result"].invalid_rows[0].error_dict == {"__all__": [f"Already exists: user #{ann.pk}."]}


def test_user_import_refuses_staff_role(client, lead):
    client.force_login(lead)
    result = upload(client, "accounts_user", b"email,role\nx@example.test,admin\n").context["result"]
    assert "is not one of" in result.invalid_rows[0].error_dict["role"][0]


@pytest.mark.parametrize("group", ["Operations agent", "Finance", "Support"])
def test_import_forbidden_without_import_permission(client, make_staff, group):
    client.force_login(make_staff(group))
    assert client.get(reverse("admin:catalog_listing_import")).status_code == 403
    assert upload(client, "catalog_listing", LISTING_HEADER.encode()).status_code == 403


def test_partner_manager_imports_partners_but_not_listings(client, make_staff):
    manager = make_staff("Partner manager")
    client.force_login(manager)
    assert client.get(reverse("admin:partners_partner_import")).status_code == 200
    assert client.get(reverse("admin:catalog_listing_import")).status_code == 403


def test_listing_import_confirmed_twice_writes_once(client, lead, catalogue):
    body = LISTING_HEADER + "Window cleaning,acme,owner@acme.test,cleaning,45.50,EUR,service,\n"
    client.force_login(lead)
    preview = upload(client, "catalog_listing", body.encode())
    confirm(client, "catalog_listing", preview)
    again = confirm(client, "catalog_listing", preview)  # the double click
    assert again.status_code == 200
    assert "already imported" in again.content.decode()
    assert Listing.objects.count() == 1
    assert Event.objects.filter(verb="import").count() == 1


def test_import_file_over_the_limit_is_refused_before_reading(client, lead, settings):
    settings.MARKETPLACE_IMPORT_MAX_BYTES = 1024
    client.force_login(lead)
    response = upload(client, "catalog_listing", LISTING_HEADER.encode() + b"x" * 2000)
    assert response.status_code == 200
    assert "The file is larger than 1 KB" in str(response.context["form"].errors["import_file"])
    assert "result" not in response.context
    assert Listing.objects.count() == 0
