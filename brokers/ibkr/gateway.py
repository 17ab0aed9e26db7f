"""The IB gateway: one thread running its own asyncio loop with one ib_async ``IB`` per account.

Nothing of ib_async runs outside that loop: other threads (the bridge's HTTP handlers) submit
coroutines with :meth:`IbGateway.call` and wait for the result with a timeout. ib_async is never
asked to patch asyncio (no ``util.startLoop`` / nest_asyncio) and its blocking helpers are not used.

Per account (:class:`IbConnection`):

- connects with ``connectAsync`` (its startup sync fetches positions, open and completed orders,
  account values and executions) and reconnects with exponential backoff after a drop; after
  every reconnect the synced orders and executions are compared with what was already reported,
  so a fill or a cancel that happened while disconnected is reported then (re-sync);
- turns ib_async events into :class:`BrokerOrderUpdate` values: a first PreSubmitted / Submitted
  -> ACCEPTED; Cancelled after an error (201 and other non-warning codes) or Inactive ->
  REJECTED with IB's text; Cancelled otherwise (202) -> CANCELLED; every execution with its
  commission report -> FILL (fee = commission, fill id = execId). Updates get a sequence number
  in an :class:`UpdateBuffer` that clients read after a cursor;
- the updates of an order whose place / cancel / replace command is in flight are held and
  returned by that command instead of the buffer, so each update is delivered exactly once.

Order identity: our client order id travels in ``orderRef``; ``broker_order_id`` is IB's permId
(unique per account and stable across client ids and restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from ib_async import IB, Contract, Order, Stock, Trade
from ib_async.objects import Fill
from ib_async.util import UNSET_DOUBLE

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

logger = logging.getLogger(__name__)
T = TypeVar("T")

ORDER_TYPES = {
    OrderType.MARKET: "MKT",
    OrderType.LIMIT: "LMT",
    OrderType.STOP: "STP",
    OrderType.STOP_LIMIT: "STP LMT",
    OrderType.TRAILING_STOP: "TRAIL",
}
TIFS = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}
TIF_BACK = {v: k for k, v in TIFS.items()}
PENDING = frozenset({"PendingSubmit", "ApiPending"})
WORKING = frozenset({"PreSubmitted", "Submitted", "Filled"})
CLOSED = frozenset({"Cancelled", "ApiCancelled", "Inactive"})
# errors on a cancel request that ib_async also turns into "Cancelled": the order is not cancelled
CANCEL_REFUSALS = frozenset({161, 10147, 10148})
CONNECTIVITY_LOST, CONNECTIVITY_RESTORED = 1100, frozenset({1101, 1102})
BUFFER_SIZE = 10_000
Q8 = Decimal("0.00000001")


class GatewayError(Exception):
    """A command failed; ``status`` is the bridge's HTTP status, ``code`` a stable name."""

    status = 500
    code = "GATEWAY_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotConnected(GatewayError):
    status, code = 503, "IB_NOT_CONNECTED"


class OrderRefused(GatewayError):
    status, code = 422, "IB_REFUSED"


class OrderNotFound(GatewayError):
    status, code = 404, "IB_ORDER_NOT_FOUND"


class OutcomeUnknown(GatewayError):
    status, code = 504, "IB_NO_ANSWER"


