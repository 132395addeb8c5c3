"""The one fee definition: price x commission, half up to the cent; the provider's share is the rest."""

from decimal import Decimal

import pytest

from marketplace.core.exceptions import InvalidInput
from marketplace.core.money import currency_check, fee_and_share, quantize

D = Decimal


@pytest.mark.parametrize(
    ("amount", "rate", "fee", "share"),
    [
        # worked by hand: amount x rate, then half up at the third decimal
        ("100.00", "0.1500", "15.00", "85.00"),
        ("1.00", "0.1250", "0.13", "0.87"),  # 0.125 -> 0.13 (half even would give 0.12)
        ("0.10", "0.1500", "0.02", "0.08"),  # 0.015 -> 0.02 (half even: 0.02 too)
        ("0.30", "0.0500", "0.02", "0.28"),  # 0.015 -> 0.02
        ("10.50", "0.1250", "1.31", "9.19"),  # 1.3125 -> 1.31 (below the half: down)
        ("2.50", "0.0500", "0.13", "2.37"),  # 0.125 -> 0.13
        ("59.99", "0.1500", "9.00", "50.99"),  # 8.9985 -> 9.00
        ("0.05", "0.1000", "0.01", "0.04"),  # 0.005 -> 0.01
        ("1000.00", "0.0000", "0.00", "1000.00"),
        ("1000.00", "1.0000", "1000.00", "0.00"),
    ],
)
def test_fee_and_share_rounds_half_up_and_sums_to_the_price(amount, rate, fee, share):
    got = fee_and_share(D(amount), D(rate))
    assert got == (D(fee), D(share))
    assert got[0] + got[1] == D(amount)


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        quantize(0.1)


def test_currency_check_accepts_the_allow_list_only(settings):
    settings.MARKETPLACE_CURRENCIES = ("EUR", "USD", "GBP")
    assert currency_check(" usd ") == "USD"
    with pytest.raises(InvalidInput, match="not accepted"):
        currency_check("XYZ")
    with pytest.raises(InvalidInput):
        currency_check("")
