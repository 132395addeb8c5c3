"""In the browser: a lead imports a listings CSV with one bad row, sees the row's error, and nothing is
imported; the corrected file previews, and confirming it imports every row."""

import pytest

from marketplace.accounts.services import StaffGroup
from marketplace.audit.models import Event
from marketplace.catalog.models import Listing
from tests.factories import CategoryFactory, MembershipFactory, PartnerFactory
from tests.factories.settlement import staff

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "title,partner,owner,category,price,currency\n"
GOOD_ROWS = [
    "Hedge trimming,green-hands,owner@green.test,garden,45.00,EUR\n",
    "Lawn mowing,green-hands,owner@green.test,garden,30.50,EUR\n",
    "Leaf clearing,green-hands,owner@green.test,garden,25.00,EUR\n",
]
BAD_ROW = "Tree felling,green-hands,owner@green.test,garden,forty,EUR\n"


def choose_file(page, name: str, text: str) -> None:
    page.set_input_files(
        "input[name=import_file]", files=[{"name": name, "mimeType": "text/csv", "buffer": text.encode()}]
    )
    page.select_option("select[name=format]", label="csv")


def test_csv_with_one_bad_row_shows_the_error_and_imports_nothing(page, admin_login):
    partner = PartnerFactory(slug="green-hands", name="Green Hands")
    MembershipFactory(partner=partner, user__email="owner@green.test")
    CategoryFactory(slug="garden", name="Garden")
    lead = staff(StaffGroup.OPERATIONS_LEAD)

    admin_login(lead)
    page.goto("/admin/catalog/listing/")
    page.click("a[href$='/catalog/listing/import/']")  # the Import tab above the list
    page.wait_for_url("**/admin/catalog/listing/import/")
    # a file whose fourth row (spreadsheet row 4) has a price that is not a number
    choose_file(page, "listings.csv", HEADER + GOOD_ROWS[0] + GOOD_ROWS[1] + BAD_ROW + GOOD_ROWS[2])
    page.shot("import-form")
    page.submit("form[enctype='multipart/form-data'] button[type=submit]")
    body = page.inner_text("body")
    assert "1 row(s) have errors, so nothing will be imported" in body
    assert "'forty' is not a number." in body
    error_row = page.locator("table.import-preview tr.data-row").first.inner_text()
    assert error_row.split()[0] == "4" and "Tree felling" in error_row
    assert page.locator("form[action$='/process_import/']").count() == 0  # nothing to confirm
    page.shot("row-error-nothing-imported")
    assert Listing.objects.count() == 0
    assert not Event.objects.filter(verb="import").exists()

    # the corrected file previews three new rows and imports them on confirmation
    choose_file(page, "listings-fixed.csv", HEADER + "".join(GOOD_ROWS))
    page.submit("form[enctype='multipart/form-data'] button[type=submit]")
    page.wait_for_selector("form[action$='/process_import/']")
    assert "Hedge trimming" in page.inner_text("table.import-preview-table")
    page.shot("preview-ready")
    page.submit("form[action$='/process_import/'] button[type=submit]")
    page.wait_for_url("**/admin/catalog/listing/")
    page.shot("imported")
    assert sorted(Listing.objects.values_list("title", flat=True)) == ["Hedge trimming", "Lawn mowing", "Leaf clearing"]
    assert Event.objects.get(verb="import").data["rows"] == 3


def test_large_csv_is_checked_by_a_job_then_confirmed(page, admin_login, settings):
    settings.MARKETPLACE_IMPORT_INLINE_MAX_BYTES = 200  # so a small file takes the job path
    partner = PartnerFactory(slug="green-hands", name="Green Hands")
    MembershipFactory(partner=partner, user__email="owner@green.test")
    CategoryFactory(slug="garden", name="Garden")
    lead = staff(StaffGroup.OPERATIONS_LEAD)
    rows = "".join(f"Garden visit {i},green-hands,owner@green.test,garden,{20 + i}.00,EUR\n" for i in range(40))

    admin_login(lead)
    page.goto("/admin/catalog/listing/import/")
    choose_file(page, "visits.csv", HEADER + rows)
    page.submit("form[enctype='multipart/form-data'] button[type=submit]")
    # the django-q2 task checked the file (tests run tasks synchronously); the job waits for a person
    page.wait_for_selector("#transfer-job[data-status=ready]")
    assert "All 40 rows are valid" in page.inner_text("#transfer-job")
    assert Listing.objects.count() == 0
    page.shot("job-ready-to-confirm")
    page.submit("#transfer-job button[type=submit]")
    page.wait_for_selector("#transfer-job[data-status=done]")
    assert "40 imported." in page.inner_text("#transfer-job")
    page.shot("job-done")
    assert Listing.objects.filter(partner=partner).count() == 40
