"""Validation of an order request, per order type. Plain Python.

The request arrives already parsed into Decimals (the API refuses floats before this point);
these rules are the ones every entry point shares: API, web form, MCP tool, Kafka signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce

MAX_DECIMALS = 8
# DECIMAL(18,8): ten digits before the point
MAX_QUANTITY = Decimal("9999999999.99999999")
MAX_PRICE = Decimal("9999999999.99999999")
MAX_TRAIL_PERCENT = Decimal("50")
PERCENT_DECIMALS = 4  # DECIMAL(10,4)

EQUITY_SYMBOL = re.compile(r"^[A-Z]{1,5}([.][A-Z]{1,2})?$")
CRYPTO_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}/[A-Z]{3,5}$")
CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


def asset_class_of(symbol: str) -> AssetClass | None:
    if CRYPTO_SYMBOL.fullmatch(symbol):
        return AssetClass.CRYPTO
    if EQUITY_SYMBOL.fullmatch(symbol):
        return AssetClass.EQUITY
    return None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    time_in_force: TimeInForce = TimeInForce.DAY
    price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    client_order_id: str | None = None


FieldErrors = dict[str, list[str]]


def decimals_of(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_amount(
    errors: FieldErrors, field: str, value: Decimal, maximum: Decimal, places: int = MAX_DECIMALS
) -> None:
    if not value.is_finite():
        errors.setdefault(field, []).append("Must be a finite number.")
        return
    if value <= 0:
        errors.setdefault(field, []).append("Must be greater than zero.")
    if value > maximum:
        errors.setdefault(field, []).append(f"Must be at most {maximum}.")
    if decimals_of(value) > places:
        errors.setdefault(field, []).append(f"At most {places} decimal places are allowed.")


_REQUIRES: dict[OrderType, tuple[str, ...]] = {
    OrderType.MARKET: (),
    OrderType.LIMIT: ("price",),
    OrderType.STOP: ("stop_price",),
    OrderType.STOP_LIMIT: ("price", "stop_price"),
    OrderType.TRAILING_STOP: (),
}
_PRICE_FIELDS = ("price", "stop_price", "trail_amount", "trail_percent")


def validate_order_request(req: OrderRequest) -> FieldErrors:
    """Return every problem with the request, keyed by field; empty when it is valid."""
    errors: FieldErrors = {}
    if asset_class_of(req.symbol) is None:
        errors["symbol"] = [
            "Unknown symbol format: use an equity ticker such as AAPL or BRK.B, "
            "or a crypto pair such as BTC/USD."
        ]
    _check_amount(errors, "quantity", req.quantity, MAX_QUANTITY)

    required = _REQUIRES[req.order_type]
    allowed = set(required)
    if req.order_type is OrderType.TRAILING_STOP:
        allowed |= {"trail_amount", "trail_percent"}
        if (req.trail_amount is None) == (req.trail_percent is None):
            errors.setdefault("trail_amount", []).append(
                "A trailing stop needs exactly one of trail_amount or trail_percent."
            )
    for field in required:
        if getattr(req, field) is None:
            errors.setdefault(field, []).append(f"Required for {req.order_type} orders.")
    for field in _PRICE_FIELDS:
        value = getattr(req, field)
        if value is None:
            continue
        if field not in allowed:
            errors.setdefault(field, []).append(f"Not allowed for {req.order_type} orders.")
            continue
        if field == "trail_percent":
            _check_amount(errors, field, value, MAX_TRAIL_PERCENT, places=PERCENT_DECIMALS)
        else:
            _check_amount(errors, field, value, MAX_PRICE)

    if req.order_type is OrderType.TRAILING_STOP and req.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
        errors.setdefault("time_in_force", []).append("Trailing stops rest on the book: use DAY or GTC.")
    if req.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and req.time_in_force in (
        TimeInForce.IOC,
        TimeInForce.FOK,
    ):
        errors.setdefault("time_in_force", []).append("Stop orders rest until triggered: use DAY or GTC.")
    if req.client_order_id is not None and not CLIENT_ORDER_ID.fullmatch(req.client_order_id):
        errors["client_order_id"] = ["1 to 64 characters: letters, digits and . _ : - only."]
    return errors
