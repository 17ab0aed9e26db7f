"""Parent orders: an order worked through child orders (TWAP, VWAP, or a split across venues).

A parent never goes to a broker itself. It is created PENDING, passes a parent-level check (the
trading state and restricted symbols; each child then passes the full pre-trade check), and is
ACCEPTED while ``routing.algos`` releases its children. Its filled quantity, average price and
commission are the sums of its children's, recomputed under the parent's lock whenever a child
changes (lock order: the child, then its parent). It closes:

* FILLED when the children filled its whole quantity;
* CANCELLED once cancelled and none of its children is open any more;
* EXPIRED when the schedule has released everything it will and no child is open, but part of
  the quantity never filled (children rejected, limit price never reached, window ended).

Every change writes an OrderEvent and an outbox event (ORDER_UPDATED), like any order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from orders.domain.enums import OPEN_STATUSES, TERMINAL_STATUSES, OrderStatus
from orders.domain.state import OrderEventType, Progress, apply
from orders.domain.validation import OrderRequest
from orders.models import Fill, Order
from orders.services import SYSTEM, Actor, _lock, _record, _transition
from risk.domain.context import TradingState
from risk.services import risk_profile_get

Q8 = Decimal("0.00000001")
Q4 = Decimal("0.0001")
_OPEN = [s.value for s in OPEN_STATUSES]


def parent_create(
    *, user, request: OrderRequest, asset_class: str, algo: str, actor: Actor, data: dict[str, Any]
) -> Order:
    """Create a parent order and accept it, or reject it with the reason (caller's transaction)."""
    order = Order.objects.create(
        user=user,
        broker=None,
        algo=algo,
        client_order_id=request.client_order_id,
        symbol=request.symbol,
        asset_class=asset_class,
        order_type=request.order_type.value,
        side=request.side.value,
        quantity=request.quantity,
        price=request.price,
        time_in_force=request.time_in_force.value,
        status=OrderStatus.PENDING.value,
    )
    _record(
        order, event_type="CREATED", actor=actor, outbox_type="ORDER_CREATED", data={"algo": algo, **data}
    )
    profile = risk_profile_get(user=user)
    refusal = ""
    if profile.trading_state == TradingState.HALTED:
        refusal = "Trading is halted for this account (HALTED)."
    elif request.symbol in (profile.restricted_symbols or []):
        refusal = f"{request.symbol} is a restricted symbol (RESTRICTED_SYMBOL)."
    if refusal:
        _transition(order, OrderEventType.REJECT, actor=SYSTEM, reason=refusal)
        return order
    order.submitted_at = timezone.now()
    _transition(order, OrderEventType.SUBMIT, actor=actor, fields=("submitted_at",))
    _transition(order, OrderEventType.ACCEPT, actor=SYSTEM, reason=f"{algo} working")
    return order


def _q(quantity: Decimal) -> str:
    """A quantity as a trader writes it: 300, 0.25 (not 300.00000000)."""
    return f"{quantity.normalize():f}"


def children_open(parent_id: int) -> bool:
    return Order.objects.filter(parent_id=parent_id, status__in=_OPEN).exists()


def parent_refresh(parent_id: int) -> Order:
    """Aggregate the children into the parent and close it when it is done (caller's transaction)."""
    from routing.algos import algo_more_to_release  # routing knows the schedule

    parent = _lock(parent_id)
    # from the fills themselves, in Python: the average is exact (not re-using the children's
    # rounded averages) and SQLite would sum the products as floats
    fills = list(Fill.objects.filter(order__parent_id=parent_id).values_list("quantity", "price", "fee"))
    filled = sum((q for q, _, _ in fills), Decimal(0))
    totals = {
        "notional": sum((q * p for q, p, _ in fills), Decimal(0)),
        "commission": sum((f for _, _, f in fills), Decimal(0)),
    }
    status = OrderStatus(parent.status)
    # a quantity cut to exactly what has filled (algo_modify) completes it with no new fill
    working = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
    completed = status in working and 0 < filled == parent.quantity
    changed = filled != parent.filled_quantity and status not in (OrderStatus.FILLED, OrderStatus.REJECTED)
    if changed or completed:
        before = parent.status
        parent.filled_quantity = filled
        parent.average_fill_price = (Decimal(totals["notional"]) / filled).quantize(Q8)
        parent.commission = Decimal(totals["commission"] or 0).quantize(Q4)
        parent.status = apply(
            status,
            OrderEventType.FILL,
            Progress(filled=True, complete=filled == parent.quantity),
        ).value
        fields = ["status", "filled_quantity", "average_fill_price", "commission", "updated_at"]
        if parent.status == OrderStatus.FILLED.value:
            parent.filled_at = timezone.now()
            fields.append("filled_at")
        parent.save(update_fields=fields)
        _record(
            parent,
            event_type="FILL",
            actor=SYSTEM,
            from_status=before,
            data={"filled_quantity": filled, "average_fill_price": parent.average_fill_price},
        )
        status = OrderStatus(parent.status)
    if status in TERMINAL_STATUSES or children_open(parent_id) or algo_more_to_release(parent_id):
        return parent
    if status is OrderStatus.PENDING_CANCEL:
        parent.cancelled_at = timezone.now()
        _transition(
            parent,
            OrderEventType.CANCEL,
            actor=SYSTEM,
            reason=f"cancelled with {_q(parent.filled_quantity)} of {_q(parent.quantity)} filled",
            fields=("cancelled_at",),
        )
    elif parent.filled_quantity < parent.quantity and children_exist(parent_id):
        _transition(
            parent,
            OrderEventType.EXPIRE,
            actor=SYSTEM,
            reason=(
                f"schedule ended with {_q(parent.quantity - parent.filled_quantity)} of "
                f"{_q(parent.quantity)} unfilled (see the children for why)"
            ),
        )
    return parent


def children_exist(parent_id: int) -> bool:
    return Order.objects.filter(parent_id=parent_id).exists()


def parent_request_cancel(parent_id: int, actor: Actor) -> Order:
    """Mark a working parent PENDING_CANCEL (caller's transaction); no-op when already closing."""
    parent = _lock(parent_id)
    if OrderStatus(parent.status) in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
        _transition(parent, OrderEventType.REQUEST_CANCEL, actor=actor)
    return parent


def parent_record(parent: Order, *, event_type: str, actor: Actor, data: dict[str, Any]) -> None:
    """An audit row for an algo action that changes no status (pause, resume, modify, slice)."""
    _record(parent, event_type=event_type, actor=actor, from_status=parent.status, data=data)
