import pytest
from django.core import mail

from marketplace.notifications.models import EmailOutbox
from marketplace.notifications.services import (
    email_message_build,
    email_send,
    email_template_candidates,
    notify,
)
from tests.factories import ClientFactory, ListingFactory, StaffFactory


def test_email_template_candidates_go_from_the_verb_to_the_family_to_the_default():
    assert email_template_candidates("notifications/email/listing.reject") == [
        "notifications/email/listing.reject",
        "notifications/email/listing",
        "notifications/email/default",
    ]
    assert email_template_candidates("notifications/email/booking.accept_reminder") == [
        "notifications/email/booking.accept_reminder",
        "notifications/email/reminder",
        "notifications/email/booking",
        "notifications/email/default",
    ]
    assert email_template_candidates("cms/email/form_submission") == [
        "cms/email/form_submission",
        "notifications/email/default",
    ]


# verb -> a phrase only that family's templates (text and HTML) hold
FAMILIES = [
    ("booking.accept", "You receive this email because you take part in this booking."),
    ("dispute.opened", "Disputes have deadlines"),
    ("payout.mark_paid", "You receive this email as an owner of the partner account."),
    ("listing.reject", "Listings are reviewed against the marketplace guidelines"),
    ("booking.accept_reminder", "A deadline is coming up."),
    ("dispute.sla_reminder", "A deadline is coming up."),
    ("account.verify_email", "You receive this email because of your account on Marketplace."),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("verb", "phrase"), FAMILIES, ids=[verb for verb, _ in FAMILIES])
def test_email_renders_text_and_html_from_the_family_template(verb, phrase):
    # given a notification whose text needs escaping in HTML only
    user = ClientFactory(full_name="Ann O'Brien")
    notify(user=user, verb=verb, title="Smith & Sons <Ltd>", body="Line one\nLine two")
    outbox = EmailOutbox.objects.get(to=user.email)

    # when the message is built
    message = email_message_build(outbox)

    # then the text part is plain text and the HTML part a whole escaped document, both from the family
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "Smith & Sons <Ltd>" in message.body and "Line one\nLine two" in message.body
    assert "Hello Ann" in message.body and "&amp;" not in message.body and "&#x27;" not in message.body
    assert html.lstrip().startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "Smith &amp; Sons &lt;Ltd&gt;" in html and "Line one<br>Line two" in html
    assert 'style="' in html
    assert phrase in html
    if verb != "account.verify_email":
        assert phrase in message.body


@pytest.mark.django_db
def test_email_links_staff_to_the_admin_page_of_the_target():
    # given a staff member told about a listing, and its owner told too
    staff = StaffFactory()
    listing = ListingFactory()
    notify(user=staff, verb="listing.submit", title="A listing waits for review", target=listing)
    notify(user=listing.owner, verb="listing.submit", title="Your listing is in review", target=listing)

    # when both are sent
    for outbox in EmailOutbox.objects.order_by("pk"):
        assert email_send(outbox_id=outbox.pk)

    # then the staff email links to the listing's admin page; the owner's has no admin link
    staff_mail, owner_mail = mail.outbox
    link = f"/admin/catalog/listing/{listing.pk}/change/"
    assert link in staff_mail.body and 'href="http://' in staff_mail.alternatives[0][0]
    assert link in staff_mail.alternatives[0][0] and "View the listing" in staff_mail.alternatives[0][0]
    assert "/admin/" not in owner_mail.body and "<a href" not in owner_mail.alternatives[0][0]


@pytest.mark.django_db
def test_email_of_an_unknown_family_falls_back_to_the_default_templates():
    user = ClientFactory()
    notify(user=user, verb="message.received", title="You have a new message", body="Hi!")
    message = email_message_build(EmailOutbox.objects.get(to=user.email))
    assert "You have a new message" in message.body and "-- The Marketplace team" in message.body
    assert "You have a new message" in message.alternatives[0][0]
