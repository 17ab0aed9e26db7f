"""Execution algorithms: TWAP and VWAP parent orders, and orders split across venues.

A parent order (``orders.parents``) carries an :class:`AlgoOrder` and its planned
:class:`AlgoSlice` rows. The plan comes from ``routing.domain.schedule`` (equal TWAP slices,
optionally randomised; VWAP slices following the symbol's intraday volume curve). Celery beat
runs :func:`algo_release_due` every second; tests pass their own ``now``.

Releasing, exactly once per slice, whatever crashes:

1. earlier children still open are cancelled, so what they did not fill rolls into this release;
2. under the algo's row lock (``skip_locked``: a second worker walks past), the due slices are
   read; late ones are merged into the latest (catch-up, capped by ``ALGO_CATCH_UP_LIMIT``),
   the quantity is worked out (``release_quantity``: behind-schedule remainder included, capped
   by ``max_participation`` of the expected market volume) and the slice becomes RELEASING with
   that quantity and a fixed child ``client_order_id``, committed before any broker call;
3. the child is placed through ``orders.services.order_place`` (routing, the full pre-trade
   check, submission); the slice becomes RELEASED with its child.

A worker killed between 2 and 3 leaves a RELEASING slice: the next run places it again with
the same client_order_id, which ``order_place`` answers with the child that already exists if
the first attempt got that far. So a restart loses nothing and sends nothing twice.

When the window is over, children still resting (a limit price the market did not reach) are
cancelled, and the parent closes with what filled (EXPIRED with the unfilled rest).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from brokers.domain.volume import expected_volume
from orders.domain.enums import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    AssetClass,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from orders.domain.validation import OrderRequest, asset_class_of
from orders.models import ActorType, AlgoChoices, Order
from orders.parents import parent_create, parent_record, parent_refresh, parent_request_cancel
from orders.services import Actor, Placed, order_cancel, order_place
from routing.domain import schedule
from routing.domain.scoring import order_to_route
from routing.models import AlgoOrder, AlgoSlice, AlgoState, SliceState
from routing.services import MarketStats, Route, market_stats, route_decide, route_record
from trademaster.clock import clock_now
from trademaster.errors import BrokerBusy, Conflict, NotFound, TradeMasterError, ValidationFailed
from trademaster.outbox import outbox_record

logger = logging.getLogger(__name__)

MAX_WINDOW = dt.timedelta(days=7)
MAX_SLICES = 500
START_TOLERANCE = dt.timedelta(seconds=60)
_OPEN = [s.value for s in OPEN_STATUSES]
_PENDING_SLICES = (SliceState.PLANNED, SliceState.RELEASING)


@dataclass(frozen=True, slots=True)
class AlgoParams:
    """A TWAP/VWAP request: the window (end or duration), and optional limits."""

    kind: str  # TWAP | VWAP
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    duration_seconds: int | None = None
    max_participation: Decimal | None = None
    randomize: Decimal = Decimal(0)
    slices: int | None = None


def algo_actor(kind: str) -> Actor:
    return Actor(ActorType.SYSTEM, None, f"algo:{kind}")


# --- validation and planning ------------------------------------------------------------------


def _window(
    params: AlgoParams, now: dt.datetime, errors: dict[str, list[str]]
) -> tuple[dt.datetime, dt.datetime]:
    start = params.start_time or now
    if start < now - START_TOLERANCE:
        errors.setdefault("start_time", []).append("start_time is in the past.")
    if (params.end_time is None) == (params.duration_seconds is None):
        errors.setdefault("end_time", []).append("Give end_time or duration_seconds (one of them).")
        return start, start
    if params.duration_seconds is not None:
        if params.duration_seconds <= 0:
            errors.setdefault("duration_seconds", []).append("duration_seconds must be positive.")
            return start, start
        end = start + dt.timedelta(seconds=params.duration_seconds)
    else:
        assert params.end_time is not None
        end = params.end_time
    if end <= start:
        errors.setdefault("end_time", []).append("end_time must be after start_time.")
    elif end - start > MAX_WINDOW:
        errors.setdefault("end_time", []).append("The window may be at most 7 days.")
    return start, end


def _validate(
    params: AlgoParams, request: OrderRequest, stats: MarketStats | None, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    errors: dict[str, list[str]] = {}
    if params.kind not in (AlgoChoices.TWAP, AlgoChoices.VWAP):
        errors["algo"] = ["algo must be TWAP or VWAP."]
    if request.order_type not in (OrderType.MARKET, OrderType.LIMIT):
        errors["order_type"] = ["An algo order is MARKET (no limit) or LIMIT (price caps every child)."]
    if request.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        errors["time_in_force"] = ["An algo order is DAY or GTC."]
    start, end = _window(params, now, errors)
    if params.max_participation is not None and not Decimal(0) < params.max_participation <= 1:
        errors["max_participation"] = ["max_participation is a fraction in (0, 1], e.g. 0.1 for 10%."]
    if not Decimal(0) <= params.randomize <= Decimal("0.5"):
        errors["randomize"] = ["randomize is a fraction between 0 and 0.5."]
    if params.slices is not None and not 1 <= params.slices <= MAX_SLICES:
        errors["slices"] = [f"slices must be between 1 and {MAX_SLICES}."]
    if stats is None:
        if params.kind == AlgoChoices.VWAP or params.max_participation is not None:
            errors["symbol"] = [f"No volume data for {request.symbol}: VWAP and max_participation need it."]
    elif request.quantity % stats.lot_size != 0:
        errors["quantity"] = [f"quantity must be a multiple of the lot size {stats.lot_size.normalize():f}."]
    if errors:
        raise ValidationFailed(errors)
    return start, end


def _volume(asset_class: AssetClass, stats: MarketStats | None):
    def volume(a: dt.datetime, b: dt.datetime) -> Decimal:
        return expected_volume(asset_class, stats.average_daily_volume, a, b) if stats else Decimal(0)

    return volume


def _plan(
    algo: AlgoOrder, quantity: Decimal, start: dt.datetime, slices: int | None, stats: MarketStats | None
) -> list[schedule.Slice]:
    count = slices or schedule.slice_count(
        start, algo.end_time, interval_seconds=settings.ALGO_SLICE_SECONDS, max_slices=MAX_SLICES
    )
    if algo.kind == AlgoChoices.VWAP:
        return schedule.vwap_plan(
            quantity=quantity,
            start=start,
            end=algo.end_time,
            slices=count,
            lot=algo.lot_size,
            volume=_volume(AssetClass(algo.parent.asset_class), stats),
        )
    return schedule.twap_plan(
        quantity=quantity,
        start=start,
        end=algo.end_time,
        slices=count,
        lot=algo.lot_size,
        randomize=algo.randomize,
        seed=algo.seed,
    )


def _store_plan(algo: AlgoOrder, plan: Sequence[schedule.Slice], first_seq: int) -> None:
    AlgoSlice.objects.bulk_create(
        AlgoSlice(algo=algo, seq=first_seq + s.seq, due_at=s.due_at, quantity=s.quantity) for s in plan
    )


# --- placing ----------------------------------------------------------------------------------


def algo_place(
    *, user, request: OrderRequest, params: AlgoParams, actor: Actor, broker_id: int | None
) -> Placed:
    """Create a TWAP/VWAP parent with its schedule; the first slice goes at once when due."""
    now = clock_now()
    stats = market_stats(request.symbol)
    start, end = _validate(params, request, stats, now)
    asset_class = asset_class_of(request.symbol)
    assert asset_class is not None
    lot = stats.lot_size if stats else Decimal(1)
    # fail fast when no account (or not the named one) can take a slice of this order
    route_decide(
        user=user,
        order=replace(order_to_route(request, asset_class), quantity=lot),
        broker_id=broker_id,
        allow_split=False,
    )
    try:
        with transaction.atomic():
            parent = parent_create(
                user=user,
                request=request,
                asset_class=asset_class.value,
                algo=params.kind,
                actor=actor,
                data={"start_time": start, "end_time": end},
            )
            if parent.status == OrderStatus.REJECTED:
                return Placed(parent, True)
            algo = AlgoOrder.objects.create(
                parent=parent,
                kind=params.kind,
                start_time=start,
                end_time=end,
                limit_price=request.price,
                max_participation=params.max_participation,
                randomize=params.randomize,
                broker_id=broker_id,
                lot_size=lot,
                seed=random.SystemRandom().randrange(2**31),
            )
            plan = _plan(algo, request.quantity, start, params.slices, stats)
            _store_plan(algo, plan, 0)
            parent_record(
                parent,
                event_type="ALGO_SCHEDULED",
                actor=actor,
                data={"algo": params.kind, "slices": len(plan), "start_time": start, "end_time": end},
            )
            _progress_event(algo, now)
    except IntegrityError:
        existing = Order.objects.filter(user=user, client_order_id=request.client_order_id).first()
        if existing is None:
            raise
        return Placed(existing, False)
    if start <= now:
        algo_release(algo.pk, now=now)
    return Placed(Order.objects.get(pk=parent.pk), True)


def split_place(*, user, request: OrderRequest, route_: Route, actor: Actor) -> Placed:
    """Place an order fragmented across venues: a SPLIT parent with one child per venue, now."""
    now = clock_now()
    asset_class = asset_class_of(request.symbol)
    assert asset_class is not None
    try:
        with transaction.atomic():
            parent = parent_create(
                user=user,
                request=request,
                asset_class=asset_class.value,
                algo=AlgoChoices.SPLIT,
                actor=actor,
                data={"split": [(a.account_id, a.quantity) for a in route_.split]},
            )
            route_record(order=parent, route_=route_)
            if parent.status == OrderStatus.REJECTED:
                return Placed(parent, True)
            algo = AlgoOrder.objects.create(
                parent=parent,
                kind=AlgoChoices.SPLIT,
                start_time=now,
                end_time=now,
                limit_price=request.price,
                lot_size=stats.lot_size if (stats := market_stats(request.symbol)) else Decimal(1),
            )
            AlgoSlice.objects.bulk_create(
                AlgoSlice(algo=algo, seq=i, due_at=now, quantity=a.quantity, broker_id=a.account_id)
                for i, a in enumerate(route_.split)
            )
    except IntegrityError:
        existing = Order.objects.filter(user=user, client_order_id=request.client_order_id).first()
        if existing is None:
            raise
        return Placed(existing, False)
    algo_release(algo.pk, now=now)
    return Placed(Order.objects.get(pk=parent.pk), True)


# --- releasing --------------------------------------------------------------------------------


def algo_more_to_release(parent_id: int) -> bool:
    """Whether the parent's schedule may still create a child (a RELEASING slice always may)."""
    slices = AlgoSlice.objects.filter(algo__parent_id=parent_id)
    if slices.filter(state=SliceState.RELEASING).exists():
        return True
    return slices.filter(
        state=SliceState.PLANNED, algo__state__in=(AlgoState.RUNNING, AlgoState.PAUSED)
    ).exists()


