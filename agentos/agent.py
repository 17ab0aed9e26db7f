"""The service's trading agent: one order request as one structured unit of work.

    validate -> (risk check || broker selection) -> execution -> tracking

- **validate** (``orders.domain.validation``), the agent's state and the user's order-entry rate
  limit (:mod:`agentos.throttle`, the REST API's own budget); a preview is not rate limited, as
  the REST risk check is not.
- **risk** and **route** are sibling tasks of one ``asyncio.TaskGroup``: the risk task asks
  ``orders.services.order_preview`` for the verdict (every pre-trade rule) and then applies the
  per-agent notional cap to the notional the risk engine valued the order at
  (``RiskAssessment.projected.order_notional``: the limit/stop price or the quote's far side);
  the route task asks ``routing.services.route_decide`` where the order goes. The first to fail
  (refused, no route, an error) cancels the other. A routing error is reported as step ``route``
  whichever task met it first (``order_preview`` routes too).
- **execute**: ``orders.services.order_place`` with ``Actor(AGENT, user, agent name)``: the same
  pipeline as a person's order, so every risk rule is checked again under the account lock.
- **track**: wait (polling the database with ``asyncio.sleep``, never blocking the loop) until the
  broker has acknowledged the order (ACCEPTED, TRIGGERED, PARTIALLY_FILLED, FILLED, or closed).

At most ``AGENT_CONCURRENCY`` units run at once; a burst beyond that waits for admission (the
outcome's ``queued_ms``), and each unit's deadline starts when it is admitted, so a burst queues
instead of expiring. The whole unit runs under ``asyncio.timeout(AGENT_DEADLINE_SECONDS)``.
Database and broker work runs in the agent's own thread pool (``AGENT_THREADS``) via
``sync_to_async(thread_sensitive=False)``; each call returns its database connection when done
(to the psycopg pool on PostgreSQL), so thousands of requests share at most ``AGENT_THREADS``
connections.

A failure or the deadline after the order was persisted ends it in a clear state: a placement
still running in its thread (a thread cannot be killed) is awaited first, then the order is
cancelled through ``orders.services.order_cancel`` by the agent with the reason ("cancelled by the
agent: <step>: <why>"), which the order's status reason and its cancel event keep. Failures before
persistence leave no order row.

Health: each step's success and latency go to the capability registry
(:mod:`agentos.domain.capabilities`): BROKER_ROUTING the route task, RISK_MANAGEMENT the risk
task (a refusal is a success: the check worked), ORDER_EXECUTION execution + tracking. When a
capability falls below 0.9 (or recovers) the agent logs a warning and counts
``tm_agent_capability_alerts_total{capability,kind}``. No outbox event: the agent's health is
process-wide and outbox events belong to one user (the REST/MCP health endpoints show it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from prometheus_client import Counter

from agentos.domain.capabilities import Alert, Capability, Registry
from agentos.throttle import order_entry_allow
from brokers.domain.adapter import BrokerError
from orders.domain.enums import TERMINAL_STATUSES, OrderStatus
from orders.domain.validation import OrderRequest, asset_class_of, validate_order_request
from orders.models import ActorType, Order, OrderEvent
from orders.services import Actor, order_cancel, order_place, order_preview
from routing.algos import AlgoParams
from routing.domain.scoring import order_to_route
from routing.services import route_decide
from trademaster.errors import TradeMasterError

logger = logging.getLogger(__name__)

T = TypeVar("T")

STEPS = ("validate", "risk", "route", "execute", "track", "deadline")
ROUTE_ERRORS = frozenset({"broker_not_found", "broker_ineligible", "no_eligible_broker"})
ACKNOWLEDGED = frozenset(
    {
        OrderStatus.ACCEPTED,
        OrderStatus.TRIGGERED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_REPLACE,
        OrderStatus.FILLED,
        *TERMINAL_STATUSES,
    }
)
DEFAULT_NAME = "trademaster-agent"
NS_PER_MS = Decimal(1_000_000)
NS_PER_S = Decimal(1_000_000_000)
Q3 = Decimal("0.001")

CAPABILITY_ALERTS = Counter(
    "tm_agent_capability_alerts_total",
    "Trading-agent capability health crossing 0.9: kind DEGRADED (fell below) or RECOVERED.",
    ["capability", "kind"],
)


# --- the interface --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentIdentity:
    user: Any  # the user the agent acts for (its token's user)
    name: str  # shown as the actor, e.g. "strategy-bot (agent)"
    notional_cap: Decimal | None  # per-agent cap, None = none
    active: bool = True  # False: the agent's profile is switched off; it may not place orders


@dataclass(frozen=True)
class AgentOrder:
    request: OrderRequest
    broker_id: int | None = None
    algo: AlgoParams | None = None


@dataclass(frozen=True)
class AgentOutcome:
    ok: bool  # False: failed/refused (see failed_step, reasons)
    preview: bool
    order_id: int | None  # None for a preview or when nothing was persisted
    status: str | None  # the order's status at the end
    approved: bool | None  # the risk verdict
    reasons: tuple[str, ...]  # rule failures or the failure's message
    broker_id: int | None  # the route
    broker: str  # route label
    failed_step: str | None  # validate | risk | route | execute | track | deadline
    elapsed_ms: Decimal  # the unit of work, from admission (what the deadline bounds)
    queued_ms: Decimal = Decimal(0)  # waiting for admission (AGENT_CONCURRENCY) before that

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "preview": self.preview,
            "order_id": self.order_id,
            "status": self.status,
            "approved": self.approved,
            "reasons": list(self.reasons),
            "broker_id": self.broker_id,
            "broker": self.broker,
            "failed_step": self.failed_step,
            "elapsed_ms": str(self.elapsed_ms),
            "queued_ms": str(self.queued_ms),
        }


def agent_identity(*, user, application=None) -> AgentIdentity:
    """The identity an OAuth2 application's agent acts under (sync: reads its AgentProfile).
    Without an application: the service's own agent, no cap."""
    if application is None:
        return AgentIdentity(user=user, name=f"{DEFAULT_NAME} (agent)", notional_cap=None)
    from agentos.models import AgentProfile

    profile = AgentProfile.objects.filter(application=application).first()
    name = f"{(application.name or application.client_id)[:60]} (agent)"
    if profile is None:
        return AgentIdentity(user=user, name=name, notional_cap=None)
    return AgentIdentity(user=user, name=name, notional_cap=profile.notional_cap, active=profile.is_active)


