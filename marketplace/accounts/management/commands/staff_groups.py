from django.core.management.base import BaseCommand

from marketplace.accounts.services import staff_groups_ensure


class Command(BaseCommand):
    help = "Create or update the staff groups and their model permissions (idempotent)."

    def handle(self, *args, **options):
        groups = staff_groups_ensure()
        for name, group in groups.items():
            self.stdout.write(f"{name}: {group.permissions.count()} permissions")
