"""Binance Spot over REST (reference: /work/shared/reference/broker-apis.md section 2).

Wire facts this adapter relies on:

- SIGNED calls carry ``timestamp`` and ``recvWindow``; ``signature`` is the lowercase hex
  HMAC-SHA256 of the query string with the secret. Every parameter goes in the query string
  (the body stays empty), which Binance accepts. The key travels in ``X-MBX-APIKEY``.
- Symbols: ``BTC/USD`` is ``BTCUSDT`` (Binance Spot quotes dollars in USDT; ``QUOTE_ALIASES``).
- Filters from ``exchangeInfo`` (LOT_SIZE / MARKET_LOT_SIZE, PRICE_FILTER, NOTIONAL or
  MIN_NOTIONAL) are checked before an order is sent; a violation is a BrokerRejected and nothing
  goes on the wire.
- ``newClientOrderId`` is our client order id; orders are read back by ``origClientOrderId``.
- Errors: ``{"code", "msg"}``. 429/418 -> BrokerRetryable(Retry-After); 401, -1022, -2014, -2015
  -> BrokerFatal; 5xx and timeouts -> BrokerUnknownOutcome; other 4xx -> BrokerRejected(msg).

Binance needs the symbol to address an order, and our OrderRef only carries ids, so the adapter
remembers the symbol of every order it placed or saw; an unknown id is looked up in the open
orders (all symbols).

Order updates have two paths that report the same fill ids (``<symbol>:<trade id>``), so a fill
seen by both is de-duplicated (by the adapter, and by the OMS on ``broker_fill_id``):

The user data stream, started by ``stream_start(wakeup)`` (only the feed worker calls it): a
daemon thread opens a WebSocket API connection (``BINANCE_WS_API_URL``, ``/ws-api/v3``) and sends
``userDataStream.subscribe.signature`` signed like every WebSocket API request (all parameters but
``signature``, sorted, ``k=v&...``, HMAC-SHA256; the listenKey endpoints were switched off in
February 2026). ``executionReport`` events are buffered and ``wakeup()`` is called; ``poll_updates``
drains them: NEW -> ACCEPTED (for an order this adapter had not seen), TRADE -> FILL (last qty,
last price, commission, trade id), CANCELED / EXPIRED / TRADE_PREVENTION / REJECTED -> the terminal
update. The cancel half of our own cancelReplace carries a ``cancelNewClientOrderId`` starting with
``REPLACE_CANCEL_PREFIX`` and is not a cancel of our order; the replacement's NEW and an amend's
REPLACED are reported by the call that made them. A refused subscription (bad key or signature) is
raised as BrokerFatal by ``stream_start`` and ``poll_updates``; a dropped connection (or an
``eventStreamTerminated`` / ``serverShutdown`` event) reconnects with backoff, REST polling
covers the gap, and after every subscription one REST catch-up poll runs. The websockets client
answers the server's pings (every 20 s, pong due within a minute) on its own.

REST polling (no stream, or while it is down): ``poll_updates`` reads ``GET /api/v3/myTrades``
per symbol the adapter trades (from the last trade id seen), emitting one FILL per Binance trade
with the trade id as ``broker_fill_id`` (fills already reported by a FULL place response or the
stream are not repeated), then checks the orders it still tracks as open against
``GET /api/v3/openOrders`` and reports the ones that ended (CANCELLED / EXPIRED / REJECTED) by
reading them with ``GET /api/v3/order``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import connect

from brokers.adapters.alpaca import stream_backoff
from brokers.adapters.streaming import StreamThread
from brokers.domain.adapter import (
    AccountInfo,
    BrokerError,
    BrokerFatal,
    BrokerOrderRequest,
    BrokerOrderState,
    BrokerOrderStatus,
    BrokerOrderUpdate,
    BrokerPosition,
    BrokerRejected,
    BrokerRetryable,
    BrokerUnknownOutcome,
    Capabilities,
    FillReport,
    Health,
    HealthReport,
    OrderChange,
    OrderRef,
    Quote,
    Support,
    UpdateKind,
)
from brokers.models import BrokerAccount
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from trademaster.crypto import DecryptionError

LIVE_REST_URL = "https://api.binance.com"
TESTNET_REST_URL = "https://testnet.binance.vision"
LIVE_WS_API_URL = "wss://ws-api.binance.com:443/ws-api/v3"
TESTNET_WS_API_URL = "wss://ws-api.testnet.binance.vision/ws-api/v3"
DEFAULT_RECV_WINDOW_MS = 5000
# the cancelNewClientOrderId of our cancelReplace requests: the stream's cancel of the old order
REPLACE_CANCEL_PREFIX = "tmrpl-"
# executionReport execution types that end an order (REJECTED too, without a fill)
REPORT_TERMINAL = {
    "CANCELED": UpdateKind.CANCELLED,
    "EXPIRED": UpdateKind.EXPIRED,
    "TRADE_PREVENTION": UpdateKind.EXPIRED,
    "REJECTED": UpdateKind.REJECTED,
}
DEFAULT_TIMEOUT_SECONDS = Decimal(10)

# our quote currency -> the Binance quote asset
QUOTE_ALIASES = {"USD": "USDT"}
KNOWN_QUOTES = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB", "EUR")
CASH_ASSET = "USDT"

ORDER_TYPES = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP: "STOP_LOSS",
    OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
}
ORDER_TYPES_BACK = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "LIMIT_MAKER": OrderType.LIMIT,
    "STOP_LOSS": OrderType.STOP,
    "TAKE_PROFIT": OrderType.STOP,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT_LIMIT": OrderType.STOP_LIMIT,
}
TIFS = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}
STATUSES = {
    "NEW": BrokerOrderStatus.OPEN,
    "PENDING_NEW": BrokerOrderStatus.OPEN,
    "PARTIALLY_FILLED": BrokerOrderStatus.OPEN,
    "PENDING_CANCEL": BrokerOrderStatus.OPEN,
    "FILLED": BrokerOrderStatus.FILLED,
    "CANCELED": BrokerOrderStatus.CANCELLED,
    "REJECTED": BrokerOrderStatus.REJECTED,
    "EXPIRED": BrokerOrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": BrokerOrderStatus.EXPIRED,
}
TERMINAL_KINDS = {
    BrokerOrderStatus.CANCELLED: UpdateKind.CANCELLED,
    BrokerOrderStatus.EXPIRED: UpdateKind.EXPIRED,
    BrokerOrderStatus.REJECTED: UpdateKind.REJECTED,
}
FATAL_CODES = {-1022, -2014, -2015}
MAX_CLIENT_ORDER_ID = 36


def dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def wire_decimal(value: Decimal) -> str:
    """A plain decimal string (no exponent, no trailing zeros)."""
    text = format(value.normalize(), "f")
    return text


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def to_binance_symbol(symbol: str) -> str:
    """``BTC/USD`` -> ``BTCUSDT``; a symbol without a slash is taken as Binance's own."""
    if "/" not in symbol:
        return symbol.upper()
    base, quote = symbol.upper().split("/", 1)
    return base + QUOTE_ALIASES.get(quote, quote)