def algo_release_due(*, now: dt.datetime | None = None) -> int:
    """Release every due slice of every running algo (and finish interrupted releases)."""
    now = now or clock_now()
    algo_ids = set(
        AlgoSlice.objects.filter(
            state=SliceState.PLANNED, due_at__lte=now, algo__state=AlgoState.RUNNING
        ).values_list("algo_id", flat=True)
    )
    algo_ids |= set(AlgoSlice.objects.filter(state=SliceState.RELEASING).values_list("algo_id", flat=True))
    placed = sum(algo_release(algo_id, now=now) for algo_id in sorted(algo_ids))
    _close_ended_windows(now)
    return placed


def _close_ended_windows(now: dt.datetime) -> None:
    """A TWAP/VWAP whose window is over stops working: the children its last slices left resting
    (a limit the market never reached) are cancelled, so the parent closes (EXPIRED, unfilled)."""
    ended = AlgoOrder.objects.filter(
        state=AlgoState.DONE,
        kind__in=(AlgoChoices.TWAP, AlgoChoices.VWAP),
        end_time__lte=now,
        parent__status__in=_OPEN,
    ).select_related("parent", "parent__user")
    for algo in ended:
        _cancel_open_children(algo.parent, algo_actor(algo.kind))
        with transaction.atomic():
            parent_refresh(algo.parent_id)


