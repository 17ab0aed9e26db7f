"""The broker fakes as a small market for the demo mode (``manage.py run_broker_fakes``).

:class:`DemoMarket` drives the fakes only through their public scripting API: each
:meth:`DemoMarket.step` reads the simulated market's prices (``brokers.models.Instrument`` mids,
which ``run_market`` moves), quotes them with a small spread, fills open market orders at that
quote, limit orders at their limit once the quote reaches it and stop orders once the price
crosses their stop.

- Alpaca: under ``fake.lock`` a one-off ``fake.fills[symbol]`` script is read into the one order
  (``fake.read``), so no other order can take it;
- Binance: ``market_price`` / ``bid`` / ``ask`` follow the market (a MARKET order fills at once at
  ``market_price``) and ``fake.fill`` executes a crossed resting order;
- Schwab: the fills script is set, under ``fake.lock``, only for a symbol whose open orders can all
  fill now (the fake applies a script to the next order of the symbol that is read);
- Interactive Brokers (the fake TWS): every equity is made known and quoted (``add_contract``,
  ``set_quote``); orders rest on arrival (the fake's default), and an open order from
  ``open_orders()`` that can fill is executed with ``fill_open`` (IB's tiered commission).

:class:`Relay` forwards a fixed loopback port to a fake's own (random) port, since the fakes bind
port 0: the demo's URLs stay the same from run to run (the fake TWS binds its fixed port itself).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from tests.fakes.alpaca import OPEN_STATUSES as ALPACA_OPEN
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.binance import EXCHANGE_SYMBOLS, FakeBinance
from tests.fakes.ibkr import FakeTws
from tests.fakes.schwab import OPEN as SCHWAB_OPEN
from tests.fakes.schwab import FakeSchwab

log = logging.getLogger(__name__)

CENT = Decimal("0.01")
DEFAULT_SPREAD_BPS = Decimal("2")


@dataclass(frozen=True)
class DemoCredentials:
    """What a demo account stores: the fakes are built to accept exactly these."""

    broker_name: str
    account_id: str
    label: str
    api_key: str
    api_secret: str  # Schwab: the app secret
    refresh_token: str = ""  # Schwab only: pre-seeded, so no browser login is needed


DEMO_ALPACA = DemoCredentials(
    "alpaca", "PA3DEMO0001", "Alpaca (demo fake)", "PKDEMOALPACA0001", "demo-alpaca-secret"
)
DEMO_BINANCE = DemoCredentials(
    "binance", "BINANCE-DEMO", "Binance (demo fake)", "demo-binance-key", "demo-binance-hmac-secret"
)
DEMO_SCHWAB = DemoCredentials(
    "schwab",
    "12345678",  # the fake's account number: the adapter finds its hash by it
    "Schwab (demo fake)",
    "DEMOSCHWABAPPKEY",
    "demo-schwab-app-secret",
    refresh_token="demo-schwab-refresh-token",
)
DEMO_IBKR = DemoCredentials(  # no key or secret: the account stores the fake TWS's address
    "ibkr", "DU7000001", "Interactive Brokers (demo fake)", "", ""
)
DEMO_IBKR_CLIENT_ID = 1  # the gateway's TWS API client id for the demo account
DEMO_CREDENTIALS = (DEMO_ALPACA, DEMO_BINANCE, DEMO_SCHWAB, DEMO_IBKR)


def demo_fakes() -> tuple[FakeAlpaca, FakeBinance, FakeSchwab]:
    """The three fakes, accepting the demo credentials (not started)."""
    alpaca = FakeAlpaca(key=DEMO_ALPACA.api_key, secret=DEMO_ALPACA.api_secret)
    binance = FakeBinance(DEMO_BINANCE.api_key, DEMO_BINANCE.api_secret)
    schwab = FakeSchwab(
        app_key=DEMO_SCHWAB.api_key, app_secret=DEMO_SCHWAB.api_secret, refresh=DEMO_SCHWAB.refresh_token
    )
    return alpaca, binance, schwab


def demo_tws(port: int = 0) -> FakeTws:
    """The fake TWS managing the demo IB account, on ``port`` (not started)."""
    return FakeTws(accounts=(DEMO_IBKR.account_id,), port=port)


def demo_ibkr_connection(port: int) -> dict[str, object]:
    """The connection settings the demo IB account stores: the fake TWS on ``port``."""
    return {"host": "127.0.0.1", "port": port, "client_id": DEMO_IBKR_CLIENT_ID}


# --- prices ----------------------------------------------------------------------------------


def demo_quote(mid: Decimal, spread_bps: Decimal = DEFAULT_SPREAD_BPS) -> tuple[Decimal, Decimal]:
    """(bid, ask) around ``mid``, in cents, at least a cent apart."""
    half = max(mid * spread_bps / Decimal(20000), CENT / 2)
    return (mid - half).quantize(CENT, rounding="ROUND_DOWN"), (mid + half).quantize(
        CENT, rounding="ROUND_UP"
    )


def demo_fill_price(
    *,
    side: str,
    order_type: str,
    mid: Decimal,
    limit: Decimal | None = None,
    stop: Decimal | None = None,
    resting: bool = False,
    spread_bps: Decimal = DEFAULT_SPREAD_BPS,
) -> Decimal | None:
    """The price an open order fills at now, or None while it rests.

    A market order takes the quote. A limit order fills once the quote reaches its limit: at the
    quote when it was marketable on arrival, at its limit when it was ``resting`` (the market
    traded through it). A stop order becomes a market order once the mid crosses its stop.
    ``side`` and ``order_type`` are case-insensitive (each broker spells them its own way).
    """
    buy = side.lower() == "buy"
    bid, ask = demo_quote(mid, spread_bps)
    touch = ask if buy else bid
    kind = order_type.lower()
    if kind == "market":
        return touch
    if kind in ("limit", "limit_maker") and limit is not None:
        if not (ask <= limit if buy else bid >= limit):
            return None
        if resting:
            return limit
        return min(limit, ask) if buy else max(limit, bid)
    if kind == "stop" and stop is not None:
        return touch if (mid >= stop if buy else mid <= stop) else None
    return None


def instrument_mids() -> dict[str, Decimal]:
    """The simulated market's current mids (``run_market`` moves them)."""
    from brokers.services import market_mids

    return market_mids()


