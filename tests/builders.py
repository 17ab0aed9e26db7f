"""Builders for domain values used across tests."""

from __future__ import annotations

from decimal import Decimal

from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest


def order_request(
    symbol: str = "AAPL",
    side: Side | str = Side.BUY,
    order_type: OrderType | str = OrderType.MARKET,
    quantity: str | Decimal = "10",
    time_in_force: TimeInForce | str = TimeInForce.DAY,
    **prices: str | None,
) -> OrderRequest:
    def dec(v: str | Decimal | None) -> Decimal | None:
        return None if v is None else Decimal(v)

    client_order_id = prices.pop("client_order_id", None)
    return OrderRequest(
        symbol=symbol,
        side=Side(side),
        order_type=OrderType(order_type),
        quantity=Decimal(quantity),
        time_in_force=TimeInForce(time_in_force),
        price=dec(prices.get("price")),
        stop_price=dec(prices.get("stop_price")),
        trail_amount=dec(prices.get("trail_amount")),
        trail_percent=dec(prices.get("trail_percent")),
        client_order_id=client_order_id,
    )
