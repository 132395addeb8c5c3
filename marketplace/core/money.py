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


def split(amount: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """Split `amount` into (amount * rate, remainder), both to the cent, summing exactly to `amount`."""
    part = quantize(amount * rate)
    return part, amount - part


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