def _cancel_open_children(parent: Order, actor: Actor) -> None:
    for child_id in Order.objects.filter(parent=parent, status__in=_OPEN).values_list("pk", flat=True):
        try:
            order_cancel(user=parent.user, order_id=child_id, actor=actor)
        except Conflict:
            continue  # it closed meanwhile
        except BrokerBusy:
            continue  # the broker asked to wait: the child keeps working, as after a refused cancel


def _current_plan(algo: AlgoOrder) -> list[schedule.Slice]:
    rows = algo.slices.filter(seq__gte=algo.plan_first_seq).exclude(note__startswith="replanned")
    return [schedule.Slice(seq=s.seq, due_at=s.due_at, quantity=s.quantity) for s in rows.order_by("seq")]


def _working(parent: Order) -> Decimal:
    return sum(
        (c.quantity - c.filled_quantity for c in Order.objects.filter(parent=parent, status__in=_OPEN)),
        Decimal(0),
    )


def _participation_cap(algo: AlgoOrder, slice_: AlgoSlice, plan: list[schedule.Slice]) -> Decimal | None:
    if algo.max_participation is None:
        return None
    stats = market_stats(algo.parent.symbol)
    if stats is None:
        return Decimal(0)
    later = [s.due_at for s in plan if s.seq > slice_.seq]
    interval_end = later[0] if later else max(algo.end_time, slice_.due_at + dt.timedelta(seconds=1))
    market = expected_volume(
        AssetClass(algo.parent.asset_class), stats.average_daily_volume, slice_.due_at, interval_end
    )
    return algo.max_participation * market