def _decimal(value: object) -> Decimal | None:
    if value in (None, "", 0, "0"):
        return None
    return Decimal(str(value))


IB_ORDER_TYPES = {"MKT": "market", "LMT": "limit", "STP": "stop"}  # others rest (STP LMT, TRAIL)
IB_COMMISSION_PER_SHARE, IB_COMMISSION_MIN = Decimal("0.005"), Decimal("1.00")


def ib_commission(quantity: Decimal) -> Decimal:
    """IB's tiered US stock commission, simplified: half a cent a share, at least a dollar."""
    return max(
        IB_COMMISSION_MIN, (quantity * IB_COMMISSION_PER_SHARE).quantize(CENT, rounding="ROUND_HALF_UP")
    )


# --- the driver ------------------------------------------------------------------------------


class DemoMarket:
    """Makes the fakes behave like a market (see the module doc)."""

    def __init__(
        self,
        *,
        alpaca: FakeAlpaca | None = None,
        binance: FakeBinance | None = None,
        schwab: FakeSchwab | None = None,
        ibkr: FakeTws | None = None,
        prices: Callable[[], dict[str, Decimal]] = instrument_mids,
        spread_bps: Decimal = DEFAULT_SPREAD_BPS,
    ) -> None:
        self.alpaca, self.binance, self.schwab, self.ibkr = alpaca, binance, schwab, ibkr
        self.prices, self.spread_bps = prices, spread_bps
        self.fills = 0  # executions so far
        self._rested: set[tuple[str, object]] = set()  # orders seen open and not fillable before

    def step(self) -> int:
        """One look at the market: quote it and fill what can fill. Returns the executions."""
        mids = self.prices()
        done = 0
        if self.alpaca is not None:
            done += self._step_alpaca(self.alpaca, mids)
        if self.binance is not None:
            done += self._step_binance(self.binance, mids)
        if self.schwab is not None:
            done += self._step_schwab(self.schwab, mids)
        if self.ibkr is not None:
            done += self._step_ibkr(self.ibkr, mids)
        self.fills += done
        return done

    def _price(
        self,
        key: tuple[str, object],
        *,
        side: str,
        order_type: str,
        mid: Decimal | None,
        limit=None,
        stop=None,
    ) -> Decimal | None:
        price = None
        if mid is not None:
            price = demo_fill_price(
                side=side,
                order_type=order_type,
                mid=mid,
                limit=_decimal(limit),
                stop=_decimal(stop),
                resting=key in self._rested,
                spread_bps=self.spread_bps,
            )
        if price is None:
            self._rested.add(key)
        else:
            self._rested.discard(key)
        return price

    def _step_alpaca(self, fake: FakeAlpaca, mids: dict[str, Decimal]) -> int:
        for symbol, mid in mids.items():  # Alpaca's market data quotes stocks and crypto
            fake.set_quote(symbol, *demo_quote(mid, self.spread_bps))
        done = 0
        with fake.lock:  # the HTTP handler takes it too: no request sees the one-off script
            for order in list(fake.orders.values()):
                if order["status"] not in ALPACA_OPEN:
                    continue
                price = self._price(
                    ("alpaca", order["id"]),
                    side=order["side"],
                    order_type=order["type"],
                    mid=mids.get(order["symbol"]),
                    limit=order["limit_price"],
                    stop=order["stop_price"],
                )
                if price is None:
                    continue
                remaining = Decimal(order["qty"]) - Decimal(order["filled_qty"])
                fake.fills[order["symbol"]] = [(remaining, price)]
                fake.read(order)  # applies the script to this order
                fake.fills.pop(order["symbol"], None)
                done += 1
        return done

    def _step_binance(self, fake: FakeBinance, mids: dict[str, Decimal]) -> int:
        ours = {}
        for symbol, info in EXCHANGE_SYMBOLS.items():
            quote = "USD" if info["quoteAsset"] == "USDT" else info["quoteAsset"]
            ours[symbol] = f"{info['baseAsset']}/{quote}"
        btc = mids.get(ours.get("BTCUSDT", ""))
        if btc is not None:  # the fake keeps one price (its one symbol)
            fake.market_price = btc.quantize(CENT)
            fake.bid, fake.ask = demo_quote(btc, self.spread_bps)
        done = 0
        for order in list(fake.orders.values()):
            if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
                continue
            price = self._price(
                ("binance", order["orderId"]),
                side=order["side"],
                order_type=order["type"],
                mid=mids.get(ours.get(order["symbol"], "")),
                limit=order["price"],
                stop=order["stopPrice"],
            )
            if price is None:
                continue
            remaining = order["origQty"] - order["executedQty"]
            fake.fill(order["orderId"], str(remaining), str(price))
            done += 1
        return done

    def _step_schwab(self, fake: FakeSchwab, mids: dict[str, Decimal]) -> int:
        for symbol, mid in mids.items():
            if "/" not in symbol:  # Schwab's market data: equities
                fake.set_quote(symbol, *demo_quote(mid, self.spread_bps))
        done = 0
        with fake.lock:  # reentrant: execute() takes it too; no request sees the one-off script
            for order in [o for o in fake.orders.values() if o["status"] in SCHWAB_OPEN]:
                leg = order["orderLegCollection"][0]
                symbol = leg["instrument"]["symbol"]
                price = self._price(
                    ("schwab", order["orderId"]),
                    side=leg["instruction"],
                    order_type=order["orderType"],
                    mid=mids.get(symbol),
                    limit=order.get("price"),
                    stop=order.get("stopPrice"),
                )
                if price is None:
                    continue
                fake.fills[symbol] = [(order["remainingQuantity"], price)]
                fake.execute(order["orderId"])  # fills now and cues the streamer's subscribers
                fake.fills.pop(symbol, None)
                done += 1
        return done

    def _step_ibkr(self, fake: FakeTws, mids: dict[str, Decimal]) -> int:
        for symbol, mid in mids.items():
            if "/" not in symbol:  # IB here: US stocks
                if symbol not in fake.contracts:
                    fake.add_contract(symbol)
                fake.set_quote(symbol, *demo_quote(mid, self.spread_bps), last=mid)
        orders = [o for o in fake.open_orders() if o.order_ref]
        refs = [o.order_ref for o in orders]
        done = 0
        for order in orders:
            if refs.count(order.order_ref) > 1:  # not ours to tell apart (placed twice in TWS)
                continue
            fields = order.fields
            price = self._price(
                ("ibkr", order.perm_id),
                side=fields["action"],
                order_type=IB_ORDER_TYPES.get(fields["orderType"], fields["orderType"]),
                mid=mids.get(fields["symbol"]),
                limit=fields["lmtPrice"],
                stop=fields["auxPrice"],
            )
            if price is None:
                continue
            if fake.fill_open(order.order_ref, order.remaining, price, ib_commission(order.remaining)):
                done += 1
        return done


