"""`manage.py load_demo_data`: the curated demo, or with `--scale N` a bulk load of N bookings."""

import logging
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketplace.core.money import quantize
from marketplace.demo.demo import FIXTURES_DIR, MARKER_EMAIL, DemoLoadError, demo_load
from marketplace.demo.generator import DEFAULT_BATCH_SIZE, DEFAULT_SEED, ScaleError, scale_load
from marketplace.demo.summary import summary_lines


class Command(BaseCommand):
    help = (
        "Load the curated demo from fixtures/ through the services (once; a second run changes nothing), "
        "or with --scale N generate N bookings and everything they need through the bulk path."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            type=int,
            metavar="N",
            help="Generate N bookings with proportional users, partners, listings, payments and ledger "
            "entries (COPY on PostgreSQL, batched inserts on SQLite). Can be run more than once.",
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Seed of the --scale generator.")
        parser.add_argument(
            "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="Rows per COPY or INSERT batch (--scale)."
        )
        parser.add_argument(
            "--run-label",
            default=None,
            help="Prefix of the emails and slugs of a --scale run (default: derived from the time).",
        )
        parser.add_argument("--fixtures", type=Path, default=FIXTURES_DIR, help="Directory of NN_*.toml fixtures.")
        parser.add_argument(
            "--i-know-this-is-production",
            action="store_true",
            dest="production_confirmed",
            help="Load into a production deployment anyway (its demo accounts share a public password).",
        )

    def handle(self, *args, **options):
        if running_in_production() and not options["production_confirmed"]:
            raise CommandError(
                f"Refusing to load demo data into production (settings {settings.SETTINGS_MODULE}, "
                f"DJANGO_ENVIRONMENT {settings.ENVIRONMENT_NAME!r}): it creates a superuser and staff "
                "accounts whose password, demo12345, is public. Pass --i-know-this-is-production to do it anyway."
            )
        if options["scale"] is not None:
            self._scale(options)
        else:
            self._curated(options)

    def _curated(self, options):
        self.stdout.write(f"Loading the curated demo from {options['fixtures']} through the services…")
        try:
            with _quiet("django-q"):
                result = demo_load(fixtures_dir=options["fixtures"], log=self.stdout.write)
        except DemoLoadError as exc:
            raise CommandError(str(exc)) from exc
        if not result.loaded:
            self.stdout.write(
                self.style.WARNING(f"The demo is already loaded ({MARKER_EMAIL} exists): nothing changed.")
            )
            return
        for line in summary_lines(result.summary):
            self.stdout.write(line)
        for currency, figures in result.reconciliation.totals.items():
            totals = {name: quantize(value) for name, value in figures.items()}
            self.stdout.write(
                self.style.SUCCESS(
                    f"Ledger reconciled ({currency}): payments {{payments}}, refunds {{refunds}}, payouts {{payouts}}, "
                    "provider payable {provider_payable}, platform revenue {platform_revenue}, cash {cash}.".format(
                        **totals
                    )
                )
            )
        self.stdout.write("Demo accounts (password: see fixtures/01_staff.toml, 'demo12345'):")
        width = max(len(email) for email, _ in result.accounts) + 2
        for email, role in result.accounts:
            self.stdout.write(f"  {email:<{width}}{role}")
        if settings.MARKETPLACE_DEMO_TOTP_SECRET:
            self.stdout.write(
                "The superuser, leads and Finance then enter a code from an authenticator holding "
                "MARKETPLACE_DEMO_TOTP_SECRET; `manage.py demo_totp_code` prints the current one."
            )
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))

    def _scale(self, options):
        try:
            report = scale_load(
                n=options["scale"],
                seed=options["seed"],
                batch_size=options["batch_size"],
                run_label=options["run_label"],
                log=self.stdout.write,
            )
        except ScaleError as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(report.timing_line()))


def running_in_production() -> bool:
    """Production settings (config.settings.production), or DJANGO_ENVIRONMENT=production elsewhere."""
    return (settings.SETTINGS_MODULE or "").endswith(".production") or settings.ENVIRONMENT_NAME.lower() == "production"


@contextmanager
def _quiet(logger_name: str):
    """Hold back a chatty logger's INFO lines (django-q logs every email it enqueues) for a while."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