def _claim(algo_id: int, now: dt.datetime) -> list[AlgoSlice]:
    """Step 2: fix what the due slices release (RELEASING), under the algo's lock."""
    with transaction.atomic():
        algo = (
            AlgoOrder.objects.select_for_update(skip_locked=True)
            .select_related("parent")
            .filter(pk=algo_id)
            .first()
        )
        if algo is None or algo.state != AlgoState.RUNNING:
            return []
        due = list(algo.slices.filter(state=SliceState.PLANNED, due_at__lte=now).order_by("seq"))
        if not due:
            return []
        parent = algo.parent
        claimed: list[AlgoSlice] = []
        if algo.kind == AlgoChoices.SPLIT:
            for s in due:
                s.released_quantity = s.quantity
                claimed.append(s)
        else:
            last = due[-1]
            for s in due[:-1]:
                s.state, s.note = SliceState.SKIPPED, f"late: merged into slice {last.seq}"
                s.save(update_fields=["state", "note"])
            plan = _current_plan(algo)
            base = algo.plan_base
            quantity = schedule.release_quantity(
                plan=plan,
                upto_seq=last.seq,
                filled=parent.filled_quantity - min(base, parent.filled_quantity),
                working=_working(parent),
                total=parent.quantity - base,
                lot=algo.lot_size,
                catch_up_limit=settings.ALGO_CATCH_UP_LIMIT,
                participation_cap=_participation_cap(algo, last, plan),
            )
            if quantity > 0:
                last.released_quantity = quantity
                claimed.append(last)
            else:
                last.state, last.note = SliceState.SKIPPED, "nothing to release (ahead of schedule or capped)"
                last.save(update_fields=["state", "note"])
        for s in claimed:
            s.state = SliceState.RELEASING
            s.client_order_id = f"TMA{algo.pk}S{s.seq}"
            s.released_at = now
            s.save(update_fields=["state", "released_quantity", "client_order_id", "released_at"])
        if not algo.slices.filter(state=SliceState.PLANNED).exists():
            algo.state = AlgoState.DONE
            algo.save(update_fields=["state", "updated_at"])
        return claimed


