"""Reconciliation: make the local open orders agree with what each broker says about them.

After a restart or a lost stream, a broker may have filled, cancelled, expired or rejected an
order without this service hearing of it. :func:`reconcile_account` asks the broker for every
order the service believes open there (``get_order`` by client_order_id) and turns each
difference into the broker update that would have announced it, applied through the normal
pipeline (``order_apply_updates``): so every repair goes through the state machine, writes its
OrderEvent (actor BROKER; the reason or the fill id names the reconciliation) and outbox event,
and moves positions and the risk book.

* fills the broker reports one by one are applied by their broker fill ids (already-applied ones
  are skipped as always); a broker that gives only the cumulative filled quantity and average
  price gets one fill for the difference, priced so that the order's average matches the
  broker's, with the id ``recon:<broker order id>:<cumulative quantity>`` (so it is applied once);
* a closed state (CANCELLED, EXPIRED, REJECTED) closes the order; an acknowledged order still
  SUBMITTED locally becomes ACCEPTED;
* an order the broker never received (``get_order`` is None) that is still SUBMITTED locally is
  REJECTED as not received — it was not working anywhere;
* a broker that cannot be asked leaves the order as it is, counted in ``unreachable``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from brokers import services as brokers_services
from brokers.domain.adapter import (
    BrokerError,
    BrokerOrderState,
    BrokerOrderStatus,
    BrokerOrderUpdate,
    FillReport,
    UpdateKind,
)
from brokers.models import BrokerAccount
from orders.domain.enums import OrderStatus
from orders.models import Order
from orders.services import order_apply_updates

logger = logging.getLogger(__name__)

Q8 = Decimal("0.00000001")

_CLOSED = {
    BrokerOrderStatus.CANCELLED: UpdateKind.CANCELLED,
    BrokerOrderStatus.EXPIRED: UpdateKind.EXPIRED,
    BrokerOrderStatus.REJECTED: UpdateKind.REJECTED,
}


@dataclass
class ReconcileReport:
    account_id: int
    checked: int = 0
    repaired: dict[str, list[str]] = field(default_factory=dict)  # client_order_id -> what was fixed
    unreachable: int = 0


def _fill_updates(order: Order, state: BrokerOrderState) -> list[BrokerOrderUpdate]:
    now = timezone.now()
    if state.fills:
        return [
            BrokerOrderUpdate(UpdateKind.FILL, order.client_order_id, state.broker_order_id, now, fill=f)
            for f in state.fills
        ]
    missing = state.filled_quantity - order.filled_quantity
    if missing <= 0 or state.average_fill_price is None:
        return []
    ours = order.filled_quantity * (order.average_fill_price or Decimal(0))
    price = ((state.filled_quantity * state.average_fill_price - ours) / missing).quantize(Q8)
    fill = FillReport(
        broker_fill_id=f"recon:{state.broker_order_id}:{state.filled_quantity.normalize():f}",
        quantity=missing,
        price=price,
        fee=Decimal(0),
    )
    return [BrokerOrderUpdate(UpdateKind.FILL, order.client_order_id, state.broker_order_id, now, fill=fill)]


def _updates_for(order: Order, state: BrokerOrderState | None) -> tuple[list[BrokerOrderUpdate], list[str]]:
    """The updates that bring ``order`` to the broker's ``state``, and what they fix, in words."""
    now = timezone.now()
    if state is None:
        if order.status != OrderStatus.SUBMITTED:
            return [], []
        reason = "not received by the broker (reconciliation)"
        rejected = BrokerOrderUpdate(UpdateKind.REJECTED, order.client_order_id, "", now, reason=reason)
        return [rejected], [reason]
    updates: list[BrokerOrderUpdate] = []
    fixed: list[str] = []
    if order.status == OrderStatus.SUBMITTED:
        ack = BrokerOrderUpdate(UpdateKind.ACCEPTED, order.client_order_id, state.broker_order_id, now)
        updates.append(ack)
    fills = _fill_updates(order, state)
    if fills:
        updates += fills
        fixed.append(f"filled {state.filled_quantity.normalize():f} at the broker")
    closed = _CLOSED.get(state.status)
    if closed is not None:
        reason = f"{state.status.lower()} at the broker (reconciliation)"
        updates.append(
            BrokerOrderUpdate(closed, order.client_order_id, state.broker_order_id, now, reason=reason)
        )
        fixed.append(reason)
    elif updates and not fixed:
        fixed.append("acknowledged by the broker")
    return updates, fixed


def reconcile_account(*, account: BrokerAccount) -> ReconcileReport:
    """Bring the account's open orders in line with its broker (no transaction held across calls)."""
    report = ReconcileReport(account.pk)
    adapter = brokers_services.adapter_for(account)
    # a placement waiting to be re-sent (orders.services._defer) is not at the broker, by design
    open_orders = list(
        Order.objects.filter(broker=account).open().filter(resend_at__isnull=True).order_by("pk")
    )
    for order in open_orders:
        report.checked += 1
        try:
            state = adapter.get_order(order.client_order_id, order.broker_order_id or None)
        except (BrokerError, OSError) as exc:
            logger.warning("reconciliation: %s cannot answer for %s: %s", account, order.client_order_id, exc)
            report.unreachable += 1
            continue
        updates, fixed = _updates_for(order, state)
        if updates:
            order_apply_updates(account=account, updates=updates, sync_account=True)
        if fixed:
            report.repaired[order.client_order_id] = fixed
    return report


def reconcile_all() -> list[ReconcileReport]:
    """Every active account with open orders (start of the service, and the periodic run)."""
    ids = Order.objects.open().exclude(broker=None).values_list("broker_id", flat=True).distinct()
    accounts = BrokerAccount.objects.active().filter(pk__in=list(ids)).select_related("paper_venue")
    return [reconcile_account(account=account) for account in accounts]
