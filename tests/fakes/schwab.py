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
- ``fake.fail_next(status, body, headers)``: the next trader call gets that canned reply;
- ``fake.delay_next(seconds)``: the next trader call is processed but its reply is held back;
- ``fake.expire_access_token()`` / ``fake.refresh_token_expired = True``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
from collections import deque
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
        self.refresh_token_expired = False
        self.access_tokens: set[str] = set()
        self.token_requests = 0
        self.account_number = "12345678"
        self.account_hash = "E3B0C44298FC1C149AFBF4C8996FB924"
        self.orders: dict[int, dict] = {}
        self._fresh: set[int] = set()  # placed, not read yet: the first read does not advance fills
        self.fills: dict[str, list[tuple[Decimal, Decimal]]] = {}
        self.fill_on_place = True
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
        self._delay: deque[float] = deque()
        self._release = threading.Event()
        self._next_id = 1000000001
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def trader_url(self) -> str:
        return f"{self.url}/trader/v1"

    @property
    def token_url(self) -> str:
        return f"{self.url}/v1/oauth/token"

    def start(self) -> FakeSchwab:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    # --- test hooks -------------------------------------------------------------------------
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
    def token(self, authorization: str, form: dict[str, str]) -> tuple[int, dict]:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{self.app_key}:{self.app_secret}".encode()).decode()
        if authorization != expected:
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant", "error_description": "refresh token invalid"}
        if self.refresh_token_expired:
            return 400, {"error": "invalid_client", "error_description": "refresh token invalid"}
        access = secrets.token_urlsafe(16)
        self.access_tokens.add(access)
        return 200, {
            "access_token": access,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": 1800,
            "scope": "api",
            "id_token": "x.y.z",
        }

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

    def _location(self, order: dict) -> dict[str, str]:
        return {"Location": f"{PUBLIC_BASE}/accounts/{self.account_hash}/orders/{order['orderId']}"}

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        if method == "GET" and path == "/accounts/accountNumbers":
            return 200, [{"accountNumber": self.account_number, "hashValue": self.account_hash}], {}
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
                if order["orderId"] not in self._fresh:
                    self._execute(order)
                self._fresh.discard(order["orderId"])
            return 200, list(self.orders.values()), {}
        if rest.startswith("/orders/"):
            order = self._order(rest.removeprefix("/orders/"))
            if method == "GET":
                if order["orderId"] in self._fresh:
                    self._fresh.discard(order["orderId"])
                else:
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
            if split.path == "/v1/oauth/token" and method == "POST":
                form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
                with fake.lock:
                    status, payload = fake.token(self.headers.get("Authorization", ""), form)
                self._reply(status, payload, {})
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