def _place(algo: AlgoOrder, slice_: AlgoSlice, now: dt.datetime) -> bool:
    """Step 3: place the child of a RELEASING slice (again, after a crash: same client_order_id).

    True when this call created the child (not when order_place found it already there)."""
    parent = algo.parent
    assert slice_.released_quantity is not None
    request = OrderRequest(
        symbol=parent.symbol,
        side=Side(parent.side),
        order_type=OrderType.LIMIT if algo.limit_price is not None else OrderType.MARKET,
        quantity=slice_.released_quantity,
        time_in_force=TimeInForce(parent.time_in_force) if algo.limit_price is not None else TimeInForce.IOC,
        price=algo.limit_price,
        client_order_id=slice_.client_order_id,
    )
    child, created, note = None, False, ""
    try:
        child, created = order_place(
            user=parent.user,
            request=request,
            actor=algo_actor(algo.kind),
            broker_id=slice_.broker_id or algo.broker_id,
            parent=parent,
        )
    except TradeMasterError as exc:
        note = exc.message[:200]
        logger.warning("slice %s of algo %s: no child placed: %s", slice_.seq, algo.pk, exc.message)
    with transaction.atomic():
        locked = AlgoSlice.objects.select_for_update().get(pk=slice_.pk)
        if locked.state != SliceState.RELEASING:
            return created  # another worker finished it
        locked.state, locked.child, locked.note = SliceState.RELEASED, child, note
        locked.save(update_fields=["state", "child", "note"])
        parent_record(
            Order.objects.get(pk=parent.pk),
            event_type="SLICE_RELEASED",
            actor=algo_actor(algo.kind),
            data={
                "slice": locked.seq,
                "quantity": locked.released_quantity,
                "child": None if child is None else child.pk,
                "note": note,
            },
        )
        _progress_event(algo, now)
    return created


def algo_release(algo_id: int, *, now: dt.datetime) -> int:
    """Release what is due for one algo; returns the number of children placed."""
    algo = AlgoOrder.objects.select_related("parent", "parent__user").get(pk=algo_id)
    placed = 0
    for stuck in algo.slices.filter(state=SliceState.RELEASING).order_by("seq"):
        placed += _place(algo, stuck, now)
    if (
        algo.state != AlgoState.RUNNING
        or not algo.slices.filter(state=SliceState.PLANNED, due_at__lte=now).exists()
    ):
        return placed
    if algo.kind != AlgoChoices.SPLIT:
        _cancel_open_children(algo.parent, algo_actor(algo.kind))  # their remainder rolls in
    for slice_ in _claim(algo_id, now):
        placed += _place(algo, slice_, now)
    with transaction.atomic():
        parent_refresh(algo.parent_id)
    return placed


# --- control: pause, resume, modify, cancel ----------------------------------------------------


def _algo_of(user, order_id: int) -> AlgoOrder:
    algo = (
        AlgoOrder.objects.select_related("parent")
        .filter(parent_id=order_id, parent__in=Order.objects.for_owner(user))
        .first()
    )
    if algo is None:
        raise NotFound("algo_not_found", f"Order {order_id} is not an algo order.")
    return algo


def _locked_algo(algo_id: int) -> AlgoOrder:
    return AlgoOrder.objects.select_for_update().select_related("parent").get(pk=algo_id)


def _require_open(algo: AlgoOrder, action: str) -> None:
    if (
        algo.state in (AlgoState.DONE, AlgoState.CANCELLED)
        or OrderStatus(algo.parent.status) in TERMINAL_STATUSES
    ):
        raise Conflict(
            "algo_not_working",
            f"Order {algo.parent_id} is {algo.parent.status} ({algo.state}) and cannot be {action}.",
            {"status": algo.parent.status, "algo_state": algo.state},
        )


