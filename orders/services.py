"""The order management pipeline: the only writer of Order, Fill, Position and OrderEvent.

Concurrency rules (see docs/adr/0002-order-pipeline.md):

- every status change happens inside a transaction that holds the order's row lock
  (``select_for_update``), goes through ``orders.domain.state.apply`` and writes one OrderEvent
  and one outbox event in the same transaction;
- a broker is never called while a transaction is open: the pipeline commits SUBMITTED /
  PENDING_CANCEL / PENDING_REPLACE first, calls the adapter, then applies what it reported;
- positions are changed only by fills, under the position's row lock, after the order's lock.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from brokers import services as brokers_services
from brokers.domain.adapter import (
    BrokerError,
    BrokerOrderRequest,
    BrokerOrderStatus,
    BrokerOrderUpdate,
    BrokerRejected,
    BrokerRetryable,
    BrokerUnknownOutcome,
    FillReport,
    OrderChange,
    OrderRef,
    UpdateKind,
)
from brokers.domain.ratelimit import retry_delay
from brokers.models import BrokerAccount
from orders.domain.enums import TERMINAL_STATUSES, AssetClass, OrderStatus, OrderType, Side, TimeInForce
from orders.domain.marks import MarkThrottle
from orders.domain.positions import PositionState, apply_fill, mark
from orders.domain.state import IllegalTransition, OrderEventType, Progress, apply
from orders.domain.validation import OrderRequest, asset_class_of, validate_order_request
from orders.models import ActorType, Fill, Order, OrderEvent, Position
from risk.book import risk_book_refresh
from risk.domain.assessment import RiskAssessment
from risk.domain.context import ProposedOrder, TradingState
from risk.domain.context import Quote as RiskQuote
from risk.models import Reservation, RiskProfile
from risk.services import (
    Authority,
    risk_assess,
    risk_check_order,
    risk_check_replace,
    risk_decide,
    risk_emergency_stop_due,
    risk_hold,
    trading_state_set,
)
from routing.domain.scoring import OrderToRoute, order_to_route
from routing.models import RoutingDecision
from routing.services import route_decide, route_record
from trademaster.clock import clock_now
from trademaster.errors import BrokerBusy, Conflict, NotFound, TradeMasterError, ValidationFailed
from trademaster.metrics import order_stage
from trademaster.outbox import jsonable, outbox_record

if TYPE_CHECKING:
    from routing.algos import AlgoParams

logger = logging.getLogger(__name__)

Q8 = Decimal("0.00000001")
Q4 = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an action: recorded on every OrderEvent."""

    type: str
    user_id: int | None = None
    label: str = ""

    @classmethod
    def for_user(cls, user, label: str = "") -> Actor:
        return cls(ActorType.USER, user.pk, label or user.get_username())


SYSTEM = Actor(ActorType.SYSTEM, None, "system")
BROKER = Actor(ActorType.BROKER, None, "broker")


# --- payloads -----------------------------------------------------------------------------------


def order_payload(order: Order) -> dict[str, Any]:
    return {
        "id": order.pk,
        "client_order_id": order.client_order_id,
        "broker_id": order.broker_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "quantity": order.quantity,
        "price": order.price,
        "stop_price": order.stop_price,
        "trail_amount": order.trail_amount,
        "trail_percent": order.trail_percent,
        "time_in_force": order.time_in_force,
        "status": order.status,
        "status_reason": order.status_reason,
        "filled_quantity": order.filled_quantity,
        "average_fill_price": order.average_fill_price,
        "commission": order.commission,
        "broker_order_id": order.broker_order_id,
    }


def position_payload(position: Position) -> dict[str, Any]:
    return {
        "id": position.pk,
        "broker_id": position.broker_id,
        "symbol": position.symbol,
        "quantity": position.quantity,
        "average_cost": position.average_cost,
        "market_value": position.market_value,
        "unrealized_pnl": position.unrealized_pnl,
        "realized_pnl": position.realized_pnl,
    }


# --- recording ----------------------------------------------------------------------------------


def _record(
    order: Order,
    *,
    event_type: str,
    actor: Actor,
    from_status: str = "",
    data: dict[str, Any] | None = None,
    outbox_type: str = "ORDER_UPDATED",
) -> None:
    """One audit row and one outbox event for an order action; the caller's transaction."""
    OrderEvent.objects.create(
        order=order,
        event_type=event_type,
        from_status=from_status,
        to_status=order.status,
        actor_type=actor.type,
        actor_id=actor.user_id,
        actor_label=actor.label,
        data=jsonable(data or {}),
    )
    outbox_record(
        type=outbox_type,
        user_id=order.user_id,
        account_id=order.broker_id,
        payload={"order": order_payload(order), "event": event_type},
    )


def _lock(order_id: int) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


def _transition(
    order: Order,
    event: OrderEventType,
    *,
    actor: Actor,
    reason: str = "",
    data: dict[str, Any] | None = None,
    fields: tuple[str, ...] = (),
) -> None:
    """Apply ``event`` to a locked order, save it and record it. Raises IllegalTransition."""
    before = order.status
    progress = Progress(
        filled=order.filled_quantity > 0,
        complete=order.filled_quantity == order.quantity,
        triggered=order.triggered,
    )
    order.status = apply(OrderStatus(before), event, progress).value
    if reason:
        order.status_reason = reason
    order.save(update_fields=["status", "status_reason", "updated_at", *fields])
    _record(
        order,
        event_type=event.value,
        actor=actor,
        from_status=before,
        data={"reason": reason, **(data or {})},
    )
    _parent_follow(order)


def _parent_follow(order: Order) -> None:
    """A child changed: its parent aggregates it, under the parent's lock (child, then parent)."""
    if order.parent_id is not None:
        from orders.parents import parent_refresh

        parent_refresh(order.parent_id)


# --- placing ------------------------------------------------------------------------------------


_IDEMPOTENCY_FIELDS = (
    "symbol",
    "side",
    "order_type",
    "quantity",
    "price",
    "stop_price",
    "trail_amount",
    "trail_percent",
    "time_in_force",
)


def _same_request(order: Order, req: OrderRequest, broker_id: int | None) -> bool:
    if broker_id is not None and order.broker_id != broker_id and not order.algo:
        return False
    for name in _IDEMPOTENCY_FIELDS:
        theirs, ours = getattr(req, name), getattr(order, name)
        if theirs is None or ours is None:
            if theirs is not ours:
                return False
        elif isinstance(theirs, Decimal):
            if theirs != Decimal(ours):
                return False
        elif str(theirs) != str(ours):
            return False
    return True


