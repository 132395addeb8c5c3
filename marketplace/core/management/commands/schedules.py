from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from marketplace.core.schedules import SCHEDULES, schedules_sync


class Command(BaseCommand):
    help = (
        "Register the periodic django-q2 schedules (marketplace/core/schedules.py). Safe to run on every deploy. "
        "With --run-now, also run each scheduled task once, here and now (what the tasks queue still goes to the broker)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run-now", action="store_true", help="run every scheduled task once in this process")

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
        if options["run_now"]:
            for spec in SCHEDULES:
                outcome = import_string(spec.func)()
                self.stdout.write(f"ran {spec.name}: {outcome}")
