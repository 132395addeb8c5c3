"""Publish the contact page under the default site's root (idempotent)."""

from django.core.management.base import BaseCommand

from cms.services import contact_page_ensure


class Command(BaseCommand):
    help = "Publish a contact page whose submissions are emailed (through the outbox) to --to."

    def add_arguments(self, parser):
        parser.add_argument("--to", default="support@marketplace.local", help="Comma-separated recipients.")

    def handle(self, *args, **options):
        page, created = contact_page_ensure(to_address=options["to"])
        verb = "Published" if created else "Already there:"
        self.stdout.write(f"{verb} {page.title} at {page.full_url or page.url}")