def _existing(user, req: OrderRequest, broker_id: int | None) -> Order | None:
    order = Order.objects.filter(user=user, client_order_id=req.client_order_id).first()
    if order is not None and not _same_request(order, req, broker_id):
        raise Conflict(
            "client_order_id_reused",
            f"client_order_id {req.client_order_id!r} already names order {order.pk} with other parameters.",
            {"order_id": order.pk},
        )
    return order


class Placed(NamedTuple):
    order: Order
    created: bool  # False: the client_order_id was already used for this very order


def order_place(
    *,
    user,
    request: OrderRequest,
    actor: Actor,
    broker_id: int | None = None,
    algo: AlgoParams | None = None,
    parent: Order | None = None,
) -> Placed:
    """Validate, persist, risk-check, route and submit one order.

    Idempotent on ``client_order_id``: the same id with the same parameters returns the order
    already placed (``created`` False); with other parameters it is a 409 conflict. The order is
    returned as it stands after the broker's immediate reply (a marketable order may be FILLED).

    With ``algo`` (TWAP/VWAP) the order becomes a parent worked by ``routing.algos``; an order
    large enough to fragment becomes a SPLIT parent with one child per venue. ``parent`` marks a
    child of such a parent (children are never split again).
    """
    with order_stage("validate"):
        errors = validate_order_request(request)
    if errors:
        raise ValidationFailed(errors)
    client_order_id_given = request.client_order_id is not None
    if request.client_order_id is None:
        request = replace(request, client_order_id=f"TM{uuid.uuid4().hex}")
    elif (existing := _existing(user, request, broker_id)) is not None:
        if algo is not None and existing.algo != algo.kind:
            raise Conflict(
                "client_order_id_reused",
                f"client_order_id {request.client_order_id!r} already names order {existing.pk}, "
                f"which is not a {algo.kind} order.",
                {"order_id": existing.pk},
            )
        return Placed(existing, False)

    asset_class = asset_class_of(request.symbol)
    assert asset_class is not None  # validated above
    if algo is not None:
        from routing.algos import algo_place  # routing.algos places its children through here

        return algo_place(user=user, request=request, params=algo, actor=actor, broker_id=broker_id)
    with order_stage("route"):
        route_ = route_decide(
            user=user,
            order=order_to_route(request, asset_class),
            broker_id=broker_id,
            allow_split=parent is None,
        )
    if route_.split:
        from routing.algos import split_place

        return split_place(user=user, request=request, route_=route_, actor=actor)
    account = route_.account
    assert account is not None
    # market data first: no broker call inside the transaction
    quote = route_.quotes.get(account.pk)
    risk_quote = None if quote is None else RiskQuote(bid=quote.bid, ask=quote.ask, last=quote.last)
    try:
        # one transaction: the order, its risk verdict (under the risk lock) and its submission
        with transaction.atomic():
            order = Order.objects.create(
                user=user,
                broker=account,
                parent=parent,
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                asset_class=asset_class.value,
                order_type=request.order_type.value,
                side=request.side.value,
                quantity=request.quantity,
                price=request.price,
                stop_price=request.stop_price,
                trail_amount=request.trail_amount,
                trail_percent=request.trail_percent,
                time_in_force=request.time_in_force.value,
                status=OrderStatus.PENDING.value,
            )
            _record(
                order,
                event_type="CREATED",
                actor=actor,
                outbox_type="ORDER_CREATED",
                data={"routed_to": str(account), "parent": order.parent_id},
            )
            route_record(order=order, route_=route_)
            with order_stage("risk_check"):
                assessment = risk_check_order(
                    order=order, quote=risk_quote, client_order_id_given=client_order_id_given
                )
            if not assessment.approved:
                _transition(
                    order,
                    OrderEventType.REJECT,
                    actor=SYSTEM,
                    reason=" ".join(assessment.reasons),
                    data={"risk": [dataclasses.asdict(f) for f in assessment.failures]},
                )
                return Placed(order, True)
            order.submitted_at = timezone.now()
            _transition(order, OrderEventType.SUBMIT, actor=actor, fields=("submitted_at",))
    except IntegrityError:
        # a concurrent request with the same client_order_id won the race
        existing = _existing(user, request, broker_id)
        if existing is None:
            raise
        return Placed(existing, False)
    return Placed(_send(order, account), True)


def _risk_quote(account: BrokerAccount, symbol: str) -> RiskQuote | None:
    try:
        quote = brokers_services.quote_get(account=account, symbol=symbol)
    except BrokerError:
        return None  # the risk check fails closed where it needs a price
    return RiskQuote(bid=quote.bid, ask=quote.ask, last=quote.last)


def _broker_request(order: Order) -> BrokerOrderRequest:
    return BrokerOrderRequest(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        asset_class=AssetClass(order.asset_class),
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        time_in_force=TimeInForce(order.time_in_force),
        price=order.price,
        stop_price=order.stop_price,
        trail_amount=order.trail_amount,
        trail_percent=order.trail_percent,
    )


def _send(order: Order, account: BrokerAccount, tried: frozenset[int] = frozenset()) -> Order:
    """Send a SUBMITTED order to its broker (no transaction open) and apply what it answers.

    A broker that refuses for now (rate limit, unreachable) or never received the order (looked
    up by client_order_id first) hands the order to the next eligible account (``_failover``)."""
    adapter = brokers_services.adapter_for(account)
    try:
        with order_stage("broker_submit"):
            updates = adapter.place(_broker_request(order))
    except BrokerRejected as exc:
        return _broker_refused(order, exc)
    except BrokerRetryable as exc:
        prefix = f"broker busy (retry after {exc.retry_after}s)"
        moved = _failover(order, account, f"{prefix}: {exc.message}", tried)
        return moved or _defer(order, account, exc)
    except (BrokerUnknownOutcome, BrokerError, OSError) as exc:
        return _resolve_unknown_submission(order, account, exc, tried)
    return order_apply_updates(account=account, updates=updates, sync_account=True) or _reload(order)


