"""Import cells: how each kind of cell is parsed and checked, and the one definition of the control
characters no cell may hold (imports refuse them with the row and column; exports strip them).

Each parser takes a non-empty cell (a str from CSV, a str/number/bool from XLSX) and returns the
value to store, or raises CellError with a message for the person who made the file.
"""

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from marketplace.core.exceptions import InvalidInput
from marketplace.core.money import currency_check

# C0 control characters except tab, newline and carriage return, and DEL: no spreadsheet cell or
# XML document may hold them, and PostgreSQL refuses NUL in text.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_character(value) -> str | None:
    """The first control character in a text cell, written as U+XXXX, or None."""
    if isinstance(value, str) and (match := CONTROL_CHARACTERS.search(value)):
        return f"U+{ord(match[0]):04X}"
    return None


class CellError(ValueError):
    """A cell's value is not acceptable; the message is for the person who made the file."""


# --- Parsers: each takes a non-empty cell (a str from CSV, a str/number/bool from XLSX) -----------


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # XLSX stores 42 as 42.0
    return str(value).strip()


def text(max_length: int) -> Callable[[Any], str]:
    def parse(value):
        value = _text(value)
        if len(value) > max_length:
            raise CellError(f"At most {max_length} characters (this one has {len(value)}).")
        return value

    return parse


_SLUG = re.compile(r"^[-a-zA-Z0-9_]+\Z")  # Django's validate_slug, without its lazy wrapper per call


def slug(max_length: int) -> Callable[[Any], str]:
    def parse(value):
        value = _text(value)
        if not _SLUG.match(value):
            raise CellError(f"'{value}' is not a slug: letters, digits, hyphens and underscores only.")
        if len(value) > max_length:
            raise CellError(f"At most {max_length} characters.")
        return value

    return parse


def email(value) -> str:
    value = _text(value).lower()
    try:
        validate_email(value)
    except ValidationError:
        raise CellError(f"'{value}' is not an email address.") from None
    return value


def decimal(*, max_digits: int, places: int, minimum: Decimal | None = None, maximum: Decimal | None = None):
    limit = Decimal(10) ** (max_digits - places)

    def parse(value):
        if isinstance(value, bool):
            raise CellError("Expected a number.")
        raw = repr(value) if isinstance(value, float) else _text(value).replace("\u00a0", "").replace(" ", "")
        if isinstance(value, str) and "," in raw:
            # A decimal comma (1234,50) or a thousands separator (1,234.50): only the first is accepted,
            # because "1,234" would be ambiguous.
            if "." in raw or raw.count(",") > 1:
                raise CellError(f"'{value}' is ambiguous: write 1234.50, without thousands separators.")
            raw = raw.replace(",", ".")
        try:
            number = Decimal(raw)
        except InvalidOperation:
            raise CellError(f"'{value}' is not a number.") from None
        if not number.is_finite():
            raise CellError(f"'{value}' is not a number.")
        if number != number.quantize(Decimal(1).scaleb(-places)):
            raise CellError(f"At most {places} decimal places ('{value}').")
        number = number.quantize(Decimal(1).scaleb(-places))
        if abs(number) >= limit:
            raise CellError(f"'{value}' is too large.")
        if minimum is not None and number < minimum:
            raise CellError(f"Must be at least {minimum}.")
        if maximum is not None and number > maximum:
            raise CellError(f"Must be at most {maximum}.")
        return number

    return parse


def choice(choices, *, allowed=None) -> Callable[[Any], str]:
    """A value of a TextChoices, given as its value or its label, in any case."""
    options = {}
    for value, label in choices.choices:
        if allowed is None or value in allowed:
            options[str(value).lower()] = value
            options[str(label).lower()] = value
    shown = ", ".join(v for v, _ in choices.choices if allowed is None or v in allowed)

    def parse(value):
        key = _text(value).lower()
        if key not in options:
            raise CellError(f"'{_text(value)}' is not one of: {shown}.")
        return options[key]

    return parse


_TRUE = {"1", "true", "yes", "y", "x"}
_FALSE = {"0", "false", "no", "n"}


def boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    key = _text(value).lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise CellError(f"'{_text(value)}' is not yes or no.")


_CURRENCY = re.compile(r"^[A-Z]{3}$")


def currency(value) -> str:
    """A currency of the allow-list (MARKETPLACE_CURRENCIES), in any case: the same rule as every door."""
    code = _text(value).upper()
    if not _CURRENCY.match(code):
        raise CellError(f"'{_text(value)}' is not a three-letter currency code.")
    try:
        return currency_check(code)
    except InvalidInput as exc:
        raise CellError(exc.message) from None
