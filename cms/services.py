"""Writes made by the marketing site: contact form emails go through the marketplace outbox."""

import hashlib
import uuid

from django.conf import settings
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