def ib_decimal(value: Any) -> Decimal | None:
    """A number as ib_async hands it (Decimal we set, or float it decoded) as a Decimal; unset -> None."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        if value == UNSET_DOUBLE or math.isnan(value) or math.isinf(value):
            return None
        return Decimal(repr(value))  # the shortest text that reads back as the same float
    return Decimal(str(value))


def ib_reason(message: str) -> str:
    """``Error 201, reqId 5: Order rejected - reason:...`` -> ``Order rejected - reason:...``."""
    head, sep, tail = message.partition(": ")
    return tail if sep and head.startswith(("Error", "Warning")) else message


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    client_id: int
    account_code: str = ""


@dataclass(slots=True)
class _Reported:
    """What has been reported for one order (by our client order id)."""

    accepted: bool = False
    closed: bool = False
    fills: set[str] = field(default_factory=set)


class UpdateBuffer:
    """Updates with increasing sequence numbers, readable after a cursor; thread-safe.

    ``epoch`` changes when the gateway restarts, so a client's old cursor is not trusted then.
    """

    def __init__(self, size: int = BUFFER_SIZE) -> None:
        self.epoch = uuid.uuid4().hex
        self._items: deque[tuple[int, BrokerOrderUpdate]] = deque(maxlen=size)
        self._seq = 0
        self._cond = threading.Condition()

    def append(self, update: BrokerOrderUpdate) -> None:
        with self._cond:
            self._seq += 1
            self._items.append((self._seq, update))
            self._cond.notify_all()

    def after(self, epoch: str, cursor: int, wait: float = 0.0) -> tuple[str, int, list[BrokerOrderUpdate]]:
        """Updates after ``cursor`` (all of them for another epoch), waiting up to ``wait`` s for one."""
        if epoch != self.epoch:
            cursor = 0
        with self._cond:
            if wait > 0:
                self._cond.wait_for(lambda: self._seq > cursor, timeout=wait)
            updates = [u for seq, u in self._items if seq > cursor]
            return self.epoch, self._seq, updates

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class IbConnection:
    """One account's ib_async connection; every method runs in the gateway loop."""

    def __init__(self, key: str, endpoint: Endpoint, gateway: IbGateway) -> None:
        self.key = key
        self.endpoint = endpoint
        self.gateway = gateway
        self.updates = UpdateBuffer()
        self.ib = IB()
        self.ib.orderStatusEvent += self._on_status
        self.ib.openOrderEvent += self._on_open_order
        self.ib.commissionReportEvent += self._on_commission
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected
        self.last_error = "not connected yet"
        self.connectivity_lost = False
        self.attempts = 0
        self.reconnects = 0
        self._reported: dict[str, _Reported] = {}
        self._holds: dict[str, list[BrokerOrderUpdate]] = {}
        self._errors: dict[int, list[tuple[int, str]]] = {}
        self._open_orders_seen: dict[int, int] = {}
        self._contracts: dict[str, Contract] = {}
        self._signal = asyncio.Event()
        self._dropped = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- connection -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ib-{self.key}")

    async def stop(self) -> None:
        self._stopping.set()
        self.ib.disconnect()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the task was told to stop
                await self._task

    async def _run(self) -> None:
        backoff = self.gateway.reconnect_min
        first = True
        while not self._stopping.is_set():
            self._dropped.clear()
            self.attempts += 1
            ep = self.endpoint
            try:
                await self.ib.connectAsync(
                    ep.host,
                    ep.port,
                    ep.client_id,
                    timeout=self.gateway.connect_timeout,
                    account=ep.account_code,
                )
            except Exception as exc:  # no failure of one attempt may end the reconnect loop
                if not isinstance(exc, OSError | TimeoutError | ConnectionError):
                    logger.exception("IB account %s: unexpected failure while connecting", self.key)
                self.last_error = (
                    f"cannot connect to TWS at {ep.host}:{ep.port} (clientId {ep.client_id}): {exc!r}"
                )
                logger.warning("IB account %s: %s; retrying in %ss", self.key, self.last_error, backoff)
                self._poke()
                await self._pause(backoff)
                backoff = min(backoff * 2, self.gateway.reconnect_max)
                continue
            backoff = self.gateway.reconnect_min
            self.last_error = ""
            self.connectivity_lost = False
            if not first:
                self.reconnects += 1
            try:
                self._resync(silent=first)
            except Exception:  # a bad record must not stop the connection from serving
                logger.exception("IB account %s: re-sync after connecting failed", self.key)
            first = False
            self._ready.set()
            self._poke()
            logger.info("IB account %s connected to %s:%s", self.key, ep.host, ep.port)
            await self._dropped.wait()
            self._ready.clear()
            self._poke()
            if not self._stopping.is_set():
                await self._pause(backoff)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):  # the backoff elapsed
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _on_disconnected(self) -> None:
        if not self.last_error:
            self.last_error = "the connection to TWS dropped"
        self._dropped.set()
        self._poke()

    @property
    def connected(self) -> bool:
        return self._ready.is_set() and self.ib.isConnected()

    async def _settle(self) -> None:
        """A brand-new connection: give its first attempt its time."""
        if not self.connected and self.attempts <= 1:
            await self._until(lambda: self.connected or self.attempts > 1, self.gateway.connect_timeout + 1)

    async def _require(self) -> None:
        await self._settle()
        if not self.connected:
            raise NotConnected(
                f"IB gateway not connected to TWS for account {self.key}: {self.last_error or 'connecting'}"
            )

    def _resync(self, *, silent: bool) -> None:
        """After (re)connecting: report what the startup sync shows and was not reported yet.

        On the first connection of this process only fills are reported (the OMS de-duplicates
        them); statuses are taken as already known, to avoid replaying old terminal updates."""
        for trade in self.ib.trades():
            self._on_status(trade, silent=silent)
        for fill in self.ib.fills():
            if fill.commissionReport.execId:
                self._report_fill(fill)

    # --- waiting ----------------------------------------------------------------------------
    def _poke(self) -> None:
        self._signal.set()
        self._signal = asyncio.Event()

    async def _until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            signal = self._signal
            try:
                await asyncio.wait_for(signal.wait(), remaining)
            except TimeoutError:
                return predicate()
        return True

    async def _ask(self, awaitable: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(awaitable, self.gateway.request_timeout)
        except TimeoutError:
            raise OutcomeUnknown(
                f"TWS did not answer {what} within {self.gateway.request_timeout}s"
            ) from None
        except ConnectionError as exc:
            raise NotConnected(f"the connection to TWS dropped during {what}: {exc}") from exc

    # --- events -> updates ------------------------------------------------------------------
    def _emit(self, update: BrokerOrderUpdate) -> None:
        held = self._holds.get(update.client_order_id)
        if held is not None:
            held.append(update)
        else:
            self.updates.append(update)

    def _on_status(self, trade: Trade, *, silent: bool = False) -> None:
        self._poke()
        cid = trade.order.orderRef
        if not cid:
            return  # not one of ours (placed in TWS by hand)
        seen = self._reported.setdefault(cid, _Reported())
        status = trade.orderStatus.status
        now = dt.datetime.now(dt.UTC)
        broker_id = str(trade.order.permId or trade.orderStatus.permId or "")
        if status in WORKING and not seen.accepted and not seen.closed:
            seen.accepted = True
            seen.closed = status == "Filled"
            if not silent:
                self._emit(BrokerOrderUpdate(UpdateKind.ACCEPTED, cid, broker_id, now))
        elif status in CLOSED and not seen.closed:
            code, message = self._last_error(trade)
            if code in CANCEL_REFUSALS:
                return  # a refused cancel: the order is still live (or filled) at IB
            seen.closed = True
            if silent:
                return
            if status == "Inactive" or (code and code != 202):
                reason = message or f"IB reported the order {status}"
                self._emit(BrokerOrderUpdate(UpdateKind.REJECTED, cid, broker_id, now, reason=reason))
            else:
                self._emit(BrokerOrderUpdate(UpdateKind.CANCELLED, cid, broker_id, now, reason=message))
        elif status == "Filled":
            seen.closed = True

    @staticmethod
    def _last_error(trade: Trade) -> tuple[int, str]:
        """The error that closed the order (ib_async logs it with the Cancelled status); warnings
        logged earlier (status ValidationError) do not count."""
        for entry in reversed(trade.log):
            if entry.errorCode and entry.status in CLOSED:
                return entry.errorCode, ib_reason(entry.message)
        return 0, ""

    def _on_open_order(self, trade: Trade) -> None:
        order_id = trade.order.orderId
        self._open_orders_seen[order_id] = self._open_orders_seen.get(order_id, 0) + 1
        self._poke()

    def _on_commission(self, trade: Trade, fill: Fill, report: Any) -> None:
        self._report_fill(fill, trade)

    def _report_fill(self, fill: Fill, trade: Trade | None = None) -> None:
        execution = fill.execution
        cid = execution.orderRef or (trade.order.orderRef if trade is not None else "")
        if not cid:
            return
        seen = self._reported.setdefault(cid, _Reported())
        if execution.execId in seen.fills:
            return
        seen.fills.add(execution.execId)
        report = FillReport(
            broker_fill_id=execution.execId,
            quantity=ib_decimal(execution.shares) or Decimal(0),
            price=ib_decimal(execution.price) or Decimal(0),
            fee=ib_decimal(fill.commissionReport.commission) or Decimal(0),
            liquidity="MAKER" if execution.lastLiquidity == 1 else "TAKER",
        )
        at = execution.time if isinstance(execution.time, dt.datetime) else dt.datetime.now(dt.UTC)
        self._emit(BrokerOrderUpdate(UpdateKind.FILL, cid, str(execution.permId), at, fill=report))
        self._poke()

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if code == CONNECTIVITY_LOST:
            self.connectivity_lost = True
            self.last_error = f"TWS lost its connection to IB (1100): {message}"
        elif code in CONNECTIVITY_RESTORED:
            self.connectivity_lost = False
            self.last_error = ""
        if req_id > 0:
            self._errors.setdefault(req_id, []).append((code, message))
        self._poke()

    # --- lookups ----------------------------------------------------------------------------
    def _find(self, client_order_id: str) -> Trade | None:
        found = [t for t in self.ib.trades() if t.order.orderRef == client_order_id]
        if not found:
            return None
        # a live trade of this session beats a completed-order record of the same order
        return max(found, key=lambda t: (t.order.orderId > 0, t.order.orderId))

    async def _refresh(self) -> None:
        """Ask TWS for its view: open orders, completed orders and executions (all of the day)."""
        await self._ask(self.ib.reqAllOpenOrdersAsync(), "reqAllOpenOrders")
        await self._ask(self.ib.reqCompletedOrdersAsync(False), "reqCompletedOrders")
        await self._ask(self.ib.reqExecutionsAsync(), "reqExecutions")
        self._resync(silent=False)

    async def _contract(self, symbol: str) -> Contract:
        contract = self._contracts.get(symbol)
        if contract is None:
            qualified = await self._ask(
                self.ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD")), f"the contract of {symbol}"
            )
            if not qualified or qualified[0] is None or not qualified[0].conId:
                raise OrderRefused(f"IB does not know the US stock {symbol!r}", code="IB_UNKNOWN_CONTRACT")
            contract = self._contracts[symbol] = qualified[0]
        return contract

    def _state(self, trade: Trade) -> BrokerOrderState:
        cid = trade.order.orderRef
        fills = [
            FillReport(
                broker_fill_id=f.execution.execId,
                quantity=ib_decimal(f.execution.shares) or Decimal(0),
                price=ib_decimal(f.execution.price) or Decimal(0),
                fee=ib_decimal(f.commissionReport.commission) or Decimal(0),
                liquidity="MAKER" if f.execution.lastLiquidity == 1 else "TAKER",
            )
            for f in self.ib.fills()
            if f.execution.orderRef == cid and f.execution.permId == trade.order.permId
        ]
        filled_by_fills = sum((f.quantity for f in fills), Decimal(0))
        reported = ib_decimal(trade.orderStatus.filled) or Decimal(0)
        completed = ib_decimal(trade.order.filledQuantity) or Decimal(0)
        filled = max(filled_by_fills, reported, completed)
        if filled_by_fills:
            notional = sum((f.quantity * f.price for f in fills), Decimal(0))
            average = (notional / filled_by_fills).quantize(Q8)
        else:
            average = ib_decimal(trade.orderStatus.avgFillPrice) if filled else None
        status = trade.orderStatus.status
        code, _ = self._last_error(trade)
        if status == "Filled":
            state = BrokerOrderStatus.FILLED
        elif status == "Inactive" or (status in CLOSED and code and code not in (202, *CANCEL_REFUSALS)):
            state = BrokerOrderStatus.REJECTED
        elif status in CLOSED:
            state = BrokerOrderStatus.CANCELLED
        else:
            state = BrokerOrderStatus.OPEN
        return BrokerOrderState(
            client_order_id=cid,
            broker_order_id=str(trade.order.permId or trade.orderStatus.permId or ""),
            symbol=trade.contract.symbol,
            side=Side.BUY if trade.order.action == "BUY" else Side.SELL,
            status=state,
            quantity=ib_decimal(trade.order.totalQuantity) or Decimal(0),
            filled_quantity=filled,
            average_fill_price=average,
            fills=tuple(fills),
        )

    # --- commands ---------------------------------------------------------------------------
    async def place(self, request: BrokerOrderRequest) -> list[BrokerOrderUpdate]:
        await self._require()
        order = build_order(request)
        cid = request.client_order_id
        if self._find(cid) is not None:
            raise OrderRefused(
                f"client order id {cid!r} was already sent to IB", code="IB_DUPLICATE_ORDER_REF"
            )
        contract = await self._contract(request.symbol)
        self._holds[cid] = []
        try:
            try:
                trade = self.ib.placeOrder(contract, order)
            except ConnectionError as exc:  # raised before anything was written to the socket
                raise NotConnected(
                    f"the connection to TWS dropped before order {cid} was sent: {exc}"
                ) from exc
            answered = await self._until(
                lambda: trade.orderStatus.status not in PENDING or not self.ib.isConnected(),
                self.gateway.request_timeout,
            )
            if not self.ib.isConnected():
                raise OutcomeUnknown(f"the connection to TWS dropped while placing {cid}")
            if not answered:
                raise OutcomeUnknown(
                    f"TWS did not acknowledge order {cid} within {self.gateway.request_timeout}s"
                )
            await asyncio.sleep(0)  # let messages already read (an immediate fill) be handled
            return self._holds.pop(cid)
        finally:
            for update in self._holds.pop(cid, []):
                self.updates.append(update)

    async def cancel(self, client_order_id: str) -> list[BrokerOrderUpdate]:
        await self._require()
        trade = await self._trade(client_order_id)
        if trade.isDone():
            raise OrderRefused(
                f"order {client_order_id} is already {trade.orderStatus.status.lower()} at IB",
                code="IB_TOO_LATE",
            )
        order_id = trade.order.orderId
        errors_before = len(self._errors.get(order_id, []))
        self._holds[client_order_id] = []
        try:
            self.ib.cancelOrder(trade.order)
            answered = await self._until(
                lambda: trade.isDone() or len(self._errors.get(order_id, [])) > errors_before,
                self.gateway.request_timeout,
            )
            if not answered:
                raise OutcomeUnknown(f"TWS did not answer the cancel of {client_order_id}")
            refusals = [
                (c, m) for c, m in self._errors.get(order_id, [])[errors_before:] if c in CANCEL_REFUSALS
            ]
            if refusals:
                raise OrderRefused(refusals[-1][1], code=f"IB_{refusals[-1][0]}")
            return self._holds.pop(client_order_id)
        finally:
            for update in self._holds.pop(client_order_id, []):
                self.updates.append(update)

    async def replace(self, client_order_id: str, change: OrderChange) -> list[BrokerOrderUpdate]:
        """IB modifies an order in place: the same orderId is sent again with the new values."""
        await self._require()
        trade = await self._trade(client_order_id)
        if trade.isDone():
            raise OrderRefused(
                f"order {client_order_id} is already {trade.orderStatus.status.lower()} at IB",
                code="IB_TOO_LATE",
            )
        order = trade.order
        apply_change(order, change)
        order_id = order.orderId
        seen_before = self._open_orders_seen.get(order_id, 0)
        errors_before = len(self._errors.get(order_id, []))
        self._holds[client_order_id] = []
        try:
            self.ib.placeOrder(trade.contract, order)
            answered = await self._until(
                lambda: (
                    self._open_orders_seen.get(order_id, 0) > seen_before
                    or len(self._errors.get(order_id, [])) > errors_before
                ),
                self.gateway.request_timeout,
            )
            if not answered:
                raise OutcomeUnknown(f"TWS did not acknowledge the modification of {client_order_id}")
            errors = self._errors.get(order_id, [])[errors_before:]
            if errors:
                raise OrderRefused(errors[-1][1], code=f"IB_{errors[-1][0]}")
            replaced = BrokerOrderUpdate(
                UpdateKind.REPLACED,
                client_order_id,
                str(order.permId),
                dt.datetime.now(dt.UTC),
                change=in_force(order),
            )
            return [replaced, *self._holds.pop(client_order_id)]
        finally:
            for update in self._holds.pop(client_order_id, []):
                self.updates.append(update)

    async def _trade(self, client_order_id: str) -> Trade:
        trade = self._find(client_order_id)
        if trade is None:
            await self._refresh()
            trade = self._find(client_order_id)
        if trade is None:
            raise OrderNotFound(f"IB has no order with orderRef {client_order_id!r}")
        return trade

    async def get_order(self, client_order_id: str) -> BrokerOrderState | None:
        """Our view if the order is live in this session; else TWS's (orders from before a restart)."""
        await self._require()
        trade = self._find(client_order_id)
        if trade is None or trade.orderStatus.status in PENDING:
            await self._refresh()
            trade = self._find(client_order_id)
        if trade is None or trade.orderStatus.status in PENDING:
            return None
        return self._state(trade)

    async def open_orders(self) -> list[BrokerOrderState]:
        await self._require()
        trades = await self._ask(self.ib.reqAllOpenOrdersAsync(), "reqAllOpenOrders")
        return [self._state(t) for t in trades if t.order.orderRef and not t.isDone()]

    async def positions(self) -> list[BrokerPosition]:
        await self._require()
        held = await self._ask(self.ib.reqPositionsAsync(), "reqPositions")
        return [
            BrokerPosition(
                symbol=p.contract.symbol,
                quantity=ib_decimal(p.position) or Decimal(0),
                average_cost=ib_decimal(p.avgCost) or Decimal(0),
            )
            for p in held
            if p.contract.secType == "STK" and p.position
        ]

    async def account(self) -> AccountInfo:
        await self._require()
        values = {
            v.tag: v.value for v in self.ib.accountValues() if v.currency in ("USD", "BASE") and v.value != ""
        }
        missing = [k for k in ("NetLiquidation", "BuyingPower", "TotalCashValue") if k not in values]
        if missing:
            raise OutcomeUnknown(f"TWS has not sent the account values {', '.join(missing)} yet")
        return AccountInfo(
            cash=Decimal(values["TotalCashValue"]),
            buying_power=Decimal(values["BuyingPower"]),
            total_value=Decimal(values["NetLiquidation"]),
        )

    async def quote(self, symbol: str) -> Quote:
        await self._require()
        contract = await self._contract(symbol)
        [ticker] = await self._ask(self.ib.reqTickersAsync(contract), f"a market data snapshot of {symbol}")
        bid, ask = ib_decimal(ticker.bid), ib_decimal(ticker.ask)
        if bid is None or ask is None or bid <= 0 or ask <= 0:
            raise OutcomeUnknown(
                f"IB sent no bid/ask for {symbol} (no market data permission?)", code="IB_NO_QUOTE"
            )
        last = ib_decimal(ticker.last)
        return Quote(
            symbol=symbol,
            bid=bid,
            ask=ask,
            bid_size=ib_decimal(ticker.bidSize) or Decimal(0),
            ask_size=ib_decimal(ticker.askSize) or Decimal(0),
            last=last if last is not None and last > 0 else (bid + ask) / 2,
            at=dt.datetime.now(dt.UTC),
        )

    async def health(self) -> dict[str, Any]:
        await self._settle()
        if not self.connected:
            return {"connected": False, "latency_ms": None, "detail": self.last_error or "connecting"}
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._ask(self.ib.reqCurrentTimeAsync(), "reqCurrentTime")
        latency = Decimal(round((loop.time() - started) * 1000, 3)).quantize(Decimal("0.001"))
        return {
            "connected": True,
            "latency_ms": str(latency),
            "detail": self.last_error if self.connectivity_lost else "",
            "connectivity_lost": self.connectivity_lost,
            "reconnects": self.reconnects,
        }


def build_order(request: BrokerOrderRequest) -> Order:
    """Our request as an ib_async Order (decimals stay Decimal; ib_async writes them with str)."""
    if request.asset_class is not AssetClass.EQUITY:
        raise OrderRefused(f"the IB adapter trades US equities only, not {request.asset_class.lower()}")
    if request.order_type not in ORDER_TYPES:
        raise OrderRefused(f"IB orders of type {request.order_type} are not supported here")
    order = Order(
        action="BUY" if request.side is Side.BUY else "SELL",
        totalQuantity=request.quantity,
        orderType=ORDER_TYPES[request.order_type],
        tif=TIFS[request.time_in_force],
        orderRef=request.client_order_id,
    )
    if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        order.lmtPrice = request.price
    if request.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        order.auxPrice = request.stop_price
    if request.order_type is OrderType.TRAILING_STOP:
        if request.trail_percent is not None:
            order.trailingPercent = request.trail_percent
        else:
            order.auxPrice = request.trail_amount
    return order


def apply_change(order: Order, change: OrderChange) -> None:
    if change.quantity is not None:
        order.totalQuantity = change.quantity
    if change.price is not None:
        order.lmtPrice = change.price
    if change.stop_price is not None and order.orderType in ("STP", "STP LMT"):
        order.auxPrice = change.stop_price
    if change.trail_amount is not None:
        order.auxPrice, order.trailingPercent = change.trail_amount, UNSET_DOUBLE
    elif change.trail_percent is not None:
        order.auxPrice, order.trailingPercent = UNSET_DOUBLE, change.trail_percent
    if change.time_in_force is not None:
        order.tif = TIFS[change.time_in_force]


def in_force(order: Order) -> OrderChange:
    """The values an order carries now, as the REPLACED update reports them."""
    aux = ib_decimal(order.auxPrice)
    trail = order.orderType == "TRAIL"
    return OrderChange(
        quantity=ib_decimal(order.totalQuantity),
        price=ib_decimal(order.lmtPrice),
        stop_price=aux if order.orderType in ("STP", "STP LMT") else None,
        trail_amount=aux if trail else None,
        trail_percent=ib_decimal(order.trailingPercent) if trail else None,
        time_in_force=TIF_BACK.get(order.tif),
    )


class IbGateway:
    """Owns the loop thread and one :class:`IbConnection` per account key."""

    def __init__(
        self,
        *,
        connect_timeout: float = 4.0,
        request_timeout: float = 5.0,
        reconnect_min: float = 0.2,
        reconnect_max: float = 30.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.connections: dict[str, IbConnection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> IbGateway:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="ib-gateway-loop", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def close_all() -> None:
            for connection in list(self.connections.values()):
                await connection.stop()

        asyncio.run_coroutine_threadsafe(close_all(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run ``fn()`` in the gateway loop from another thread and wait up to ``timeout`` s."""
        loop = self._loop
        if loop is None:
            raise NotConnected("the IB gateway is not running")

        async def run() -> T:
            return await fn()

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise OutcomeUnknown(f"the IB gateway did not finish within {timeout}s") from None

    def connection(self, key: str, endpoint: Endpoint) -> IbConnection:
        """The account's connection, started on first use (and restarted if its endpoint changed)."""
        with self._lock:
            current = self.connections.get(key)
            if current is not None and current.endpoint == endpoint:
                return current

            async def make() -> IbConnection:
                if current is not None:
                    await current.stop()
                connection = IbConnection(key, endpoint, self)
                connection.start()
                return connection

            connection = self.call(make, 10)
            self.connections[key] = connection
            return connection
