"""A fake TWS / IB Gateway socket server speaking the TWS API wire protocol (real TCP, loopback).

Pinned to server version 176 (reference section 4.1): openOrder changes at 177 and execDetails at
178, so the layouts written here are the 176 ones. The encoder follows the field order that
ib_async's decoder reads; it was written for this fake, not taken from any library.

Covered: the handshake, startApi -> nextValidId + managedAccounts, the startup sync (positions,
open orders, completed orders, account updates, executions), reqContractDetails (for qualify),
placeOrder (a modify is the same orderId again), cancelOrder, reqOpenOrders / reqAllOpenOrders,
reqCompletedOrders, reqExecutions, reqPositions, reqAccountUpdates, reqCurrentTime and market
data snapshots (bid/ask/last ticks, then tickSnapshotEnd).

Scripting (see :meth:`FakeTws.next_place`): fill at once, partial fill now and the rest later,
rest until :meth:`fill` is called, reject with error 201 and a reason, swallow the reply (the
order is taken, nothing is answered), answer slowly; :meth:`drop` closes every client connection
(new connections are accepted), and :meth:`fill` works while no client is connected: the
execution is then found by the next client's reqExecutions / reqCompletedOrders. For a driver
outside the tests (the demo mode): :meth:`open_orders` (a snapshot), :meth:`fill_open` (executes
only an order still open), :meth:`add_contract` and :meth:`set_quote`.

Every placeOrder payload is recorded in :attr:`FakeTws.placed` with its wire fields by name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import struct
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from decimal import Decimal

SERVER_VERSION = 176
D = Decimal

# placeOrder field positions at server version 176 for a STK order without combo legs
PLACE_FIELDS = {
    "orderId": 1,
    "conId": 2,
    "symbol": 3,
    "secType": 4,
    "exchange": 9,
    "primaryExchange": 10,
    "currency": 11,
    "action": 16,
    "totalQuantity": 17,
    "orderType": 18,
    "lmtPrice": 19,
    "auxPrice": 20,
    "tif": 21,
    "account": 23,
    "orderRef": 26,
    "transmit": 27,
    "outsideRth": 33,
    "trailStopPrice": 69,
    "trailingPercent": 70,
}
OPEN_STATUSES = frozenset({"PreSubmitted", "Submitted", "PendingSubmit", "PendingCancel"})


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def frame(*fields: object) -> bytes:
    """One TWS message: a 4-byte big-endian length, then NUL-terminated ASCII fields."""
    body = b"".join(_text(f).encode() + b"\0" for f in fields)
    return struct.pack(">I", len(body)) + body


@dataclass
class Behaviour:
    kind: str = "rest"  # rest | fill | partial | reject | swallow
    price: Decimal | None = None
    quantity: Decimal | None = None  # for partial: the part filled now
    reason: str = ""
    delay: float = 0.0  # seconds before anything is answered
    commission: Decimal = Decimal("1.00")


@dataclass
class Execution:
    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    symbol: str
    con_id: int
    side: str  # BOT | SLD
    shares: Decimal
    price: Decimal
    cum_qty: Decimal
    avg_price: Decimal
    order_ref: str
    commission: Decimal
    at: dt.datetime


@dataclass
class FakeOrder:
    client_id: int
    order_id: int
    perm_id: int
    fields: dict[str, str]
    status: str = "Submitted"
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    completed_at: str = ""
    executions: list[Execution] = field(default_factory=list)

    @property
    def quantity(self) -> Decimal:
        return D(self.fields["totalQuantity"])

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def avg_price(self) -> Decimal:
        return self.notional / self.filled if self.filled else D(0)

    @property
    def order_ref(self) -> str:
        return self.fields.get("orderRef", "")


class _Session:
    """One client connection."""

    def __init__(self, fake: FakeTws, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.fake = fake
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self.account_subscribed = False

    def send(self, *fields: object) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame(*fields))

    async def run(self) -> None:
        try:
            prefix = await self.reader.readexactly(4)
            if prefix != b"API\0":
                return
            await self._message()  # "v157..178" plus options
            now = dt.datetime.now(dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")
            self.send(SERVER_VERSION, now)
            while True:
                fields = await self._message()
                self.fake.received.append(fields)
                await self.fake._handle(self, fields)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.fake._sessions.discard(self)
            self.writer.close()

    async def _message(self) -> list[str]:
        size = struct.unpack(">I", await self.reader.readexactly(4))[0]
        body = (await self.reader.readexactly(size)).decode()
        return body.split("\0")[:-1]


class FakeTws:
    def __init__(self, accounts: tuple[str, ...] = ("DU1234567",), *, port: int = 0) -> None:
        self.accounts = accounts
        self.host = "127.0.0.1"
        self.port = port  # 0: any free port, known after start()
        self.next_order_id = 1
        self.contracts: dict[str, int] = {"AAPL": 265598, "MSFT": 272093, "BRK B": 72063691, "TSLA": 76792991}
        # symbol -> (bid, ask, last, bid size, ask size)
        self.quotes: dict[str, tuple[Decimal, Decimal, Decimal, Decimal, Decimal]] = {
            "AAPL": (D("187.20"), D("187.30"), D("187.25"), D("300"), D("500")),
            "MSFT": (D("410.00"), D("410.20"), D("410.10"), D("100"), D("200")),
        }
        self.account_values: dict[str, str] = {
            "NetLiquidation": "100000.00",
            "BuyingPower": "400000.00",
            "TotalCashValue": "100000.00",
            "AvailableFunds": "100000.00",
        }
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (signed qty, avg cost)
        self.orders: dict[tuple[int, int], FakeOrder] = {}
        self.executions: list[Execution] = []
        self.placed: list[dict[str, str]] = []  # every placeOrder payload, fields by name
        self.cancels: list[int] = []
        self.received: list[list[str]] = []  # every message after the handshake
        self.connections = 0  # accepted client connections so far
        self.refusing = False  # close new connections at once (TWS restarting, not logged in)
        self._behaviours: deque[Behaviour] = deque()
        self._perm_ids = itertools.count(900001)
        self._exec_ids = itertools.count(1)
        self._sessions: set[_Session] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()

    @property
    def url(self) -> str:
        """Where TWS listens, for display; clients take ``host`` and ``port``."""
        return f"tcp://{self.host}:{self.port}"

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> FakeTws:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accept, self.host, self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-tws", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("the fake TWS did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for session in list(self._sessions):
                session.writer.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        session = _Session(self, reader, writer)
        self._sessions.add(session)
        self.connections += 1
        await session.run()

    def _call(self, fn, *args):
        """Run ``fn`` in the server loop, wait for it and return its result (the scripting API is
        called from tests)."""
        assert self._loop is not None

        async def run():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    # --- scripting --------------------------------------------------------------------------
    def next_place(
        self,
        kind: str = "rest",
        *,
        price: Decimal | str | None = None,
        quantity: Decimal | str | None = None,
        reason: str = "",
        delay: float = 0.0,
        commission: Decimal | str = "1.00",
    ) -> None:
        """How the next new order is answered: rest | fill | partial | reject | swallow."""
        self._behaviours.append(
            Behaviour(
                kind=kind,
                price=None if price is None else D(price),
                quantity=None if quantity is None else D(quantity),
                reason=reason,
                delay=delay,
                commission=D(commission),
            )
        )

    def fill(
        self,
        order_ref: str,
        quantity: Decimal | str | None = None,
        price: Decimal | str | None = None,
        commission: Decimal | str = "1.00",
    ) -> None:
        """Execute (part of) a resting order; works while no client is connected."""
        self._call(self._fill_by_ref, order_ref, quantity, price, D(commission))

    def fill_open(
        self,
        order_ref: str,
        quantity: Decimal | str,
        price: Decimal | str,
        commission: Decimal | str = "1.00",
    ) -> bool:
        """Like :meth:`fill`, but only while the order is still open (checked in the server loop,
        so a cancel that came first wins); True when it executed."""

        def execute() -> bool:
            order = self.order_by_ref(order_ref)
            if order.status not in OPEN_STATUSES or D(quantity) > order.remaining:
                return False
            self._execute(order, D(quantity), D(price), D(commission))
            return True

        return self._call(execute)

    def open_orders(self) -> list[FakeOrder]:
        """A snapshot of every open order (copies: the fake keeps changing its own)."""

        def snapshot() -> list[FakeOrder]:
            return [
                replace(o, fields=dict(o.fields), executions=list(o.executions))
                for o in self.orders.values()
                if o.status in OPEN_STATUSES
            ]

        return self._call(snapshot)

    def add_contract(self, symbol: str, con_id: int | None = None) -> None:
        """Make a US stock known (qualify, orders); a new conId is made up unless given."""

        def add() -> None:
            if symbol not in self.contracts:
                self.contracts[symbol] = con_id or max(self.contracts.values(), default=0) + 1

        self._call(add)

    def set_quote(
        self,
        symbol: str,
        bid: Decimal | str,
        ask: Decimal | str,
        last: Decimal | str | None = None,
        size: Decimal | str = "100",
    ) -> None:
        """The snapshot market data of ``symbol`` from now on (last: the mid unless given)."""
        bid, ask = D(bid), D(ask)
        quote = (bid, ask, D(last) if last is not None else (bid + ask) / 2, D(size), D(size))

        def store() -> None:
            self.quotes[symbol] = quote

        self._call(store)

    def cancel_at_broker(self, order_ref: str, reason: str = "") -> None:
        """Cancel a resting order from TWS's side (a user in TWS, end of day); works while no
        client is connected: the next client then finds it among the completed orders."""

        def cancel() -> None:
            order = self.order_by_ref(order_ref)
            order.status = "Cancelled"
            order.completed_at = dt.datetime.now(dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")
            for session in self._sessions:
                if session.client_id == order.client_id:
                    session.send(*self._order_status(order))
                    session.send(4, 2, order.order_id, 202, f"Order Canceled - reason:{reason}", "")

        self._call(cancel)

    def drop(self) -> None:
        """Close every client connection, as when TWS restarts or the network breaks."""

        def close() -> None:
            for session in list(self._sessions):
                session.writer.close()

        self._call(close)

    def set_account_value(self, key: str, value: str) -> None:
        def push() -> None:
            self.account_values[key] = value
            for session in self._sessions:
                if session.account_subscribed:
                    session.send(6, 2, key, value, "USD", self.accounts[0])

        self._call(push)

    def notify(self, code: int, message: str, req_id: int = -1) -> None:
        """Send an error / info message to every client (e.g. 1100 connectivity lost, 1102 restored)."""

        def push() -> None:
            for session in self._sessions:
                session.send(4, 2, req_id, code, message, "")

        self._call(push)

    def order_by_ref(self, order_ref: str) -> FakeOrder:
        [order] = [o for o in self.orders.values() if o.order_ref == order_ref]
        return order

    def clients(self) -> int:
        return len(self._sessions)

    def placed_for(self, order_ref: str) -> list[dict[str, str]]:
        return [p for p in self.placed if p["orderRef"] == order_ref]

    # --- requests ---------------------------------------------------------------------------
    async def _handle(self, session: _Session, f: list[str]) -> None:
        msg = int(f[0])
        if msg == 71:  # startApi [71, 2, clientId, optionalCapabilities]
            session.client_id = int(f[2])
            session.send(9, 1, self.next_order_id)
            session.send(15, 1, ",".join(self.accounts))
        elif msg == 61:  # reqPositions
            for symbol, (qty, cost) in self.positions.items():
                session.send(61, 3, self.accounts[0], *self._contract(symbol, exchange=""), qty, cost)
            session.send(62, 1)
        elif msg in (5, 16):  # reqOpenOrders / reqAllOpenOrders
            for order in self._orders_of(session, all_clients=msg == 16):
                if order.status in OPEN_STATUSES:
                    session.send(*self._open_order(order))
                    session.send(*self._order_status(order))
            session.send(53, 1)
        elif msg == 99:  # reqCompletedOrders
            for order in self.orders.values():
                if order.status not in OPEN_STATUSES:
                    session.send(*self._completed_order(order))
            session.send(102)
        elif msg == 6:  # reqAccountUpdates [6, 2, subscribe, acct]
            session.account_subscribed = f[2] == "1"
            if session.account_subscribed:
                for key, value in self.account_values.items():
                    session.send(6, 2, key, value, "USD", self.accounts[0])
                session.send(54, 1, self.accounts[0])
        elif msg == 76:  # reqAccountUpdatesMulti [76, 1, reqId, acct, modelCode, ledgerAndNLV]
            req_id = int(f[2])
            for key, value in self.account_values.items():
                session.send(73, 1, req_id, self.accounts[0], "", key, value, "USD")
            session.send(74, 1, req_id)
        elif msg == 7:  # reqExecutions [7, 3, reqId, filter...]
            req_id = int(f[2])
            for execution in self.executions:
                session.send(*self._exec_details(execution, req_id))
                session.send(*self._commission(execution))
            session.send(55, 1, req_id)
        elif msg == 9:  # reqContractDetails [9, 8, reqId, contract...]
            req_id, symbol = int(f[2]), f[4]
            if symbol in self.contracts:
                session.send(*self._contract_details(req_id, symbol))
                session.send(52, 1, req_id)
            else:
                session.send(4, 2, req_id, 200, "No security definition has been found for the request", "")
        elif msg == 49:  # reqCurrentTime
            session.send(49, 1, int(dt.datetime.now(dt.UTC).timestamp()))
        elif msg == 1:  # reqMktData [1, 11, reqId, contract(12), dnc, generic, snapshot, ...]
            req_id, symbol = int(f[2]), f[4]
            quote = self.quotes.get(symbol)
            if quote is None:
                session.send(4, 2, req_id, 354, "Requested market data is not subscribed.", "")
                return
            bid, ask, last, bid_size, ask_size = quote
            session.send(1, 6, req_id, 1, bid, bid_size, 0)
            session.send(1, 6, req_id, 2, ask, ask_size, 0)
            session.send(1, 6, req_id, 4, last, 100, 0)
            session.send(57, 1, req_id)
        elif msg == 2:  # cancelMktData
            return
        elif msg == 3:
            await self._place(session, f)
        elif msg == 4:  # cancelOrder [4, 1, orderId, manualCancelOrderTime]
            self._cancel(session, int(f[2]))
        elif msg in (17, 59, 64, 15):  # reqManagedAccts, reqMarketDataType, cancelPositions, autoOpen
            if msg == 17:
                session.send(15, 1, ",".join(self.accounts))
        else:
            session.send(4, 2, -1, 321, f"fake TWS does not handle message {msg}", "")

    def _orders_of(self, session: _Session, *, all_clients: bool) -> list[FakeOrder]:
        return [o for o in self.orders.values() if all_clients or o.client_id == session.client_id]

    async def _place(self, session: _Session, f: list[str]) -> None:
        fields = {name: f[i] if i < len(f) else "" for name, i in PLACE_FIELDS.items()}
        self.placed.append(fields)
        order_id = int(fields["orderId"])
        assert session.client_id is not None
        key = (session.client_id, order_id)
        existing = self.orders.get(key)
        if existing is not None:  # a modify: the same orderId re-sent
            if existing.status not in OPEN_STATUSES:
                session.send(4, 2, order_id, 104, f"Cannot modify a {existing.status.lower()} order", "")
                return
            existing.fields = fields
            session.send(*self._open_order(existing))
            session.send(*self._order_status(existing))
            return
        behaviour = self._behaviours.popleft() if self._behaviours else Behaviour()
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if fields["symbol"] not in self.contracts:
            session.send(4, 2, order_id, 200, "No security definition has been found for the request", "")
            return
        order = FakeOrder(session.client_id, order_id, next(self._perm_ids), fields)
        self.next_order_id = max(self.next_order_id, order_id + 1)
        if behaviour.kind == "reject":
            order.status = "Cancelled"
            self.orders[key] = order
            session.send(4, 2, order_id, 201, f"Order rejected - reason:{behaviour.reason}", "")
            session.send(*self._order_status(order))
            return
        order.status = "PreSubmitted" if fields["orderType"] in ("STP", "STP LMT", "TRAIL") else "Submitted"
        self.orders[key] = order
        if behaviour.kind == "swallow":
            return
        session.send(*self._open_order(order))
        session.send(*self._order_status(order))
        if behaviour.kind in ("fill", "partial"):
            price = behaviour.price or self._market_price(fields["symbol"], fields["action"])
            quantity = behaviour.quantity if behaviour.kind == "partial" else None
            self._execute(order, quantity or order.remaining, price, behaviour.commission)

    def _market_price(self, symbol: str, action: str) -> Decimal:
        bid, ask, _, _, _ = self.quotes.get(symbol, (D(100), D(100), D(100), D(0), D(0)))
        return ask if action == "BUY" else bid

    def _fill_by_ref(
        self, order_ref: str, quantity: Decimal | str | None, price: Decimal | str | None, commission: Decimal
    ) -> None:
        order = self.order_by_ref(order_ref)
        fill_price = D(price) if price is not None else self._market_price(order.fields["symbol"], "BUY")
        self._execute(order, D(quantity) if quantity is not None else order.remaining, fill_price, commission)

    def _execute(self, order: FakeOrder, quantity: Decimal, price: Decimal, commission: Decimal) -> None:
        symbol = order.fields["symbol"]
        order.filled += quantity
        order.notional += quantity * price
        order.last_fill_price = price
        if order.remaining <= 0:
            order.status = "Filled"
            order.completed_at = dt.datetime.now(dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")
        buy = order.fields["action"] == "BUY"
        execution = Execution(
            exec_id=f"0000e0d5.{next(self._exec_ids):08d}.01.01",
            order_id=order.order_id,
            client_id=order.client_id,
            perm_id=order.perm_id,
            symbol=symbol,
            con_id=self.contracts[symbol],
            side="BOT" if buy else "SLD",
            shares=quantity,
            price=price,
            cum_qty=order.filled,
            avg_price=order.avg_price,
            order_ref=order.order_ref,
            commission=commission,
            at=dt.datetime.now(dt.UTC),
        )
        order.executions.append(execution)
        self.executions.append(execution)
        held, cost = self.positions.get(symbol, (D(0), D(0)))
        signed = quantity if buy else -quantity
        total = held + signed
        if total == 0:
            self.positions.pop(symbol, None)
        else:
            new_cost = (held * cost + signed * price) / total if (held >= 0) == buy or held == 0 else cost
            self.positions[symbol] = (total, new_cost)
        for session in self._sessions:
            if session.client_id == order.client_id:
                session.send(*self._order_status(order, status="Submitted" if order.remaining else None))
                session.send(*self._exec_details(execution, -1))
                session.send(*self._commission(execution))
                session.send(*self._order_status(order))

    def _cancel(self, session: _Session, order_id: int) -> None:
        self.cancels.append(order_id)
        assert session.client_id is not None
        order = self.orders.get((session.client_id, order_id))
        if order is None:
            session.send(
                4, 2, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.", ""
            )
            return
        if order.status not in OPEN_STATUSES:
            session.send(
                4,
                2,
                order_id,
                10148,
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}.",
                "",
            )
            return
        order.status = "Cancelled"
        order.completed_at = dt.datetime.now(dt.UTC).strftime("%Y%m%d %H:%M:%S UTC")
        session.send(*self._order_status(order))
        session.send(4, 2, order_id, 202, "Order Canceled - reason:", "")

    # --- encoders (server version 176) ------------------------------------------------------
    def _contract(self, symbol: str, *, exchange: str = "SMART") -> list[object]:
        """The 11 contract fields conId ... tradingClass."""
        return [self.contracts[symbol], symbol, "STK", "", 0, "", "", exchange, "USD", symbol, "NMS"]

    def _contract_details(self, req_id: int, symbol: str) -> list[object]:
        return [
            10, req_id, symbol, "STK", "", 0, "", "SMART", "USD", symbol, "NMS", "NMS",
            self.contracts[symbol], "0.01",
            "", "ACTIVETIM,AD,ALERT,LMT,MKT,STP,STPLMT,TRAIL", "SMART,NASDAQ,NYSE", 1, 0,
            f"{symbol} INC", "NASDAQ", "", "Technology", "Computers", "Computers", "US/Eastern",
            "", "", "", "", 0,  # tradingHours, liquidHours, evRule, evMultiplier, numSecIds
            1, "", "", "26", "", "COMMON", "0.0001", "0.0001", "100",
        ]  # fmt: skip

    def _order_status(self, order: FakeOrder, status: str | None = None) -> list[object]:
        return [
            3, order.order_id, status or order.status, order.filled, order.remaining, order.avg_price,
            order.perm_id, 0, order.last_fill_price, order.client_id, "", 0,
        ]  # fmt: skip

    def _order_head(self, order: FakeOrder) -> list[object]:
        f = order.fields
        return [
            *self._contract(f["symbol"]),
            f["action"], f["totalQuantity"], f["orderType"], f["lmtPrice"], f["auxPrice"], f["tif"],
            "", f["account"] or self.accounts[0], "O", 0, f["orderRef"],
        ]  # fmt: skip

    def _open_order(self, order: FakeOrder) -> list[object]:
        f = order.fields
        return [
            5, order.order_id,
            *self._order_head(order),
            order.client_id, order.perm_id, 0, 0, 0, "",  # clientId permId outsideRth hidden discr gat
            "", "", "", "",  # a spare field, faGroup, faMethod, faPercentage
            "",  # faProfile (server version < 177)
            *[""] * 29,  # modelCode ... deltaNeutralAuxPrice (an empty deltaNeutralOrderType)
            # continuousUpdate referencePriceType trailStopPrice trailingPercent basisPoints(+Type) legs
            0, "", f["trailStopPrice"], f["trailingPercent"], "", "", "",
            0, 0, 0,  # combo legs, order combo legs, smart combo routing params
            "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, an empty scalePriceIncrement
            "",  # hedgeType
            0, "", "", 0, 0,  # optOutSmartRouting clearingAccount clearingIntent notHeld dncPresent
            "",  # algoStrategy
            0, 0, order.status, *[""] * 14, 0, 0,  # solicited whatIf status margins commissions ...
            0,  # numConditions
            *[""] * 16,  # adjustedOrderType ... usePriceMgmtAlgo
            "", 0, 0,  # duration, postToAts, autoCancelParent
            *[""] * 5,  # minTradeQty ... midOffsetAtHalf
        ]  # fmt: skip

    def _completed_order(self, order: FakeOrder) -> list[object]:
        f = order.fields
        return [
            101,
            *self._order_head(order),
            order.perm_id, 0, 0, 0, "", "", "", "",  # permId outsideRth hidden discr gat fa*
            "",  # faProfile (server version < 177)
            *[""] * 23,  # modelCode ... deltaNeutralAuxPrice
            0, "", f["trailStopPrice"], f["trailingPercent"], "",  # ... comboLegsDescrip
            0, 0, 0,
            "", "", "",
            "",  # hedgeType
            "", "", 0, 0,  # clearingAccount clearingIntent notHeld dncPresent
            "",  # algoStrategy
            0, order.status, 0, 0,  # solicited status randomizeSize randomizePrice
            0,  # numConditions
            # trailStopPrice lmtPriceOffset cashQty dontUseAutoPriceForHedge isOmsContainer autoCancelDate
            "", "", "", 0, 0, "",
            # filledQuantity refFuturesConId autoCancelParent shareholder imbalanceOnly routeMarketableToBbo
            order.filled, 0, 0, "", 0, 0,
            "", order.completed_at, order.status,  # parentPermId completedTime completedStatus
            *[""] * 5,
        ]  # fmt: skip

    def _exec_details(self, e: Execution, req_id: int) -> list[object]:
        return [
            11, req_id, e.order_id, *self._contract(e.symbol, exchange="ISLAND"),
            e.exec_id, e.at.strftime("%Y%m%d %H:%M:%S UTC"), self.accounts[0], "ISLAND", e.side,
            e.shares, e.price, e.perm_id, e.client_id, 0, e.cum_qty, e.avg_price, e.order_ref,
            "", "", "", 2,
        ]  # fmt: skip

    def _commission(self, e: Execution) -> list[object]:
        return [59, 1, e.exec_id, e.commission, "USD", "", "", ""]
