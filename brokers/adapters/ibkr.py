"""Interactive Brokers (TWS API) through the IB gateway worker's loopback bridge.

The TWS connection never lives in a request thread: ``manage.py run_ib_gateway`` owns it
(``brokers.ibkr.gateway``, ib_async in its own asyncio loop) and serves a JSON-over-HTTP bridge on
127.0.0.1 (``brokers.ibkr.bridge``). This adapter is a thin client of that bridge; it never
imports ib_async.

- Every request carries ``Authorization: Bearer settings.IB_GATEWAY_TOKEN`` and names the account:
  its key (the BrokerAccount pk), the TWS host / port / clientId and the IB account code. Host and
  port default to ``IB_TWS_HOST`` and ``IB_TWS_PORT_PAPER`` / ``IB_TWS_PORT_LIVE`` (by
  ``sandbox_mode``), the client id to ``IB_TWS_CLIENT_ID``; the account's encrypted credentials may
  override them with JSON ``{"host": ..., "port": ..., "client_id": ...}`` in ``api_key_encrypted``.
- Every call has an explicit timeout (``IB_GATEWAY_TIMEOUT_SECONDS``). A place or a cancel/replace
  that times out or whose connection drops -> :class:`BrokerUnknownOutcome` (the OMS then looks the
  order up by client order id, ``orderRef`` at IB, before any failover); the gateway unreachable ->
  :class:`BrokerRetryable`; the gateway up but not connected to TWS -> :class:`BrokerRetryable`
  saying so; IB refusing a request it can judge at once -> :class:`BrokerRejected`. An order that
  IB rejects after it was sent (error 201) comes back as the order's REJECTED update with IB's text.
- Order updates: ``poll_updates`` reads the gateway's buffered updates after this adapter's
  cursor. ``stream_start(wakeup)`` starts a daemon thread that long-polls the bridge and calls
  ``wakeup()`` whenever updates arrive; ``poll_updates`` then drains what it received (and reads
  the bridge directly while the long poll is failing). The cursor is per gateway epoch: after a
  gateway restart everything it buffered since is read again (fills de-duplicate on execId).
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings

from brokers.adapters.streaming import StreamThread
from brokers.domain.adapter import (
    AccountInfo,
    BrokerError,
    BrokerFatal,
    BrokerOrderRequest,
    BrokerOrderState,
    BrokerOrderUpdate,
    BrokerPosition,
    BrokerRejected,
    BrokerRetryable,
    BrokerUnknownOutcome,
    Capabilities,
    FeeSchedule,
    Health,
    HealthReport,
    OrderChange,
    OrderRef,
    Quote,
    Support,
)
from brokers.ibkr import codec
from brokers.models import BrokerAccount
from orders.domain.enums import AssetClass, OrderType, TimeInForce
from trademaster.crypto import DecryptionError, Sealed

DEFAULT_URL = "http://127.0.0.1:7510"
DEFAULT_TIMEOUT_SECONDS = 15.0
DEFAULT_STREAM_WAIT_SECONDS = 20.0


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def account_endpoint(account: BrokerAccount) -> dict[str, Any]:
    """Where the gateway reaches TWS for ``account``: settings, overridden by its credentials JSON."""
    override: dict[str, Any] = {}
    sealed = account.api_key_encrypted
    if sealed:
        try:
            text = sealed.reveal() if isinstance(sealed, Sealed) else str(sealed)
        except DecryptionError as exc:
            raise BrokerFatal(
                f"the IB settings of broker account {account.pk} cannot be decrypted: {exc}",
                code="CREDENTIALS_UNREADABLE",
            ) from exc
        try:
            override = json.loads(text)
        except ValueError:
            override = None  # type: ignore[assignment]
        if not isinstance(override, dict):
            raise BrokerFatal(
                f"broker account {account.pk}: the IB credentials must be JSON "
                '{"host": ..., "port": ..., "client_id": ...}',
                code="BAD_CREDENTIALS",
            )
    port_default = (
        _setting("IB_TWS_PORT_PAPER", 7497) if account.sandbox_mode else _setting("IB_TWS_PORT_LIVE", 7496)
    )
    try:
        return {
            "key": str(account.pk),
            "host": str(override.get("host") or _setting("IB_TWS_HOST", "127.0.0.1")),
            "port": int(override.get("port") or port_default),
            "client_id": int(override.get("client_id") or _setting("IB_TWS_CLIENT_ID", 17)),
            "account_code": account.account_id,
        }
    except (TypeError, ValueError) as exc:
        raise BrokerFatal(
            f"broker account {account.pk}: bad IB port or client_id: {exc}", code="BAD_CREDENTIALS"
        ) from None


class IbkrAdapter:
    capabilities = Capabilities(
        asset_classes=frozenset({AssetClass.EQUITY}),
        order_types={
            OrderType.MARKET: Support.NATIVE,
            OrderType.LIMIT: Support.NATIVE,
            OrderType.STOP: Support.NATIVE,
            OrderType.STOP_LIMIT: Support.NATIVE,
            OrderType.TRAILING_STOP: Support.NATIVE,
        },
        # reference 4.1.5 / 0.2: IB takes DAY, GTC, IOC and FOK on the TWS API
        time_in_force=frozenset({TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK}),
        native_replace=True,
        # IBKR Pro fixed: USD 0.005 a share, at least USD 1 an order (the real fee comes with each fill)
        fees=FeeSchedule(per_unit=Decimal("0.005"), minimum=Decimal("1")),
    )

    def __init__(self, account: BrokerAccount) -> None:
        self.account_pk = account.pk
        self._account = account
        self._endpoint: dict[str, Any] | None = None
        self.base_url = str(_setting("IB_GATEWAY_URL", DEFAULT_URL)).rstrip("/")
        self.timeout: float = _setting("IB_GATEWAY_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
        self.stream_wait: float = _setting("IB_GATEWAY_STREAM_WAIT_SECONDS", DEFAULT_STREAM_WAIT_SECONDS)
        self._client = httpx.Client(base_url=self.base_url, timeout=self.timeout)
        # the update feed: one cursor per gateway epoch, advanced under _feed_lock
        self._epoch = ""
        self._cursor = 0
        self._feed_lock = threading.Lock()
        self._events: queue.Queue[BrokerOrderUpdate] = queue.Queue()
        self._stream = StreamThread(f"ib-updates-{self.account_pk}", self._stream_run)
        self.stream_listening = threading.Event()
        self._wakeup: Callable[[], None] | None = None
        self._lock = threading.Lock()

    # --- transport ------------------------------------------------------------------------
    def _account_json(self) -> dict[str, Any]:
        if self._endpoint is None:
            self._endpoint = account_endpoint(self._account)
        return self._endpoint

    def _post(
        self,
        route: str,
        body: dict[str, Any] | None = None,
        *,
        write: bool = False,
        timeout: float | None = None,
        client: httpx.Client | None = None,
    ) -> dict[str, Any]:
        payload = {"account": self._account_json(), **(body or {})}
        token = str(_setting("IB_GATEWAY_TOKEN", ""))
        try:
            response = (client or self._client).post(
                f"/v1/{route}",
                content=json.dumps(payload).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=timeout if timeout is not None else self.timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise BrokerRetryable(
                f"IB gateway unreachable at {self.base_url} (is manage.py run_ib_gateway running?): {exc}",
                code="IB_GATEWAY_DOWN",
            ) from exc
        except httpx.TimeoutException as exc:
            if write:
                raise BrokerUnknownOutcome(
                    f"IB gateway did not answer {route} in time", code="TIMEOUT"
                ) from exc
            raise BrokerRetryable(f"IB gateway did not answer {route} in time", code="TIMEOUT") from exc
        except httpx.TransportError as exc:
            if write:
                raise BrokerUnknownOutcome(
                    f"connection to the IB gateway failed: {exc}", code="TRANSPORT"
                ) from exc
            raise BrokerRetryable(f"connection to the IB gateway failed: {exc}", code="TRANSPORT") from exc
        return self._decode(response, write=write)

    def _decode(self, response: httpx.Response, *, write: bool) -> dict[str, Any]:
        try:
            data = json.loads(response.content or b"{}", parse_float=Decimal)
        except ValueError:
            data = {"message": response.text[:200]}
        if not isinstance(data, dict):
            raise BrokerError(f"IB gateway sent {data!r}", code="BAD_RESPONSE")
        if response.status_code == 200:
            return data
        message = str(data.get("message") or response.reason_phrase)
        code = str(data.get("error") or f"HTTP_{response.status_code}")
        status = response.status_code
        if status == 401:
            raise BrokerFatal(
                f"IB gateway refused the token: check IB_GATEWAY_TOKEN ({message})", code="UNAUTHORIZED"
            )
        if status == 503:
            raise BrokerRetryable(message, retry_after=2.0, code=code)
        if status in (404, 422):
            raise BrokerRejected(message, code=code)
        if status == 400:
            raise BrokerError(message, code=code)
        if write:
            raise BrokerUnknownOutcome(message, code=code)
        raise BrokerRetryable(message, code=code)

    @staticmethod
    def _updates(data: dict[str, Any]) -> list[BrokerOrderUpdate]:
        return [codec.update_from_json(u) for u in data.get("updates", [])]

    # --- orders ---------------------------------------------------------------------------
    def place(self, request: BrokerOrderRequest) -> list[BrokerOrderUpdate]:
        reason = self.capabilities.supports(request.asset_class, request.order_type, request.time_in_force)
        if reason is not None:
            raise BrokerRejected(f"Interactive Brokers {reason}", code="UNSUPPORTED")
        data = self._post("place", {"order": codec.request_to_json(request)}, write=True)
        return self._updates(data)

    def cancel(self, ref: OrderRef) -> list[BrokerOrderUpdate]:
        return self._updates(self._post("cancel", {"client_order_id": ref.client_order_id}, write=True))

    def replace(self, ref: OrderRef, change: OrderChange) -> list[BrokerOrderUpdate]:
        body = {"client_order_id": ref.client_order_id, "change": codec.change_to_json(change)}
        return self._updates(self._post("replace", body, write=True))

    def get_order(self, client_order_id: str, broker_order_id: str | None = None) -> BrokerOrderState | None:
        data = self._post("order", {"client_order_id": client_order_id})
        return None if data.get("order") is None else codec.state_from_json(data["order"])

    def open_orders(self) -> list[BrokerOrderState]:
        return [codec.state_from_json(s) for s in self._post("open-orders").get("orders", [])]

    def positions(self) -> list[BrokerPosition]:
        return [codec.position_from_json(p) for p in self._post("positions").get("positions", [])]

    def account(self) -> AccountInfo:
        return codec.account_from_json(self._post("account")["account"])

    def quote(self, symbol: str) -> Quote:
        return codec.quote_from_json(self._post("quote", {"symbol": symbol})["quote"])

    def health(self) -> HealthReport:
        try:
            data = self._post("health")
        except BrokerError as exc:
            return HealthReport(Health.DOWN, Decimal(0), exc.message)
        if not data.get("connected"):
            return HealthReport(
                Health.DOWN, Decimal(0), f"IB gateway not connected to TWS: {data.get('detail')}"
            )
        latency = codec.dec(data.get("latency_ms")) or Decimal(0)
        if data.get("connectivity_lost"):
            return HealthReport(
                Health.DEGRADED, latency, str(data.get("detail") or "TWS lost its IB connection")
            )
        return HealthReport(Health.CONNECTED, latency, str(data.get("detail") or ""))

    # --- updates ----------------------------------------------------------------------------
    def _fetch(self, wait: float, client: httpx.Client | None = None) -> list[BrokerOrderUpdate]:
        """Read the gateway's buffer after the cursor (long poll up to ``wait`` seconds)."""
        with self._feed_lock:
            data = self._post(
                "updates",
                {"epoch": self._epoch, "cursor": self._cursor, "wait": str(wait)},
                timeout=self.timeout + wait,
                client=client,
            )
            self._epoch, self._cursor = str(data["epoch"]), int(data["cursor"])
            return self._updates(data)

    def poll_updates(self, now: dt.datetime) -> list[BrokerOrderUpdate]:
        drained: list[BrokerOrderUpdate] = []
        while True:
            try:
                drained.append(self._events.get_nowait())
            except queue.Empty:
                break
        if self.stream_listening.is_set():
            return drained
        return drained + self._fetch(0)

    def stream_start(self, wakeup: Callable[[], None] | None = None) -> None:
        """Long-poll the bridge in a daemon thread; every batch is queued and ``wakeup()`` called."""
        with self._lock:
            self._wakeup = wakeup
            self._stream.ensure_started()

    def stream_stop(self, timeout: float = 1.0) -> None:
        """Stop the long poll; a request in flight ends by itself within ``stream_wait`` seconds
        (the daemon thread then exits without reading further), so this waits only ``timeout``."""
        self._stream.stop(timeout)

    def _stream_run(self) -> None:
        backoff = 0.5
        client = httpx.Client(base_url=self.base_url, timeout=self.timeout)  # its own connection
        while not self._stream.stopping.is_set():
            try:
                # a quick read first, so that poll_updates never waits behind a long poll
                updates = self._fetch(self.stream_wait if self.stream_listening.is_set() else 0, client)
            except BrokerError:
                if self._stream.stopping.is_set():
                    break
                # gateway down or restarting: poll_updates reads the bridge itself meanwhile
                self.stream_listening.clear()
                self._stream.stopping.wait(backoff)
                backoff = min(backoff * 2, 10)
                continue
            backoff = 0.5
            if self._stream.stopping.is_set():
                # stopped during the long poll: hand back what was read for the next poll_updates
                for update in updates:
                    self._events.put(update)
                break
            self.stream_listening.set()
            for update in updates:
                self._events.put(update)
            if updates and self._wakeup is not None:
                self._wakeup()
        self.stream_listening.clear()
        client.close()
