"""Alpaca Trading API v2 over REST (httpx).

Wire facts follow /work/shared/reference/broker-apis.md section 1:

- every request carries ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` from the account's encrypted
  credentials; the base URL is ``settings.ALPACA_TRADING_URL`` or the paper/live URL chosen by
  ``account.sandbox_mode``; every call has an explicit timeout (``settings.ALPACA_TIMEOUT_SECONDS``);
- our ``client_order_id`` is sent with every order, and ``get_order`` looks orders up by it
  (``GET /v2/orders:by_client_order_id``), which is how a timed-out submission is resolved;
- decimals are sent and read as strings, never as binary floats.

Errors: 401 -> :class:`BrokerFatal`; 403/404/422 -> :class:`BrokerRejected` with Alpaca's message
and code; 429 -> :class:`BrokerRetryable` after ``X-Ratelimit-Reset`` (or ``Retry-After``); a
timeout, a dropped connection or a 5xx on a write -> :class:`BrokerUnknownOutcome`; a 5xx on a read
or a refused connection -> :class:`BrokerRetryable`.

Order updates without the trade_updates stream (``poll_updates``): Alpaca reports an order's
cumulative ``filled_qty`` and ``filled_avg_price`` only. The adapter remembers, per order, the
cumulative quantity and notional it has already reported; each poll reads the open orders plus
every tracked order that left the open list, and turns the growth into one FILL whose quantity is
the increment and whose price is ``(notional_now - notional_reported) / increment``. The fill id is
``<alpaca order id>:<cumulative filled_qty>``: unique per increment and the same for the same
increment after a restart, so the OMS de-duplicates a re-reported fill.

The trade_updates stream (``ALPACA_STREAM_URL``, default ``wss://{paper-,}api.alpaca.markets/stream``)
is started by ``stream_start(wakeup)`` (only the feed worker, ``manage.py run_broker_feeds``, calls
it): a daemon thread authenticates, listens, buffers every event and calls ``wakeup()``.
``poll_updates`` then drains the buffer through the same increment logic (so stream and REST give
the same fill ids) and skips REST polling while the stream listens. A dropped stream reconnects
with backoff (``BROKER_STREAM_BACKOFF_SECONDS`` doubling up to ``BROKER_STREAM_BACKOFF_MAX_SECONDS``);
while it is down ``poll_updates`` polls REST, and after every (re)connect the next poll also makes
one REST catch-up poll, so an event sent while the stream was down is not missed. A refused stream
authentication is raised as :class:`BrokerFatal` by ``stream_start`` and ``poll_updates``.

Replace is ``PATCH /v2/orders/{id}``; the replacement gets the client id ``<ours>-r<n>`` (Alpaca
wants unique client ids) and updates keep reporting ours. The mapping lives in memory, and a
partially filled order is not replaced (how Alpaca carries its fills over is not verified).
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import connect

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
from trademaster.crypto import DecryptionError, Sealed

PAPER_URL = "https://paper-api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"  # market data: one host for paper and live keys
LIVE_URL = "https://api.alpaca.markets"
PAPER_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_STREAM_URL = "wss://api.alpaca.markets/stream"
DEFAULT_TIMEOUT_SECONDS = 10
Q8 = Decimal("0.00000001")

ORDER_TYPES = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP: "stop",
    OrderType.STOP_LIMIT: "stop_limit",
    OrderType.TRAILING_STOP: "trailing_stop",
}
TIFS = {TimeInForce.DAY: "day", TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc", TimeInForce.FOK: "fok"}
# Alpaca crypto: market, limit and stop_limit with gtc or ioc only (reference 0.2).
CRYPTO_ORDER_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT})
CRYPTO_TIFS = frozenset({TimeInForce.GTC, TimeInForce.IOC})

OPEN = BrokerOrderStatus.OPEN
STATUSES: dict[str, BrokerOrderStatus] = {
    "pending_new": OPEN,
    "new": OPEN,
    "accepted": OPEN,
    "accepted_for_bidding": OPEN,
    "held": OPEN,
    "pending_review": OPEN,
    "stopped": OPEN,
    "suspended": OPEN,
    "done_for_day": OPEN,  # not terminal for GTC orders
    "partially_filled": OPEN,
    "pending_cancel": OPEN,
    "pending_replace": OPEN,
    "filled": BrokerOrderStatus.FILLED,
    "calculated": BrokerOrderStatus.FILLED,  # filled, settlement pending
    "canceled": BrokerOrderStatus.CANCELLED,
    "replaced": BrokerOrderStatus.CANCELLED,  # superseded by ``replaced_by``
    "expired": BrokerOrderStatus.EXPIRED,
    "rejected": BrokerOrderStatus.REJECTED,
}
# the update a terminal status produces (FILLED is carried by the fills themselves)
TERMINAL_UPDATES = {
    BrokerOrderStatus.CANCELLED: UpdateKind.CANCELLED,
    BrokerOrderStatus.EXPIRED: UpdateKind.EXPIRED,
    BrokerOrderStatus.REJECTED: UpdateKind.REJECTED,
}
CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC")


FINISHED_REMEMBERED = 10_000


def _nothing() -> None:
    return None


def stream_backoff() -> tuple[float, float]:
    """The first reconnect delay of a dropped stream and its cap, in seconds (settings)."""
    first = getattr(settings, "BROKER_STREAM_BACKOFF_SECONDS", 1)
    return first, max(first, getattr(settings, "BROKER_STREAM_BACKOFF_MAX_SECONDS", 30))


def order_status(raw: str) -> BrokerOrderStatus:
    try:
        return STATUSES[raw]
    except KeyError:
        raise BrokerError(f"Alpaca reported an unknown order status {raw!r}", code="UNKNOWN_STATUS") from None


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise BrokerError(f"Alpaca sent a malformed number {value!r}", code="BAD_RESPONSE") from None


def _parse_time(stamp: str) -> dt.datetime:
    """An RFC 3339 time as Alpaca writes it (up to nanoseconds, ``Z``)."""
    head, _, fraction = stamp.removesuffix("Z").partition(".")
    digits = "".join(c for c in fraction if c.isdigit())[:6]
    try:
        moment = dt.datetime.fromisoformat(f"{head}.{digits.ljust(6, '0')}" if digits else head)
    except ValueError:
        raise BrokerError(f"Alpaca sent a malformed time {stamp!r}", code="BAD_RESPONSE") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _reveal(value: Sealed | str) -> str:
    return value.reveal() if isinstance(value, Sealed) else value


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _symbol(raw: str, asset_class: str) -> str:
    """Positions may report crypto as ``BTCUSD``: give it its slash back."""
    if asset_class == "crypto" and "/" not in raw:
        for quote in CRYPTO_QUOTES:
            if raw.endswith(quote) and len(raw) > len(quote):
                return f"{raw[: -len(quote)]}/{quote}"
    return raw


@dataclass(slots=True)
class _Seen:
    """What this adapter has already reported for one Alpaca order."""

    broker_order_id: str
    filled_qty: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    status: BrokerOrderStatus = OPEN
    accepted: bool = False


class AlpacaAdapter:
    capabilities = Capabilities(
        asset_classes=frozenset({AssetClass.EQUITY, AssetClass.CRYPTO}),
        order_types={t: Support.NATIVE for t in ORDER_TYPES},
        time_in_force=frozenset(TIFS),
        native_replace=True,
    )

    def __init__(self, account: BrokerAccount) -> None:
        self.account_pk = account.pk
        # Sealed values (decrypted only when a request needs them) or plaintext just assigned
        self._sealed_key = account.api_key_encrypted
        self._sealed_secret = account.api_secret_encrypted
        default = PAPER_URL if account.sandbox_mode else LIVE_URL
        self.base_url = getattr(settings, "ALPACA_TRADING_URL", default).rstrip("/")
        self.data_url = getattr(settings, "ALPACA_DATA_URL", DATA_URL).rstrip("/")
        self.data_feed = getattr(settings, "ALPACA_DATA_FEED", "iex")  # iex on free plans, sip paid
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=getattr(settings, "ALPACA_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS),
            follow_redirects=False,
        )
        self._seen: dict[str, _Seen] = {}  # by our client_order_id
        # a replacement order needs a new client id at Alpaca: ours -> Alpaca's and back
        self._alias: dict[str, str] = {}
        self._owner: dict[str, str] = {}
        self._lock = threading.Lock()
        # the trade_updates stream, started by the feed worker (stream_start); REST polling otherwise
        stream_default = PAPER_STREAM_URL if account.sandbox_mode else LIVE_STREAM_URL
        self.stream_url = getattr(settings, "ALPACA_STREAM_URL", stream_default)
        self._events: queue.Queue[dict] = queue.Queue()
        self._stream = StreamThread(f"alpaca-stream-{self.account_pk}", self._stream_run)
        self.stream_listening = threading.Event()
        self._catch_up = threading.Event()  # set on every (re)connect: one REST poll is due
        self._wakeup: Callable[[], None] = _nothing
        self._stream_error: BrokerError | None = None
        # our client ids of orders that ended (bounded): a late stream event for them is ignored
        self._finished: OrderedDict[str, None] = OrderedDict()

    # --- the trade_updates stream -----------------------------------------------------------
    def stream_start(self, wakeup: Callable[[], None]) -> None:
        """Listen to trade_updates in a daemon thread (idempotent); ``wakeup()`` is called after
        every buffered event and every change of the stream's state.

        A refused authentication sticks (raised here and by ``poll_updates``) until the adapter is
        rebuilt with new keys (``adapters_reset``)."""
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
                self._stream_error = exc  # wrong keys: reconnecting will not help
                self.stream_listening.clear()
                self._wakeup()
                return
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError, ValueError) as exc:
                self._stream_error = BrokerRetryable(f"Alpaca stream dropped: {exc}", code="STREAM_DOWN")
            self.stream_listening.clear()
            self._wakeup()  # poll REST while the stream is down
            self._stream.stopping.wait(delay)  # reconnect with backoff unless stopped
            delay = min(delay * 2, most)

    def _stream_session(self) -> None:
        key, secret = self._credentials()
        timeout = getattr(settings, "ALPACA_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
        with connect(self.stream_url, open_timeout=timeout, close_timeout=1) as ws:
            ws.send(json.dumps({"action": "authenticate", "data": {"key_id": key, "secret_key": secret}}))
            reply = self._frame(ws.recv(timeout=timeout))
            data = reply.get("data", {})
            if reply.get("stream") != "authorization" or data.get("status") != "authorized":
                raise BrokerFatal(
                    f"Alpaca refused the stream authentication: {data.get('message', 'unauthorized')}",
                    code="UNAUTHORIZED",
                )
            ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            reply = self._frame(ws.recv(timeout=timeout))
            if "trade_updates" not in reply.get("data", {}).get("streams", []):
                raise ValueError(f"Alpaca did not confirm trade_updates: {reply}")
            self._stream_error = None
            self._catch_up.set()  # events sent while we were away: one REST poll catches them up
            self.stream_listening.set()
            self._wakeup()
            while not self._stream.stopping.is_set():
                try:
                    frame = ws.recv(timeout=0.2)
                except TimeoutError:
                    continue
                message = self._frame(frame)
                if message.get("stream") == "trade_updates":
                    self._events.put(message["data"])
                    self._wakeup()

    @staticmethod
    def _frame(frame: str | bytes) -> dict:
        """Alpaca's paper stream sends binary frames of JSON; text frames are accepted too."""
        message = json.loads(frame, parse_float=Decimal)
        if not isinstance(message, dict):
            raise ValueError(f"unexpected stream frame {message!r}")
        return message

    # --- transport ------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: dict | None = None
    ) -> Any:
        key, secret = self._credentials()
        headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        write = method != "GET"
        try:
            response = self._client.request(method, path, params=params, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # the request never left this machine
            raise BrokerRetryable(
                f"cannot reach Alpaca at {self.base_url}: {exc}", code="UNREACHABLE"
            ) from exc
        except httpx.TimeoutException as exc:
            raise BrokerUnknownOutcome(
                f"Alpaca did not answer {method} {path} in time", code="TIMEOUT"
            ) from exc
        except httpx.TransportError as exc:
            raise BrokerUnknownOutcome(f"connection to Alpaca failed: {exc}", code="TRANSPORT") from exc
        return self._decode(response, write=write)

    def _credentials(self) -> tuple[str, str]:
        if not self._sealed_key or not self._sealed_secret:
            raise BrokerFatal(
                f"broker account {self.account_pk} has no Alpaca API key pair", code="NO_CREDENTIALS"
            )
        try:
            return _reveal(self._sealed_key), _reveal(self._sealed_secret)
        except DecryptionError as exc:
            raise BrokerFatal(
                f"the Alpaca credentials of broker account {self.account_pk} cannot be decrypted: {exc}",
                code="CREDENTIALS_UNREADABLE",
            ) from exc

    def _decode(self, response: httpx.Response, *, write: bool) -> Any:
        status = response.status_code
        if status == 204:
            return None
        payload = self._json(response)
        if status < 300:
            return payload
        message = (payload.get("message") if isinstance(payload, dict) else None) or response.reason_phrase
        code = payload.get("code") if isinstance(payload, dict) else None
        code_text = f"ALPACA_{code}" if code is not None else f"HTTP_{status}"
        if status == 401:
            raise BrokerFatal(
                f"Alpaca refused the API key ({message}): check the key pair and that it belongs to the "
                f"{'paper' if self.base_url == PAPER_URL else 'configured'} environment ({self.base_url})",
                code="UNAUTHORIZED",
            )
        if status == 429:
            raise BrokerRetryable(
                f"Alpaca rate limit reached: {message}",
                retry_after=self._retry_after(response),
                code="RATE_LIMITED",
            )
        if status >= 500:
            if write:
                raise BrokerUnknownOutcome(f"Alpaca answered {status}: {message}", code=code_text)
            raise BrokerRetryable(f"Alpaca answered {status}: {message}", code=code_text)
        raise BrokerRejected(str(message), code=code_text)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content:
            return {}
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError:
            return {"message": response.text[:200]}

    @staticmethod
    def _retry_after(response: httpx.Response) -> int:
        """Seconds to wait: ``Retry-After`` if given, else until ``X-Ratelimit-Reset`` (epoch s)."""
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.isdigit():
            return max(int(retry_after), 1)
        reset = response.headers.get("X-Ratelimit-Reset", "")
        if reset.isdigit():
            return max(int(reset) - int(time.time()), 1)
        return 1

    # --- mapping --------------------------------------------------------------------------
    def _body(self, request: BrokerOrderRequest) -> dict[str, str]:
        if request.asset_class is AssetClass.CRYPTO:
            if request.order_type not in CRYPTO_ORDER_TYPES:
                raise BrokerRejected(
                    f"Alpaca crypto does not take {request.order_type} orders", code="UNSUPPORTED_ORDER_TYPE"
                )
            if request.time_in_force not in CRYPTO_TIFS:
                raise BrokerRejected(
                    f"Alpaca crypto does not take time in force {request.time_in_force}",
                    code="UNSUPPORTED_TIF",
                )
        body = {
            "symbol": request.symbol,
            "qty": _text(request.quantity),
            "side": request.side.value.lower(),
            "type": ORDER_TYPES[request.order_type],
            "time_in_force": TIFS[request.time_in_force],
            "client_order_id": request.client_order_id,
        }
        for field, value in (
            ("limit_price", request.price),
            ("stop_price", request.stop_price),
            ("trail_price", request.trail_amount),
            ("trail_percent", request.trail_percent),
        ):
            if value is not None:
                body[field] = _text(value)
        return body

    def _ours(self, alpaca_client_id: str) -> str:
        with self._lock:
            return self._owner.get(alpaca_client_id, alpaca_client_id)

    def _theirs(self, client_order_id: str) -> str:
        with self._lock:
            return self._alias.get(client_order_id, client_order_id)

    def _by_client_id(self, client_order_id: str) -> dict | None:
        """The current Alpaca order behind our client order id (None if Alpaca does not know it)."""
        try:
            return self._request(
                "GET",
                "/v2/orders:by_client_order_id",
                params={"client_order_id": self._theirs(client_order_id)},
            )
        except BrokerRejected as exc:
            if exc.code in ("ALPACA_40410000", "HTTP_404"):
                return None
            raise

    def _state(self, order: dict) -> BrokerOrderState:
        return BrokerOrderState(
            client_order_id=self._ours(order["client_order_id"]),
            broker_order_id=order["id"],
            symbol=_symbol(order["symbol"], order.get("asset_class", "")),
            side=Side(order["side"].upper()),
            status=order_status(order["status"]),
            quantity=_dec(order.get("qty")) or Decimal(0),
            filled_quantity=_dec(order.get("filled_qty")) or Decimal(0),
            average_fill_price=_dec(order.get("filled_avg_price")),
        )

    def _updates(self, order: dict, now: dt.datetime, *, placed: bool = False) -> list[BrokerOrderUpdate]:
        """What changed in ``order`` since this adapter last reported it (ACCEPTED only when
        ``placed``, or for a stream's ``new`` event of an order this adapter had not seen)."""
        cid, oid = self._ours_for(order), order["id"]
        status = order_status(order["status"])
        filled_qty = _dec(order.get("filled_qty")) or Decimal(0)
        avg = _dec(order.get("filled_avg_price"))
        notional = filled_qty * avg if avg is not None else Decimal(0)
        updates: list[BrokerOrderUpdate] = []
        with self._lock:
            if cid in self._finished and not placed:
                return []  # a late event (stream or REST) for an order already reported as ended
            seen = self._seen.setdefault(cid, _Seen(broker_order_id=oid, accepted=not placed))
            if not seen.accepted and status is not BrokerOrderStatus.REJECTED:
                seen.accepted = True
                updates.append(BrokerOrderUpdate(UpdateKind.ACCEPTED, cid, oid, now))
            increment = filled_qty - seen.filled_qty
            if increment > 0:
                price = ((notional - seen.filled_notional) / increment).quantize(Q8)
                fill = FillReport(
                    broker_fill_id=f"{oid}:{_text(filled_qty)}",
                    quantity=increment,
                    price=price,
                    fee=Decimal(0),
                    cumulative_quantity=filled_qty,
                    cumulative_notional=notional,
                )
                updates.append(BrokerOrderUpdate(UpdateKind.FILL, cid, oid, now, fill=fill))
                seen.filled_qty, seen.filled_notional = filled_qty, notional
            if order["status"] == "replaced":
                return updates  # it lives on as its replacement: no terminal update for our order
            if status != seen.status and status in TERMINAL_UPDATES:
                reason = f"Alpaca reports the order {order['status']}"
                updates.append(BrokerOrderUpdate(TERMINAL_UPDATES[status], cid, oid, now, reason=reason))
            seen.status = status
        return updates

    def _ours_for(self, order: dict) -> str:
        """Our client id of ``order``; a replacement made by another process (unknown alias) is
        recognised by ``replaces``, the id of the order it superseded."""
        alpaca_client_id = order["client_order_id"]
        with self._lock:
            if alpaca_client_id in self._owner or not order.get("replaces"):
                return self._owner.get(alpaca_client_id, alpaca_client_id)
            for cid, seen in self._seen.items():
                if seen.broker_order_id == order["replaces"]:
                    self._owner[alpaca_client_id], self._alias[cid] = cid, alpaca_client_id
                    seen.broker_order_id = order["id"]
                    return cid
        return alpaca_client_id

    def _forget_finished(self) -> None:
        """Drop the orders that ended from the tracked set (remembering their ids, bounded)."""
        with self._lock:
            for cid in [c for c, s in self._seen.items() if s.status is not OPEN]:
                del self._seen[cid]
                self._alias.pop(cid, None)
                for alias in [a for a, owner in self._owner.items() if owner == cid]:
                    del self._owner[alias]
                self._finished[cid] = None
            while len(self._finished) > FINISHED_REMEMBERED:
                self._finished.popitem(last=False)

    def _track(self, order: dict) -> None:
        """Remember an order so polls report its fills, starting from nothing reported."""
        with self._lock:
            cid = self._owner.get(order["client_order_id"], order["client_order_id"])
            self._seen.setdefault(cid, _Seen(broker_order_id=order["id"], accepted=True))

    # --- the adapter interface ------------------------------------------------------------
    def place(self, request: BrokerOrderRequest) -> list[BrokerOrderUpdate]:
        order = self._request("POST", "/v2/orders", body=self._body(request))
        return self._updates(order, timezone.now(), placed=True)

    def cancel(self, ref: OrderRef) -> list[BrokerOrderUpdate]:
        # after a replace the caller may still hold the old Alpaca id: ask by client id then
        broker_order_id = ref.broker_order_id if ref.client_order_id not in self._alias else None
        if broker_order_id is None:
            current = self._by_client_id(ref.client_order_id)
            if current is None:
                raise BrokerRejected("order not found at Alpaca", code="ORDER_NOT_FOUND")
            broker_order_id = current["id"]
        self._request("DELETE", f"/v2/orders/{broker_order_id}")
        # Alpaca accepts the request (204); the order moves to canceled, possibly after pending_cancel
        order = self._request("GET", f"/v2/orders/{broker_order_id}")
        return self._updates(order, timezone.now())

    def replace(self, ref: OrderRef, change: OrderChange) -> list[BrokerOrderUpdate]:
        """``PATCH /v2/orders/{id}``: Alpaca answers with a new order (new id, ``replaces`` = old id)
        under a new client id ``<ours>-r<n>``; updates keep reporting our client id."""
        current = self._by_client_id(ref.client_order_id)
        if current is None:
            raise BrokerRejected("order not found at Alpaca", code="ORDER_NOT_FOUND")
        if (_dec(current.get("filled_qty")) or Decimal(0)) > 0:
            # how Alpaca carries fills into the replacement order is not verified: refuse, do not guess
            raise BrokerRejected(
                "replacing a partially filled Alpaca order is not supported; cancel it instead",
                code="REPLACE_PARTIALLY_FILLED",
            )
        with self._lock:
            count = 1 + sum(1 for owner in self._owner.values() if owner == ref.client_order_id)
        new_client_id = f"{ref.client_order_id}-r{count}"
        body = {"client_order_id": new_client_id}
        if change.quantity is not None:
            body["qty"] = _text(change.quantity)
        if change.time_in_force is not None:
            body["time_in_force"] = TIFS[change.time_in_force]
        if change.price is not None:
            body["limit_price"] = _text(change.price)
        if change.stop_price is not None:
            body["stop_price"] = _text(change.stop_price)
        trail = change.trail_amount if change.trail_amount is not None else change.trail_percent
        if trail is not None:
            body["trail"] = _text(trail)
        new = self._request("PATCH", f"/v2/orders/{current['id']}", body=body)
        with self._lock:
            self._alias[ref.client_order_id] = new["client_order_id"]
            self._owner[new["client_order_id"]] = ref.client_order_id
            seen = self._seen.setdefault(ref.client_order_id, _Seen(broker_order_id=new["id"], accepted=True))
            seen.broker_order_id = new["id"]
        in_force = OrderChange(
            quantity=_dec(new.get("qty")),
            price=_dec(new.get("limit_price")),
            stop_price=_dec(new.get("stop_price")),
            trail_amount=_dec(new.get("trail_price")),
            trail_percent=_dec(new.get("trail_percent")),
            time_in_force=next(t for t, v in TIFS.items() if v == new["time_in_force"]),
        )
        reason = f"replaced Alpaca order {current['id']}"
        return [
            BrokerOrderUpdate(
                UpdateKind.REPLACED,
                ref.client_order_id,
                new["id"],
                timezone.now(),
                reason=reason,
                change=in_force,
            ),
            *self._updates(new, timezone.now()),
        ]

    def get_order(self, client_order_id: str, broker_order_id: str | None = None) -> BrokerOrderState | None:
        order = self._by_client_id(client_order_id)
        if order is None:
            return None
        self._track(order)
        return self._state(order)

    def _open(self) -> list[dict]:
        return self._request(
            "GET", "/v2/orders", params={"status": "open", "limit": "500", "direction": "asc"}
        )

    def open_orders(self) -> list[BrokerOrderState]:
        return [self._state(o) for o in self._open()]

    def positions(self) -> list[BrokerPosition]:
        result = []
        for p in self._request("GET", "/v2/positions"):
            qty = _dec(p["qty"]) or Decimal(0)
            if p.get("side") == "short" and qty > 0:
                qty = -qty
            result.append(
                BrokerPosition(
                    symbol=_symbol(p["symbol"], p.get("asset_class", "")),
                    quantity=qty,
                    average_cost=_dec(p["avg_entry_price"]) or Decimal(0),
                )
            )
        return result

    def account(self) -> AccountInfo:
        a = self._request("GET", "/v2/account")
        return AccountInfo(
            cash=_dec(a["cash"]) or Decimal(0),
            buying_power=_dec(a["buying_power"]) or Decimal(0),
            total_value=_dec(a.get("equity") or a.get("portfolio_value")) or Decimal(0),
        )

    def quote(self, symbol: str) -> Quote:
        """The latest quote from the Market Data API: ``/v2/stocks/quotes/latest`` (on the
        ``ALPACA_DATA_FEED`` feed) or ``/v1beta3/crypto/us/latest/quotes`` for a ``BASE/QUOTE`` pair."""
        if "/" in symbol:
            url, params = f"{self.data_url}/v1beta3/crypto/us/latest/quotes", {"symbols": symbol}
        else:
            url, params = (
                f"{self.data_url}/v2/stocks/quotes/latest",
                {"symbols": symbol, "feed": self.data_feed},
            )
        payload = self._request("GET", url, params=params)
        data = (payload.get("quotes") or {}).get(symbol) if isinstance(payload, dict) else None
        if not data:
            raise BrokerRejected(f"Alpaca has no market data for the symbol {symbol}", code="UNKNOWN_SYMBOL")
        bid, ask = _dec(data.get("bp")) or Decimal(0), _dec(data.get("ap")) or Decimal(0)
        if bid <= 0 or ask <= 0 or bid > ask:
            raise BrokerError(f"Alpaca has no two-sided quote for {symbol} now", code="NO_QUOTE")
        stamp = data.get("t")
        return Quote(
            symbol=symbol,
            bid=bid,
            ask=ask,
            bid_size=_dec(data.get("bs")) or Decimal(0),
            ask_size=_dec(data.get("as")) or Decimal(0),
            last=(bid + ask) / 2,
            at=_parse_time(stamp) if stamp else timezone.now(),
        )

    def poll_updates(self, now: dt.datetime) -> list[BrokerOrderUpdate]:
        """Order updates since the last poll: drained from the trade_updates stream while it
        listens, else (and once after every reconnect) read from the REST order list too."""
        if isinstance(self._stream_error, BrokerFatal):
            raise self._stream_error
        updates: list[BrokerOrderUpdate] = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            # the event's order carries the cumulative fill: the same increments (and fill ids)
            # as REST polling, so the two paths never double count
            placed = event.get("event") == "new" and self._ours_for(event["order"]) not in self._seen
            updates.extend(self._updates(event["order"], now, placed=placed))
        if self.stream_listening.is_set() and not self._catch_up.is_set():
            self._forget_finished()
            return updates
        self._catch_up.clear()  # before reading: an event that arrives meanwhile is buffered
        return updates + self._poll_rest(now)

    def _poll_rest(self, now: dt.datetime) -> list[BrokerOrderUpdate]:
        open_orders = self._open()
        updates: list[BrokerOrderUpdate] = []
        open_ids = set()
        for order in open_orders:
            updates.extend(self._updates(order, now))
            open_ids.add(self._ours_for(order))
        with self._lock:
            gone = [cid for cid, s in self._seen.items() if s.status is OPEN and cid not in open_ids]
        for cid in gone:
            order = self._by_client_id(cid)
            if order is not None:
                updates.extend(self._updates(order, now))
        self._forget_finished()
        return updates

    def health(self) -> HealthReport:
        started = time.monotonic_ns()
        clock = self._request("GET", "/v2/clock")
        latency = Decimal(time.monotonic_ns() - started) / Decimal(1_000_000)
        detail = "market open" if clock.get("is_open") else "market closed"
        return HealthReport(
            status=Health.CONNECTED, latency_ms=latency.quantize(Decimal("0.1")), detail=detail
        )
