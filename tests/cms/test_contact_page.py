"""The contact page: submissions are stored and emailed through the outbox, never in the request."""

from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core import mail
from django.core.management import call_command
from wagtail.contrib.forms.models import FormSubmission
from wagtail.coreutils import get_supported_content_language_variant
from wagtail.models import Locale, Page, Site

from cms.models import ContactFormField, ContactPage
from marketplace.notifications.models import EmailOutbox

pytestmark = pytest.mark.django_db

S = EmailOutbox.Status
VISITOR = {"your_name": "Ann O'Brien", "your_email": "ann@example.test", "message": "Do you cover Leeds?\nThanks"}


@pytest.fixture
def site_root():
    """The default site's root page (Wagtail's initial data), made again if a flush removed it."""
    # a transactional test's flush may have removed Wagtail's initial locale
    Locale.objects.get_or_create(language_code=get_supported_content_language_variant(settings.LANGUAGE_CODE))
    site = Site.objects.filter(is_default_site=True).select_related("root_page").first()
    if site is None:
        root = Page.get_first_root_node() or Page.add_root(instance=Page(title="Root", slug="root"))
        home = root.add_child(instance=Page(title="Home", slug="home"))
        site = Site.objects.create(hostname="localhost", port=80, root_page=home, is_default_site=True)
    return site.root_page


@pytest.fixture
def make_contact_page(site_root):
    def make(to_address="team@marketplace.test", **fields) -> ContactPage:
        page = ContactPage(
            title="Contact us",
            slug="contact",
            intro="<p>Questions about the marketplace? Write to us.</p>",
            thank_you_text="<p>Thanks, we will answer within a day.</p>",
            to_address=to_address,
            from_address="website@marketplace.test",
            subject="Website enquiry",
            form_fields=[
                ContactFormField(label="Your name", field_type="singleline", required=True),
                ContactFormField(label="Your email", field_type="email", required=True),
                ContactFormField(label="Message", field_type="multiline", required=True),
            ],
            **fields,
        )
        site_root.add_child(instance=page)
        return page

    return make


def test_contact_page_can_be_created_under_the_default_site_root(site_root):
    assert ContactPage.can_create_at(site_root)
    assert ContactPage.can_exist_under(site_root)


def test_contact_page_shows_its_form(client, make_contact_page):
    page = make_contact_page()
    response = client.get(page.url)
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "cms/contact_page.html"
    content = response.content.decode()
    assert "Questions about the marketplace?" in content
    assert 'name="your_email"' in content and 'name="message"' in content


def test_contact_form_post_stores_the_submission_and_emails_it_after_the_request(
    client, make_contact_page, django_capture_on_commit_callbacks
):
    # given a published contact page that emails one address
    page = make_contact_page()

    # when a visitor posts the form; what runs on commit is held back until the request is over
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(page.url, VISITOR)

    # then the landing page answered, the submission is stored and one email is queued, unsent
    assert response.status_code == 200
    assert "cms/contact_page_landing.html" in [t.name for t in response.templates]
    assert "we will answer within a day" in response.content.decode()
    submission = FormSubmission.objects.get(page=page)
    assert submission.get_data()["your_email"] == "ann@example.test"
    outbox = EmailOutbox.objects.get(template="cms/email/form_submission")
    assert (outbox.to, outbox.status, outbox.reply_to) == ("team@marketplace.test", S.PENDING, "ann@example.test")
    assert str(submission.pk) in outbox.dedupe_key
    assert mail.outbox == [], "the request itself must not send email"
    assert len(callbacks) == 1

    # when the transaction's on-commit work runs (it enqueues email_send; tests run tasks inline)
    callbacks[0]()

    # then exactly one email went out, with text and HTML parts, replying to the visitor
    [message] = mail.outbox
    assert message.to == ["team@marketplace.test"]
    assert message.from_email == "website@marketplace.test" and message.reply_to == ["ann@example.test"]
    assert message.subject == "Website enquiry"
    assert "Your name: Ann O'Brien" in message.body and "Do you cover Leeds?\nThanks" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "Ann O&#x27;Brien" in html and "Do you cover Leeds?<br>Thanks" in html
    assert f"/cms/forms/submissions/{page.pk}/" in html
    outbox.refresh_from_db()
    assert outbox.status == S.SENT


def test_contact_form_emails_each_recipient_once_even_when_queued_again(make_contact_page):
    # given a page with two recipients (one repeated) and a stored submission
    page = make_contact_page(to_address="team@marketplace.test, sales@marketplace.test,team@marketplace.test")
    form = page.get_form(VISITOR, page=page, user=AnonymousUser())
    assert form.is_valid()
    submission = page.process_form_submission(form)

    # when its emails are queued again (a rerun)
    created_again = page.send_mail(form, submission=submission)

    # then there is one row per recipient, from the first time only
    assert created_again == 0
    assert sorted(EmailOutbox.objects.values_list("to", flat=True)) == [
        "sales@marketplace.test",
        "team@marketplace.test",
    ]


def test_contact_form_invalid_post_stores_and_queues_nothing(client, make_contact_page):
    page = make_contact_page()
    response = client.post(page.url, {**VISITOR, "your_email": "not an address"})
    assert response.status_code == 200
    assert "cms/contact_page.html" in [t.name for t in response.templates]
    assert not FormSubmission.objects.exists() and not EmailOutbox.objects.exists()


def test_contact_form_without_recipients_only_stores_the_submission(client, make_contact_page):
    page = make_contact_page(to_address="")
    client.post(page.url, VISITOR)
    assert FormSubmission.objects.filter(page=page).count() == 1
    assert not EmailOutbox.objects.exists()


def test_cms_contact_page_command_publishes_the_page_once(site_root, client):
    # given / when the command runs twice
    out = StringIO()
    call_command("cms_contact_page", "--to", "help@marketplace.test", stdout=out)
    call_command("cms_contact_page", "--to", "help@marketplace.test", stdout=out)

    # then one live page, whose form is served
    page = ContactPage.objects.child_of(site_root).get(slug="contact")
    assert ContactPage.objects.count() == 1 and page.live and page.to_address == "help@marketplace.test"
    assert "Published" in out.getvalue() and "Already there" in out.getvalue()
    assert 'name="topic"' in client.get(page.url).content.decode()


def test_contact_page_can_be_added_and_edited_in_the_wagtail_admin(client, site_root, make_contact_page):
    from tests.factories import StaffFactory

    client.force_login(StaffFactory(is_superuser=True))
    add = client.get(f"/cms/pages/add/cms/contactpage/{site_root.pk}/")
    assert add.status_code == 200 and 'name="to_address"' in add.content.decode()
    page = make_contact_page()
    edit = client.get(f"/cms/pages/{page.pk}/edit/")
    assert edit.status_code == 200 and "Form fields" in edit.content.decode()
