"""Print the demo accounts' current second-factor code (development only)."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP

from marketplace.accounts.second_factor import secret_hex
from marketplace.core.exceptions import InvalidInput


class Command(BaseCommand):
    help = (
        "Print the current 6-digit code for MARKETPLACE_DEMO_TOTP_SECRET, the authenticator that "
        "load_demo_data gives the demo superuser, leads and Finance (development settings only)."
    )

    def handle(self, *args, **options):
        secret = settings.MARKETPLACE_DEMO_TOTP_SECRET
        if not secret:
            raise CommandError("MARKETPLACE_DEMO_TOTP_SECRET is not set: these settings have no demo authenticator.")
        try:
            key = bytes.fromhex(secret_hex(secret))
        except InvalidInput as exc:
            raise CommandError(f"MARKETPLACE_DEMO_TOTP_SECRET: {exc.message}") from exc
        totp = TOTP(key)
        now = time.time()
        totp.time = now
        left = 30 - int(now) % 30
        self.stdout.write(f"{totp.token():06d}")
        self.stderr.write(f"(valid for {left} more seconds; each code signs in once)")
