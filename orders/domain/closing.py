"""Which order closes or reduces a position. Plain Python: no Django, no I/O.

A long position is closed by selling, a short one by buying back; the quantity is the whole
position for a close, or the amount asked for a reduce (more than zero, at most the position).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders.domain.enums import Side


@dataclass(frozen=True, slots=True)
class ClosingOrder:
    side: Side
    quantity: Decimal  # > 0


class ClosingError(ValueError):
    """The position cannot be closed or reduced as asked; the message is for the person."""


def closing_order(position_quantity: Decimal, reduce_by: Decimal | None = None) -> ClosingOrder:
    """The order that closes ``position_quantity`` (signed: > 0 long, < 0 short), or reduces it
    by ``reduce_by`` when given. Raises ClosingError when the position is flat or ``reduce_by``
    is not more than zero and at most the size of the position."""
    if not isinstance(position_quantity, Decimal) or not position_quantity.is_finite():
        raise TypeError(f"position_quantity must be a finite Decimal, got {position_quantity!r}.")
    if position_quantity == 0:
        raise ClosingError("There is no position to close.")
    size = abs(position_quantity)
    side = Side.SELL if position_quantity > 0 else Side.BUY
    if reduce_by is None:
        return ClosingOrder(side, size)
    if not isinstance(reduce_by, Decimal) or not reduce_by.is_finite():
        raise ClosingError("Enter a number.")
    if reduce_by <= 0:
        raise ClosingError("Must be more than zero.")
    if reduce_by > size:
        raise ClosingError(f"Must be at most the position, {size.normalize():f}.")
    return ClosingOrder(side, reduce_by)