def from_binance_symbol(symbol: str, base: str = "", quote: str = "") -> str:
    """``BTCUSDT`` -> ``BTC/USD`` (``base``/``quote`` from exchangeInfo when known)."""
    if not (base and quote):
        for q in KNOWN_QUOTES:
            if symbol.endswith(q) and len(symbol) > len(q):
                base, quote = symbol[: -len(q)], q
                break
        else:
            return symbol
    ours = {v: k for k, v in QUOTE_ALIASES.items()}.get(quote, quote)
    return f"{base}/{ours}"


def fill_id(symbol: str, trade_id: Any) -> str:
    """Binance trade ids are unique per symbol, so the fill id carries the symbol: ``BTCUSDT:28457``."""
    return f"{symbol}:{trade_id}"


def _nothing() -> None:
    return None


def _ws_message(frame: str | bytes) -> dict[str, Any]:
    message = json.loads(frame, parse_float=Decimal)
    if not isinstance(message, dict):
        raise ValueError(f"unexpected WebSocket API frame {message!r}")
    return message


def ms_to_datetime(ms: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.UTC)


@dataclass(frozen=True, slots=True)
class SymbolRules:
    symbol: str
    base_asset: str
    quote_asset: str
    filters: dict[str, dict[str, Any]]

    def violation(self, order_type: str, quantity: Decimal, price: Decimal | None) -> str | None:
        """The first filter the order breaks, as Binance would name it, or None."""
        lot = self.filters.get("MARKET_LOT_SIZE") if order_type == "MARKET" else None
        for name, f in (("MARKET_LOT_SIZE", lot), ("LOT_SIZE", self.filters.get("LOT_SIZE"))):
            if not f:
                continue
            lo, hi, step = dec(f["minQty"]), dec(f["maxQty"]), dec(f["stepSize"])
            if lo and quantity < lo:
                return f"{name}: quantity {quantity} is below the minimum {lo.normalize()}"
            if hi and quantity > hi:
                return f"{name}: quantity {quantity} is above the maximum {hi.normalize()}"
            if step and quantity % step:
                return f"{name}: quantity {quantity} is not a multiple of the step {step.normalize()}"
        pf = self.filters.get("PRICE_FILTER")
        if pf and price is not None:
            lo, hi, tick = dec(pf["minPrice"]), dec(pf["maxPrice"]), dec(pf["tickSize"])
            if lo and price < lo:
                return f"PRICE_FILTER: price {price} is below the minimum {lo.normalize()}"
            if hi and price > hi:
                return f"PRICE_FILTER: price {price} is above the maximum {hi.normalize()}"
            if tick and price % tick:
                return f"PRICE_FILTER: price {price} is not a multiple of the tick {tick.normalize()}"
        if price is not None and order_type != "MARKET":
            notional = price * quantity
            nf = self.filters.get("NOTIONAL")
            if nf:
                lo, hi = dec(nf["minNotional"]), dec(nf.get("maxNotional", 0))
                if lo and notional < lo:
                    return f"NOTIONAL: notional {notional} is below the minimum {lo.normalize()}"
                if hi and notional > hi:
                    return f"NOTIONAL: notional {notional} is above the maximum {hi.normalize()}"
            mf = self.filters.get("MIN_NOTIONAL")
            if mf and notional < dec(mf["minNotional"]):
                return f"MIN_NOTIONAL: notional {notional} is below the minimum {dec(mf['minNotional'])}"
        return None