def _replan(algo: AlgoOrder, now: dt.datetime, slices: int | None = None) -> int:
    """Replace the unreleased slices by a new plan for what is left over [now, end]."""
    parent = Order.objects.get(pk=algo.parent_id)
    algo.parent = parent
    AlgoSlice.objects.filter(algo=algo, state=SliceState.PLANNED).update(
        state=SliceState.SKIPPED, note="replanned"
    )
    done = parent.filled_quantity + _working(parent)
    left = parent.quantity - done
    first = (algo.slices.order_by("-seq").values_list("seq", flat=True).first() or 0) + 1
    algo.plan_first_seq, algo.plan_base = first, done
    algo.save(update_fields=["plan_first_seq", "plan_base", "updated_at"])
    if left <= 0:
        return 0
    start = max(now, algo.start_time)
    if algo.end_time <= start:  # the window is over: what is left goes at once
        plan = [schedule.Slice(seq=0, due_at=start, quantity=left)]
    else:
        plan = _plan(algo, left, start, slices, market_stats(parent.symbol))
    _store_plan(algo, plan, first)
    return len(plan)


def algo_pause(*, user, order_id: int, actor: Actor) -> AlgoOrder:
    algo = _algo_of(user, order_id)
    with transaction.atomic():
        algo = _locked_algo(algo.pk)
        _require_open(algo, "paused")
        if algo.state == AlgoState.RUNNING:
            algo.state = AlgoState.PAUSED
            algo.save(update_fields=["state", "updated_at"])
            parent_record(algo.parent, event_type="ALGO_PAUSED", actor=actor, data={})
            _progress_event(algo, clock_now())
    return algo


def algo_resume(*, user, order_id: int, actor: Actor, now: dt.datetime | None = None) -> AlgoOrder:
    """Resume a paused algo: what is left is replanned over the rest of its window."""
    now = now or clock_now()
    algo = _algo_of(user, order_id)
    with transaction.atomic():
        algo = _locked_algo(algo.pk)
        _require_open(algo, "resumed")
        if algo.state == AlgoState.PAUSED:
            algo.state = AlgoState.RUNNING
            algo.save(update_fields=["state", "updated_at"])
            slices = _replan(algo, now)
            parent_record(algo.parent, event_type="ALGO_RESUMED", actor=actor, data={"slices": slices})
            _progress_event(algo, now)
    return algo


