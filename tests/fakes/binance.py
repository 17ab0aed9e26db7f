"""A fake Binance Spot REST server on loopback, speaking the wire protocol of the reference (§2).

It checks ``X-MBX-APIKEY``, the HMAC-SHA256 signature over query+body (minus ``signature``) and
the timestamp window (-1021) like Binance, enforces the symbol filters (-1013), and keeps orders,
trades and balances. Scripting:

- ``fill_plan``: the fills the next order gets at once, e.g. ``[("0.4", "95000")]``; a MARKET
  order with no plan fills fully at ``market_price``; a LIMIT order with no plan rests.
- ``fill(order_id, qty, price)``: a later execution of a resting order (for myTrades).
- ``inject(status, body, headers)``: the next request is answered with this instead.
- ``delay``: seconds to wait before answering (a slow broker).

The WebSocket API (``ws_url``, ``/ws-api/v3``) answers ``userDataStream.subscribe.signature``
(apiKey, timestamp, signature over the sorted parameters; a bad key is 401 -2015, a bad signature
400 -1022, a stale timestamp 400 -1021, all in Binance's ``{id, status, error{code, msg}}`` shape),
``userDataStream.unsubscribe`` and ``ping``, and pushes an ``executionReport`` to every subscription
for every order change the fake makes (new, trade, cancel, cancelReplace, expiry, ``reject``).
It pings every ``ws_ping_interval`` seconds and drops a client whose pong is ``ws_ping_timeout``
late, like Binance (20 s / 60 s). Scripting: ``drop_user_streams()`` closes every connection;
``refuse_ws = True`` closes new ones at once (an outage); ``terminate_user_streams()`` sends
``eventStreamTerminated``; ``subscriptions`` counts the accepted subscriptions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from collections import deque
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

D = Decimal

EXCHANGE_SYMBOLS = {
    "BTCUSDT": {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
             "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
             "stepSize": "0.00001000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
    }
}  # fmt: skip


def dump(value: Any) -> bytes:
    def default(o: Any) -> str:
        if isinstance(o, Decimal):
            return format(o, "f")
        raise TypeError(type(o))

    return json.dumps(value, default=default).encode()


class FakeBinance:
    def __init__(
        self, api_key: str, secret: str, *, ws_ping_interval: float = 20, ws_ping_timeout: float = 60
    ) -> None:
        self.api_key = api_key
        self.secret = secret
        self.market_price = D("95000.00")
        self.bid, self.ask = D("94999.99"), D("95000.01")
        self.balances: dict[str, list[Decimal]] = {"USDT": [D("100000"), D(0)], "BTC": [D("0.5"), D(0)]}
        self.orders: dict[int, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, params)
        self.fill_plan: list[tuple[str, str]] | None = None
        self.injected: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()
        self.delay = 0.0
        self.clock_offset_ms = 0
        self._next_order_id = 1000
        self._next_trade_id = 5000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        # the WebSocket API
        self.ws_ping_interval, self.ws_ping_timeout = ws_ping_interval, ws_ping_timeout
        self.refuse_ws = False
        self.subscriptions = 0
        self.ws_url = ""
        self._ws_server: Server | None = None
        self._ws_thread: threading.Thread | None = None
        self._inboxes: list[queue.Queue[dict[str, Any]]] = []
        self._generation = 0
        self._closing = threading.Event()
        self._next_subscription = 0
        self._subscription_ids: dict[int, int] = {}
        self._connections: list[ServerConnection] = []

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _serve(self) -> None:
                status, body, headers = fake.handle(self)
                if fake.delay:
                    # a slow broker on purpose: the work is done, the reply is late (or never, if stopped)
                    fake._closing.wait(fake.delay)
                payload = dump(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up waiting (a timeout test)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        self._closing.clear()
        self._ws_server = serve(
            self._ws_session,
            "127.0.0.1",
            0,
            ping_interval=self.ws_ping_interval,
            ping_timeout=self.ws_ping_timeout,
        )
        self._ws_thread = threading.Thread(
            target=self._ws_server.serve_forever, name="fake-binance-ws", daemon=True
        )
        self._ws_thread.start()
        self.ws_url = f"ws://127.0.0.1:{self._ws_server.socket.getsockname()[1]}/ws-api/v3"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._closing.set()
        if self._ws_server is not None:
            self._ws_server.shutdown()
            if self._ws_thread is not None:
                self._ws_thread.join(timeout=5)
            self._ws_server = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the WebSocket API: user data stream -----------------------------------------------------
    def _ws_session(self, ws: ServerConnection) -> None:
        if self.refuse_ws or ws.request is None or ws.request.path != "/ws-api/v3":
            ws.close(1008 if not self.refuse_ws else 1013)
            return
        with self._lock:
            generation = self._generation
        inbox: queue.Queue[dict[str, Any]] | None = None
        self._connections.append(ws)
        try:
            while not self._closing.is_set() and generation == self._generation:
                while inbox is not None and not inbox.empty():
                    ws.send(dump(inbox.get_nowait()).decode())
                try:
                    frame = ws.recv(timeout=0.02)
                except TimeoutError:
                    continue
                reply, subscribed = self._ws_request(frame)
                if subscribed is not None and inbox is None:
                    inbox = queue.Queue()  # counted before the reply: the client may look at once
                    self._subscription_ids[id(inbox)] = subscribed
                    with self._lock:
                        self._inboxes.append(inbox)
                        self.subscriptions += 1
                ws.send(dump(reply).decode())  # the WebSocket API sends text frames
            ws.close(1001, "going away")
        except ConnectionClosed:
            return
        finally:
            with self._lock:
                if inbox in self._inboxes:
                    self._inboxes.remove(inbox)
            self._connections.remove(ws)

    def _ws_request(self, frame: str | bytes) -> tuple[dict[str, Any], int | None]:
        """Answer one WebSocket API request; the subscription id when it subscribed."""
        try:
            request = json.loads(frame)
            request_id, method = request.get("id"), request["method"]
            params = request.get("params") or {}
        except (ValueError, KeyError, AttributeError):
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}}, None

        def error(status: int, code: int, msg: str) -> tuple[dict[str, Any], None]:
            return {"id": request_id, "status": status, "error": {"code": code, "msg": msg}}, None

        if method == "ping":
            return {"id": request_id, "status": 200, "result": {}}, None
        if method == "userDataStream.unsubscribe":
            return {"id": request_id, "status": 200, "result": {}}, None
        if method != "userDataStream.subscribe.signature":
            return error(400, -1020, f"Unsupported method {method}.")
        if params.get("apiKey") != self.api_key:
            return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(params.get("signature", "")).lower()):
            return error(400, -1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            return error(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
        ts, window, now = int(params["timestamp"]), D(str(params.get("recvWindow", 5000))), self._now()
        if ts > now + 1000 or now - ts > window:
            return error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        with self._lock:
            subscription = self._next_subscription
            self._next_subscription += 1
        return {
            "id": request_id,
            "status": 200,
            "result": {"subscriptionId": subscription},
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": 6000, "count": 2}
            ],
        }, subscription  # fmt: skip

    def _push(self, event: dict[str, Any]) -> None:
        for inbox in list(self._inboxes):
            inbox.put({"subscriptionId": self._subscription_ids.get(id(inbox), 0), "event": event})

    def _report(
        self, order: dict[str, Any], execution: str, *, trade: dict[str, Any] | None = None, **extra: Any
    ) -> None:
        """An ``executionReport`` for ``order`` after a change (``trade``: the execution)."""
        now = self._now()
        executed = order["executedQty"]
        self._push(
            {
                "e": "executionReport", "E": now, "s": order["symbol"], "c": order["clientOrderId"],
                "S": order["side"], "o": order["type"], "f": order["timeInForce"], "q": order["origQty"],
                "p": order["price"], "P": order["stopPrice"], "F": D("0.00000000"), "g": -1, "C": "",
                "x": execution, "X": order["status"], "r": "NONE", "i": order["orderId"],
                "l": trade["qty"] if trade else D("0.00000000"),
                "z": executed,
                "L": trade["price"] if trade else D("0.00000000"),
                "n": trade["commission"] if trade else D("0"),
                "N": trade["commissionAsset"] if trade else None,
                "T": now, "t": trade["id"] if trade else -1, "v": 0, "I": now,
                "w": order["status"] in ("NEW", "PARTIALLY_FILLED"),
                "m": bool(trade and trade["isMaker"]), "M": False, "O": order["time"],
                "Z": order["cummulativeQuoteQty"],
                "Y": trade["quoteQty"] if trade else D("0.00000000"),
                "Q": D("0.00000000"), "W": order["workingTime"], "V": "EXPIRE_MAKER",
                **extra,
            }
        )  # fmt: skip

    def pongs_received(self) -> bool:
        """Every open WebSocket API connection has answered one of our pings."""
        connections = list(self._connections)
        return bool(connections) and all(c.latency > 0 for c in connections)

    def drop_user_streams(self) -> None:
        """Close every WebSocket API connection (the client is expected to subscribe again)."""
        with self._lock:
            self._generation += 1
            self._inboxes.clear()

    def terminate_user_streams(self) -> None:
        """Binance ends the subscriptions (``eventStreamTerminated``); the connections stay open."""
        self._push({"e": "eventStreamTerminated", "E": self._now()})

    # --- scripting ----------------------------------------------------------------------------
    def inject(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.injected.append((status, body, headers or {}))

    def sent(self, method: str, path: str) -> list[dict[str, str]]:
        return [p for m, pa, p in self.requests if m == method and pa == path]

    def fill(self, order_id: int, qty: str, price: str) -> None:
        with self._lock:
            self._execute(self.orders[order_id], D(qty), D(price), maker=True)

    def expire(self, order_id: int) -> None:
        """The venue expires a resting order (end of its time in force)."""
        with self._lock:
            order = self.orders[order_id]
            order["status"], order["updateTime"] = "EXPIRED", self._now()
            self._report(order, "EXPIRED")

    def reject(self, order_id: int, reason: str = "INSUFFICIENT_BALANCES") -> None:
        """The matching engine rejects an order it had accepted (``r`` carries the reason)."""
        with self._lock:
            order = self.orders[order_id]
            order["status"], order["updateTime"] = "REJECTED", self._now()
            self._report(order, "REJECTED", r=reason)

    def order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        return next(o for o in reversed(self.orders.values()) if o["clientOrderId"] == client_order_id)

    # --- protocol -------------------------------------------------------------------------------
    def handle(self, req: BaseHTTPRequestHandler) -> tuple[int, Any, dict[str, str]]:
        split = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length).decode() if length else ""
        raw_query = split.query
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        params.update(dict(parse_qsl(body, keep_blank_values=True)))
        with self._lock:
            self.requests.append((req.command, split.path, params))
            if self.injected:
                return self.injected.popleft()
        route = (req.command, split.path)
        public = {
            ("GET", "/api/v3/ping"): lambda p: {},
            ("GET", "/api/v3/time"): lambda p: {"serverTime": self._now()},
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("GET", "/api/v3/ticker/price"): lambda p: {"symbol": p["symbol"], "price": self.market_price},
            ("GET", "/api/v3/ticker/bookTicker"): lambda p: {
                "symbol": p["symbol"], "bidPrice": self.bid, "bidQty": D("1.5"),
                "askPrice": self.ask, "askQty": D("2.0"),
            },
        }  # fmt: skip
        signed = {
            ("POST", "/api/v3/order"): self._new_order,
            ("GET", "/api/v3/order"): self._get_order,
            ("DELETE", "/api/v3/order"): self._cancel_order,
            ("GET", "/api/v3/openOrders"): self._open_orders,
            ("GET", "/api/v3/account"): self._account,
            ("GET", "/api/v3/myTrades"): self._my_trades,
            ("POST", "/api/v3/order/cancelReplace"): self._cancel_replace,
        }
        if route in public:
            try:
                return 200, public[route](params), {}
            except BinanceError as err:
                body = {"code": err.code, "msg": err.msg}
                if err.data is not None:
                    body["data"] = err.data
                return err.status, body, {}
        if route not in signed:
            return 404, {"code": -1000, "msg": "unknown path"}, {}
        denied = self._authenticate(req.headers.get("X-MBX-APIKEY"), raw_query, body, params)
        if denied:
            return denied
        with self._lock:
            try:
                return 200, signed[route](params), {}
            except BinanceError as err:
                body = {"code": err.code, "msg": err.msg}
                if err.data is not None:
                    body["data"] = err.data
                return err.status, body, {}

    def _now(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def _authenticate(
        self, key: str | None, query: str, body: str, params: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]] | None:
        if key != self.api_key:
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, {}
        payload = "&".join(
            part for part in (query + ("&" if query and body else "") + body).split("&")
            if not part.startswith("signature=")
        )  # fmt: skip
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params.get("signature", "").lower()):
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}, {}
        if "timestamp" not in params:
            return 400, {"code": -1102, "msg": "Mandatory parameter 'timestamp' was not sent."}, {}
        ts, window = int(params["timestamp"]), D(params.get("recvWindow", "5000"))
        now = self._now()
        if ts > now + 1000 or now - ts > window:
            return 400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}, {}
        return None

    def _exchange_info(self, p: dict[str, str]) -> Any:
        if "symbol" in p and p["symbol"] not in EXCHANGE_SYMBOLS:
            raise BinanceError(400, -1121, "Invalid symbol.")
        wanted = [p["symbol"]] if "symbol" in p else list(EXCHANGE_SYMBOLS)
        return {
            "timezone": "UTC",
            "serverTime": self._now(),
            "symbols": [EXCHANGE_SYMBOLS[s] for s in wanted],
        }

    def _filter_failure(self, symbol: str, qty: Decimal, price: Decimal | None) -> str | None:
        filters = {f["filterType"]: f for f in EXCHANGE_SYMBOLS[symbol]["filters"]}
        lot = filters["LOT_SIZE"]
        if qty < D(lot["minQty"]) or qty > D(lot["maxQty"]) or qty % D(lot["stepSize"]):
            return "LOT_SIZE"
        if price is not None:
            pf = filters["PRICE_FILTER"]
            if price < D(pf["minPrice"]) or price > D(pf["maxPrice"]) or price % D(pf["tickSize"]):
                return "PRICE_FILTER"
        if qty * (price or self.market_price) < D(filters["NOTIONAL"]["minNotional"]):
            return "NOTIONAL"
        return None

    def _new_order(self, p: dict[str, str]) -> Any:
        symbol = p.get("symbol", "")
        if symbol not in EXCHANGE_SYMBOLS:
            raise BinanceError(400, -1121, "Invalid symbol.")
        for name in ("side", "type", "quantity"):
            if name not in p:
                raise BinanceError(
                    400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
        qty = D(p["quantity"])
        price = D(p["price"]) if "price" in p else None
        if p["type"] in ("LIMIT", "STOP_LOSS_LIMIT") and ("timeInForce" not in p or price is None):
            raise BinanceError(
                400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."
            )
        failure = self._filter_failure(symbol, qty, price)
        if failure:
            raise BinanceError(400, -1013, f"Filter failure: {failure}")
        cid = p.get("newClientOrderId") or f"fake{self._next_order_id}"
        if any(
            o["clientOrderId"] == cid and o["status"] in ("NEW", "PARTIALLY_FILLED")
            for o in self.orders.values()
        ):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        if p["side"] == "BUY" and qty * (price or self.market_price) > self.balances["USDT"][0]:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        now = self._now()
        self._next_order_id += 1
        order = {
            "symbol": symbol, "orderId": self._next_order_id, "orderListId": -1, "clientOrderId": cid,
            "transactTime": now, "price": price or D("0.00000000"), "origQty": qty, "executedQty": D(0),
            "origQuoteOrderQty": D(0), "cummulativeQuoteQty": D(0), "status": "NEW",
            "timeInForce": p.get("timeInForce", "GTC"), "type": p["type"], "side": p["side"],
            "stopPrice": D(p.get("stopPrice", "0")), "workingTime": now, "time": now, "updateTime": now,
            "isWorking": True, "selfTradePreventionMode": "EXPIRE_MAKER",
        }  # fmt: skip
        self.orders[order["orderId"]] = order
        self._report(order, "NEW")
        plan = self.fill_plan
        self.fill_plan = None
        if plan is None and p["type"] == "MARKET":
            plan = [(p["quantity"], format(self.market_price, "f"))]
        fills = [self._execute(order, D(q), D(px), maker=False) for q, px in plan or []]
        if order["status"] != "FILLED" and (p["type"] == "MARKET" or order["timeInForce"] in ("IOC", "FOK")):
            order["status"] = "EXPIRED"
            self._report(order, "EXPIRED")
        response = {
            k: v for k, v in order.items() if k not in ("stopPrice", "time", "updateTime", "isWorking")
        }
        if p.get("newOrderRespType", "FULL") == "FULL":
            response["fills"] = fills
        return response

    def _execute(self, order: dict[str, Any], qty: Decimal, price: Decimal, maker: bool) -> dict[str, Any]:
        self._next_trade_id += 1
        commission = (qty * D("0.001")).quantize(D("0.00000001"))
        order["executedQty"] += qty
        order["cummulativeQuoteQty"] += qty * price
        order["status"] = "FILLED" if order["executedQty"] >= order["origQty"] else "PARTIALLY_FILLED"
        order["updateTime"] = self._now()
        sign = 1 if order["side"] == "BUY" else -1
        self.balances["BTC"][0] += sign * qty - commission
        self.balances["USDT"][0] -= sign * qty * price
        trade = {
            "symbol": order["symbol"], "id": self._next_trade_id, "orderId": order["orderId"],
            "orderListId": -1,
            "price": price, "qty": qty, "quoteQty": qty * price, "commission": commission,
            "commissionAsset": "BTC", "time": self._now(), "isBuyer": order["side"] == "BUY",
            "isMaker": maker, "isBestMatch": True,
        }  # fmt: skip
        self.trades.append(trade)
        self._report(order, "TRADE", trade=trade)
        return {"price": price, "qty": qty, "commission": commission, "commissionAsset": "BTC",
                "tradeId": self._next_trade_id}  # fmt: skip

    def _find(self, p: dict[str, str]) -> dict[str, Any]:
        if "symbol" not in p:
            raise BinanceError(
                400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        for o in reversed(self.orders.values()):  # a reused client order id names the newest order
            if o["symbol"] != p["symbol"]:
                continue
            if str(o["orderId"]) == p.get("orderId") or o["clientOrderId"] == p.get("origClientOrderId"):
                return o
        raise BinanceError(400, -2013, "Order does not exist.")

    def _get_order(self, p: dict[str, str]) -> Any:
        return self._find(p)

    def _cancel_order(self, p: dict[str, str]) -> Any:
        try:
            order = self._find(p)
        except BinanceError:
            raise BinanceError(400, -2011, "Unknown order sent.") from None
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        order["updateTime"] = self._now()
        # the cancel has its own client id (given, or made up like Binance does); C is the order's
        cancel_id = p.get("newClientOrderId") or f"web_{uuid.uuid4().hex[:20]}"
        self._report(order, "CANCELED", c=cancel_id, C=order["clientOrderId"])
        return {**order, "origClientOrderId": order["clientOrderId"], "transactTime": self._now()}

    def _cancel_replace(self, p: dict[str, str]) -> Any:
        """STOP_ON_FAILURE: cancel first; place the new order only if the cancel succeeded."""
        try:
            cancel = {"symbol": p["symbol"], "origClientOrderId": p["cancelOrigClientOrderId"]}
            if "cancelNewClientOrderId" in p:
                cancel["newClientOrderId"] = p["cancelNewClientOrderId"]
            cancelled = self._cancel_order(cancel)
        except BinanceError as err:
            data = {
                "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": {"code": err.code, "msg": err.msg}, "newOrderResponse": None,
            }  # fmt: skip
            raise BinanceError(400, -2022, "Order cancel-replace failed.", data) from None
        new = {k: v for k, v in p.items() if not k.startswith("cancel")}
        try:
            placed = self._new_order(new)
        except BinanceError as err:
            data = {
                "cancelResult": "SUCCESS", "newOrderResult": "FAILURE",
                "cancelResponse": cancelled, "newOrderResponse": {"code": err.code, "msg": err.msg},
            }  # fmt: skip
            raise BinanceError(409, -2021, "Order cancel-replace partially failed.", data) from None
        return {
            "cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
            "cancelResponse": cancelled, "newOrderResponse": placed,
        }  # fmt: skip

    def _open_orders(self, p: dict[str, str]) -> Any:
        return [
            o for o in self.orders.values()
            if o["status"] in ("NEW", "PARTIALLY_FILLED") and o["symbol"] == p.get("symbol", o["symbol"])
        ]  # fmt: skip

    def _account(self, p: dict[str, str]) -> Any:
        balances = [{"asset": a, "free": f, "locked": lk} for a, (f, lk) in self.balances.items()]
        if p.get("omitZeroBalances") == "true":
            balances = [b for b in balances if b["free"] or b["locked"]]
        return {"canTrade": True, "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"]}

    def _my_trades(self, p: dict[str, str]) -> Any:
        from_id = int(p.get("fromId", "0"))
        return [t for t in self.trades if t["symbol"] == p["symbol"] and t["id"] >= from_id]


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.data = status, code, msg, data
