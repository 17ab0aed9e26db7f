"""A fake Alpaca Trading API v2 (REST) on loopback, for adapter tests.

It speaks the wire protocol of /work/shared/reference/broker-apis.md section 1: the auth headers,
``/v2/orders`` (place, list, get by id or by client order id, replace, cancel), ``/v2/positions``,
``/v2/account``, ``/v2/clock``; decimals as strings; errors as ``{"code", "message"}``; 401 as
``{"message": "unauthorized"}``; 429 with the ``X-Ratelimit-*`` headers.

Tests script it:

- ``fake.fills[symbol] = [(qty, price), ...]``: executions; the first happens when the order is
  placed if ``fake.fill_on_place`` (default True), the next ones one per later read of the order
  (a poll), so a partial fill completes over polls;
- ``fake.fail_next(status, body, headers)``: the next request gets that canned reply (after auth);
- ``fake.delay_next(seconds)``: the next request is processed but its reply is held back
  (a slow broker: the client times out although the order arrived);
- ``fake.fill_on_read = False``: reads no longer advance the scripted fills, only ``execute`` does
  (a venue that fills when the market says so, not when asked);
- the stream: ``stream_start()`` serves ``/stream``; ``drop_streams()`` closes every open stream
  connection; ``refuse_streams = True`` closes new ones at once (a stream outage; events sent
  meanwhile are lost, as on the real stream); ``sessions`` counts the authorised connections.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

OPEN_STATUSES = {"new", "partially_filled", "accepted", "pending_new", "pending_cancel", "held"}
TYPES = {"market", "limit", "stop", "stop_limit", "trailing_stop"}
TIFS = {"day", "gtc", "opg", "cls", "ioc", "fok"}


@dataclass
class Canned:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


class AlpacaError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeAlpaca:
    def __init__(self, *, key: str = "PKTEST123", secret: str = "secret-xyz") -> None:
        self.key, self.secret = key, secret
        self.orders: dict[str, dict] = {}  # by Alpaca order id, in placement order
        self.fills: dict[str, list[tuple[Decimal, Decimal]]] = {}
        self.fill_on_place = True
        self.fill_on_read = True
        self.refuse_streams = False
        self.sessions = 0  # stream connections authorised so far
        self._generation = 0  # drop_streams() moves it on; older sessions close
        self.positions: list[dict] = []
        self.quotes: dict[str, dict] = {}  # latest quote per symbol (market data API)
        self.account = {
            "cash": Decimal("100000"),
            "buying_power": Decimal("200000"),
            "equity": Decimal("100000"),
        }
        self.requests: list[tuple[str, str, dict | None]] = []  # (method, path, json body)
        self._canned: deque[Canned] = deque()
        self._delay: deque[float] = deque()
        self._release = threading.Event()
        self._subscribers: list[queue.Queue[dict]] = []
        self.ws_server = None
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-alpaca", daemon=True
        )

    # --- lifecycle and scripting ---------------------------------------------------------
    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal, size: Decimal = Decimal(100)) -> None:
        """What the market data API answers for ``symbol`` from now on."""
        with self.lock:
            self.quotes[symbol] = {"ap": ask, "as": size, "bp": bid, "bs": size, "t": _now()}

    def start(self) -> FakeAlpaca:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self.ws_server is not None:
            self.ws_server.shutdown()
            self._ws_thread.join(timeout=5)
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # --- the trade_updates stream (ws /stream) ------------------------------------------
    def stream_start(self) -> str:
        """Serve ``/stream`` on another loopback port; returns its ws:// URL."""
        self.ws_server: Server = serve(self._ws_session, "127.0.0.1", 0)
        port = self.ws_server.socket.getsockname()[1]
        self._ws_thread = threading.Thread(
            target=self.ws_server.serve_forever, name="fake-alpaca-ws", daemon=True
        )
        self._ws_thread.start()
        self.stream_url = f"ws://127.0.0.1:{port}/stream"
        return self.stream_url

    def _ws_session(self, ws: ServerConnection) -> None:
        def send(message: dict) -> None:
            ws.send(json.dumps(message).encode())  # the paper stream sends binary frames

        if self.refuse_streams:
            ws.close(1013, "try again later")
            return
        with self.lock:
            generation = self._generation
        try:
            auth = json.loads(ws.recv(timeout=5))
            data = auth.get("data", {})
            if auth.get("action") != "authenticate" or (data.get("key_id"), data.get("secret_key")) != (
                self.key,
                self.secret,
            ):
                send(
                    {
                        "stream": "authorization",
                        "data": {
                            "action": "authenticate",
                            "status": "unauthorized",
                            "message": "access key verification failed",
                        },
                    }
                )
                return
            send({"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}})
            listen = json.loads(ws.recv(timeout=5))
            streams = listen.get("data", {}).get("streams", []) if listen.get("action") == "listen" else []
            inbox: queue.Queue[dict] = queue.Queue()
            with self.lock:  # registered before the ack: nothing after it is missed
                self._subscribers.append(inbox)
                self.sessions += 1
            try:
                send({"stream": "listening", "data": {"streams": streams}})
                while not self._release.is_set() and generation == self._generation:
                    while not inbox.empty():
                        send(inbox.get_nowait())
                    try:
                        ws.recv(timeout=0.02)  # the client's messages are not used; its close is
                    except TimeoutError:
                        continue
                ws.close(1001, "going away")
            finally:
                with self.lock:
                    if inbox in self._subscribers:
                        self._subscribers.remove(inbox)
        except (ConnectionClosed, TimeoutError):
            return

    def _emit(self, event: str, order: dict, **extra: str) -> None:
        message = {
            "stream": "trade_updates",
            "data": {"event": event, "order": dict(order), "timestamp": _now(), **extra},
        }
        for inbox in list(self._subscribers):
            inbox.put(message)

    def drop_streams(self) -> None:
        """Close every open stream connection (the client is expected to reconnect)."""
        with self.lock:
            self._generation += 1
            self._subscribers.clear()

    def subscribers(self) -> int:
        with self.lock:
            return len(self._subscribers)

    def execute(self, client_order_id: str) -> None:
        """Test hook: the order's next scripted execution happens now (as a venue would)."""
        with self.lock:
            order = self.order_by_client_id(client_order_id)
            assert order is not None, client_order_id
            self._execute(order)

    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._canned.append(Canned(status, body, headers or {}))

    def delay_next(self, seconds: float) -> None:
        self._delay.append(seconds)

    def order_by_client_id(self, client_order_id: str) -> dict | None:
        return next((o for o in self.orders.values() if o["client_order_id"] == client_order_id), None)

    # --- order book ----------------------------------------------------------------------
    def _execute(self, order: dict) -> None:
        """Apply the symbol's next scripted execution to ``order`` (if any and if it is open)."""
        script = self.fills.get(order["symbol"])
        if not script or order["status"] not in OPEN_STATUSES:
            return
        qty, price = script.pop(0)
        filled = Decimal(order["filled_qty"])
        avg = Decimal(order["filled_avg_price"] or 0)
        new_filled = min(filled + qty, Decimal(order["qty"]))
        new_avg = (filled * avg + (new_filled - filled) * price) / new_filled
        order["filled_qty"] = _num(new_filled)
        order["filled_avg_price"] = _num(new_avg.quantize(Decimal("0.000000001")))
        order["updated_at"] = _now()
        if new_filled == Decimal(order["qty"]):
            order["status"] = "filled"
            order["filled_at"] = order["updated_at"]
        else:
            order["status"] = "partially_filled"
        execution = {
            "price": _num(price),
            "qty": _num(new_filled - filled),
            "execution_id": str(uuid.uuid4()),
        }
        self._emit("fill" if order["status"] == "filled" else "partial_fill", order, **execution)

    def place(self, body: dict) -> dict:
        def need(name: str) -> Any:
            if body.get(name) in (None, ""):
                raise AlpacaError(422, 40010001, f"{name} is required")
            return body[name]

        def decimal(name: str) -> Decimal:
            try:
                value = Decimal(str(need(name)))
            except InvalidOperation:
                raise AlpacaError(422, 40010001, f"invalid {name}") from None
            if value <= 0:
                raise AlpacaError(422, 40010001, f"{name} must be > 0")
            return value

        symbol, side, kind, tif = need("symbol"), need("side"), need("type"), need("time_in_force")
        if side not in ("buy", "sell"):
            raise AlpacaError(422, 40010001, "invalid side")
        if kind not in TYPES:
            raise AlpacaError(422, 40010001, "invalid order type")
        if tif not in TIFS:
            raise AlpacaError(422, 40010001, "invalid time_in_force")
        if "qty" in body and "notional" in body:
            raise AlpacaError(422, 40010001, "only one of qty or notional may be given")
        qty = decimal("qty")
        limit = decimal("limit_price") if kind in ("limit", "stop_limit") else None
        stop = decimal("stop_price") if kind in ("stop", "stop_limit") else None
        if kind == "trailing_stop" and not (body.get("trail_price") or body.get("trail_percent")):
            raise AlpacaError(422, 40010001, "trail_price or trail_percent is required")
        if limit is not None and limit >= 1 and limit != limit.quantize(Decimal("0.01")):
            raise AlpacaError(
                422, 42210000, "invalid limit_price. sub-penny increment does not fulfill minimum"
            )
        crypto = "/" in symbol
        if crypto and (kind not in ("market", "limit", "stop_limit") or tif not in ("gtc", "ioc")):
            raise AlpacaError(422, 42210000, f"invalid crypto order: {kind} {tif}")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if len(cid) > 128:
            raise AlpacaError(422, 40010001, "client_order_id must be no more than 128 characters")
        if self.order_by_client_id(cid) is not None:
            raise AlpacaError(422, 40010001, "client_order_id must be unique")
        if side == "buy":
            reference = limit or stop or Decimal("100")
            if qty * reference > self.account["buying_power"]:
                raise AlpacaError(403, 40310000, "insufficient buying power")
        now = _now()
        order = {
            "id": str(uuid.uuid4()),
            "client_order_id": cid,
            "created_at": now,
            "updated_at": now,
            "submitted_at": now,
            "filled_at": None,
            "expired_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)),
            "symbol": symbol,
            "asset_class": "crypto" if crypto else "us_equity",
            "notional": None,
            "qty": _num(qty),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "simple",
            "order_type": kind,
            "type": kind,
            "side": side,
            "time_in_force": tif,
            "limit_price": _num(limit) if limit is not None else None,
            "stop_price": _num(stop) if stop is not None else None,
            "trail_price": body.get("trail_price"),
            "trail_percent": body.get("trail_percent"),
            "hwm": None,
            "status": "new",
            "extended_hours": False,
            "legs": None,
        }
        self.orders[order["id"]] = order
        self._emit("new", order)
        if self.fill_on_place:
            self._execute(order)
        return order

    def cancel(self, order_id: str) -> None:
        order = self.orders.get(order_id)
        if order is None:
            raise AlpacaError(404, 40410000, "order not found")
        if order["status"] not in OPEN_STATUSES:
            raise AlpacaError(422, 42210000, f'order is already in "{order["status"]}" state')
        order["status"] = "canceled"
        order["canceled_at"] = order["updated_at"] = _now()
        self._emit("canceled", order)

    def replace(self, order_id: str, body: dict) -> dict:
        old = self.orders.get(order_id)
        if old is None:
            raise AlpacaError(404, 40410000, "order not found")
        if old["status"] not in OPEN_STATUSES:
            raise AlpacaError(422, 42210000, f'order is already in "{old["status"]}" state')
        unknown = set(body) - {
            "qty",
            "time_in_force",
            "limit_price",
            "stop_price",
            "trail",
            "client_order_id",
        }
        if unknown:
            raise AlpacaError(422, 40010001, f"unknown fields: {', '.join(sorted(unknown))}")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if self.order_by_client_id(cid) is not None:
            raise AlpacaError(422, 40010001, "client_order_id must be unique")
        if "time_in_force" in body and body["time_in_force"] not in TIFS:
            raise AlpacaError(422, 40010001, "invalid time_in_force")
        now = _now()
        new = {**old, "id": str(uuid.uuid4()), "client_order_id": cid, "created_at": now, "updated_at": now}
        new.update(status="new", filled_qty="0", filled_avg_price=None, replaces=order_id)
        for name in ("qty", "limit_price", "stop_price"):
            if name in body:
                new[name] = _num(Decimal(str(body[name])))
        if "time_in_force" in body:
            new["time_in_force"] = body["time_in_force"]
        if "trail" in body:
            new["trail_percent" if old["trail_percent"] else "trail_price"] = _num(
                Decimal(str(body["trail"]))
            )
        old.update(status="replaced", replaced_by=new["id"], replaced_at=now, updated_at=now)
        self.orders[new["id"]] = new
        self._emit("replaced", old)
        self._emit("new", new)
        return new

    def read(self, order: dict) -> dict:
        """A read of an order after its placement advances its scripted fills by one step."""
        if self.fill_on_read:
            self._execute(order)
        return order

    # --- HTTP routing --------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, str], body: dict | None) -> tuple[int, Any]:
        if method == "POST" and path == "/v2/orders":
            return 200, self.place(body or {})
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            order = self.order_by_client_id(query.get("client_order_id", ""))
            if order is None:
                raise AlpacaError(404, 40410000, "order not found")
            return 200, self.read(order)
        if method == "GET" and path == "/v2/orders":
            wanted = query.get("status", "open")
            for order in list(self.orders.values()):
                self.read(order)
            orders = [
                o
                for o in self.orders.values()
                if wanted == "all" or (o["status"] in OPEN_STATUSES) == (wanted == "open")
            ]
            return 200, orders[: int(query.get("limit", "50"))]
        if path.startswith("/v2/orders/"):
            order_id = path.removeprefix("/v2/orders/")
            if method == "DELETE":
                self.cancel(order_id)
                return 204, None
            if method == "PATCH":
                return 200, self.replace(order_id, body or {})
            if method == "GET":
                if order_id not in self.orders:
                    raise AlpacaError(404, 40410000, "order not found")
                return 200, self.orders[order_id]
        if method == "GET" and path == "/v2/positions":
            return 200, self.positions
        if method == "GET" and path == "/v2/account":
            return 200, {
                "id": str(uuid.uuid4()),
                "account_number": "PA3TEST0001",
                "status": "ACTIVE",
                "currency": "USD",
                "cash": _num(self.account["cash"]),
                "buying_power": _num(self.account["buying_power"]),
                "equity": _num(self.account["equity"]),
                "portfolio_value": _num(self.account["equity"]),
                "trading_blocked": False,
                "pattern_day_trader": False,
            }
        if method == "GET" and path in ("/v2/stocks/quotes/latest", "/v1beta3/crypto/us/latest/quotes"):
            if path.startswith("/v2/") and query.get("feed") not in ("iex", "sip", "delayed_sip", "otc"):
                raise AlpacaError(400, 40010001, "invalid feed")
            asked = [s for s in query.get("symbols", "").split(",") if s]
            rows = []
            for symbol in (s for s in asked if s in self.quotes):
                q = self.quotes[symbol]  # numbers, as Alpaca sends them (not strings)
                fields = ", ".join(f'"{k}": {_num(q[k])}' for k in ("ap", "as", "bp", "bs"))
                rows.append(f'{json.dumps(symbol)}: {{{fields}, "t": "{q["t"]}"}}')
            return 200, ("{" + f'"quotes": {{{", ".join(rows)}}}' + "}").encode()
        if method == "GET" and path == "/v2/clock":
            return 200, {"timestamp": _now(), "is_open": True, "next_open": _now(), "next_close": _now()}
        return 404, {"code": 40410000, "message": "endpoint not found"}


def _handler(fake: FakeAlpaca) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            # bytes: JSON rendered by the route itself (market data sends prices as JSON numbers)
            data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            if fake._release.is_set():  # stopped: a kept-alive connection must not live on
                self.close_connection = True
                return
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = None
            if raw:
                try:
                    body = json.loads(raw, parse_float=Decimal)
                except ValueError:
                    self._reply(400, {"code": 40010000, "message": "request body format is invalid"})
                    return
            with fake.lock:
                fake.requests.append((method, split.path, body))
                if (
                    self.headers.get("APCA-API-KEY-ID") != fake.key
                    or self.headers.get("APCA-API-SECRET-KEY") != fake.secret
                ):
                    status, payload, headers = 401, {"message": "unauthorized"}, {}
                elif fake._canned:
                    canned = fake._canned.popleft()
                    status, payload, headers = canned.status, canned.body, canned.headers
                else:
                    headers = {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "199"}
                    try:
                        status, payload = fake.route(method, split.path, query, body)
                    except AlpacaError as exc:
                        status, payload = exc.status, {"code": exc.code, "message": exc.message}
                delay = fake._delay.popleft() if fake._delay else 0
            if delay:
                fake._release.wait(delay)  # a slow broker: the work is done, the reply is late
            try:
                self._reply(status, payload, headers)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up waiting

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    return Handler
