"""JSON forms of the adapter DTOs for the IB gateway bridge. Plain Python, no ib_async.

Both sides of the loopback bridge use these: the gateway worker (``brokers.ibkr.bridge``) and
the adapter in web, Celery and feed processes (``brokers.adapters.ibkr``). Decimals travel as
strings and are read back with ``Decimal``; datetimes as ISO 8601.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from brokers.domain.adapter import (
    AccountInfo,
    BrokerOrderRequest,
    BrokerOrderState,
    BrokerOrderStatus,
    BrokerOrderUpdate,
    BrokerPosition,
    FillReport,
    OrderChange,
    Quote,
    UpdateKind,
)
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce


def dec_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _req(value: Any) -> Decimal:
    parsed = dec(value)
    if parsed is None:
        raise ValueError("a required number is missing")
    return parsed


def request_to_json(r: BrokerOrderRequest) -> dict[str, Any]:
    return {
        "client_order_id": r.client_order_id,
        "symbol": r.symbol,
        "asset_class": r.asset_class.value,
        "side": r.side.value,
        "order_type": r.order_type.value,
        "quantity": dec_text(r.quantity),
        "time_in_force": r.time_in_force.value,
        "price": dec_text(r.price),
        "stop_price": dec_text(r.stop_price),
        "trail_amount": dec_text(r.trail_amount),
        "trail_percent": dec_text(r.trail_percent),
    }


def request_from_json(d: dict[str, Any]) -> BrokerOrderRequest:
    return BrokerOrderRequest(
        client_order_id=str(d["client_order_id"]),
        symbol=str(d["symbol"]),
        asset_class=AssetClass(d["asset_class"]),
        side=Side(d["side"]),
        order_type=OrderType(d["order_type"]),
        quantity=_req(d["quantity"]),
        time_in_force=TimeInForce(d["time_in_force"]),
        price=dec(d.get("price")),
        stop_price=dec(d.get("stop_price")),
        trail_amount=dec(d.get("trail_amount")),
        trail_percent=dec(d.get("trail_percent")),
    )


def change_to_json(c: OrderChange) -> dict[str, Any]:
    return {
        "quantity": dec_text(c.quantity),
        "price": dec_text(c.price),
        "stop_price": dec_text(c.stop_price),
        "trail_amount": dec_text(c.trail_amount),
        "trail_percent": dec_text(c.trail_percent),
        "time_in_force": None if c.time_in_force is None else c.time_in_force.value,
    }


def change_from_json(d: dict[str, Any]) -> OrderChange:
    tif = d.get("time_in_force")
    return OrderChange(
        quantity=dec(d.get("quantity")),
        price=dec(d.get("price")),
        stop_price=dec(d.get("stop_price")),
        trail_amount=dec(d.get("trail_amount")),
        trail_percent=dec(d.get("trail_percent")),
        time_in_force=None if tif is None else TimeInForce(tif),
    )


def fill_to_json(f: FillReport) -> dict[str, Any]:
    return {
        "broker_fill_id": f.broker_fill_id,
        "quantity": dec_text(f.quantity),
        "price": dec_text(f.price),
        "fee": dec_text(f.fee),
        "liquidity": f.liquidity,
    }


def fill_from_json(d: dict[str, Any]) -> FillReport:
    return FillReport(
        broker_fill_id=str(d["broker_fill_id"]),
        quantity=_req(d["quantity"]),
        price=_req(d["price"]),
        fee=_req(d["fee"]),
        liquidity=str(d.get("liquidity") or "TAKER"),
    )


def update_to_json(u: BrokerOrderUpdate) -> dict[str, Any]:
    return {
        "kind": u.kind.value,
        "client_order_id": u.client_order_id,
        "broker_order_id": u.broker_order_id,
        "occurred_at": u.occurred_at.isoformat(),
        "fill": None if u.fill is None else fill_to_json(u.fill),
        "reason": u.reason,
        "change": None if u.change is None else change_to_json(u.change),
    }


def update_from_json(d: dict[str, Any]) -> BrokerOrderUpdate:
    return BrokerOrderUpdate(
        kind=UpdateKind(d["kind"]),
        client_order_id=str(d["client_order_id"]),
        broker_order_id=str(d["broker_order_id"]),
        occurred_at=dt.datetime.fromisoformat(d["occurred_at"]),
        fill=None if d.get("fill") is None else fill_from_json(d["fill"]),
        reason=str(d.get("reason") or ""),
        change=None if d.get("change") is None else change_from_json(d["change"]),
    )


def state_to_json(s: BrokerOrderState) -> dict[str, Any]:
    return {
        "client_order_id": s.client_order_id,
        "broker_order_id": s.broker_order_id,
        "symbol": s.symbol,
        "side": s.side.value,
        "status": s.status.value,
        "quantity": dec_text(s.quantity),
        "filled_quantity": dec_text(s.filled_quantity),
        "average_fill_price": dec_text(s.average_fill_price),
        "fills": [fill_to_json(f) for f in s.fills],
    }


def state_from_json(d: dict[str, Any]) -> BrokerOrderState:
    return BrokerOrderState(
        client_order_id=str(d["client_order_id"]),
        broker_order_id=str(d["broker_order_id"]),
        symbol=str(d["symbol"]),
        side=Side(d["side"]),
        status=BrokerOrderStatus(d["status"]),
        quantity=_req(d["quantity"]),
        filled_quantity=_req(d["filled_quantity"]),
        average_fill_price=dec(d.get("average_fill_price")),
        fills=tuple(fill_from_json(f) for f in d.get("fills", ())),
    )


def position_to_json(p: BrokerPosition) -> dict[str, Any]:
    return {"symbol": p.symbol, "quantity": dec_text(p.quantity), "average_cost": dec_text(p.average_cost)}


def position_from_json(d: dict[str, Any]) -> BrokerPosition:
    return BrokerPosition(str(d["symbol"]), _req(d["quantity"]), _req(d["average_cost"]))


def account_to_json(a: AccountInfo) -> dict[str, Any]:
    return {
        "cash": dec_text(a.cash),
        "buying_power": dec_text(a.buying_power),
        "total_value": dec_text(a.total_value),
    }


def account_from_json(d: dict[str, Any]) -> AccountInfo:
    return AccountInfo(_req(d["cash"]), _req(d["buying_power"]), _req(d["total_value"]))


def quote_to_json(q: Quote) -> dict[str, Any]:
    return {
        "symbol": q.symbol,
        "bid": dec_text(q.bid),
        "ask": dec_text(q.ask),
        "bid_size": dec_text(q.bid_size),
        "ask_size": dec_text(q.ask_size),
        "last": dec_text(q.last),
        "at": q.at.isoformat(),
    }


def quote_from_json(d: dict[str, Any]) -> Quote:
    return Quote(
        symbol=str(d["symbol"]),
        bid=_req(d["bid"]),
        ask=_req(d["ask"]),
        bid_size=_req(d["bid_size"]),
        ask_size=_req(d["ask_size"]),
        last=_req(d["last"]),
        at=dt.datetime.fromisoformat(d["at"]),
    )
