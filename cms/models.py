"""Wagtail page models of the marketing site."""

import datetime

from django.db import models, transaction
from django.utils.formats import date_format
from modelcluster.fields import ParentalKey
from wagtail.admin.panels import FieldPanel, FieldRowPanel, InlinePanel, MultiFieldPanel
from wagtail.contrib.forms.models import AbstractEmailForm, AbstractFormField, EmailFormMixin
from wagtail.contrib.forms.panels import FormSubmissionsPanel
from wagtail.fields import RichTextField

from cms.services import form_submission_email_queue


class ContactFormField(AbstractFormField):
    """One field of a contact page's form, edited inline on the page."""

    page = ParentalKey("ContactPage", on_delete=models.CASCADE, related_name="form_fields")


class ContactPage(AbstractEmailForm):
    """A contact form. Each submission is stored, then emailed through the outbox by a task.

    Wagtail's email form would send inside the request; here `send_mail` only writes one outbox row
    per recipient, sent once the submission has committed.
    """

    intro = RichTextField(blank=True)
    thank_you_text = RichTextField(blank=True)

    content_panels = AbstractEmailForm.content_panels + [
        FormSubmissionsPanel(),
        FieldPanel("intro"),
        InlinePanel("form_fields", label="Form fields"),
        FieldPanel("thank_you_text"),
        MultiFieldPanel(
            [
                FieldRowPanel([FieldPanel("from_address"), FieldPanel("to_address")]),
                FieldPanel("subject"),
            ],
            heading="Email",
        ),
    ]

    # Under the tree root or the default site root (both plain pages) until a home page type exists.
    parent_page_types = ["wagtailcore.Page"]
    subpage_types: list[str] = []
    template = "cms/contact_page.html"
    landing_page_template = "cms/contact_page_landing.html"

    class Meta:
        verbose_name = "contact page"

    def process_form_submission(self, form):
        """Store the submission and queue its emails in one transaction."""
        with transaction.atomic():
            # FormMixin's version: EmailFormMixin's would call send_mail before we know the submission.
            submission = super(EmailFormMixin, self).process_form_submission(form)
            if self.to_address:
                self.send_mail(form, submission=submission)
        return submission

    def send_mail(self, form, submission=None):
        """Queue one outbox email per `to_address` recipient instead of sending now.

        Wagtail calls `send_mail(form)`; the submission, when given, keys the rows, so calling it
        again for the same submission writes nothing new.
        """
        addresses = [address.strip() for address in self.to_address.split(",") if address.strip()]
        return form_submission_email_queue(
            page=self,
            submission=submission,
            addresses=addresses,
            fields=self.email_fields(form),
            reply_to=self.reply_to_address(form),
        )

    def email_fields(self, form) -> list[list[str]]:
        """The submitted fields as [label, value] pairs, formatted as Wagtail's own email does."""
        rows = []
        for field in form:
            if field.name not in form.cleaned_data:
                continue
            value = form.cleaned_data[field.name]
            if isinstance(value, list):
                value = ", ".join(str(item) for item in value)
            elif isinstance(value, datetime.datetime):
                value = date_format(value, "SHORT_DATETIME_FORMAT")
            elif isinstance(value, datetime.date):
                value = date_format(value, "SHORT_DATE_FORMAT")
            rows.append([str(field.label), "" if value is None else str(value)])
        return rows

    def reply_to_address(self, form) -> str:
        """The first email field of the form, so a reply goes to the person who wrote."""
        for field in self.get_form_fields():
            if field.field_type == "email":
                value = form.cleaned_data.get(field.clean_name)
                if value:
                    return value
        return ""