# --- fixed ports -----------------------------------------------------------------------------


class Relay:
    """Forwards every TCP connection on ``127.0.0.1:port`` (0: any free port) to ``target_port``.

    Plain bytes both ways, so HTTP and WebSocket pass unchanged.
    """

    def __init__(self, port: int, target_port: int, *, name: str = "relay") -> None:
        self.target_port, self.name = target_port, name
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed.set()
        _hang_up(self._listener)  # wakes the accept() (closing alone does not)
        self._listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _hang_up(sock)
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()  # the fake is gone: the client sees the connection close
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):  # pass each chunk on at once (no Nagle wait for an ACK)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pumps = [2]

            def finish(client=client, upstream=upstream, pumps=pumps) -> None:
                with self._lock:
                    pumps[0] -= 1
                    last = pumps[0] == 0
                    if last:
                        self._open.difference_update((client, upstream))
                if last:
                    client.close()
                    upstream.close()

            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst, finish), name=f"{self.name}-pump", daemon=True
                ).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, finish: Callable[[], None]) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)  # pass the end of one direction on
        except OSError:
            _hang_up(src)  # one side went away: end the other direction too
            _hang_up(dst)
        finally:
            finish()


def _hang_up(sock: socket.socket) -> None:
    """Shut a socket both ways (waking a thread blocked in recv on it)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        return  # not connected any more
