"""Bounded XLSX imports and control characters: a hostile workbook is refused before it is parsed,
a control character is a row error at import, and one already stored never breaks an export."""

import io
import time
import tracemalloc
import zipfile

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from marketplace.catalog.models import Listing
from marketplace.partners.services import partner_scope_grant
from marketplace.transfers.formats import ImportFileError, SpreadsheetXLSX
from tests.factories import CategoryFactory, ListingFactory, MembershipFactory, PartnerFactory

pytestmark = pytest.mark.django_db

CSV, XLSX = "0", "1"
LISTING_HEADER = "title,partner,owner,category,price,currency,kind,description\n"

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
    "</Relationships>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
    "</Relationships>"
)


def hostile_xlsx(dimension: str = "A1:XFD5000", cells: str = '<c r="XFD5000" t="inlineStr"><is><t>x</t></is></c>'):
    """The finding's workbook: one cell at XFD5000 in a sheet declaring A1:XFD5000 (about 1.7 KB)."""
    row = cells.split('r="', 1)[1].split('"', 1)[0].lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<dimension ref="{dimension}"/><sheetData><row r="{row}">{cells}</row></sheetData></worksheet>'
    )
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    return data.getvalue()


def xlsx_of(rows) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


@pytest.fixture
def lead(make_staff):
    return make_staff("Operations lead")


@pytest.fixture
def catalogue():
    partner = PartnerFactory(slug="acme")
    MembershipFactory(partner=partner, user__email="owner@acme.test")
    CategoryFactory(slug="cleaning")
    return partner


def upload(client, content: bytes, *, fmt: str, name: str):
    return client.post(
        reverse("admin:catalog_listing_import"),
        {"format": fmt, "resource": "0", "import_file": SimpleUploadedFile(name, content)},
    )


def refusal(response) -> str:
    """The file-level message of an import preview (the form's error or the result's base error)."""
    result = response.context.get("result")
    if result is not None and result.base_errors:
        return str(result.base_errors[0].error)
    return str(response.context["form"].errors.get("import_file", ""))


def test_import_hostile_xlsx_is_refused_fast_and_small(client, lead):
    # given the finding's 1.7 KB workbook (one cell at XFD5000, dimension A1:XFD5000)
    content = hostile_xlsx()
    assert len(content) < 2_000
    client.force_login(lead)
    # when it is uploaded through the import page
    started = time.perf_counter()
    response = upload(client, content, fmt=XLSX, name="bomb.xlsx")
    elapsed = time.perf_counter() - started
    # then it is refused, with the reason, in well under a second
    assert response.status_code == 200
    assert "16,384 columns" in refusal(response)
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    # and the refusal allocates little (the request measured again, under tracemalloc)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        upload(client, content, fmt=XLSX, name="bomb.xlsx")
        peak_growth = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak_growth < 50 * 1024 * 1024, f"peak growth {peak_growth / 1e6:.1f} MB"
    assert Listing.objects.count() == 0


def test_xlsx_that_declares_less_than_it_holds_is_refused_while_read(settings):
    # given a sheet whose dimension says A1:B2 but which holds a cell past the column limit
    settings.MARKETPLACE_IMPORT_MAX_COLUMNS = 10
    lying = hostile_xlsx(
        "A1:B2", '<c r="A1" t="inlineStr"><is><t>t</t></is></c><c r="K1" t="inlineStr"><is><t>x</t></is></c>'
    )
    # then it is refused for its real width
    with pytest.raises(ImportFileError, match="11 columns"):
        SpreadsheetXLSX().create_dataset(lying)


@pytest.mark.parametrize(
    ("limit", "value", "message"),
    [
        ("MARKETPLACE_IMPORT_MAX_ROWS", 2, "rows"),
        ("MARKETPLACE_IMPORT_MAX_CELLS", 10, "cells"),
        ("MARKETPLACE_IMPORT_MAX_UNZIPPED_BYTES", 1_000, "unpacks to"),
    ],
)
def test_import_xlsx_over_a_limit_is_refused_with_a_message(client, lead, catalogue, settings, limit, value, message):
    setattr(settings, limit, value)
    rows = [["title", "partner", "owner", "category", "price"]] + [
        [f"Clean {i}", "acme", "owner@acme.test", "cleaning", 10] for i in range(5)
    ]
    client.force_login(lead)
    response = upload(client, xlsx_of(rows), fmt=XLSX, name="rows.xlsx")
    assert response.status_code == 200
    assert message in refusal(response)
    assert Listing.objects.count() == 0


def test_import_xlsx_within_limits_still_reads(client, lead, catalogue):
    rows = [
        ["title", "partner", "owner", "category", "price"],
        ["Deep clean", "acme", "owner@acme.test", "cleaning", 80],
    ]
    client.force_login(lead)
    response = upload(client, xlsx_of(rows), fmt=XLSX, name="rows.xlsx")
    assert not response.context["result"].has_errors()
    assert not response.context["result"].has_validation_errors()


@pytest.mark.parametrize("char", ["\x07", "\x00", "\x1b", "\x7f"])
def test_import_control_character_is_a_row_error_naming_row_and_column(client, lead, catalogue, char):
    # given a CSV whose second data row has a control character in its title
    body = (
        LISTING_HEADER
        + "Window cleaning,acme,owner@acme.test,cleaning,45.50,EUR,service,\n"
        + f"Oven{char}cleaning,acme,owner@acme.test,cleaning,60,EUR,service,\n"
    )
    client.force_login(lead)
    # when it is previewed
    response = upload(client, body.encode(), fmt=CSV, name="rows.csv")
    # then row 3's title is named, and nothing is written
    result = response.context["result"]
    assert result.has_validation_errors()
    (invalid,) = result.invalid_rows
    assert invalid.number == 3
    assert f"control character (U+{ord(char):04X})" in str(invalid.error_dict["title"])
    assert Listing.objects.count() == 0


def test_export_xlsx_of_a_title_with_a_control_character_works(client, make_staff):
    # given a listing whose title holds \x07, written straight to the database
    partner = PartnerFactory(slug="own")
    listing = ListingFactory(partner=partner, title="Bell")
    Listing.objects.filter(pk=listing.pk).update(title="Bell\x07ringer")
    agent = make_staff("Operations agent")
    partner_scope_grant(partner=partner, grantee=agent)
    client.force_login(agent)
    # when the listings are exported as XLSX
    response = client.post(reverse("admin:catalog_listing_export"), {"format": XLSX, "resource": "0"})
    # then the file is written, the character removed
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    titles = [
        row[list(sheet.iter_rows(max_row=1, values_only=True))[0].index("title")]
        for row in sheet.iter_rows(min_row=2, values_only=True)
    ]
    assert titles == ["Bellringer"]