class CancelReplaceFailed(BrokerRejected):
    """A cancelReplace that failed in one or both steps (-2021 / -2022); ``data`` says which."""

    def __init__(self, message: str, *, code: str, data: dict[str, Any]) -> None:
        super().__init__(message, code=code)
        self.data = data


class BinanceAdapter:
    capabilities = Capabilities(
        asset_classes=frozenset({AssetClass.CRYPTO}),
        order_types={t: Support.NATIVE for t in ORDER_TYPES},
        time_in_force=frozenset(TIFS),
        native_replace=True,
    )

    def __init__(self, account: BrokerAccount) -> None:
        self.account_id = account.pk
        self._key = account.api_key_encrypted
        self._secret = account.api_secret_encrypted
        default = TESTNET_REST_URL if account.sandbox_mode else LIVE_REST_URL
        self.base_url = str(getattr(settings, "BINANCE_REST_URL", default)).rstrip("/")
        self.recv_window = int(getattr(settings, "BINANCE_RECV_WINDOW_MS", DEFAULT_RECV_WINDOW_MS))
        timeout = dec(getattr(settings, "BINANCE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(int(timeout * 1000) / 1000))
        self._lock = threading.Lock()
        self._rules: dict[str, SymbolRules] = {}
        self._symbol_of: dict[str, str] = {}  # client order id -> Binance symbol
        self._client_of: dict[str, str] = {}  # Binance orderId -> client order id
        self._open: set[str] = set()  # client order ids we believe are open
        self._seen_trades: set[str] = set()
        self._last_trade_id: dict[str, int] = {}  # Binance symbol -> highest trade id polled
        # client order id -> (filled qty, quote qty) of the orders a cancelReplace superseded, so
        # the broker's view of a replaced order still shows our total quantity and fills
        self._carried: dict[str, tuple[Decimal, Decimal]] = {}
        # the user data stream, started by the feed worker (stream_start); REST polling otherwise
        ws_default = TESTNET_WS_API_URL if account.sandbox_mode else LIVE_WS_API_URL
        self.ws_api_url = str(getattr(settings, "BINANCE_WS_API_URL", ws_default))
        self._timeout = int(timeout * 1000) / 1000
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stream = StreamThread(f"binance-stream-{self.account_id}", self._stream_run)
        self.stream_listening = threading.Event()
        self._catch_up = threading.Event()  # set on every (re)subscription: one REST poll is due
        self._wakeup: Callable[[], None] = _nothing
        self._stream_error: BrokerError | None = None

    # --- the user data stream (WebSocket API) -------------------------------------------------
    def stream_start(self, wakeup: Callable[[], None]) -> None:
        """Subscribe to the user data stream in a daemon thread (idempotent); ``wakeup()`` is
        called after every buffered event and every change of the stream's state.

        A refused subscription (key or signature) sticks, raised here and by ``poll_updates``,
        until the adapter is rebuilt with new credentials (``adapters_reset``)."""
        with self._lock:
            self._wakeup = wakeup
            if isinstance(self._stream_error, BrokerFatal):
                raise self._stream_error
            self._stream.ensure_started()

    def stream_stop(self) -> None:
        self._stream.stop(5)
        self.stream_listening.clear()

    def _stream_run(self) -> None:
        backoff, most = stream_backoff()
        delay = backoff
        while not self._stream.stopping.is_set():
            try:
                self._stream_session()
                delay = backoff
            except BrokerFatal as exc:
                self._stream_error = exc  # wrong key or secret: resubscribing will not help
                self.stream_listening.clear()
                self._wakeup()
                return
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError, ValueError) as exc:
                self._stream_error = BrokerRetryable(f"Binance user data stream dropped: {exc}")
            except BrokerRetryable as exc:
                self._stream_error = exc
            self.stream_listening.clear()
            self._wakeup()  # poll REST while the stream is down
            self._stream.stopping.wait(delay)
            delay = min(delay * 2, most)

    def subscribe_request(self, request_id: str) -> dict[str, Any]:
        """``userDataStream.subscribe.signature``: the parameters sorted by name, ``k=v&...``,
        signed with HMAC-SHA256 of the secret (the WebSocket API's signing)."""
        key, secret = self._reveal(self._key), self._reveal(self._secret)
        if not key or not secret:
            raise BrokerFatal("the Binance account has no API key or secret configured", code="AUTH")
        params: dict[str, Any] = {
            "apiKey": key,
            "recvWindow": self.recv_window,
            "timestamp": int(time.time() * 1000),
        }
        params["signature"] = sign(secret, "&".join(f"{k}={params[k]}" for k in sorted(params)))
        return {"id": request_id, "method": "userDataStream.subscribe.signature", "params": params}

    def _stream_session(self) -> None:
        with connect(self.ws_api_url, open_timeout=self._timeout, close_timeout=1) as ws:
            request_id = uuid.uuid4().hex
            ws.send(json.dumps(self.subscribe_request(request_id)))
            while True:  # the reply to our request; anything else before it is not ours
                reply = _ws_message(ws.recv(timeout=self._timeout))
                if reply.get("id") == request_id:
                    break
            if reply.get("status") != 200:
                error = reply.get("error") or {}
                code, msg = error.get("code"), str(error.get("msg", "subscription refused"))
                if reply.get("status") == 401 or code in FATAL_CODES:
                    raise BrokerFatal(
                        f"Binance refused the user data subscription ({code}): {msg}; "
                        "check the API key, secret and IP whitelist",
                        code="AUTH",
                    )
                retry_after = 1.0 if reply.get("status") not in (418, 429) else 10.0
                raise BrokerRetryable(
                    f"Binance refused the user data subscription ({code}): {msg}",
                    retry_after=retry_after,
                    code=f"BINANCE_{code}",
                )
            self._stream_error = None
            self._catch_up.set()  # events sent while we were away: one REST poll catches them up
            self.stream_listening.set()
            self._wakeup()
            while not self._stream.stopping.is_set():
                try:
                    message = _ws_message(ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                event = message.get("event")
                if not isinstance(event, dict):
                    continue  # a reply to a request of ours
                if event.get("e") == "executionReport":
                    self._events.put(event)
                    self._wakeup()
                elif event.get("e") in ("eventStreamTerminated", "serverShutdown"):
                    return  # subscribe again on a new connection

    # --- transport --------------------------------------------------------------------------
    @staticmethod
    def _reveal(value: Any) -> str:
        if value is None or value == "":
            return ""
        try:
            return value.reveal() if hasattr(value, "reveal") else str(value)
        except DecryptionError as exc:
            raise BrokerFatal(f"the Binance credentials cannot be decrypted: {exc}", code="AUTH") from exc

    def _request(
        self, method: str, path: str, params: dict[str, Any] | None = None, signed: bool = False
    ) -> Any:
        pairs = [(k, v) for k, v in (params or {}).items() if v is not None]
        headers = {}
        if signed:
            key, secret = self._reveal(self._key), self._reveal(self._secret)
            if not key or not secret:
                raise BrokerFatal("the Binance account has no API key or secret configured", code="AUTH")
            pairs += [("recvWindow", self.recv_window), ("timestamp", int(time.time() * 1000))]
            query = urlencode(pairs)
            query += "&signature=" + sign(secret, query)
            headers["X-MBX-APIKEY"] = key
        else:
            query = urlencode(pairs)
        url = path + ("?" + query if query else "")
        try:
            response = self._http.request(method, url, headers=headers)
        except httpx.TimeoutException as exc:
            raise BrokerUnknownOutcome(
                f"Binance did not answer {method} {path} in time; the outcome is unknown", code="TIMEOUT"
            ) from exc
        except httpx.ConnectError as exc:
            raise BrokerRetryable(
                f"cannot connect to Binance: {exc}", retry_after=1.0, code="CONNECT"
            ) from exc
        except httpx.TransportError as exc:
            raise BrokerUnknownOutcome(f"the connection to Binance failed mid-request: {exc}") from exc
        return self._decode(response, method, path)

    @staticmethod
    def _decode(response: httpx.Response, method: str, path: str) -> Any:
        try:
            body = json.loads(response.content or b"null", parse_float=Decimal)
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        msg = str(body.get("msg", "")) if isinstance(body, dict) else response.text[:200]
        status = response.status_code
        if status < 300:
            return body
        if status in (429, 418):
            advised = response.headers.get("Retry-After", "1")
            retry_after = int(advised) if advised.isdigit() else 1
            what = "rate limited" if status == 429 else "IP banned for exceeding rate limits"
            raise BrokerRetryable(f"Binance {what}: {msg}", retry_after=retry_after, code=f"HTTP_{status}")
        if status == 401 or code in FATAL_CODES:
            raise BrokerFatal(
                f"Binance refused the credentials ({code}): {msg}; "
                "check the API key, secret and IP whitelist",
                code="AUTH",
            )
        if code == -1021:
            raise BrokerRetryable(f"Binance: {msg} (clock skew)", retry_after=1.0, code="BINANCE_-1021")
        if code in (-1003, -1015):
            raise BrokerRetryable(f"Binance: {msg}", retry_after=1.0, code=f"BINANCE_{code}")
        if status >= 500:
            raise BrokerUnknownOutcome(
                f"Binance answered {status} to {method} {path}; the outcome is unknown: {msg}",
                code=f"HTTP_{status}",
            )
        if status == 403:
            raise BrokerFatal(f"Binance blocked the request (403 WAF): {msg}", code="FORBIDDEN")
        if code in (-2021, -2022) and isinstance(body, dict):
            return_data = body.get("data") or {}
            raise CancelReplaceFailed(msg, code=f"BINANCE_{code}", data=return_data)
        raise BrokerRejected(msg or f"Binance answered {status}", code=f"BINANCE_{code}")

    # --- symbols and filters -------------------------------------------------------------------
    def rules(self, binance_symbol: str) -> SymbolRules:
        rules = self._rules.get(binance_symbol)
        if rules is None:
            info = self._request("GET", "/api/v3/exchangeInfo", {"symbol": binance_symbol})
            found = [s for s in info.get("symbols", []) if s["symbol"] == binance_symbol]
            if not found:
                raise BrokerRejected(f"Binance does not list {binance_symbol}", code="UNKNOWN_SYMBOL")
            s = found[0]
            rules = SymbolRules(
                symbol=binance_symbol,
                base_asset=s["baseAsset"],
                quote_asset=s["quoteAsset"],
                filters={f["filterType"]: f for f in s.get("filters", [])},
            )
            self._rules[binance_symbol] = rules
        return rules

    def _our_symbol(self, binance_symbol: str) -> str:
        r = self._rules.get(binance_symbol)
        return (
            from_binance_symbol(binance_symbol, r.base_asset, r.quote_asset)
            if r
            else from_binance_symbol(binance_symbol)
        )

    def _remember(self, client_order_id: str, symbol: str, order_id: Any, open_: bool) -> None:
        with self._lock:
            self._symbol_of[client_order_id] = symbol
            self._client_of[str(order_id)] = client_order_id
            if open_:
                self._open.add(client_order_id)
            else:
                self._open.discard(client_order_id)

    def _symbol_for(self, client_order_id: str) -> str | None:
        symbol = self._symbol_of.get(client_order_id)
        if symbol is None:
            for o in self._request("GET", "/api/v3/openOrders", signed=True):
                self._remember(o["clientOrderId"], o["symbol"], o["orderId"], True)
            symbol = self._symbol_of.get(client_order_id)
        return symbol

    # --- orders -------------------------------------------------------------------------------
    def _order_params(self, request: BrokerOrderRequest) -> dict[str, Any]:
        if request.asset_class != AssetClass.CRYPTO:
            raise BrokerRejected("Binance Spot trades crypto only", code="UNSUPPORTED")
        reason = self.capabilities.supports(request.asset_class, request.order_type, request.time_in_force)
        if reason and request.order_type == OrderType.MARKET and request.time_in_force == TimeInForce.DAY:
            reason = None  # a market order has no time in force at Binance
        if reason:
            raise BrokerRejected(f"Binance {reason}", code="UNSUPPORTED")
        if len(request.client_order_id) > MAX_CLIENT_ORDER_ID:
            raise BrokerRejected(
                f"client order id longer than {MAX_CLIENT_ORDER_ID} characters", code="CLIENT_ORDER_ID"
            )
        btype = ORDER_TYPES[request.order_type]
        symbol = to_binance_symbol(request.symbol)
        violation = self.rules(symbol).violation(btype, request.quantity, request.price)
        if violation is None and request.stop_price is not None:
            violation = self.rules(symbol).violation("STOP", request.quantity, request.stop_price)
            violation = violation if violation and violation.startswith("PRICE") else None
        if violation:
            raise BrokerRejected(f"Filter failure: {violation}", code="FILTER")
        params: dict[str, Any] = {
            "symbol": symbol,
            "side": request.side.value,
            "type": btype,
            "quantity": wire_decimal(request.quantity),
            "newClientOrderId": request.client_order_id,
            "newOrderRespType": "FULL",
        }
        if btype in ("LIMIT", "STOP_LOSS_LIMIT"):
            if request.price is None:
                raise BrokerRejected(f"a {request.order_type} order needs a price", code="MISSING_PRICE")
            params["price"] = wire_decimal(request.price)
            params["timeInForce"] = TIFS[request.time_in_force]
        if btype in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
            if request.stop_price is None:
                raise BrokerRejected(f"a {request.order_type} order needs a stop price", code="MISSING_STOP")
            params["stopPrice"] = wire_decimal(request.stop_price)
        return params

    def _fills(self, raw: dict[str, Any]) -> list[FillReport]:
        return [
            FillReport(
                broker_fill_id=fill_id(raw["symbol"], f["tradeId"]),
                quantity=dec(f["qty"]),
                price=dec(f["price"]),
                fee=dec(f.get("commission", 0)),
            )
            for f in raw.get("fills", [])
        ]

    def _updates_from_result(self, raw: dict[str, Any], now: dt.datetime) -> list[BrokerOrderUpdate]:
        cid, oid = raw["clientOrderId"], str(raw["orderId"])
        at = ms_to_datetime(raw["transactTime"]) if "transactTime" in raw else now
        status = STATUSES.get(raw["status"], BrokerOrderStatus.OPEN)
        self._remember(cid, raw["symbol"], oid, status == BrokerOrderStatus.OPEN)
        if status == BrokerOrderStatus.REJECTED:
            return [BrokerOrderUpdate(UpdateKind.REJECTED, cid, oid, at, reason="rejected by Binance")]
        updates = [BrokerOrderUpdate(UpdateKind.ACCEPTED, cid, oid, at)]
        for fill in self._fills(raw):
            with self._lock:
                self._seen_trades.add(fill.broker_fill_id)
            updates.append(BrokerOrderUpdate(UpdateKind.FILL, cid, oid, at, fill=fill))
        if status in TERMINAL_KINDS:
            updates.append(BrokerOrderUpdate(TERMINAL_KINDS[status], cid, oid, at, reason=raw["status"]))
        return updates

    def place(self, request: BrokerOrderRequest) -> list[BrokerOrderUpdate]:
        params = self._order_params(request)
        with self._lock:
            self._symbol_of[request.client_order_id] = params["symbol"]
        raw = self._request("POST", "/api/v3/order", params, signed=True)
        return self._updates_from_result(raw, dt.datetime.now(tz=dt.UTC))

    def cancel(self, ref: OrderRef) -> list[BrokerOrderUpdate]:
        symbol = self._symbol_for(ref.client_order_id)
        if symbol is None:
            raise BrokerRejected("Unknown order sent.", code="BINANCE_-2011")
        raw = self._request(
            "DELETE",
            "/api/v3/order",
            {"symbol": symbol, "origClientOrderId": ref.client_order_id},
            signed=True,
        )
        oid = str(raw["orderId"])
        self._remember(ref.client_order_id, symbol, oid, False)
        at = ms_to_datetime(raw["transactTime"]) if "transactTime" in raw else dt.datetime.now(tz=dt.UTC)
        return [BrokerOrderUpdate(UpdateKind.CANCELLED, ref.client_order_id, oid, at)]

    def replace(self, ref: OrderRef, change: OrderChange) -> list[BrokerOrderUpdate]:
        """``POST /api/v3/order/cancelReplace`` in STOP_ON_FAILURE mode; the new order keeps our
        client order id (the old one is cancelled first) and carries the unfilled remainder."""
        cid = ref.client_order_id
        symbol = self._symbol_for(cid)
        if symbol is None:
            raise BrokerRejected("Unknown order sent.", code="BINANCE_-2011")
        raw = self._request("GET", "/api/v3/order", {"symbol": symbol, "origClientOrderId": cid}, signed=True)
        if STATUSES.get(raw["status"]) != BrokerOrderStatus.OPEN:
            raise BrokerRejected(f"the order is already {raw['status'].lower()}", code="NOT_OPEN")
        btype = raw["type"]
        executed = dec(raw["executedQty"])
        total = change.quantity if change.quantity is not None else dec(raw["origQty"])
        if total <= executed:
            raise BrokerRejected(f"the new quantity {total} must exceed the filled quantity {executed}")
        price = change.price if change.price is not None else (dec(raw["price"]) or None)
        stop = change.stop_price if change.stop_price is not None else (dec(raw.get("stopPrice", 0)) or None)
        tif = TIFS.get(change.time_in_force) if change.time_in_force is not None else raw.get("timeInForce")
        if tif is None:
            raise BrokerRejected(f"Binance does not support time in force {change.time_in_force}")
        violation = self.rules(symbol).violation(btype, total - executed, price)
        if violation:
            raise BrokerRejected(f"Filter failure: {violation}", code="FILTER")
        params: dict[str, Any] = {
            "symbol": symbol,
            "side": raw["side"],
            "type": btype,
            "cancelReplaceMode": "STOP_ON_FAILURE",
            "cancelOrigClientOrderId": cid,
            # names the cancel of the old order, so the user data stream tells it from a real cancel
            "cancelNewClientOrderId": REPLACE_CANCEL_PREFIX + uuid.uuid4().hex[:24],
            "newClientOrderId": cid,
            "quantity": wire_decimal(total - executed),
            "newOrderRespType": "FULL",
        }
        if btype in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            params["price"] = wire_decimal(price) if price is not None else None
            params["timeInForce"] = tif
        if btype not in ("LIMIT", "MARKET", "LIMIT_MAKER") and stop is not None:
            params["stopPrice"] = wire_decimal(stop)
        now = dt.datetime.now(tz=dt.UTC)
        try:
            result = self._request("POST", "/api/v3/order/cancelReplace", params, signed=True)
        except CancelReplaceFailed as exc:
            cancel = exc.data.get("cancelResponse") or {}
            new = exc.data.get("newOrderResponse") or {}
            if exc.data.get("cancelResult") == "SUCCESS":  # -2021: the old order is gone, no new one
                oid = str(cancel.get("orderId", raw["orderId"]))
                self._remember(cid, symbol, oid, False)
                reason = str(new.get("msg", exc.message))
                return [
                    BrokerOrderUpdate(UpdateKind.REPLACE_REJECTED, cid, oid, now, reason=reason),
                    BrokerOrderUpdate(UpdateKind.CANCELLED, cid, oid, now, reason=reason),
                ]
            raise BrokerRejected(str(cancel.get("msg", exc.message)), code=exc.code) from exc
        new_raw = result["newOrderResponse"]
        oid = str(new_raw["orderId"])
        before = self._carried.get(cid, (Decimal(0), Decimal(0)))
        self._carried[cid] = (
            before[0] + dec(raw["executedQty"]),
            before[1] + dec(raw.get("cummulativeQuoteQty", 0)),
        )
        in_force = OrderChange(
            quantity=total,
            price=price,
            stop_price=stop,
            time_in_force=next((k for k, v in TIFS.items() if v == tif), None),
        )
        updates = [BrokerOrderUpdate(UpdateKind.REPLACED, cid, oid, now, change=in_force)]
        updates += [u for u in self._updates_from_result(new_raw, now) if u.kind != UpdateKind.ACCEPTED]
        return updates

    def _state(self, raw: dict[str, Any]) -> BrokerOrderState:
        carried_qty, carried_quote = self._carried.get(raw["clientOrderId"], (Decimal(0), Decimal(0)))
        executed = dec(raw["executedQty"]) + carried_qty
        quote_total = dec(raw.get("cummulativeQuoteQty", 0)) + carried_quote
        return BrokerOrderState(
            client_order_id=raw["clientOrderId"],
            broker_order_id=str(raw["orderId"]),
            symbol=self._our_symbol(raw["symbol"]),
            side=Side(raw["side"]),
            status=STATUSES.get(raw["status"], BrokerOrderStatus.OPEN),
            quantity=dec(raw["origQty"]) + carried_qty,
            filled_quantity=executed,
            average_fill_price=(quote_total / executed) if executed else None,
        )

    def get_order(self, client_order_id: str, broker_order_id: str | None = None) -> BrokerOrderState | None:
        symbol = self._symbol_for(client_order_id)
        if symbol is None:
            return None
        try:
            raw = self._request(
                "GET", "/api/v3/order", {"symbol": symbol, "origClientOrderId": client_order_id}, signed=True
            )
        except BrokerRejected as exc:
            if exc.code in ("BINANCE_-2013", "BINANCE_-2026"):
                return None
            raise
        state = self._state(raw)
        self._remember(client_order_id, raw["symbol"], raw["orderId"], state.status == BrokerOrderStatus.OPEN)
        return state

    def open_orders(self) -> list[BrokerOrderState]:
        raws = self._request("GET", "/api/v3/openOrders", signed=True)
        for o in raws:
            self._remember(o["clientOrderId"], o["symbol"], o["orderId"], True)
        return [self._state(o) for o in raws]

    # --- account --------------------------------------------------------------------------------
    def _balances(self) -> dict[str, Decimal]:
        raw = self._request("GET", "/api/v3/account", {"omitZeroBalances": "true"}, signed=True)
        return {b["asset"]: dec(b["free"]) + dec(b["locked"]) for b in raw.get("balances", [])}

    def positions(self) -> list[BrokerPosition]:
        """Spot has no positions: every non-cash balance is a long position (cost unknown: 0)."""
        return [
            BrokerPosition(symbol=f"{asset}/USD", quantity=qty, average_cost=Decimal(0))
            for asset, qty in sorted(self._balances().items())
            if asset != CASH_ASSET and qty
        ]

    def account(self) -> AccountInfo:
        raw = self._request("GET", "/api/v3/account", {"omitZeroBalances": "true"}, signed=True)
        cash = free = Decimal(0)
        holdings: dict[str, Decimal] = {}
        for b in raw.get("balances", []):
            if b["asset"] == CASH_ASSET:
                free = dec(b["free"])
                cash = free + dec(b["locked"])
            else:
                holdings[b["asset"]] = dec(b["free"]) + dec(b["locked"])
        total = cash
        for asset, qty in holdings.items():
            if qty:
                price = self._request("GET", "/api/v3/ticker/price", {"symbol": asset + CASH_ASSET})
                total += qty * dec(price["price"])
        return AccountInfo(cash=cash, buying_power=free, total_value=total)

    def quote(self, symbol: str) -> Quote:
        bsym = to_binance_symbol(symbol)
        book = self._request("GET", "/api/v3/ticker/bookTicker", {"symbol": bsym})
        last = self._request("GET", "/api/v3/ticker/price", {"symbol": bsym})
        return Quote(
            symbol=symbol,
            bid=dec(book["bidPrice"]),
            ask=dec(book["askPrice"]),
            bid_size=dec(book["bidQty"]),
            ask_size=dec(book["askQty"]),
            last=dec(last["price"]),
            at=dt.datetime.now(tz=dt.UTC),
        )

    # --- updates ----------------------------------------------------------------------------------
    def poll_updates(self, now: dt.datetime) -> list[BrokerOrderUpdate]:
        """Order updates since the last poll: drained from the user data stream while it is
        subscribed, else (and once after every subscription) read over REST too."""
        if isinstance(self._stream_error, BrokerFatal):
            raise self._stream_error
        updates: list[BrokerOrderUpdate] = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            updates.extend(self._updates_from_report(event))
        if self.stream_listening.is_set() and not self._catch_up.is_set():
            return updates
        self._catch_up.clear()  # before reading: an event that arrives meanwhile is buffered
        return updates + self._poll_rest(now)

    def _updates_from_report(self, ev: dict[str, Any]) -> list[BrokerOrderUpdate]:
        """One ``executionReport`` as our updates (see the module doc)."""
        execution, symbol, oid = ev["x"], ev["s"], str(ev["i"])
        at = ms_to_datetime(ev.get("T") or ev.get("E") or int(time.time() * 1000))
        # on a cancel ``c`` names the cancel request and ``C`` the order
        cid = (ev.get("C") or ev["c"]) if execution == "CANCELED" else ev["c"]
        if execution == "CANCELED" and str(ev["c"]).startswith(REPLACE_CANCEL_PREFIX):
            with self._lock:
                self._open.discard(cid)  # the replacement's NEW makes it open again
            return []
        status = STATUSES.get(ev["X"], BrokerOrderStatus.OPEN)
        with self._lock:
            known = self._client_of.get(oid) == cid
            was_open = cid in self._open
        self._remember(cid, symbol, oid, status == BrokerOrderStatus.OPEN)
        if execution == "NEW":
            return [] if known else [BrokerOrderUpdate(UpdateKind.ACCEPTED, cid, oid, at)]
        if execution == "TRADE":
            key = fill_id(symbol, ev["t"])
            with self._lock:
                if key in self._seen_trades:
                    return []  # reported already (place response, REST poll or a repeat)
                # the REST cursor (_last_trade_id) stays: a catch-up poll must still read the
                # trades a dropped connection missed, which are older than the ones seen since
                self._seen_trades.add(key)
            fill = FillReport(
                broker_fill_id=key,
                quantity=dec(ev["l"]),
                price=dec(ev["L"]),
                fee=dec(ev.get("n") or 0),
                liquidity="MAKER" if ev.get("m") else "TAKER",
            )
            return [BrokerOrderUpdate(UpdateKind.FILL, cid, oid, at, fill=fill)]
        kind = REPORT_TERMINAL.get(execution)
        if kind is None or (known and not was_open):
            # REPLACED (an amend) is reported by the call that made it; an order already known
            # to be closed (by the cancel call or a REST poll) was reported then
            return []
        reason = ev.get("r") if execution == "REJECTED" and ev.get("r") not in (None, "NONE") else ev["X"]
        return [BrokerOrderUpdate(kind, cid, oid, at, reason=str(reason))]

    def _poll_rest(self, now: dt.datetime) -> list[BrokerOrderUpdate]:
        updates: list[BrokerOrderUpdate] = []
        with self._lock:
            symbols = sorted(set(self._symbol_of.values()))
        for symbol in symbols:
            params: dict[str, Any] = {"symbol": symbol}
            if symbol in self._last_trade_id:
                params["fromId"] = self._last_trade_id[symbol] + 1
            for t in self._request("GET", "/api/v3/myTrades", params, signed=True):
                tid = int(t["id"])
                self._last_trade_id[symbol] = max(tid, self._last_trade_id.get(symbol, -1))
                key = fill_id(symbol, tid)
                oid = str(t["orderId"])
                cid = self._client_of.get(oid)
                if key in self._seen_trades or cid is None:
                    continue  # reported already, or not an order this adapter knows
                with self._lock:
                    self._seen_trades.add(key)
                fill = FillReport(
                    broker_fill_id=key,
                    quantity=dec(t["qty"]),
                    price=dec(t["price"]),
                    fee=dec(t.get("commission", 0)),
                    liquidity="MAKER" if t.get("isMaker") else "TAKER",
                )
                updates.append(
                    BrokerOrderUpdate(UpdateKind.FILL, cid, oid, ms_to_datetime(t["time"]), fill=fill)
                )
        with self._lock:
            tracked = set(self._open)
        if tracked:
            still_open = {o["clientOrderId"] for o in self._request("GET", "/api/v3/openOrders", signed=True)}
            for cid in sorted(tracked - still_open):
                state = self.get_order(cid)
                if state is None:
                    continue
                kind = TERMINAL_KINDS.get(state.status)
                if kind is not None:
                    updates.append(
                        BrokerOrderUpdate(kind, cid, state.broker_order_id, now, reason=state.status)
                    )
        return updates

    def health(self) -> HealthReport:
        started = time.perf_counter_ns()
        try:
            self._request("GET", "/api/v3/ping")
        except (BrokerRetryable, BrokerUnknownOutcome, BrokerRejected, BrokerFatal) as exc:
            return HealthReport(status=Health.DOWN, latency_ms=Decimal(0), detail=exc.message)
        latency = Decimal(time.perf_counter_ns() - started) / Decimal(1_000_000)
        return HealthReport(status=Health.CONNECTED, latency_ms=latency.quantize(Decimal("0.001")))
