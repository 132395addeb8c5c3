"""In the browser: the operations admin, the CMS and the public site run under the
Content-Security-Policy without a single violation (Chromium reports each one as a console error
and as a `securitypolicyviolation` event; both are collected across every page)."""

import pytest
from django.conf import settings
from wagtail.coreutils import get_supported_content_language_variant
from wagtail.models import GroupPagePermission, Locale, Page, Site

from cms.models import ContactFormField, ContactPage
from marketplace.accounts.services import StaffGroup
from marketplace.catalog.models import Listing
from marketplace.transfers.models import TransferJob
from tests.factories import PartnerFactory
from tests.factories.settlement import staff
from tests.factories.states import listing_in

pytestmark = pytest.mark.django_db(transaction=True)

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`);
});
"""


def _site_root() -> Page:
    """The default site's root page, made again if an earlier transactional test's flush removed it."""
    Locale.objects.get_or_create(language_code=get_supported_content_language_variant(settings.LANGUAGE_CODE))
    site = Site.objects.filter(is_default_site=True).select_related("root_page").first()
    if site is None:
        root = Page.get_first_root_node() or Page.add_root(instance=Page(title="Root", slug="root"))
        home = root.add_child(instance=Page(title="Home", slug="home"))
        site = Site.objects.create(hostname="localhost", port=80, root_page=home, is_default_site=True)
    return site.root_page


@pytest.fixture
def violations(page):
    """Every CSP violation the browser reports, on any page the test opens."""
    found: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            found.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text or "CSP violation" in message.text
            else None
        ),
    )
    return found


def _visit(page, path: str, name: str):
    response = page.goto(path)
    page.wait_for_load_state("networkidle")
    assert response.status == 200, f"{path} answered {response.status}"
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "object-src 'none'" in policy, f"{path}: {policy!r}"
    page.shot(name)
    return response


def test_admin_cms_and_public_site_run_without_csp_violations(page, admin_login, violations):
    own = PartnerFactory(name="Own Gardens")
    listing = listing_in(Listing.Status.PENDING_REVIEW, partner=own, title="Hedge trimming, same week")
    agent = staff(StaffGroup.OPERATIONS_AGENT, scope=own)
    home = _site_root()
    contact = ContactPage(
        title="Contact us",
        slug="contact",
        intro="<p>Questions? Write to us.</p>",
        thank_you_text="<p>Thanks.</p>",
        to_address="team@marketplace.test",
        from_address="website@marketplace.test",
        subject="Website enquiry",
        form_fields=[ContactFormField(label="Your name", field_type="singleline", required=True)],
    )
    home.add_child(instance=contact)
    contact.save_revision().publish()
    editor = staff(StaffGroup.CONTENT_EDITOR)
    for permission in ("add_page", "change_page", "publish_page"):
        GroupPagePermission.objects.get_or_create(group=editor.groups.get(), page=home, permission=_perm(permission))

    # the operations admin
    admin_login(agent)
    _visit(page, "/admin/", "admin-index")
    _visit(page, "/admin/catalog/listing/?status__exact=pending_review&q=Hedge", "changelist-filtered")
    assert listing.title in page.inner_text("body")
    _visit(page, f"/admin/catalog/listing/{listing.pk}/change/", "change-form")
    # a running export's page reloads itself through our one inline script (it carries the nonce)
    job = TransferJob.objects.create(kind="export", resource="catalog.listing", resource_path="x", actor=agent)
    _visit(page, f"/admin/transfers/transferjob/{job.pk}/change/", "export-job")
    with page.expect_navigation(timeout=5_000):  # the reload ran
        pass

    # the CMS: dashboard and the page editor
    page.context.clear_cookies()
    editor.set_password("browser-test-pass-1")
    editor.save(update_fields=["password"])
    page.goto("/cms/login/")
    page.fill("input[name=username]", editor.email)
    page.fill("input[name=password]", "browser-test-pass-1")
    with page.expect_navigation():
        page.press("input[name=password]", "Enter")
    _visit(page, "/cms/", "cms-dashboard")
    _visit(page, f"/cms/pages/{contact.pk}/edit/", "cms-page-editor")
    page.fill("input[name=title]", "Contact the team")

    # the public site
    page.context.clear_cookies()
    _visit(page, "/", "public-home")
    _visit(page, contact.url, "public-contact")

    assert violations == [], "\n".join(violations)


def _perm(codename: str):
    from django.contrib.auth.models import Permission

    return Permission.objects.get(content_type__app_label="wagtailcore", codename=codename)
