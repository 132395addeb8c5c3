"""Writes made by the marketing site: contact form emails go through the marketplace outbox."""

import hashlib
import uuid

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from marketplace.notifications.services import email_queue

FORM_SUBMISSION_TEMPLATE = "cms/email/form_submission"


def form_submission_email_queue(
    *, page, submission, addresses: list[str], fields: list[list[str]], reply_to: str = ""
) -> int:
    """Queue one outbox email per recipient of a form page's submission; return how many are new.

    The rows are sent by a task after the caller's transaction commits, never in the request. Their
    dedupe keys come from the submission and the address, so queuing the same submission again
    writes nothing. Without a submission (a direct `send_mail(form)` call) each call is new.
    """
    subject = page.subject or f"New submission on “{page.title}”"
    submitted_at = submission.submit_time if submission is not None else None
    context = {
        "title": subject,
        "page_title": page.title,
        "fields": fields,
        "submitted_at": submitted_at.isoformat() if submitted_at else "",
        "url": settings.WAGTAILADMIN_BASE_URL.rstrip("/") + reverse("wagtailforms:list_submissions", args=[page.pk]),
    }
    source = f"submission:{submission.pk}" if submission is not None else f"call:{uuid.uuid4().hex}"
    created = 0
    for address in dict.fromkeys(addresses):
        digest = hashlib.sha256(address.lower().encode()).hexdigest()[:24]
        _, new = email_queue(
            to=address,
            template=FORM_SUBMISSION_TEMPLATE,
            subject=subject,
            context=context,
            dedupe_key=f"cms-form:{page.pk}:{source}:{digest}",
            from_email=page.from_address,
            reply_to=reply_to,
        )
        created += new
    return created


def contact_page_ensure(*, to_address: str, title: str = "Contact us", slug: str = "contact"):
    """Publish a contact page with a name/email/message form under the default site's root, once.

    Returns (page, created). A second call finds the page by its slug under that root and changes nothing.
    """
    from wagtail.models import Site

    from cms.models import ContactFormField, ContactPage

    site = Site.objects.select_related("root_page").get(is_default_site=True)
    root = site.root_page
    existing = ContactPage.objects.child_of(root).filter(slug=slug).first()
    if existing is not None:
        return existing, False
    page = ContactPage(
        title=title,
        slug=slug,
        intro="<p>Questions about bookings, payouts or listing on the marketplace? Write to us.</p>",
        thank_you_text="<p>Thank you. We answer within one working day.</p>",
        to_address=to_address,
        subject="Website enquiry",
        form_fields=[
            ContactFormField(label="Your name", field_type="singleline", required=True),
            ContactFormField(label="Your email", field_type="email", required=True),
            ContactFormField(
                label="Topic",
                field_type="dropdown",
                choices="Booking\nPayout\nListing\nOther",
                required=True,
            ),
            ContactFormField(label="Message", field_type="multiline", required=True),
        ],
    )
    with transaction.atomic():
        root.add_child(instance=page)
    return page, True
