"""The operations sidebar: sections by work, scoped and capped badges, entries by permission."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboards import sidebar
from marketplace.accounts.services import StaffGroup
from marketplace.catalog.models import Listing
from tests.factories import PartnerFactory
from tests.factories.settlement import staff
from tests.factories.states import listing_in

pytestmark = pytest.mark.django_db
SECTIONS = [
    "Moderation queue",
    "Bookings",
    "Disputes",
    "Payouts",
    "Partners",
    "People",
    "Catalogue",
    "Content",
    "Tasks",
    "Audit",
]


def _sidebar_badge(html: str, title: str) -> str | None:
    """The badge text of a sidebar entry (unfold renders it as a `sidebar-badge` span after the title)."""
    at = html.find(title)
    match = re.search(r'class="sidebar-badge[^"]*"[^>]*>\s*([0-9]+\+?)\s*<', html[at : at + 3000])
    return match.group(1) if at >= 0 and match else None


def test_superuser_sees_every_section_and_every_link_works(client, django_user_model):
    root = django_user_model.objects.create_superuser(email="root@example.com", password="x")
    client.force_login(root)
    html = client.get(reverse("admin:index")).content.decode()
    for section in SECTIONS:
        assert section in html, section
    for href in set(re.findall(r'href="(/admin/[^"#]*)"', html)):
        assert client.get(href.replace("&amp;", "&")).status_code == 200, href


def test_agent_badge_counts_only_their_partners_queue(client):
    own, other = PartnerFactory(), PartnerFactory()
    for _ in range(2):
        listing_in(Listing.Status.PENDING_REVIEW, partner=own)
    for _ in range(3):
        listing_in(Listing.Status.PENDING_REVIEW, partner=other)
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=own)

    class Request:
        user = agent

    assert sidebar.listings_to_review(Request) == "2"
    client.force_login(agent)
    html = client.get(reverse("admin:index")).content.decode()
    assert _sidebar_badge(html, "Waiting for review") == "2"
    assert "Failed tasks" not in html  # the task pages are for superusers
    assert "Audit log" not in html  # the whole audit log is for unscoped staff
    assert "Sign-in attempts" not in html  # lockouts are for leads and superusers


def test_lead_finds_sign_in_attempts_under_people(client):
    client.force_login(staff(StaffGroup.OPERATIONS_LEAD))
    html = client.get(reverse("admin:index")).content.decode()
    assert "Sign-in attempts" in html
    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 200


def test_partner_manager_finds_api_keys_under_partners_and_an_agent_does_not(client):
    partner = PartnerFactory()
    client.force_login(staff(StaffGroup.PARTNER_MANAGER, scope=partner))
    html = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:partners_partnerapikey_changelist") in html
    client.force_login(staff(StaffGroup.OPERATIONS_AGENT, scope=partner))
    html = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:partners_partnerapikey_changelist") not in html


def test_badges_are_capped_and_each_is_one_query(client, monkeypatch):
    monkeypatch.setattr(sidebar, "BADGE_CAP", 3)
    partner = PartnerFactory()
    for _ in range(4):
        listing_in(Listing.Status.PENDING_REVIEW, partner=partner)
    lead = staff(StaffGroup.OPERATIONS_LEAD)

    class Request:
        user = lead

    with CaptureQueriesContext(connection) as ctx:
        badge = sidebar.listings_to_review(Request)
    assert badge == "2+"
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"]]
    assert len(counts) == 1 and "LIMIT 3" in counts[0]
