from django.core.management.base import BaseCommand

from marketplace.core.schedules import schedules_sync


class Command(BaseCommand):
    help = "Register the periodic django-q2 schedules (marketplace/core/schedules.py). Safe to run on every deploy."

    def handle(self, *args, **options):
        result = schedules_sync()
        for verb in ("created", "updated", "deleted"):
            for name in getattr(result, verb):
                self.stdout.write(f"{verb}: {name}")
        self.stdout.write(
            self.style.SUCCESS(
                f"schedules: {len(result.created)} created, {len(result.updated)} updated, "
                f"{len(result.deleted)} deleted, {len(result.unchanged)} unchanged"
            )
        )