# --- threads --------------------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool  # one pool per process, made on first use
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.AGENT_THREADS, thread_name_prefix="agent")
        return _pool


def _in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a worker thread with a usable connection, and give the connection back
    afterwards (to the pool on PostgreSQL; a no-op for SQLite's in-memory test database)."""
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        connection.close()


async def _thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn`` in a worker thread. Cancelled meanwhile (a failed sibling, the deadline), it still
    waits for the thread to return before the cancellation goes on, since a thread cannot be
    stopped: nothing of a request outlives it."""
    call = sync_to_async(_in_thread, thread_sensitive=False, executor=_executor())
    future = asyncio.ensure_future(call(fn, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the request is cancelled whatever the thread did
        raise


def _ms_since(start_ns: int) -> Decimal:
    return (Decimal(time.perf_counter_ns() - start_ns) / NS_PER_MS).quantize(Q3)


def _now() -> Decimal:
    return Decimal(time.monotonic_ns()) / NS_PER_S


# --- the unit of work -----------------------------------------------------------------------------


class StepFailed(Exception):
    """One step refused or failed: the unit stops there."""

    def __init__(self, step: str, reasons: tuple[str, ...], *, approved: bool | None = None) -> None:
        super().__init__(f"{step}: {'; '.join(reasons)}")
        self.step = step
        self.reasons = reasons
        self.approved = approved


@dataclass
class _Run:
    preview: bool
    step: str = "validate"
    order_id: int | None = None
    status: str | None = None
    approved: bool | None = None
    reasons: tuple[str, ...] = ()
    broker_id: int | None = None
    broker: str = ""
    failed_step: str | None = None
    placing: asyncio.Future | None = None  # the placement's thread, while it may still run

    def fail(self, step: str, reasons: tuple[str, ...]) -> None:
        self.failed_step, self.reasons = step, reasons


@dataclass(frozen=True)
class _Placed:
    order_id: int
    status: str
    reason: str
    broker_id: int | None
    broker: str
    risk_rejected: bool = False  # REJECTED by the pre-trade check at placement (not the broker)


def _place(*, user, order: AgentOrder, actor: Actor) -> _Placed:
    placed = order_place(
        user=user, request=order.request, actor=actor, broker_id=order.broker_id, algo=order.algo
    )
    o = placed.order
    risk_rejected = (
        o.status == OrderStatus.REJECTED
        and OrderEvent.objects.filter(order=o, event_type="REJECT", data__has_key="risk").exists()
    )
    broker = "" if o.broker_id is None else str(o.broker)
    return _Placed(o.pk, o.status, o.status_reason, o.broker_id, broker, risk_rejected)


def _order_state(order_id: int) -> tuple[str, str]:
    return Order.objects.filter(pk=order_id).values_list("status", "status_reason").get()


def _cancel(*, user, order_id: int, actor: Actor, reason: str) -> tuple[str, str]:
    try:
        order_cancel(user=user, order_id=order_id, actor=actor, reason=reason)
    except TradeMasterError as exc:  # already closed (409) or the broker is busy: leave it as it is
        logger.info("agent could not cancel order %s: %s", order_id, exc.message)
    return _order_state(order_id)


def _validate(*, user, identity: AgentIdentity, request: OrderRequest, preview: bool) -> None:
    if not identity.active:
        raise StepFailed("validate", (f"The agent {identity.name} is disabled.",))
    errors = validate_order_request(request)
    if errors:
        raise StepFailed("validate", tuple(f"{name}: {msg}" for name, msgs in errors.items() for msg in msgs))
    if not preview and (wait := order_entry_allow(user=user)) is not None:
        raise StepFailed(
            "validate",
            (f"Order entry rate limit reached (ORDER_ENTRY_RATE); try again in {wait:.0f} s.",),
        )


def _failure_message(exc: Exception) -> str:
    return exc.message if isinstance(exc, TradeMasterError) else f"{type(exc).__name__}: {exc}"


class TradingAgent:
    """The process's trading agent (see the module docstring)."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def _gate(self) -> asyncio.Semaphore:
        """Admission: at most AGENT_CONCURRENCY units run at once (per event loop); the others
        wait their turn before their deadline starts, so a burst queues instead of expiring."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(settings.AGENT_CONCURRENCY)
        return gate

    # health --------------------------------------------------------------------------------------

    def record(self, capability: Capability, *, ok: bool, latency_ms: Decimal) -> Alert | None:
        alert = self.registry.record(capability, ok=ok, latency_ms=latency_ms, now=_now())
        if alert is not None:
            logger.warning(
                "agent capability %s %s: health %s (alert below 0.9)",
                alert.capability,
                alert.kind,
                alert.health,
            )
            CAPABILITY_ALERTS.labels(capability=alert.capability.value, kind=alert.kind.value).inc()
        return alert

    def capabilities(self) -> list[dict]:
        return [c.as_dict() for c in self.registry.capabilities(now=_now())]

    def health(self) -> dict:
        return self.registry.health(now=_now())

    # the unit ------------------------------------------------------------------------------------

    async def execute(
        self, order: AgentOrder, *, agent: AgentIdentity, preview: bool = False
    ) -> AgentOutcome:
        """Run ``order`` through the pipeline (or only validate, risk and route with ``preview``).
        Business failures are outcomes; nothing is raised for them."""
        arrived = time.perf_counter_ns()
        async with self._gate():
            return await self._admitted(order, agent, preview, arrived)

    async def _admitted(
        self, order: AgentOrder, agent: AgentIdentity, preview: bool, arrived: int
    ) -> AgentOutcome:
        started = time.perf_counter_ns()
        run = _Run(preview=preview)
        seconds = settings.AGENT_DEADLINE_SECONDS
        deadline = asyncio.timeout(float(seconds))  # asyncio counts time in float seconds
        try:
            try:
                async with deadline:
                    await self._unit(order, agent, run)
            except TimeoutError:
                if not deadline.expired():
                    raise
                run.fail("deadline", (f"The {seconds} s deadline passed during the {run.step} step.",))
                if run.step in ("execute", "track"):
                    self.record(Capability.ORDER_EXECUTION, ok=False, latency_ms=_ms_since(started))
            except StepFailed as exc:
                run.fail(exc.step, exc.reasons)
                if exc.approved is not None:
                    run.approved = exc.approved
            if run.failed_step is not None and (run.order_id is not None or run.placing is not None):
                await self._settle(run, agent)
        except asyncio.CancelledError:
            # the caller gave up: an order already on its way is still brought to a clear state
            if run.order_id is not None or run.placing is not None:
                run.fail(run.step, ("The request was cancelled by its caller.",))
                _background(self._settle(run, agent))
            raise
        ok = run.failed_step is None
        return AgentOutcome(
            ok=ok,
            preview=preview,
            order_id=run.order_id,
            status=run.status,
            approved=run.approved,
            reasons=run.reasons,
            broker_id=run.broker_id,
            broker=run.broker,
            failed_step=run.failed_step,
            elapsed_ms=_ms_since(started),
            queued_ms=Decimal(started - arrived) / 1_000_000,
        )

    async def _unit(self, order: AgentOrder, agent: AgentIdentity, run: _Run) -> None:
        run.step = "validate"
        await _thread(_validate, user=agent.user, identity=agent, request=order.request, preview=run.preview)
        run.step = "risk"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._risk(order, agent, run))
                group.create_task(self._route(order, agent, run))
        except* StepFailed as failed:
            first = failed.exceptions[0]
            assert isinstance(first, StepFailed)
            raise first from None
        if run.preview:
            return
        run.step = "execute"
        started = time.perf_counter_ns()
        actor = Actor(ActorType.AGENT, agent.user.pk, agent.name[:80])
        run.placing = asyncio.ensure_future(_thread(_place, user=agent.user, order=order, actor=actor))
        try:
            placed = await asyncio.shield(run.placing)
        except (TradeMasterError, BrokerError, DatabaseError) as exc:
            run.placing = None
            # a request the pipeline refused (a reused client_order_id: 409) is no execution fault
            client_error = isinstance(exc, TradeMasterError) and exc.status_code < 500
            self.record(Capability.ORDER_EXECUTION, ok=client_error, latency_ms=_ms_since(started))
            raise StepFailed("execute", (_failure_message(exc),)) from exc
        run.placing = None
        self._placed(run, placed)
        if OrderStatus(placed.status) is OrderStatus.REJECTED:
            # the pre-trade check under the account lock refused it (the book changed since the
            # risk step: a concurrent order): the pipeline worked; else the broker refused it
            ok = placed.risk_rejected
            self.record(Capability.ORDER_EXECUTION, ok=ok, latency_ms=_ms_since(started))
            if ok:
                run.approved = False
            raise StepFailed("risk" if ok else "execute", (placed.reason or "The order was rejected.",))
        run.step = "track"
        reason = placed.reason
        poll = float(settings.AGENT_TRACK_POLL_SECONDS)  # asyncio.sleep takes float seconds
        while OrderStatus(run.status) not in ACKNOWLEDGED:
            await asyncio.sleep(poll)
            run.status, reason = await _thread(_order_state, run.order_id)
        self.record(
            Capability.ORDER_EXECUTION, ok=run.status != OrderStatus.REJECTED, latency_ms=_ms_since(started)
        )
        if run.status == OrderStatus.REJECTED:
            raise StepFailed("track", (reason or "The broker rejected the order.",))

    def _placed(self, run: _Run, placed: _Placed) -> None:
        run.order_id, run.status = placed.order_id, placed.status
        if placed.broker_id is not None:
            run.broker_id, run.broker = placed.broker_id, placed.broker

    async def _risk(self, order: AgentOrder, agent: AgentIdentity, run: _Run) -> None:
        started = time.perf_counter_ns()
        try:
            preview = await _thread(
                order_preview, user=agent.user, request=order.request, broker_id=order.broker_id
            )
        except TradeMasterError as exc:
            if exc.code in ROUTE_ERRORS:
                raise StepFailed("route", (exc.message,)) from exc
            self.record(Capability.RISK_MANAGEMENT, ok=False, latency_ms=_ms_since(started))
            raise StepFailed("risk", (exc.message,)) from exc
        except (BrokerError, DatabaseError) as exc:
            self.record(Capability.RISK_MANAGEMENT, ok=False, latency_ms=_ms_since(started))
            raise StepFailed("risk", (_failure_message(exc),)) from exc
        self.record(Capability.RISK_MANAGEMENT, ok=True, latency_ms=_ms_since(started))
        assessment = preview.assessment
        if not assessment.approved:
            raise StepFailed("risk", tuple(assessment.reasons), approved=False)
        if (refusal := cap_refusal(agent, assessment.projected.order_notional)) is not None:
            raise StepFailed("risk", (refusal,), approved=False)
        run.approved = True

    async def _route(self, order: AgentOrder, agent: AgentIdentity, run: _Run) -> None:
        started = time.perf_counter_ns()
        request = order.request
        asset_class = asset_class_of(request.symbol)
        assert asset_class is not None  # validated
        try:
            route_ = await _thread(
                route_decide,
                user=agent.user,
                order=order_to_route(request, asset_class),
                broker_id=order.broker_id,
                allow_split=order.algo is None,
            )
        except TradeMasterError as exc:
            self.record(
                Capability.BROKER_ROUTING, ok=exc.code == "broker_not_found", latency_ms=_ms_since(started)
            )
            raise StepFailed("route", (exc.message,)) from exc
        except (BrokerError, DatabaseError) as exc:
            self.record(Capability.BROKER_ROUTING, ok=False, latency_ms=_ms_since(started))
            raise StepFailed("route", (_failure_message(exc),)) from exc
        self.record(Capability.BROKER_ROUTING, ok=True, latency_ms=_ms_since(started))
        if route_.split:
            run.broker_id = None
            run.broker = " + ".join(str(route_.accounts[a.account_id]) for a in route_.split)
        else:
            assert route_.account is not None
            run.broker_id, run.broker = route_.account.pk, str(route_.account)

    async def _settle(self, run: _Run, agent: AgentIdentity) -> None:
        """After a failure or the deadline: wait for a placement still in its thread, then cancel
        the order with the reason, so it ends in a clear state."""
        if run.placing is not None:
            try:
                self._placed(run, await run.placing)
            except (TradeMasterError, BrokerError, DatabaseError) as exc:
                run.reasons = (*run.reasons, f"The placement failed: {_failure_message(exc)}")
            run.placing = None
        if run.order_id is None:
            return
        if run.status is not None and OrderStatus(run.status) in TERMINAL_STATUSES:
            if run.status != OrderStatus.REJECTED:
                run.reasons = (*run.reasons, f"The order had already ended {run.status}.")
            return
        why = run.reasons[0] if run.reasons else run.failed_step or "failed"
        actor = Actor(ActorType.AGENT, agent.user.pk, agent.name[:80])
        reason = f"cancelled by the agent: {run.failed_step}: {why}"
        run.status, _ = await _thread(
            _cancel, user=agent.user, order_id=run.order_id, actor=actor, reason=reason
        )
        run.reasons = (*run.reasons, f"The order was cancelled by the agent; it is {run.status}.")


def cap_refusal(agent: AgentIdentity, notional: Decimal) -> str | None:
    """Why the agent's own notional cap refuses an order the risk engine valued at ``notional``
    (0: no price to value it at), or None."""
    cap = agent.notional_cap
    if cap is None:
        return None
    if notional <= 0:
        return (
            f"The order has no price to value it against the agent's notional cap of {cap:,.2f} (AGENT_CAP)."
        )
    if notional > cap:
        return f"Order notional {notional:,.2f} exceeds the agent's notional cap of {cap:,.2f} (AGENT_CAP)."
    return None


_background_tasks: set[asyncio.Task] = set()


def _background(coro) -> None:
    task = asyncio.ensure_future(coro)
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)


_agent: TradingAgent | None = None


def trading_agent() -> TradingAgent:
    """The process's one agent (its capability registry is process-wide)."""
    global _agent
    with _pool_lock:
        if _agent is None:
            _agent = TradingAgent()
        return _agent
