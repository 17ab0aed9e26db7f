"""Which order closes or reduces a position (orders.domain.closing)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from orders.domain.closing import ClosingError, ClosingOrder, closing_order
from orders.domain.enums import Side


@pytest.mark.parametrize(
    ("position", "reduce_by", "expected"),
    [
        (D(10), None, ClosingOrder(Side.SELL, D(10))),  # close a long: sell it all
        (D(-3), None, ClosingOrder(Side.BUY, D(3))),  # close a short: buy it back
        (D("0.5"), None, ClosingOrder(Side.SELL, D("0.5"))),
        (D(10), D(4), ClosingOrder(Side.SELL, D(4))),  # reduce a long
        (D(10), D(10), ClosingOrder(Side.SELL, D(10))),  # reducing by all of it closes it
        (D(-3), D("1.5"), ClosingOrder(Side.BUY, D("1.5"))),  # reduce a short
    ],
)
def test_closing_order(position, reduce_by, expected):
    assert closing_order(position, reduce_by) == expected


@pytest.mark.parametrize(
    ("position", "reduce_by", "message"),
    [
        (D(0), None, "There is no position to close."),
        (D(10), D(0), "Must be more than zero."),
        (D(10), D(-1), "Must be more than zero."),
        (D(10), D("10.00000001"), "Must be at most the position, 10."),
        (D(-3), D(4), "Must be at most the position, 3."),
        (D(10), D("NaN"), "Enter a number."),
    ],
)
def test_bad_requests_are_refused_with_a_reason(position, reduce_by, message):
    with pytest.raises(ClosingError) as excinfo:
        closing_order(position, reduce_by)
    assert str(excinfo.value) == message


def test_a_float_position_is_a_programming_error():
    with pytest.raises(TypeError):
        closing_order(10.0)  # type: ignore[arg-type]
