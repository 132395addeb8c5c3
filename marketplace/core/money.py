"""Money helpers. Amounts are Decimal with two places and a currency code; never float."""

from decimal import ROUND_HALF_UP, Decimal

from django.db import models

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

AMOUNT_DIGITS = 14
AMOUNT_PLACES = 2


def quantize(value) -> Decimal:
    """Round to the cent, half up, the way a receipt does."""
    if isinstance(value, float):
        raise TypeError("Money is never a float; pass a Decimal or a string.")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def fee_and_share(amount: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """Split a booking's price into (platform fee, provider share): the one definition.

    The fee is `amount * rate` rounded half up to the cent (0.125 -> 0.13); the provider's share is
    the rest, so the two always sum to `amount` exactly. Bookings store the fee when they are made
    (`Booking.platform_fee`); every later figure (the payable, refunds' split, the payout run's SQL,
    previews, the demo data) starts from that stored fee, never from a rate again.
    """
    amount = quantize(amount)
    fee = quantize(amount * Decimal(rate))
    return fee, amount - fee


def currency_check(code: str) -> str:
    """Return `code` if it is in the allow-list (MARKETPLACE_CURRENCIES), else raise InvalidInput."""
    from django.conf import settings

    from marketplace.core.exceptions import InvalidInput

    code = (code or "").strip().upper()
    if code not in settings.MARKETPLACE_CURRENCIES:
        raise InvalidInput(
            f"Currency {code or '(none)'!r} is not accepted here; use one of {', '.join(settings.MARKETPLACE_CURRENCIES)}."
        )
    return code


def threshold(name: str, currency: str) -> Decimal:
    """The money threshold `name` (a per-currency setting, e.g. MARKETPLACE_PAYOUT_APPROVAL_ABOVE) in `currency`.

    Settings refuse to start without a value for every allowed currency, so a missing one here is
    a currency that is not allowed at all.
    """
    from django.conf import settings

    values = getattr(settings, name)
    try:
        return values[currency]
    except KeyError:
        raise KeyError(f"{name} has no threshold for {currency!r}: not in MARKETPLACE_CURRENCIES") from None


class AmountField(models.DecimalField):
    """A money amount: 14 digits, 2 places."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", AMOUNT_DIGITS)
        kwargs.setdefault("decimal_places", AMOUNT_PLACES)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        path = "django.db.models.DecimalField"
        return name, path, args, kwargs


class CurrencyField(models.CharField):
    """An ISO 4217 currency code."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("default", "EUR")
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        path = "django.db.models.CharField"
        return name, path, args, kwargs
