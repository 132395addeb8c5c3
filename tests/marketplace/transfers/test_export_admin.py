"""Exports through the admin: the user's scope and filters only, audited, safe to open in a spreadsheet."""

import csv
import io
from decimal import Decimal

import openpyxl
import pytest
from django.urls import reverse

from marketplace.audit.models import Event
from marketplace.partners.services import partner_scope_grant
from marketplace.transfers.exporting import neutralise
from tests.factories import ListingFactory, PartnerFactory
from tests.factories.flows import booking_in

pytestmark = pytest.mark.django_db

CSV, XLSX = "0", "1"


def export(client, model: str, query: str = "", fmt: str = CSV):
    url = reverse(f"admin:{model}_export") + (f"?{query}" if query else "")
    return client.post(url, {"format": fmt, "resource": "0"})


def rows_of(response) -> list[dict]:
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff"), "Excel needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))


@pytest.fixture
def agent_with_partner(make_staff):
    own, other = PartnerFactory(slug="own"), PartnerFactory(slug="other")
    agent = make_staff("Operations agent")
    partner_scope_grant(partner=own, grantee=agent)
    return agent, own, other


def test_listing_export_holds_only_the_agents_partner_and_is_audited(client, agent_with_partner):
    agent, own, other = agent_with_partner
    mine = ListingFactory(partner=own, title="Mine", price=Decimal("12.50"))
    ListingFactory(partner=other, title="Theirs")
    client.force_login(agent)
    response = export(client, "catalog_listing")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="Listing-')
    rows = rows_of(response)
    assert [r["id"] for r in rows] == [str(mine.pk)]
    assert rows[0]["partner"] == "own" and rows[0]["price"] == "12.50"
    event = Event.objects.get(verb="export")
    assert event.actor == agent
    assert event.data == {"model": "catalog.listing", "rows": 1, "format": "csv", "filters": ""}


def test_booking_export_follows_the_changelist_filters(client, agent_with_partner):
    agent, own, _ = agent_with_partner
    accepted = booking_in("accepted", listing__partner=own)
    booking_in("requested", listing__partner=own)
    client.force_login(agent)
    rows = rows_of(export(client, "bookings_booking", "status__exact=accepted"))
    assert [r["id"] for r in rows] == [str(accepted.pk)]
    assert Event.objects.get(verb="export").data["filters"] == "status__exact=accepted"


def test_export_neutralises_formulas_but_keeps_numbers(client, agent_with_partner):
    agent, own, _ = agent_with_partner
    ListingFactory(partner=own, title='=HYPERLINK("http://evil.test","x")')
    ListingFactory(partner=own, title="@SUM(A1)")
    ListingFactory(partner=own, title="+1-555-0100")
    client.force_login(agent)
    titles = sorted(r["title"] for r in rows_of(export(client, "catalog_listing")))
    assert titles == ["'+1-555-0100", '\'=HYPERLINK("http://evil.test","x")', "'@SUM(A1)"]
    assert neutralise("-12.50") == "-12.50"
    assert neutralise("-cmd") == "'-cmd"
    assert neutralise(Decimal("-3")) == Decimal("-3")


def test_export_xlsx_has_native_numbers_and_neutralised_text(client, agent_with_partner):
    agent, own, _ = agent_with_partner
    ListingFactory(partner=own, title="=1+1", price=Decimal("7.25"))
    client.force_login(agent)
    response = export(client, "catalog_listing", fmt=XLSX)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    header = [c.value for c in sheet[1]]
    row = dict(zip(header, [c.value for c in sheet[2]], strict=True))
    assert row["title"] == "'=1+1"
    assert row["price"] == 7.25


def test_export_forbidden_without_export_permission(client, make_staff):
    client.force_login(make_staff("Support"))
    assert client.get(reverse("admin:bookings_booking_export")).status_code == 403
    assert not Event.objects.filter(verb="export").exists()


def test_large_export_runs_as_a_job_with_a_download_only_for_its_author(
    client, agent_with_partner, make_staff, settings, django_capture_on_commit_callbacks
):
    settings.MARKETPLACE_EXPORT_INLINE_MAX_ROWS = 2
    agent, own, other = agent_with_partner
    for i in range(3):
        ListingFactory(partner=own, title=f"Own {i}")
    ListingFactory(partner=other, title="Not yours")
    client.force_login(agent)
    with django_capture_on_commit_callbacks(execute=True):  # the task runs inline (sync) on commit
        response = export(client, "catalog_listing")
    assert response.status_code == 302
    job_page = client.get(response["Location"])
    assert job_page.status_code == 200
    job = job_page.context["job"]
    assert job.status == "done" and job.processed == 3 and job.total == 3
    assert "Download" in job_page.content.decode()
    download = client.get(reverse("admin:transfers_job_download", args=[job.pk]))
    body = b"".join(download.streaming_content).decode("utf-8")
    titles = sorted(r["title"] for r in csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))
    assert titles == ["Own 0", "Own 1", "Own 2"]
    assert Event.objects.get(verb="export").data["rows"] == 3
    # another agent cannot see or download it
    client.force_login(make_staff("Operations agent"))
    assert client.get(reverse("admin:transfers_transferjob_change", args=[job.pk])).status_code == 404
    assert client.get(reverse("admin:transfers_job_download", args=[job.pk])).status_code == 404


def test_export_shows_on_the_exporters_timeline(client, agent_with_partner, make_staff):
    agent, own, _ = agent_with_partner
    ListingFactory(partner=own)
    client.force_login(agent)
    export(client, "catalog_listing", "status__exact=draft")
    client.force_login(make_staff("Operations lead"))
    page = client.get(reverse("admin:accounts_user_change", args=[agent.pk]))
    timeline = page.context["timeline"]
    assert [entry.title for entry in timeline] == ["export"]
    html = page.content.decode()
    assert "1 rows of catalog.listing as csv, filtered by status__exact=draft" in html


def test_partner_timeline_shows_scope_grants_and_takes_notes(client, make_staff):
    partner = PartnerFactory()
    lead = make_staff("Operations lead")
    agent = make_staff("Operations agent")
    partner_scope_grant(partner=partner, grantee=agent, actor=lead)
    client.force_login(lead)
    page = client.get(reverse("admin:partners_partner_change", args=[partner.pk]))
    assert [(e.title, e.actor) for e in page.context["timeline"]] == [("scope.granted", lead)]
    client.post(reverse("admin:partners_partner_note_add", args=[partner.pk]), {"body": "Onboarded by phone."})
    page = client.get(reverse("admin:partners_partner_change", args=[partner.pk]))
    assert [e.title for e in page.context["timeline"]] == ["Note", "scope.granted"]