def algo_modify(
    *,
    user,
    order_id: int,
    actor: Actor,
    quantity: Decimal | None = None,
    end_time: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Order:
    """Change a working algo's total quantity and/or end time; the rest is replanned."""
    now = now or clock_now()
    algo = _algo_of(user, order_id)
    if algo.kind == AlgoChoices.SPLIT:
        raise Conflict("algo_not_modifiable", "A split order is placed at once; modify its children instead.")
    if quantity is None and end_time is None:
        raise ValidationFailed({"non_field_errors": ["Give quantity and/or end_time."]})
    with transaction.atomic():
        algo = _locked_algo(algo.pk)
        _require_open(algo, "modified")
        parent = Order.objects.select_for_update().get(pk=algo.parent_id)
        errors: dict[str, list[str]] = {}
        floor = parent.filled_quantity + _working(parent)
        if quantity is not None:
            if quantity < floor or quantity <= 0:
                least = f"{floor.normalize():f}"
                errors["quantity"] = [f"quantity must be at least {least} (filled and working)."]
            elif quantity % algo.lot_size != 0:
                errors["quantity"] = [
                    f"quantity must be a multiple of the lot size {algo.lot_size.normalize():f}."
                ]
        if end_time is not None and (end_time <= now or end_time - algo.start_time > MAX_WINDOW):
            errors["end_time"] = ["end_time must be in the future and at most 7 days after start_time."]
        if errors:
            raise ValidationFailed(errors)
        old = {"quantity": parent.quantity, "end_time": algo.end_time}
        if quantity is not None:
            parent.quantity = quantity
            parent.save(update_fields=["quantity", "updated_at"])
        if end_time is not None:
            algo.end_time = end_time
            algo.save(update_fields=["end_time", "updated_at"])
        slices = _replan(algo, now) if algo.state != AlgoState.PAUSED else 0  # else on resume
        parent_record(
            parent,
            event_type="ALGO_MODIFIED",
            actor=actor,
            data={"old": old, "quantity": parent.quantity, "end_time": algo.end_time, "slices": slices},
        )
        parent_refresh(parent.pk)  # a quantity cut to what filled completes it
        _progress_event(algo, now)
    return Order.objects.get(pk=parent.pk)


def algo_cancel(*, user, order_id: int, actor: Actor) -> Order:
    """Stop the schedule and cancel the open children; the parent closes once they have."""
    algo = _algo_of(user, order_id)
    with transaction.atomic():
        algo = _locked_algo(algo.pk)
        if OrderStatus(algo.parent.status) in TERMINAL_STATUSES:
            raise Conflict(
                "order_not_cancellable",
                f"Order {order_id} is {algo.parent.status} and can no longer be cancelled.",
                {"status": algo.parent.status},
            )
        if algo.state in (AlgoState.RUNNING, AlgoState.PAUSED, AlgoState.DONE):
            algo.state = AlgoState.CANCELLED
            algo.save(update_fields=["state", "updated_at"])
            AlgoSlice.objects.filter(algo=algo, state=SliceState.PLANNED).update(
                state=SliceState.SKIPPED, note="cancelled"
            )
        parent_request_cancel(algo.parent_id, actor)
        _progress_event(algo, clock_now())
    _cancel_open_children(algo.parent, actor)
    with transaction.atomic():
        parent_refresh(algo.parent_id)
    return Order.objects.get(pk=algo.parent_id)


# --- progress -----------------------------------------------------------------------------------


def algo_progress(algo: AlgoOrder, now: dt.datetime | None = None) -> dict[str, Any]:
    """Filled against schedule, for the API and the stream."""
    now = now or clock_now()
    parent = Order.objects.get(pk=algo.parent_id)
    slices = list(algo.slices.order_by("seq"))
    plan = [
        schedule.Slice(seq=s.seq, due_at=s.due_at, quantity=s.quantity)
        for s in slices
        if s.seq >= algo.plan_first_seq and s.note != "replanned"
    ]
    # not schedule.progress(): after a replan that left nothing (quantity cut to what is done)
    # the current plan's total is 0, which it refuses
    pending = [s for s in slices if s.state == SliceState.PLANNED]
    scheduled = algo.plan_base + schedule.scheduled_by(plan, now)
    total = parent.quantity
    return {
        "order_id": parent.pk,
        "algo": algo.kind,
        "state": algo.state,
        "status": parent.status,
        "start_time": algo.start_time,
        "end_time": algo.end_time,
        "limit_price": algo.limit_price,
        "max_participation": algo.max_participation,
        "quantity": total,
        "filled_quantity": parent.filled_quantity,
        "average_fill_price": parent.average_fill_price,
        "scheduled_quantity": scheduled,
        "percent_filled": (parent.filled_quantity * 100 / total).quantize(Decimal("0.01")),
        "percent_scheduled": (scheduled * 100 / total).quantize(Decimal("0.01")),
        "ahead_of_schedule": parent.filled_quantity - scheduled,
        "slices_total": len([s for s in slices if s.note != "replanned"]),
        "slices_released": len([s for s in slices if s.state == SliceState.RELEASED]),
        "next_slice_at": pending[0].due_at if pending and algo.state == AlgoState.RUNNING else None,
        "children": list(Order.objects.filter(parent=parent).order_by("pk").values_list("pk", flat=True)),
    }


def _progress_event(algo: AlgoOrder, now: dt.datetime) -> None:
    outbox_record(
        type="ALGO_PROGRESS",
        user_id=algo.parent.user_id,
        account_id=None,
        payload={"progress": algo_progress(algo, now)},
    )