def _defer(order: Order, account: BrokerAccount, exc: BrokerRetryable) -> Order:
    """The broker refused a SUBMITTED order for now (429/418, the local rate limiter, unreachable)
    and it cannot move to another account: keep it SUBMITTED and send it again later.

    A BrokerRetryable means the broker did not take the order (an uncertain outcome is a
    BrokerUnknownOutcome), so re-sending cannot duplicate it. The next send is due after
    ``retry_delay`` (exponential backoff with jitter, never before the broker's advice); it is
    recorded as a SUBMIT_DEFERRED event and ``orders_resend_due`` sends it. The order is rejected
    once it was refused ``BROKER_RETRY_MAX_ATTEMPTS`` times, or when the next send would come
    later than ``BROKER_RETRY_MAX_SECONDS`` after its submission.
    """
    now = clock_now()
    advised = Decimal(str(exc.retry_after))
    with transaction.atomic():
        order = _lock(order.pk)
        if order.status != OrderStatus.SUBMITTED.value:
            return order  # cancelled or settled meanwhile
        attempt = order.send_attempts + 1
        delay = retry_delay(
            attempt=attempt,
            advised=advised,
            base=settings.BROKER_RETRY_BASE_SECONDS,
            cap=settings.BROKER_RETRY_CAP_SECONDS,
            jitter=Decimal(secrets.randbelow(1000)) / 1000,
        )
        retry_at = now + datetime.timedelta(microseconds=int(delay * 1_000_000))
        since = order.submitted_at or now
        too_late = retry_at - since > datetime.timedelta(seconds=settings.BROKER_RETRY_MAX_SECONDS)
        if attempt >= settings.BROKER_RETRY_MAX_ATTEMPTS or too_late:
            order.send_attempts, order.resend_at = attempt, None
            _transition(
                order,
                OrderEventType.REJECT,
                actor=BROKER,
                reason=(
                    f"broker busy: refused {attempt} time{'s' if attempt > 1 else ''} over "
                    f"{(now - since) // datetime.timedelta(seconds=1)}s, not sent again: {exc.message}"
                ),
                data={"broker_code": exc.code, "attempt": attempt},
                fields=("send_attempts", "resend_at"),
            )
            risk_book_refresh(user_id=order.user_id, symbols=[order.symbol])
            return order
        order.send_attempts, order.resend_at = attempt, retry_at
        order.status_reason = f"broker busy, sending again at {retry_at.isoformat()}: {exc.message}"
        order.save(update_fields=["send_attempts", "resend_at", "status_reason", "updated_at"])
        _record(
            order,
            event_type="SUBMIT_DEFERRED",
            actor=BROKER,
            from_status=order.status,
            data={
                "broker": account.pk,
                "attempt": attempt,
                "retry_at": retry_at.isoformat(),
                "retry_after": advised,
                "broker_code": exc.code,
                "message": exc.message,
            },
        )
    return order


def orders_resend_due(*, now: datetime.datetime | None = None, limit: int = 100) -> int:
    """Send again the deferred placements due at ``now`` (default: the service clock); returns
    how many were sent. Each is claimed once, whatever the number of workers: the claim clears
    ``resend_at`` only where it still holds the value read (FOR UPDATE SKIP LOCKED on PostgreSQL
    keeps workers off each other's rows), so a second worker finds nothing to claim."""
    now = now or clock_now()
    due = Order.objects.filter(status=OrderStatus.SUBMITTED.value, resend_at__lte=now).order_by("resend_at")
    claimed: list[int] = []
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        for pk, resend_at in list(due.values_list("pk", "resend_at")[:limit]):
            if Order.objects.filter(pk=pk, resend_at=resend_at, status=OrderStatus.SUBMITTED.value).update(
                resend_at=None
            ):
                claimed.append(pk)
    for pk in claimed:
        order = Order.objects.select_related("broker", "user").get(pk=pk)
        if order.status == OrderStatus.SUBMITTED.value:  # a cancel may have come between
            _send(order, order.broker)
    return len(claimed)


def _failover(order: Order, account: BrokerAccount, why: str, tried: frozenset[int]) -> Order | None:
    """Move a SUBMITTED order that ``account`` did not take to the next eligible account and send
    it there; None when it cannot move (the client named the account, the order is a venue's
    share of a split, or no other account can take it), for the caller to reject it.

    The move is one transaction: the old reservation goes, the order changes account, the full
    pre-trade check runs again for the new account (a refusal rejects the order with its
    reasons), a FAILOVER event records from where to where and why, and the risk book follows.
    """
    stored = RoutingDecision.objects.filter(order_id=order.pk).first()
    if stored is None or stored.explicit:
        return None
    tried = tried | {account.pk}
    try:
        route_ = route_decide(
            user=order.user,
            order=OrderToRoute(
                symbol=order.symbol,
                asset_class=AssetClass(order.asset_class),
                side=Side(order.side),
                order_type=OrderType(order.order_type),
                time_in_force=TimeInForce(order.time_in_force),
                quantity=order.quantity,
                limit_price=order.price,
            ),
            allow_split=False,
            exclude=tried,
        )
    except TradeMasterError:
        return None
    target = route_.account
    assert target is not None
    quote = route_.quotes.get(target.pk)
    risk_quote = None if quote is None else RiskQuote(bid=quote.bid, ask=quote.ask, last=quote.last)
    with transaction.atomic():
        order = _lock(order.pk)
        if order.status != OrderStatus.SUBMITTED.value:
            return order
        Reservation.objects.filter(order=order).delete()
        order.broker = target
        order.save(update_fields=["broker", "updated_at"])
        _record(
            order,
            event_type="FAILOVER",
            actor=SYSTEM,
            from_status=order.status,
            data={"from_broker": account.pk, "to_broker": target.pk, "reason": why},
        )
        route_record(order=order, route_=route_, replace=True)
        decision = risk_decide(order=order, quote=risk_quote, client_order_id_given=True)
        if decision.assessment.approved:
            risk_hold(order=order, decision=decision)
        else:
            _transition(
                order,
                OrderEventType.REJECT,
                actor=SYSTEM,
                reason=" ".join(decision.assessment.reasons),
                data={"risk": [dataclasses.asdict(f) for f in decision.assessment.failures]},
            )
        # the check saw the order at its old account too (conservative); rebuild from the sources
        risk_book_refresh(user_id=order.user_id, symbols=[order.symbol])
    if order.status != OrderStatus.SUBMITTED.value:
        return order
    return _send(order, target, tried)


