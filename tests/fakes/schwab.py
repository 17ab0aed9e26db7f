"""A fake Charles Schwab Trader API on loopback (real HTTP, a thread per request).

It speaks the wire protocol of /work/shared/reference/broker-apis.md section 3: ``POST /v1/oauth/token``
(HTTP Basic app key:secret, ``grant_type=refresh_token``; access tokens expire, refresh tokens can be
expired by a test), bearer checks on every ``/trader/v1`` call, ``/accounts/accountNumbers`` with
hashes, orders under ``/accounts/{hash}/orders`` (201 + absolute ``Location`` on place and PUT
replace, 200 empty on DELETE, list with the required ``fromEnteredTime``/``toEnteredTime``), and
``/accounts/{hash}?fields=positions``. Errors are ``{"message", "errors"}``.

Tests script it:

- ``fake.fills[symbol] = [(qty, price), ...]``: executions; the first happens on placement if
  ``fake.fill_on_place``, the next ones one per later read of the order (not the adapter's read
  right after placing);
- ``fake.reject_next = "reason"``: the next placed order is created ``REJECTED`` with that
  ``statusDescription``;
- ``fake.fail_next(status, body, headers)``: the next trader call gets that canned reply
  (``fake.fail_next_read(status, body)``: the next GET);
- ``fake.delay_next(seconds)``: the next trader call is processed but its reply is held back;
- ``fake.expire_access_token()`` / ``fake.refresh_token_expired = True``.

OAuth authorization-code grant: ``GET /v1/oauth/authorize?client_id=&redirect_uri=&state=`` (or
``fake.authorize(url)``) plays a user who logs in and consents: it answers 302 to the callback with
``code``, ``session`` and ``state``. The token endpoint takes ``grant_type=authorization_code`` with
HTTP Basic app key:secret, the ``code`` (one-time) and the same ``redirect_uri``, and returns a new
refresh token (``fake.refresh_token``). ``fake.deny_consent = "access_denied"`` makes the next
authorize answer ``?error=...``.

Streamer: ``GET /trader/v1/userPreference`` returns ``streamerInfo`` pointing at a WebSocket on
loopback (``fake.streamer_url``) that speaks Schwab's streamer JSON: ``ADMIN LOGIN`` (the access
token, customer id, correl id, channel and function id are checked; code 3 when refused),
``ACCT_ACTIVITY SUBS`` (code 0 then a ``SUBSCRIBED`` data message), heartbeats ``{"notify":
[{"heartbeat": ...}]}`` every ``fake.heartbeat_seconds``, and ``ADMIN LOGOUT``. Hooks:

- ``fake.fill_on_read = False``: orders fill only through ``fake.execute(order_id)``, which runs the
  next scripted execution now and pushes ``ExecutionCreated`` / ``OrderFillCompleted`` activity;
- ``fake.activity(order_id, "OrderUROutCompleted")``: push one account-activity message;
- ``fake.drop_streams()``: cut every streamer socket (no close handshake);
- ``fake.stream_login_denied = "reason"``: refuse every LOGIN;
- ``fake.stream_requests`` (every request received), ``fake.stream_subscribers()``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import queue
import secrets
import socket
import threading
import time
from collections import deque
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

PUBLIC_BASE = "https://api.schwabapi.com/trader/v1"
OPEN = {"WORKING", "QUEUED", "ACCEPTED", "PENDING_ACTIVATION", "AWAITING_CONDITION"}
TYPES = {"MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"}
DURATIONS = {"DAY", "GOOD_TILL_CANCEL", "IMMEDIATE_OR_CANCEL", "FILL_OR_KILL"}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class SchwabError(Exception):
    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or []


class FakeSchwab:
    def __init__(self, *, app_key: str = "APPKEY123", app_secret: str = "appsecret", refresh: str = "rt-1"):
        self.app_key, self.app_secret = app_key, app_secret
        self.refresh_token = refresh
        self.refresh_tokens = {refresh}  # every refresh token issued (Schwab keeps each for 7 days)
        self.refresh_token_expired = False
        self.codes: dict[str, str] = {}  # unused authorization codes -> their redirect_uri
        self.deny_consent: str | None = None
        self.access_tokens: set[str] = set()
        self.token_requests = 0
        self.account_number = "12345678"
        self.account_hash = "E3B0C44298FC1C149AFBF4C8996FB924"
        self.orders: dict[int, dict] = {}
        self._fresh: set[int] = set()  # placed, not read yet: the first read does not advance fills
        self.fills: dict[str, list[tuple[Decimal, Decimal]]] = {}
        self.fill_on_place = True
        self.fill_on_read = True
        self.reject_next: str | None = None
        self.positions: list[dict] = []
        self.balances = {
            "cashBalance": Decimal("50000.00"),
            "buyingPower": Decimal("100000.00"),
            "liquidationValue": Decimal("75000.50"),
            "availableFunds": Decimal("50000.00"),
            "equity": Decimal("75000.50"),
        }
        self.requests: list[tuple[str, str, Any]] = []
        self._canned: deque[tuple[int, Any, dict[str, str]]] = deque()
        self._canned_reads: deque[tuple[int, Any, dict[str, str]]] = deque()
        self.quotes: dict[str, dict[str, Any]] = {}
        self._delay: deque[float] = deque()
        self._release = threading.Event()
        self._next_id = 1000000001
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        # the streamer
        self.customer_id = "c0ffee0123456789abcdef"
        self.correl_id = secrets.token_hex(16)
        self.channel, self.function_id = "N9", "APIAPP"
        self.heartbeat_seconds = 1.0
        self.stream_login_denied: str | None = None
        self.stream_requests: list[dict] = []
        self._inboxes: list[queue.Queue] = []
        self._seq = 0
        self.ws_server: Server = serve(self._ws_session, "127.0.0.1", 0)
        self._ws_thread = threading.Thread(target=self.ws_server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def marketdata_url(self) -> str:
        return f"{self.url}/marketdata/v1"

    @property
    def trader_url(self) -> str:
        return f"{self.url}/trader/v1"

    @property
    def token_url(self) -> str:
        return f"{self.url}/v1/oauth/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/v1/oauth/authorize"

    @property
    def streamer_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_server.socket.getsockname()[1]}/ws"

    def start(self) -> FakeSchwab:
        self._thread.start()
        self._ws_thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.ws_server.shutdown()
        self.server.shutdown()
        self.server.server_close()

    # --- test hooks -------------------------------------------------------------------------
    def set_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        last: Decimal | None = None,
        size: Decimal = Decimal(100),
    ) -> None:
        """What ``GET /marketdata/v1/quotes`` answers for ``symbol`` from now on."""
        with self.lock:
            self.quotes[symbol] = {
                "bidPrice": bid,
                "askPrice": ask,
                "bidSize": size,
                "askSize": size,
                "lastPrice": (bid + ask) / 2 if last is None else last,
                "quoteTime": int(time.time() * 1000),
            }

    def fail_next_read(self, status: int, body: Any) -> None:
        """The next GET under /trader/v1 gets this reply (writes are served as usual meanwhile)."""
        self._canned_reads.append((status, body, {}))

    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._canned.append((status, body, headers or {}))

    def delay_next(self, seconds: float) -> None:
        self._delay.append(seconds)

    def expire_access_token(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def secret_json(self) -> str:
        return json.dumps({"app_secret": self.app_secret, "refresh_token": self.refresh_token})

    # --- OAuth ------------------------------------------------------------------------------
    def authorize(self, url: str) -> str:
        """A user logs in at ``url`` (the app's authorize URL) and consents: the callback URL."""
        query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        if query.get("client_id") != self.app_key:
            raise ValueError(f"unknown client_id {query.get('client_id')!r}")
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            raise ValueError("redirect_uri is required")
        with self.lock:
            if self.deny_consent is not None:
                answer = {"error": self.deny_consent}
                self.deny_consent = None
            else:
                code = f"C0.{secrets.token_urlsafe(24)}@"  # real codes end in "@" (sent as %40)
                self.codes[code] = redirect_uri
                answer = {"code": code, "session": secrets.token_hex(16)}
        if "state" in query:
            answer["state"] = query["state"]
        return f"{redirect_uri}?{urlencode(answer)}"

    def token(self, authorization: str, form: dict[str, str]) -> tuple[int, dict]:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{self.app_key}:{self.app_secret}".encode()).decode()
        if authorization != expected:
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        if form.get("grant_type") == "authorization_code":
            redirect_uri = self.codes.pop(form.get("code", ""), None)  # one-time, even when misused
            if redirect_uri is None:
                return 400, {"error": "invalid_grant", "error_description": "authorization code invalid"}
            if form.get("redirect_uri") != redirect_uri:
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
            self.refresh_token = f"rt-{secrets.token_urlsafe(16)}"
            self.refresh_tokens.add(self.refresh_token)
            self.refresh_token_expired = False
        elif (
            form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.refresh_tokens
        ):
            return 400, {"error": "invalid_grant", "error_description": "refresh token invalid"}
        elif self.refresh_token_expired:
            return 400, {"error": "invalid_client", "error_description": "refresh token invalid"}
        access = secrets.token_urlsafe(16)
        self.access_tokens.add(access)
        return 200, {
            "access_token": access,
            "refresh_token": form.get("refresh_token") or self.refresh_token,
            "token_type": "Bearer",
            "expires_in": 1800,
            "scope": "api",
            "id_token": "x.y.z",
        }

    # --- the streamer -------------------------------------------------------------------------
    def stream_subscribers(self) -> int:
        with self.lock:
            return len(self._inboxes)

    def drop_streams(self) -> None:
        """Cut every streamer connection (the client sees a dropped socket, no close frame)."""
        with self.lock:
            for inbox in self._inboxes:
                inbox.put(None)

    def activity(self, order_id: int, message_type: str) -> None:
        """Push one ACCT_ACTIVITY message about ``order_id`` to every subscriber."""
        with self.lock:
            order = self.orders.get(int(order_id), {})
            self._seq += 1
            payload = {
                "SchwabOrderID": str(order_id),
                "AccountNumber": self.account_number,
                "BaseEvent": {"EventType": message_type},
                "LimitPrice": {"lo": "1000000", "signScale": 12},
            }
            if order.get("status") is not None:
                payload["OrderStatus"] = order["status"]
            content = {
                "seq": self._seq,
                "key": self.correl_id,
                "1": self.account_number,
                "2": message_type,
                "3": json.dumps(payload),
            }
            message = {
                "data": [
                    {
                        "service": "ACCT_ACTIVITY",
                        "timestamp": int(time.time() * 1000),
                        "command": "SUBS",
                        "content": [content],
                    }
                ]
            }
            for inbox in self._inboxes:
                inbox.put(message)

    def execute(self, order_id: int) -> None:
        """The order's next scripted execution happens now; subscribers get the activity."""
        with self.lock:
            order = self._order(str(order_id))
            before = order["filledQuantity"]
            self._execute(order)
            if order["filledQuantity"] == before:
                return
            self.activity(order_id, "ExecutionCreated")
            if order["status"] == "FILLED":
                self.activity(order_id, "OrderFillCompleted")

    def _stream_response(self, request: dict, code: int, msg: str) -> dict:
        return {
            "response": [
                {
                    "service": request.get("service"),
                    "command": request.get("command"),
                    "requestid": request.get("requestid"),
                    "SchwabClientCorrelId": self.correl_id,
                    "timestamp": int(time.time() * 1000),
                    "content": {"code": code, "msg": msg},
                }
            ]
        }

    def _stream_next(self, ws: ServerConnection) -> dict:
        message = json.loads(ws.recv(timeout=5))
        request = (message.get("requests") or [{}])[0]
        with self.lock:
            self.stream_requests.append(request)
        return request

    def _login_refusal(self, request: dict) -> str | None:
        params = request.get("parameters") or {}
        if self.stream_login_denied is not None:
            return self.stream_login_denied
        if (request.get("service"), request.get("command")) != ("ADMIN", "LOGIN"):
            return "the first request must be ADMIN LOGIN"
        if (request.get("SchwabClientCustomerId"), request.get("SchwabClientCorrelId")) != (
            self.customer_id,
            self.correl_id,
        ):
            return "unknown SchwabClientCustomerId / SchwabClientCorrelId"
        if (params.get("SchwabClientChannel"), params.get("SchwabClientFunctionId")) != (
            self.channel,
            self.function_id,
        ):
            return "wrong SchwabClientChannel / SchwabClientFunctionId"
        if params.get("Authorization") not in self.access_tokens:
            return "invalid access token"
        return None

    def _ws_session(self, ws: ServerConnection) -> None:
        def send(message: dict) -> None:
            ws.send(json.dumps(message))

        inbox: queue.Queue = queue.Queue()
        try:
            login = self._stream_next(ws)
            with self.lock:
                refusal = self._login_refusal(login)
            if refusal is not None:
                send(self._stream_response(login, 3, f"Login Denied.: {refusal}"))
                return
            send(self._stream_response(login, 0, "server=fake-schwab;status=PN"))
            subs = self._stream_next(ws)
            params = subs.get("parameters") or {}
            if (subs.get("service"), subs.get("command"), params.get("keys")) != (
                "ACCT_ACTIVITY",
                "SUBS",
                self.correl_id,
            ):
                send(self._stream_response(subs, 21, "Bad command formatting"))
                return
            with self.lock:  # subscribed before the client hears so: no activity falls in between
                self._inboxes.append(inbox)
                send(self._stream_response(subs, 0, "SUBS command succeeded"))
                subscribed = {"seq": 0, "key": self.correl_id, "1": "", "2": "SUBSCRIBED", "3": ""}
                send(
                    {
                        "data": [
                            {
                                "service": "ACCT_ACTIVITY",
                                "timestamp": int(time.time() * 1000),
                                "command": "SUBS",
                                "content": [subscribed],
                            }
                        ]
                    }
                )
            beat = time.monotonic() + self.heartbeat_seconds
            while not self._release.is_set():
                try:
                    message = inbox.get(timeout=0.05)
                except queue.Empty:
                    message = {}
                if message is None:  # dropped: no close handshake
                    ws.socket.shutdown(socket.SHUT_RDWR)
                    return
                if message:
                    send(message)
                if time.monotonic() >= beat:
                    send({"notify": [{"heartbeat": str(int(time.time() * 1000))}]})
                    beat = time.monotonic() + self.heartbeat_seconds
                try:
                    request = json.loads(ws.recv(timeout=0))
                except TimeoutError:
                    continue
                request = (request.get("requests") or [{}])[0]
                with self.lock:
                    self.stream_requests.append(request)
                if request.get("command") == "LOGOUT":
                    send(self._stream_response(request, 0, "Logged out"))
                    return
        except (ConnectionClosed, TimeoutError, OSError, ValueError):
            return
        finally:
            with self.lock:
                if inbox in self._inboxes:
                    self._inboxes.remove(inbox)

    # --- orders -----------------------------------------------------------------------------
    def _execute(self, order: dict) -> None:
        script = self.fills.get(order["orderLegCollection"][0]["instrument"]["symbol"])
        if not script or order["status"] not in OPEN:
            return
        qty, price = script.pop(0)
        qty = min(qty, order["remainingQuantity"])
        order["filledQuantity"] += qty
        order["remainingQuantity"] -= qty
        order["orderActivityCollection"].append(
            {
                "activityType": "EXECUTION",
                "activityId": self._new_id(),
                "executionType": "FILL",
                "quantity": qty,
                "orderRemainingQuantity": order["remainingQuantity"],
                "executionLegs": [
                    {"legId": 1, "price": price, "quantity": qty, "mismarkedQuantity": 0, "time": _now()}
                ],
            }
        )
        if order["remainingQuantity"] == 0:
            order["status"], order["closeTime"] = "FILLED", _now()
            order["cancelable"] = order["editable"] = False

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _validate(self, body: dict) -> dict:
        errors = []
        if body.get("orderType") not in TYPES:
            errors.append("orderType is invalid")
        if body.get("duration") not in DURATIONS:
            errors.append("duration is invalid")
        legs = body.get("orderLegCollection") or []
        if len(legs) != 1 or legs[0].get("instruction") not in ("BUY", "SELL"):
            errors.append("orderLegCollection is invalid")
        elif not isinstance(legs[0].get("quantity"), int) or legs[0]["quantity"] <= 0:
            errors.append("quantity must be a whole number of shares")
        for name in ("price", "stopPrice", "stopPriceOffset"):
            if name in body and not isinstance(body[name], str | int | Decimal):
                errors.append(f"{name} is invalid")
        if body.get("orderType") in ("LIMIT", "STOP_LIMIT") and "price" not in body:
            errors.append("price is required")
        if errors:
            raise SchwabError(400, "A validation error occurred while processing the request.", errors)
        return legs[0]

    def _new_order(self, body: dict) -> dict:
        leg = self._validate(body)
        qty = Decimal(leg["quantity"])
        if leg["instruction"] == "BUY":
            reference = Decimal(str(body.get("price") or body.get("stopPrice") or "100"))
            if qty * reference > self.balances["buyingPower"]:
                raise SchwabError(400, "Order not accepted: insufficient buying power", [])
        order_id = self._new_id()
        order = {
            "session": body.get("session", "NORMAL"),
            "duration": body["duration"],
            "orderType": body["orderType"],
            "complexOrderStrategyType": "NONE",
            "quantity": qty,
            "filledQuantity": Decimal(0),
            "remainingQuantity": qty,
            "requestedDestination": "AUTO",
            "destinationLinkName": "AutoRoute",
            "orderLegCollection": [
                {
                    "orderLegType": "EQUITY",
                    "legId": 1,
                    "instrument": {"assetType": "EQUITY", "symbol": leg["instrument"]["symbol"]},
                    "instruction": leg["instruction"],
                    "positionEffect": "OPENING",
                    "quantity": qty,
                }
            ],
            "orderStrategyType": "SINGLE",
            "orderId": order_id,
            "cancelable": True,
            "editable": True,
            "status": "WORKING",
            "enteredTime": _now(),
            "tag": "API_TOS:TRADEMASTER",
            "accountNumber": int(self.account_number),
            "orderActivityCollection": [],
        }
        for name in ("price", "stopPrice", "stopPriceLinkBasis", "stopPriceLinkType", "stopPriceOffset"):
            if name in body:
                order[name] = (
                    Decimal(body[name]) if name in ("price", "stopPrice", "stopPriceOffset") else body[name]
                )
        if self.reject_next is not None:
            order.update(
                status="REJECTED", statusDescription=self.reject_next, cancelable=False, editable=False
            )
            self.reject_next = None
        self.orders[order_id] = order
        self._fresh.add(order_id)
        if self.fill_on_place:
            self._execute(order)
        return order

    def _order(self, order_id: str) -> dict:
        order = self.orders.get(int(order_id)) if order_id.isdigit() else None
        if order is None:
            raise SchwabError(404, "Order not found", [])
        return order

    def user_preference(self) -> dict:
        return {
            "accounts": [
                {
                    "accountNumber": self.account_number,
                    "primaryAccount": True,
                    "type": "BROKERAGE",
                    "nickName": "Individual",
                    "displayAcctId": f"...{self.account_number[-3:]}",
                    "autoPositionEffect": False,
                    "accountColor": "Green",
                }
            ],
            "streamerInfo": [
                {
                    "streamerSocketUrl": self.streamer_url,
                    "schwabClientCustomerId": self.customer_id,
                    "schwabClientCorrelId": self.correl_id,
                    "schwabClientChannel": self.channel,
                    "schwabClientFunctionId": self.function_id,
                }
            ],
            "offers": [{"level2Permissions": False, "mktDataPermission": "NP"}],
        }

    def _location(self, order: dict) -> dict[str, str]:
        return {"Location": f"{PUBLIC_BASE}/accounts/{self.account_hash}/orders/{order['orderId']}"}

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        if method == "GET" and path == "/accounts/accountNumbers":
            return 200, [{"accountNumber": self.account_number, "hashValue": self.account_hash}], {}
        if method == "GET" and path == "/userPreference":
            return 200, self.user_preference(), {}
        prefix = f"/accounts/{self.account_hash}"
        if not path.startswith(prefix):
            raise SchwabError(400, "Invalid account number", [])
        rest = path.removeprefix(prefix)
        if rest == "" and method == "GET":
            account: dict[str, Any] = {
                "type": "MARGIN",
                "accountNumber": self.account_number,
                "currentBalances": dict(self.balances),
            }
            if query.get("fields") == "positions":
                account["positions"] = self.positions
            return 200, {"securitiesAccount": account, "aggregatedBalance": {}}, {}
        if rest == "/orders" and method == "POST":
            order = self._new_order(body or {})
            return 201, None, self._location(order)
        if rest == "/orders" and method == "GET":
            if "fromEnteredTime" not in query or "toEnteredTime" not in query:
                raise SchwabError(400, "fromEnteredTime and toEnteredTime are required", [])
            for order in self.orders.values():
                if order["orderId"] not in self._fresh and self.fill_on_read:
                    self._execute(order)
                self._fresh.discard(order["orderId"])
            return 200, list(self.orders.values()), {}
        if rest.startswith("/orders/"):
            order = self._order(rest.removeprefix("/orders/"))
            if method == "GET":
                if order["orderId"] in self._fresh:
                    self._fresh.discard(order["orderId"])
                elif self.fill_on_read:
                    self._execute(order)
                return 200, order, {}
            if order["status"] not in OPEN:
                raise SchwabError(400, f"Order is not cancelable or editable: status {order['status']}", [])
            if method == "DELETE":
                order.update(status="CANCELED", cancelable=False, editable=False, closeTime=_now())
                return 200, None, {}
            if method == "PUT":
                new = self._new_order(body or {})
                order.update(status="REPLACED", cancelable=False, editable=False, closeTime=_now())
                order["replacingOrderCollection"] = [dict(new)]
                return 201, None, self._location(new)
        raise SchwabError(404, "Not Found", [])


def _dumps(body: Any) -> bytes:
    # exact decimals: write a placeholder string then strip the quotes
    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"@@{format(value.normalize(), 'f')}@@"
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return json.dumps(convert(body)).replace('"@@', "").replace('@@"', "").encode()


def _handler(fake: FakeSchwab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
            data = b"" if body is None else _dumps(body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Schwab-Client-CorrelId", secrets.token_hex(8))
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if split.path == "/v1/oauth/authorize" and method == "GET":
                try:
                    self._reply(302, None, {"Location": fake.authorize(self.path)})
                except ValueError as exc:
                    self._reply(400, {"error": "invalid_request", "error_description": str(exc)}, {})
                return
            if split.path == "/v1/oauth/token" and method == "POST":
                form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
                with fake.lock:
                    status, payload = fake.token(self.headers.get("Authorization", ""), form)
                self._reply(status, payload, {})
                return
            if split.path == "/marketdata/v1/quotes" and method == "GET":
                with fake.lock:
                    bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    if bearer not in fake.access_tokens:
                        self._reply(401, {"message": "Unauthorized", "errors": []}, {})
                        return
                    asked = [s for s in query.get("symbols", "").split(",") if s]
                    known = {s: fake.quotes[s] for s in asked if s in fake.quotes}
                    unknown = [s for s in asked if s not in fake.quotes]
                answer: dict[str, Any] = {
                    s: {"assetMainType": "EQUITY", "symbol": s, "realtime": True, "quote": dict(q)}
                    for s, q in known.items()
                }
                if unknown:
                    answer["errors"] = {"invalidSymbols": unknown}
                self._reply(200, answer, {})
                return
            if not split.path.startswith("/trader/v1/"):
                self._reply(404, {"message": "Not Found", "errors": []}, {})
                return
            path = split.path.removeprefix("/trader/v1")
            body = json.loads(raw, parse_float=Decimal) if raw else None
            with fake.lock:
                fake.requests.append((method, path, body))
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if bearer not in fake.access_tokens:
                    status, payload, headers = 401, {"message": "Unauthorized", "errors": []}, {}
                elif fake._canned:
                    status, payload, headers = fake._canned.popleft()
                elif method == "GET" and fake._canned_reads:
                    status, payload, headers = fake._canned_reads.popleft()
                else:
                    try:
                        status, payload, headers = fake.route(method, path, query, body)
                    except SchwabError as exc:
                        status, payload, headers = (
                            exc.status,
                            {"message": exc.message, "errors": exc.errors},
                            {},
                        )
                delay = fake._delay.popleft() if fake._delay else 0
            if delay:
                fake._release.wait(delay)
            try:
                self._reply(status, payload, headers)
            except (BrokenPipeError, ConnectionResetError):
                return

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

    return Handler
