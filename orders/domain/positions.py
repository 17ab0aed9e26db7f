"""Position accounting with the average-cost method. Plain Python: no Django, no I/O, no clock.

Every amount is a ``decimal.Decimal`` and keeps full precision: nothing here quantizes (the database
layer rounds to 8 places). Additions, subtractions and multiplications of the stored amounts are
exact; the one division, the weighted average when a position grows, is rounded to the precision of
the active decimal context (28 significant digits by default) when its result does not terminate.

Sign convention: ``quantity`` > 0 is long, < 0 is short, 0 is flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders.domain.enums import Side

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PositionState:
    quantity: Decimal = ZERO  # signed: > 0 long, < 0 short
    average_cost: Decimal = ZERO  # average price of the open quantity, fees excluded; 0 when flat
    realized_pnl: Decimal = ZERO  # gross of fees
    total_fees: Decimal = ZERO  # every fee paid on this position


@dataclass(frozen=True, slots=True)
class Valuation:
    market_value: Decimal  # quantity * price (negative for shorts)
    unrealized_pnl: Decimal  # (price - average_cost) * quantity


def _require_decimal(name: str, value: object) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__}.")
    if not value.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value}.")
    return value


def _require_positive(name: str, value: object) -> Decimal:
    amount = _require_decimal(name, value)
    if amount <= 0:
        raise ValueError(f"{name} must be greater than zero, got {amount}.")
    return amount


def apply_fill(
    state: PositionState,
    *,
    side: Side,
    quantity: Decimal,
    price: Decimal,
    fee: Decimal = ZERO,
) -> PositionState:
    """Return the position after one fill; ``state`` itself is never changed.

    Raises ValueError when quantity or price is not > 0, or fee is negative (or any is not finite),
    and TypeError when one of them is not a Decimal (floats are refused, never converted).
    """
    if not isinstance(side, Side):
        raise TypeError(f"side must be a Side, got {type(side).__name__}.")
    quantity = _require_positive("quantity", quantity)
    price = _require_positive("price", price)
    fee = _require_decimal("fee", fee)
    if fee < 0:
        raise ValueError(f"fee must not be negative, got {fee}.")

    total_fees = state.total_fees + fee
    old_quantity = state.quantity
    signed_fill = side.sign * quantity

    # Flat, or same direction as the open position: grow it at the weighted average cost.
    if old_quantity == 0 or (old_quantity > 0) == (side.sign > 0):
        new_quantity = old_quantity + signed_fill
        if old_quantity == 0:
            average_cost = price
        else:
            cost = state.average_cost * abs(old_quantity) + price * quantity
            average_cost = cost / abs(new_quantity)
        return PositionState(
            quantity=new_quantity,
            average_cost=average_cost,
            realized_pnl=state.realized_pnl,
            total_fees=total_fees,
        )

    # Against the position: close up to its size, realizing P&L at the unchanged average cost.
    old_sign = 1 if old_quantity > 0 else -1
    open_size = abs(old_quantity)
    closed = min(quantity, open_size)
    realized_pnl = state.realized_pnl + (price - state.average_cost) * closed * old_sign

    if quantity < open_size:  # partial reduce
        new_quantity = old_quantity + signed_fill
        average_cost = state.average_cost
    elif quantity == open_size:  # exactly flat
        new_quantity = ZERO
        average_cost = ZERO
    else:  # flip: the remainder opens a position on the other side at the fill price
        new_quantity = side.sign * (quantity - open_size)
        average_cost = price
    return PositionState(
        quantity=new_quantity,
        average_cost=average_cost,
        realized_pnl=realized_pnl,
        total_fees=total_fees,
    )


def mark(state: PositionState, price: Decimal) -> Valuation:
    """Value the open position at ``price`` (must be a finite Decimal > 0)."""
    price = _require_positive("price", price)
    return Valuation(
        market_value=state.quantity * price,
        unrealized_pnl=(price - state.average_cost) * state.quantity,
    )


def net_realized(state: PositionState) -> Decimal:
    """Realized P&L net of every fee paid."""
    return state.realized_pnl - state.total_fees


@dataclass(frozen=True, slots=True)
class BrokerLeg:
    broker_id: int
    quantity: Decimal
    average_cost: Decimal
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class AggregatePosition:
    """One symbol netted across brokers, e.g. AAPL +300 = A +200, B +150, C -50."""

    symbol: str
    quantity: Decimal
    average_cost: Decimal  # net cost basis / net quantity; 0 when flat
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    legs: tuple[BrokerLeg, ...]


def aggregate(symbol: str, legs: list[BrokerLeg]) -> AggregatePosition:
    quantity = sum((leg.quantity for leg in legs), Decimal(0))
    cost = sum((leg.quantity * leg.average_cost for leg in legs), Decimal(0))
    return AggregatePosition(
        symbol=symbol,
        quantity=quantity,
        average_cost=cost / quantity if quantity else Decimal(0),
        market_value=sum((leg.market_value for leg in legs), Decimal(0)),
        unrealized_pnl=sum((leg.unrealized_pnl for leg in legs), Decimal(0)),
        realized_pnl=sum((leg.realized_pnl for leg in legs), Decimal(0)),
        legs=tuple(legs),
    )