def _reload(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def _broker_refused(order: Order, exc: BrokerError, prefix: str = "rejected by broker") -> Order:
    with transaction.atomic():
        order = _lock(order.pk)
        _transition(
            order,
            OrderEventType.REJECT,
            actor=BROKER,
            reason=f"{prefix}: {exc.message}",
            data={"broker_code": exc.code},
        )
        risk_book_refresh(user_id=order.user_id, symbols=[order.symbol])
    return order


def _resolve_unknown_submission(
    order: Order, account: BrokerAccount, exc: Exception, tried: frozenset[int] = frozenset()
) -> Order:
    """The submission may or may not have arrived: ask the broker before anything else."""
    logger.warning("submission of order %s has an unknown outcome: %s", order.pk, exc)
    try:
        state = brokers_services.adapter_for(account).get_order(order.client_order_id)
    except (BrokerError, OSError) as lookup_exc:
        with transaction.atomic():
            order = _lock(order.pk)
            order.status_reason = f"submission outcome unknown ({exc}); reconciliation will settle it"
            order.save(update_fields=["status_reason", "updated_at"])
            _record(
                order,
                event_type="SUBMIT_UNCERTAIN",
                actor=SYSTEM,
                from_status=order.status,
                data={"error": str(exc), "lookup_error": str(lookup_exc)},
            )
        return order
    if state is None:  # never arrived: safe to send elsewhere, or to send again later
        moved = _failover(order, account, f"not received by {account} ({exc})", tried)
        if moved is not None:
            return moved
        # like a refusal for now: the same broker gets it again after a pause (SUBMIT_DEFERRED),
        # and the order is rejected only when the re-sends run out
        not_received = BrokerRetryable(f"not received by the broker ({exc})", code="NOT_RECEIVED")
        return _defer(order, account, not_received)
    updates = [
        BrokerOrderUpdate(UpdateKind.ACCEPTED, order.client_order_id, state.broker_order_id, timezone.now())
    ]
    if state.status is BrokerOrderStatus.REJECTED:
        updates = [
            BrokerOrderUpdate(
                UpdateKind.REJECTED,
                order.client_order_id,
                state.broker_order_id,
                timezone.now(),
                reason="rejected by broker",
            )
        ]
    return order_apply_updates(account=account, updates=updates) or _reload(order)


# --- broker updates -----------------------------------------------------------------------------

_EVENT_FOR_KIND = {
    UpdateKind.ACCEPTED: OrderEventType.ACCEPT,
    UpdateKind.TRIGGERED: OrderEventType.TRIGGER,
    UpdateKind.FILL: OrderEventType.FILL,
    UpdateKind.CANCELLED: OrderEventType.CANCEL,
    UpdateKind.CANCEL_REJECTED: OrderEventType.CANCEL_REJECT,
    UpdateKind.REPLACED: OrderEventType.REPLACE,
    UpdateKind.REPLACE_REJECTED: OrderEventType.REPLACE_REJECT,
    UpdateKind.REJECTED: OrderEventType.REJECT,
    UpdateKind.EXPIRED: OrderEventType.EXPIRE,
}


# updates that change neither an order's open quantity nor its price: the risk book stays as it is
_BOOK_NEUTRAL = frozenset(
    {UpdateKind.ACCEPTED, UpdateKind.TRIGGERED, UpdateKind.CANCEL_REJECTED, UpdateKind.REPLACE_REJECTED}
)


@order_stage("apply_updates")
def order_apply_updates(
    *, account: BrokerAccount, updates: list[BrokerOrderUpdate], sync_account: bool = False
) -> Order | None:
    """Apply a batch of broker updates for one account in one transaction; return the last order.

    Updates that cannot apply (an unknown order, an illegal transition, an over-fill) change
    nothing and are recorded as BROKER_ANOMALY events and logged as errors, never dropped silently.
    A fill already applied (same broker_fill_id) is skipped: delivery may repeat.
    """
    last: Order | None = None
    filled = False
    touched: set[str] = set()  # symbols whose exposure changed
    with transaction.atomic():
        orders: dict[str, Order] = {}
        for update in updates:
            key = update.client_order_id or f"#{update.broker_order_id}"
            order = orders.get(key)
            if order is None:
                # a broker without client order ids (Schwab) names another process's order by its id
                found = (
                    Order.objects.filter(user_id=account.user_id, client_order_id=update.client_order_id)
                    if update.client_order_id
                    else Order.objects.filter(broker=account, broker_order_id=update.broker_order_id)
                    if update.broker_order_id
                    else Order.objects.none()
                )
                order = found.select_for_update().first()
                if order is None:
                    logger.error(
                        "broker %s reported %s for unknown order %s",
                        account.pk,
                        update.kind,
                        update.client_order_id,
                    )
                    outbox_record(
                        type="BROKER_ANOMALY",
                        user_id=account.user_id,
                        account_id=account.pk,
                        payload={
                            "problem": "update for an order this service does not know",
                            "update": update.kind.value,
                            "client_order_id": update.client_order_id,
                            "broker_order_id": update.broker_order_id,
                        },
                    )
                    continue
                orders[key] = order
            filled |= _apply_one(order, account, update)
            last = order
            if update.kind not in _BOOK_NEUTRAL:
                touched.add(order.symbol)
        # fills, closes and replaces change the user's exposure: fold them into the risk book
        risk_book_refresh(user_id=account.user_id, symbols=touched)
    if filled and sync_account:
        brokers_services.broker_account_sync(account=account)
    if filled:
        _risk_monitor([account.user_id])
    return last


def _risk_monitor(user_ids) -> None:
    """Live risk alerts after fills and re-marks (risk.monitoring). Never breaks order processing."""
    from django.contrib.auth import get_user_model

    from risk.monitoring import risk_monitor_user

    for user in get_user_model().objects.filter(pk__in=list(user_ids)):
        try:
            risk_monitor_user(user=user)
            reason = risk_emergency_stop_due(user=user)
            if reason is not None:
                logger.warning("emergency stop-loss for user %s: %s", user.pk, reason)
                kill_switch_engage(
                    user=user, actor=Actor(ActorType.SYSTEM, None, "emergency stop-loss"), liquidate=True
                )
        except Exception:
            logger.exception("live risk monitoring failed for user %s", user.pk)


def _anomaly(order: Order, update: BrokerOrderUpdate, problem: str) -> None:
    logger.error("order %s: %s (broker update %s)", order.pk, problem, update)
    _record(
        order,
        event_type="BROKER_ANOMALY",
        actor=BROKER,
        from_status=order.status,
        data={"problem": problem, "update": update.kind.value, "reason": update.reason},
    )


_CLOSED_BY = {
    UpdateKind.CANCELLED: OrderStatus.CANCELLED.value,
    UpdateKind.EXPIRED: OrderStatus.EXPIRED.value,
    UpdateKind.REJECTED: OrderStatus.REJECTED.value,
}


def _apply_one(order: Order, account: BrokerAccount, update: BrokerOrderUpdate) -> bool:
    """Apply one update to a locked order. Returns True when a fill was booked."""
    event = _EVENT_FOR_KIND[update.kind]
    if update.kind is UpdateKind.FILL:
        return _apply_fill(order, account, update)
    if _CLOSED_BY.get(update.kind) == order.status:
        return False  # the update that closed the order, delivered again (at-least-once streams)
    fields: list[str] = []
    if (
        update.kind is UpdateKind.ACCEPTED
        and update.broker_order_id
        and order.broker_order_id != update.broker_order_id
    ):
        order.broker_order_id = update.broker_order_id
        fields.append("broker_order_id")
    if update.kind is UpdateKind.TRIGGERED:
        order.triggered = True
        fields.append("triggered")
    if update.kind in (UpdateKind.CANCELLED, UpdateKind.EXPIRED):
        order.cancelled_at = update.occurred_at
        fields.append("cancelled_at")
    data: dict[str, Any] = {}
    if update.kind is UpdateKind.REPLACED and update.change is not None:
        before = {
            k: getattr(order, k)
            for k in ("quantity", "price", "stop_price", "trail_amount", "trail_percent", "time_in_force")
        }
        _apply_change(order, update.change)
        fields += ["quantity", "price", "stop_price", "trail_amount", "trail_percent", "time_in_force"]
        data = {"before": before, "after": {k: getattr(order, k) for k in before}}
    try:
        _transition(order, event, actor=BROKER, reason=update.reason, data=data, fields=tuple(fields))
    except IllegalTransition as exc:
        _anomaly(order, update, str(exc))
    return False


def _apply_change(order: Order, change: OrderChange) -> None:
    for name in ("quantity", "price", "stop_price"):
        value = getattr(change, name)
        if value is not None:
            setattr(order, name, value)
    if change.trail_amount is not None or change.trail_percent is not None:
        order.trail_amount, order.trail_percent = change.trail_amount, change.trail_percent
    if change.time_in_force is not None:
        order.time_in_force = change.time_in_force.value


def _fill_notional(order: Order) -> Decimal:
    return sum(
        (f.quantity * f.price for f in Fill.objects.filter(order=order).only("quantity", "price")), Decimal(0)
    )


def _fill_from_totals(order: Order, report: FillReport) -> FillReport | None:
    """A fill reported as the order's new running totals: book the growth over what is booked
    (None when there is none), at the price that makes the booked notional match the broker's."""
    assert report.cumulative_quantity is not None
    quantity = report.cumulative_quantity - order.filled_quantity
    if quantity <= 0:
        return None
    price = report.price
    if report.cumulative_notional is not None:
        computed = ((report.cumulative_notional - _fill_notional(order)) / quantity).quantize(Q8)
        price = computed if computed > 0 else price
    return replace(report, quantity=quantity, price=price)


def _apply_fill(order: Order, account: BrokerAccount, update: BrokerOrderUpdate) -> bool:
    report = update.fill
    if report is None:
        _anomaly(order, update, "a fill update without a fill report")
        return False
    if Fill.objects.filter(broker=account, broker_fill_id=report.broker_fill_id).exists():
        return False  # already applied: at-least-once delivery
    if report.cumulative_quantity is not None:
        report = _fill_from_totals(order, report)
        if report is None:
            return False  # every share of it is booked already (reported by another process)
    if report.quantity <= 0 or report.quantity > order.remaining_quantity:
        _anomaly(order, update, f"fill of {report.quantity} exceeds the remaining {order.remaining_quantity}")
        return False
    before = order.status
    try:
        new_filled = order.filled_quantity + report.quantity
        status = apply(
            OrderStatus(before),
            OrderEventType.FILL,
            Progress(filled=True, complete=new_filled == order.quantity, triggered=order.triggered),
        )
    except IllegalTransition as exc:
        _anomaly(order, update, str(exc))
        return False
    fill = Fill.objects.create(
        order=order,
        user_id=order.user_id,
        broker=account,
        broker_fill_id=report.broker_fill_id,
        symbol=order.symbol,
        side=order.side,
        quantity=report.quantity,
        price=report.price,
        fee=report.fee,
        liquidity=report.liquidity,
        executed_at=update.occurred_at,
    )
    # the exact VWAP of every fill (this one included), rounded once: re-using the stored, already
    # rounded average would let rounding errors pile up fill after fill
    notional = _fill_notional(order)
    order.average_fill_price = (notional / new_filled).quantize(Q8)
    order.filled_quantity = new_filled
    order.commission = (order.commission + report.fee).quantize(Q4)
    order.status = status.value
    if status is OrderStatus.FILLED:
        order.filled_at = update.occurred_at
    order.save(
        update_fields=[
            "status",
            "filled_quantity",
            "average_fill_price",
            "commission",
            "filled_at",
            "updated_at",
        ]
    )
    fill_data = {
        "fill_id": fill.pk,
        "broker_fill_id": report.broker_fill_id,
        "quantity": report.quantity,
        "price": report.price,
        "fee": report.fee,
    }
    OrderEvent.objects.create(
        order=order,
        event_type="FILL",
        from_status=before,
        to_status=order.status,
        actor_type=BROKER.type,
        actor_label=BROKER.label,
        data=jsonable(fill_data),
    )
    outbox_record(
        type="ORDER_FILLED",
        user_id=order.user_id,
        account_id=account.pk,
        payload={"order": order_payload(order), "fill": fill_data},
    )
    _position_apply_fill(order, account, report.quantity, report.price, report.fee)
    _parent_follow(order)
    return True


def _position_apply_fill(
    order: Order, account: BrokerAccount, quantity: Decimal, price: Decimal, fee: Decimal
) -> Position:
    position = (
        Position.objects.select_for_update()
        .filter(user_id=order.user_id, broker=account, symbol=order.symbol)
        .first()
    )
    if position is None:
        try:
            with transaction.atomic():
                position = Position.objects.create(
                    user_id=order.user_id, broker=account, symbol=order.symbol, asset_class=order.asset_class
                )
        except IntegrityError:
            position = Position.objects.select_for_update().get(
                user_id=order.user_id, broker=account, symbol=order.symbol
            )
    state = apply_fill(
        PositionState(position.quantity, position.average_cost, position.realized_pnl, position.total_fees),
        side=Side(order.side),
        quantity=quantity,
        price=price,
        fee=fee,
    )
    _position_store(position, state, price)
    position.save(
        update_fields=[
            "quantity",
            "average_cost",
            "realized_pnl",
            "total_fees",
            "market_price",
            "market_value",
            "unrealized_pnl",
            "updated_at",
        ]
    )
    outbox_record(
        type="POSITION_UPDATED",
        user_id=order.user_id,
        account_id=account.pk,
        payload={"position": position_payload(position)},
    )
    return position


def _position_store(position: Position, state: PositionState, price: Decimal) -> None:
    valuation = mark(state, price)
    position.quantity = state.quantity
    position.average_cost = state.average_cost.quantize(Q8)
    position.realized_pnl = state.realized_pnl.quantize(Q8)
    position.total_fees = state.total_fees.quantize(Q8)
    position.market_price = price
    position.market_value = valuation.market_value.quantize(Q8)
    position.unrealized_pnl = valuation.unrealized_pnl.quantize(Q8)


def positions_revalue(*, mids: dict[str, Decimal]) -> int:
    """Mark open positions to the given prices (market value and unrealized P&L)."""
    changed = []
    for position in Position.objects.exclude(quantity=0).filter(symbol__in=list(mids)):
        price = mids[position.symbol]
        if position.market_price == price:
            continue
        state = PositionState(
            position.quantity, position.average_cost, position.realized_pnl, position.total_fees
        )
        _position_store(position, state, price)
        changed.append(position)
    Position.objects.bulk_update(changed, ["market_price", "market_value", "unrealized_pnl"], batch_size=500)
    touched: dict[int, set[str]] = {}
    for position in changed:
        touched.setdefault(position.user_id, set()).add(position.symbol)
    announce = _mark_throttle().due(Decimal(time.monotonic_ns()) / 1_000_000_000, touched)
    for user_id in sorted(touched.keys() | announce.keys()):
        with transaction.atomic():
            if user_id in touched:  # new marks revalue the risk book
                risk_book_refresh(user_id=user_id, symbols=touched[user_id])
            if user_id in announce:
                _positions_marked(user_id, announce[user_id])
    return len(changed)


_MARK_THROTTLES: dict[Decimal, MarkThrottle] = {}


def _mark_throttle() -> MarkThrottle:
    interval = settings.POSITION_MARK_EVENT_SECONDS
    return _MARK_THROTTLES.setdefault(interval, MarkThrottle(interval))


def _positions_marked(user_id: int, symbols: set[str]) -> None:
    """Announce a user's re-marked positions (POSITIONS_MARKED): what the pages' P&L follows."""
    positions = Position.objects.filter(user_id=user_id, symbol__in=sorted(symbols)).order_by(
        "symbol", "broker_id"
    )
    outbox_record(
        type="POSITIONS_MARKED",
        user_id=user_id,
        payload={"positions": [position_payload(p) for p in positions]},
    )


# --- cancel and modify --------------------------------------------------------------------------


def _owned(user, order_id: int) -> Order:
    order = Order.objects.for_owner(user).select_related("broker").filter(pk=order_id).first()
    if order is None:
        raise NotFound("order_not_found", f"Order {order_id} does not exist.")
    return order


def order_cancel(*, user, order_id: int, actor: Actor, reason: str = "") -> Order:
    """Cancel an open order. A closed order is a 409; a cancel already in flight is a no-op.
    ``reason`` (why the actor cancels, e.g. an agent's deadline) goes on the order and its event."""
    order = _owned(user, order_id)
    if order.algo:
        from routing.algos import algo_cancel

        return algo_cancel(user=user, order_id=order.pk, actor=actor)
    with transaction.atomic():
        order = _lock(order.pk)
        status = OrderStatus(order.status)
        if status in TERMINAL_STATUSES:
            raise Conflict(
                "order_not_cancellable",
                f"Order {order.pk} is {status} and can no longer be cancelled.",
                {"status": status.value},
            )
        if status is OrderStatus.PENDING_CANCEL:
            return order
        if status is OrderStatus.PENDING or (status is OrderStatus.SUBMITTED and order.resend_at is not None):
            # never left the service, or waiting to be re-sent: the broker refused every send of
            # it (BrokerRetryable: not taken), so nothing is working there to cancel
            order.cancelled_at = timezone.now()
            deferred = order.resend_at is not None
            order.resend_at = None
            _transition(
                order,
                OrderEventType.CANCEL,
                actor=actor,
                reason=reason
                or (
                    "cancelled while waiting to be sent again (the broker had not taken it)"
                    if deferred
                    else "cancelled before submission"
                ),
                fields=("cancelled_at", "resend_at"),
            )
            risk_book_refresh(user_id=order.user_id, symbols=[order.symbol])
            return order
        _transition(order, OrderEventType.REQUEST_CANCEL, actor=actor, reason=reason)
    account = order.broker
    try:
        updates = brokers_services.adapter_for(account).cancel(
            OrderRef(order.client_order_id, order.broker_order_id)
        )
    except BrokerRetryable as exc:
        _busy(order, account, exc, UpdateKind.CANCEL_REJECTED, "cancel")
    except BrokerError as exc:
        updates = [
            BrokerOrderUpdate(
                UpdateKind.CANCEL_REJECTED,
                order.client_order_id,
                order.broker_order_id or "",
                timezone.now(),
                reason=exc.message,
            )
        ]
    return order_apply_updates(account=account, updates=updates, sync_account=True) or _reload(order)


def _busy(
    order: Order, account: BrokerAccount, exc: BrokerRetryable, kind: UpdateKind, what: str
) -> NoReturn:
    """A cancel or change the broker refused for now (429, rate limit): the request did not
    reach it, so the order goes back to where it was (a CANCEL_REJECT / REPLACE_REJECT event
    says why) and the caller gets a 503 with Retry-After, to ask again then."""
    reason = f"broker busy, {what} not sent: {exc.message}"
    update = BrokerOrderUpdate(
        kind, order.client_order_id, order.broker_order_id or "", timezone.now(), reason=reason
    )
    order_apply_updates(account=account, updates=[update])
    raise BrokerBusy(
        "broker_busy",
        f"The broker is busy and did not receive the {what}; the order is unchanged. "
        f"Try again in {exc.retry_after}s.",
        {"retry_after": str(exc.retry_after), "order_id": order.pk},
    )


_MODIFIABLE = {OrderStatus.ACCEPTED, OrderStatus.TRIGGERED, OrderStatus.PARTIALLY_FILLED}


def order_replace(*, user, order_id: int, change: OrderChange, actor: Actor) -> Order:
    """Cancel-replace quantity, prices, trail or time in force of a working order."""
    order = _owned(user, order_id)
    if change == OrderChange():
        raise ValidationFailed({"non_field_errors": ["Nothing to change."]})
    if change.trail_amount is not None and change.trail_percent is not None:
        raise ValidationFailed({"trail_amount": ["Give trail_amount or trail_percent, not both."]})
    if order.algo:
        from routing.algos import algo_modify

        return algo_modify(user=user, order_id=order.pk, quantity=change.quantity, actor=actor)
    quote = _risk_quote(order.broker, order.symbol)
    with transaction.atomic():
        order = _lock(order.pk)
        status = OrderStatus(order.status)
        if status not in _MODIFIABLE:
            raise Conflict(
                "order_not_modifiable",
                f"Order {order.pk} is {status} and cannot be modified now.",
                {"status": status.value},
            )
        keep_trail = change.trail_amount is None and change.trail_percent is None
        merged = OrderRequest(
            symbol=order.symbol,
            side=Side(order.side),
            order_type=OrderType(order.order_type),
            quantity=change.quantity if change.quantity is not None else order.quantity,
            time_in_force=change.time_in_force or TimeInForce(order.time_in_force),
            price=change.price if change.price is not None else order.price,
            stop_price=change.stop_price if change.stop_price is not None else order.stop_price,
            trail_amount=order.trail_amount if keep_trail else change.trail_amount,
            trail_percent=order.trail_percent if keep_trail else change.trail_percent,
        )
        errors = validate_order_request(merged)
        if merged.quantity <= order.filled_quantity:
            errors.setdefault("quantity", []).append(
                f"Must exceed the quantity already filled ({order.filled_quantity.normalize():f})."
            )
        if errors:
            raise ValidationFailed(errors)
        # the changed order passes the same pre-trade check as a new one (its own row excluded)
        assessment = risk_check_replace(
            order=order,
            quantity=merged.quantity,
            price=merged.price,
            stop_price=merged.stop_price,
            quote=quote,
        )
        if not assessment.approved:
            raise Conflict(
                "risk_rejected",
                "The pre-trade check refused the change: " + " ".join(assessment.reasons),
                {"reasons": [dataclasses.asdict(f) for f in assessment.failures]},
            )
        requested = {k: v for k, v in dataclasses.asdict(change).items() if v is not None}
        _transition(order, OrderEventType.REQUEST_REPLACE, actor=actor, data={"requested": requested})
    account = order.broker
    try:
        updates = brokers_services.adapter_for(account).replace(
            OrderRef(order.client_order_id, order.broker_order_id), change
        )
    except BrokerRetryable as exc:
        _busy(order, account, exc, UpdateKind.REPLACE_REJECTED, "change")
    except BrokerError as exc:
        updates = [
            BrokerOrderUpdate(
                UpdateKind.REPLACE_REJECTED,
                order.client_order_id,
                order.broker_order_id or "",
                timezone.now(),
                reason=exc.message,
            )
        ]
        order_apply_updates(account=account, updates=updates)
        raise Conflict("replace_rejected", f"The broker refused the change: {exc.message}") from None
    return order_apply_updates(account=account, updates=updates, sync_account=True) or _reload(order)


# --- the simulated market -----------------------------------------------------------------------


def market_tick(*, now: datetime.datetime | None = None, advance: bool = True) -> int:
    """One step of the paper market: move prices, match resting paper orders, book the results,
    and mark positions to the new prices. Returns the number of order updates applied."""
    now = now or timezone.now()
    mids = brokers_services.market_advance() if advance else brokers_services.market_mids()
    applied = 0
    for account, updates in brokers_services.paper_poll(now=now):
        order_apply_updates(account=account, updates=updates, sync_account=True)
        applied += len(updates)
    if positions_revalue(mids=mids):
        held = Position.objects.exclude(quantity=0).filter(symbol__in=list(mids))
        _risk_monitor(held.values_list("user_id", flat=True).distinct())
    return applied


# --- preview (dry run) --------------------------------------------------------------------------


class Preview(NamedTuple):
    account: BrokerAccount
    assessment: RiskAssessment


def order_preview(*, user, request: OrderRequest, broker_id: int | None = None) -> Preview:
    """What placing ``request`` would do now: the route and the risk verdict. Places nothing."""
    errors = validate_order_request(request)
    if errors:
        raise ValidationFailed(errors)
    asset_class = asset_class_of(request.symbol)
    assert asset_class is not None
    route_ = route_decide(
        user=user,
        order=order_to_route(request, asset_class),
        broker_id=broker_id,
        allow_split=False,
    )
    account = route_.account
    assert account is not None
    proposed = ProposedOrder(
        symbol=request.symbol,
        asset_class=asset_class,
        side=request.side,
        order_type=request.order_type,
        quantity=request.quantity,
        broker_id=account.pk,
        price=request.price,
        stop_price=request.stop_price,
        client_order_id_given=request.client_order_id is not None,
    )
    return Preview(
        account,
        risk_assess(
            user=user, account=account, proposed=proposed, quote=_risk_quote(account, request.symbol)
        ),
    )


# --- kill switch --------------------------------------------------------------------------------
#
# Engaging the kill switch, per user:
#   1. the risk profile goes to HALTED first, so no new order gets past the pre-trade check;
#   2. every open order at every broker is cancelled through ``order_cancel``, one by one; a
#      refusal or an error is recorded against that order and the rest are still cancelled;
#   3. with ``liquidate``, every non-zero position (per broker account) is closed by a MARKET
#      order on the opposite side. HALTED refuses every order, these included, so the state is
#      REDUCING while they are placed (the pre-trade check still verifies that each one only
#      reduces) and HALTED again at the end, whatever happens. While REDUCING, the user's own
#      reducing orders could pass too; nothing that adds risk can.
# Every state change goes through ``risk.services.trading_state_set`` and is recorded with the actor.

_CLIENT_ORDER_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


@dataclass(frozen=True, slots=True)
class KillSwitchResult:
    user_id: int
    cancelled: list[int]  # order ids
    cancel_failed: list[tuple[int, str]]  # (order id, reason)
    liquidated: list[int]  # ids of the liquidation orders placed
    liquidation_failed: list[tuple[str, int, str]]  # (symbol, broker account id, reason)


def _kill_client_order_id(user_id: int, broker_id: int, symbol: str, stamp: str) -> str:
    """kill-<user>-<broker>-<symbol>-<timestamp>: the client_order_id alphabet, at most 64 chars."""
    head, tail = f"kill-{user_id}-{broker_id}-", f"-{stamp}"
    safe = _CLIENT_ORDER_ID_UNSAFE.sub("_", symbol)  # BTC/USD -> BTC_USD
    return head + safe[: 64 - len(head) - len(tail)] + tail


def _open_order_ids_parents_first(user) -> Iterator[int]:
    """Algo parents first (cancelling one stops its schedule and cancels its children), then the
    orders still open after that, read only once the parents are done."""
    open_orders = Order.objects.filter(user=user).open().order_by("pk")
    yield from list(open_orders.exclude(algo="").values_list("pk", flat=True))
    yield from list(open_orders.filter(algo="").values_list("pk", flat=True))


def _kill_cancel_all(user, actor: Actor) -> tuple[list[int], list[tuple[int, str]]]:
    cancelled: list[int] = []
    failed: list[tuple[int, str]] = []
    for order_id in _open_order_ids_parents_first(user):
        try:
            order = order_cancel(user=user, order_id=order_id, actor=actor)
        except TradeMasterError as exc:  # e.g. filled or cancelled meanwhile: 409
            failed.append((order_id, exc.message))
            continue
        except Exception as exc:  # one broken order must not leave the others working
            logger.exception("kill switch: cancelling order %s failed", order_id)
            failed.append((order_id, f"{type(exc).__name__}: {exc}"))
            continue
        if order.status == OrderStatus.CANCELLED:
            cancelled.append(order_id)
        elif order.status == OrderStatus.PENDING_CANCEL:
            failed.append((order_id, "cancel requested, not yet confirmed by the broker"))
        else:
            failed.append((order_id, order.status_reason or f"the order is {order.status}"))
    return cancelled, failed


def _kill_liquidate_all(user, actor: Actor) -> tuple[list[int], list[tuple[str, int, str]]]:
    placed: list[int] = []
    failed: list[tuple[str, int, str]] = []
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    positions = (
        Position.objects.filter(user=user)
        .exclude(quantity=0)
        .order_by("broker_id", "symbol")
        .values_list("broker_id", "symbol", "quantity")
    )
    for broker_id, symbol, quantity in positions:
        request = OrderRequest(
            symbol=symbol,
            side=Side.SELL if quantity > 0 else Side.BUY,
            order_type=OrderType.MARKET,
            quantity=abs(quantity),
            time_in_force=TimeInForce.DAY,
            client_order_id=_kill_client_order_id(user.pk, broker_id, symbol, stamp),
        )
        try:
            order = order_place(user=user, request=request, actor=actor, broker_id=broker_id).order
        except TradeMasterError as exc:
            failed.append((symbol, broker_id, exc.message))
            continue
        except Exception as exc:
            logger.exception("kill switch: liquidating %s at broker %s failed", symbol, broker_id)
            failed.append((symbol, broker_id, f"{type(exc).__name__}: {exc}"))
            continue
        if order.status == OrderStatus.REJECTED:
            failed.append((symbol, broker_id, order.status_reason))
        else:
            placed.append(order.pk)
    return placed, failed


def _authority(user, actor: Actor) -> Authority:
    if actor.type == ActorType.SYSTEM:
        return Authority.SYSTEM
    return Authority.SELF if actor.user_id == user.pk else Authority.STAFF


def _by_staff(actor: Actor) -> bool:
    from django.contrib.auth import get_user_model

    if actor.user_id is None:
        return actor.type == ActorType.SYSTEM
    return get_user_model().objects.filter(pk=actor.user_id, is_staff=True, is_active=True).exists()


def kill_switch_engage(*, user, actor: Actor, liquidate: bool = False) -> KillSwitchResult:
    """Halt the user's trading, cancel every open order, and optionally flatten every position.

    Never stops at the first failure: the result lists what was done and what was not, and why.
    A halt by staff (another user's actor) or by the system can only be released by staff.
    """
    authority = _authority(user, actor)
    trading_state_set(user=user, state=TradingState.HALTED, actor_label=actor.label, authority=authority)
    cancelled, cancel_failed = _kill_cancel_all(user, actor)
    liquidated: list[int] = []
    liquidation_failed: list[tuple[str, int, str]] = []
    if liquidate and Position.objects.filter(user=user).exclude(quantity=0).exists():
        # reducing orders only, and back to HALTED even if something unexpected is raised
        trading_state_set(
            user=user,
            state=TradingState.REDUCING,
            actor_label=f"{actor.label} (liquidation)",
            authority=authority,
        )
        try:
            liquidated, liquidation_failed = _kill_liquidate_all(user, actor)
        finally:
            trading_state_set(
                user=user, state=TradingState.HALTED, actor_label=actor.label, authority=authority
            )
    return KillSwitchResult(user.pk, cancelled, cancel_failed, liquidated, liquidation_failed)


def kill_switch_engage_all(*, actor: Actor, liquidate: bool = False) -> list[KillSwitchResult]:
    """The global kill switch: every user who can trade is HALTED; those with open orders or
    positions also get ``kill_switch_engage`` (one result each)."""
    from django.contrib.auth import get_user_model

    with_orders = Order.objects.open().values("user_id")
    with_positions = Position.objects.exclude(quantity=0).values("user_id")
    busy = (
        get_user_model()
        .objects.filter(models.Q(pk__in=with_orders) | models.Q(pk__in=with_positions))
        .order_by("pk")
    )
    results = [kill_switch_engage(user=user, actor=actor, liquidate=liquidate) for user in busy]
    idle = get_user_model().objects.filter(broker_accounts__isnull=False).exclude(pk__in=busy).distinct()
    for user in idle:
        trading_state_set(
            user=user, state=TradingState.HALTED, actor_label=actor.label, authority=_authority(user, actor)
        )
    return results


def kill_switch_release(*, user, actor: Actor) -> RiskProfile:
    """Let the user trade again (ACTIVE). A halt set by staff or the system needs a staff actor."""
    return trading_state_set(
        user=user, state=TradingState.ACTIVE, actor_label=actor.label, by_staff=_by_staff(actor)
    )
