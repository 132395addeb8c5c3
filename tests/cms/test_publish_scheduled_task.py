"""`cms.tasks.publish_scheduled` delivered twice: a scheduled revision goes live once."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from wagtail.coreutils import get_supported_content_language_variant
from wagtail.models import Locale, Page, PageLogEntry, Site

from cms import tasks
from cms.models import ContactPage
from tests.processes import run_in_processes


def _scheduled_page() -> ContactPage:
    """A live contact page with a newer revision approved to go live a minute ago."""
    # a transactional test's flush may have removed Wagtail's initial locale
    Locale.objects.get_or_create(language_code=get_supported_content_language_variant(settings.LANGUAGE_CODE))
    site = Site.objects.filter(is_default_site=True).select_related("root_page").first()
    if site is None:
        root = Page.get_first_root_node() or Page.add_root(instance=Page(title="Root", slug="root"))
        home = root.add_child(instance=Page(title="Home", slug="home"))
        site = Site.objects.create(hostname="localhost", port=80, root_page=home, is_default_site=True)
    page = site.root_page.add_child(
        instance=ContactPage(title="Contact", slug="contact-scheduled", to_address="team@marketplace.test")
    )
    page.title = "Contact us (new)"
    revision = page.save_revision()
    revision.approved_go_live_at = timezone.now() - timedelta(minutes=1)
    revision.save(update_fields=["approved_go_live_at"])
    return page


def _publishes(page) -> int:
    """How many times the page went live: Wagtail logs a scheduled go-live as its own action."""
    return PageLogEntry.objects.filter(page=page, action="wagtail.publish.scheduled").count()


@pytest.mark.django_db
def test_publish_scheduled_twice_in_a_row_publishes_once():
    page = _scheduled_page()
    before = _publishes(page)
    assert before == 0

    tasks.publish_scheduled()
    tasks.publish_scheduled()

    page.refresh_from_db()
    assert page.title == "Contact us (new)" and page.live
    assert _publishes(page) == before + 1


@pytest.mark.django_db(transaction=True)
def test_publish_scheduled_twice_at_once_from_two_processes_publishes_once():
    page = _scheduled_page()
    before = _publishes(page)

    outcomes = run_in_processes(tasks.publish_scheduled, tasks.publish_scheduled)

    assert outcomes.all_ok()
    page.refresh_from_db()
    assert page.title == "Contact us (new)" and page.live
    assert _publishes(page) == before + 1
