"""The loopback bridge: a small JSON-over-HTTP API in front of :class:`IbGateway`.

Served by ``manage.py run_ib_gateway`` on 127.0.0.1 (``settings.IB_GATEWAY_URL``). Every request
carries ``Authorization: Bearer <IB_GATEWAY_TOKEN>`` (checked in constant time) and is a POST
of a JSON object naming the account: ``{"account": {"key", "host", "port", "client_id",
"account_code"}, ...}``; the gateway connects that account on first use. Decimals are strings.

Routes (all under ``/v1``): ``place``, ``cancel``, ``replace``, ``order`` (by client order id),
``open-orders``, ``positions``, ``account``, ``quote``, ``health``, ``updates`` (long poll:
``epoch``, ``cursor``, ``wait`` seconds) and ``ready`` (no account). Errors answer
``{"error": code, "message": text}`` with 400 (bad request), 401 (token), 404 (no such order),
422 (IB refused), 503 (not connected to TWS) or 504 (no answer in time: outcome unknown).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from brokers.ibkr import codec
from brokers.ibkr.gateway import Endpoint, GatewayError, IbConnection, IbGateway

logger = logging.getLogger(__name__)
MAX_WAIT_SECONDS = 25.0
MAX_BODY = 64 * 1024


class BadRequest(GatewayError):
    status, code = 400, "BAD_REQUEST"


def endpoint_from_json(d: Any) -> tuple[str, Endpoint]:
    if not isinstance(d, dict):
        raise BadRequest("the request must name its account")
    try:
        return str(d["key"]), Endpoint(
            host=str(d["host"]),
            port=int(d["port"]),
            client_id=int(d["client_id"]),
            account_code=str(d.get("account_code") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest(f"bad account description: {exc!r}") from None


class IbBridge:
    def __init__(self, gateway: IbGateway, *, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        if not token:
            raise ValueError("the IB gateway bridge needs a token")
        self.gateway = gateway
        self.token = token
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> IbBridge:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_POST(self) -> None:
                status, payload = bridge.handle(
                    self.path, self.headers.get("Authorization", ""), self._body()
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(min(length, MAX_BODY)) if length else b""

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("ib bridge: " + format, *args)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="ib-bridge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # --- requests ---------------------------------------------------------------------------
    def handle(self, path: str, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(token.encode(), self.token.encode()):
            return 401, {"error": "UNAUTHORIZED", "message": "missing or wrong IB gateway token"}
        try:
            payload = json.loads(body or b"{}", parse_float=Decimal)
            if not isinstance(payload, dict):
                raise BadRequest("the body must be a JSON object")
            route = path.removeprefix("/v1/")
            if route == "ready":
                return 200, {"ok": True, "accounts": sorted(self.gateway.connections)}
            handler = self._routes().get(route)
            if handler is None:
                return 404, {"error": "NO_ROUTE", "message": f"no route {path}"}
            key, endpoint = endpoint_from_json(payload.get("account"))
            connection = self.gateway.connection(key, endpoint)
            return 200, handler(connection, payload)
        except GatewayError as exc:
            return exc.status, {"error": exc.code, "message": exc.message}
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": "BAD_REQUEST", "message": f"bad request: {exc!r}"}
        except Exception as exc:  # answer every request; the client maps a 500 by its kind
            logger.exception("IB bridge: %s failed", path)
            return 500, {"error": "GATEWAY_FAILURE", "message": f"IB gateway failure: {exc!r}"}

    def _routes(self) -> dict[str, Callable[[IbConnection, dict[str, Any]], dict[str, Any]]]:
        return {
            "place": self._place,
            "cancel": self._cancel,
            "replace": self._replace,
            "order": self._order,
            "open-orders": self._open_orders,
            "positions": self._positions,
            "account": self._account,
            "quote": self._quote,
            "health": self._health,
            "updates": self._updates,
        }

    def _run(self, fn: Callable[[], Any]) -> Any:
        # the commands bound their own TWS waits; this is the outer guard
        return self.gateway.call(fn, self.gateway.request_timeout * 3 + self.gateway.connect_timeout + 2)

    def _place(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        request = codec.request_from_json(p["order"])
        updates = self._run(lambda: c.place(request))
        return {"updates": [codec.update_to_json(u) for u in updates]}

    def _cancel(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        cid = str(p["client_order_id"])
        return {"updates": [codec.update_to_json(u) for u in self._run(lambda: c.cancel(cid))]}

    def _replace(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        cid, change = str(p["client_order_id"]), codec.change_from_json(p["change"])
        return {"updates": [codec.update_to_json(u) for u in self._run(lambda: c.replace(cid, change))]}

    def _order(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        cid = str(p["client_order_id"])
        state = self._run(lambda: c.get_order(cid))
        return {"order": None if state is None else codec.state_to_json(state)}

    def _open_orders(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        return {"orders": [codec.state_to_json(s) for s in self._run(c.open_orders)]}

    def _positions(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        return {"positions": [codec.position_to_json(s) for s in self._run(c.positions)]}

    def _account(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        return {"account": codec.account_to_json(self._run(c.account))}

    def _quote(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        symbol = str(p["symbol"])
        return {"quote": codec.quote_to_json(self._run(lambda: c.quote(symbol)))}

    def _health(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        return self._run(c.health)

    def _updates(self, c: IbConnection, p: dict[str, Any]) -> dict[str, Any]:
        wait = min(max(Decimal(str(p.get("wait") or 0)), Decimal(0)), Decimal(str(MAX_WAIT_SECONDS)))
        epoch, cursor, updates = c.updates.after(
            str(p.get("epoch") or ""), int(p.get("cursor") or 0), wait=int(wait * 1000) / 1000
        )
        return {"epoch": epoch, "cursor": cursor, "updates": [codec.update_to_json(u) for u in updates]}
