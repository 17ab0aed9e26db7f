"""Charles Schwab Trader API over REST (httpx).

Schwab bought TD Ameritrade; the legacy TDA API (``api.tdameritrade.com``) was switched off for good
around the final account conversion weekend of 10-13 May 2024. This adapter speaks its successor, the
Schwab Trader API (``https://api.schwabapi.com/trader/v1``), per /work/shared/reference/broker-apis.md
section 3. Schwab has no paper environment: tests run against the fake in ``tests/fakes/schwab.py``.

Auth: OAuth 2.0. The account's ``api_key_encrypted`` holds the app key. ``BrokerAccount`` has no
field for the tokens, so ``api_secret_encrypted`` holds JSON ``{"app_secret", "refresh_token",
"refresh_issued_at", "access_token", "access_expires_at"}`` written by the browser login of
``brokers.schwab_oauth`` (or ``{"app_secret", "refresh_token"}`` pasted by hand; a bare app secret
before the first login). The adapter starts from the stored access token while it is valid, keeps
later ones (30 min) and the possibly rotated refresh token in memory, and refreshes at
``settings.SCHWAB_TOKEN_URL`` (``grant_type=refresh_token``, HTTP Basic app key:secret) 60 s before
expiry. The refresh token lives 7 days (``SCHWAB_REFRESH_TOKEN_LIFETIME_HOURS``), a hard limit: past
it, or when Schwab refuses it, calls raise :class:`BrokerFatal` with code ``REAUTHORIZE`` (after
one re-read of the account row, in case another process re-authorized) and ``health()`` is DOWN;
in its last ``SCHWAB_REFRESH_WARN_HOURS`` ``health()`` is DEGRADED, asking to re-authorize.

Streaming: ``stream_start(wakeup)`` reads ``streamerInfo`` from ``GET /userPreference``, opens the
streamer WebSocket in a daemon thread, sends ``ADMIN LOGIN`` with the access token and ``ACCT_ACTIVITY
SUBS``. Account activity is only a cue (its payload is undocumented): each message calls ``wakeup()``
and the next ``poll_updates`` re-reads the open orders over REST. While the stream listens,
``poll_updates`` reads REST only after a cue, after each (re)connect (catch-up) or every
``SCHWAB_STREAM_SAFETY_POLL_SECONDS``; while it is down it polls REST on every call. A dropped or
silent socket (no heartbeat for ``SCHWAB_STREAM_IDLE_SECONDS``) reconnects with backoff. A refused
LOGIN is retried once with a fresh access token, then sticks as ``stream_error`` (a
:class:`BrokerFatal`, ``STREAM_LOGIN_DENIED``): REST polling goes on and ``health()`` is DEGRADED.
Refused credentials stop the streamer too; ``stream_start`` raises them until a re-authorization.

Accounts are addressed by the hash from ``GET /accounts/accountNumbers`` matching
``account.account_id`` (the plain account number). Place is ``POST /accounts/{hash}/orders`` (201, the
order id is the last segment of ``Location``), replace is ``PUT`` of the full spec (201, ``Location`` of
the new order), cancel is ``DELETE``.

Client order ids: Schwab orders have no client order id. The adapter maps ours to Schwab's order id in
memory, and remembers the spec it sent. When a placement timed out (no ``Location`` seen),
``get_order`` searches the account's orders entered since just before the send for one with the
same symbol, instruction, quantity, type, duration and prices that no other client id claims, and
adopts it. A client id this process never sent is unknown (None).

Fills: each ``EXECUTION`` leg of ``orderActivityCollection`` is one fill, with the id
``<orderId>:<cumulative filled quantity>`` (stable across restarts). Errors: 401 -> refresh once and
retry, then :class:`BrokerFatal`; 429 -> :class:`BrokerRetryable` (``Retry-After`` or 60 s: limits are
per minute); other 4xx -> :class:`BrokerRejected` with Schwab's ``message``/``errors``; a timeout,
dropped connection or 5xx on a write -> :class:`BrokerUnknownOutcome`; 5xx on a read or a refused
connection -> :class:`BrokerRetryable`. Quantities are whole shares (sent as JSON integers); prices are
sent as strings with 2 decimals (>= $1) or 4 (below).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from django.conf import settings
from django.db import DatabaseError
from django.db import connection as db_connection
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

logger = logging.getLogger(__name__)

TRADER_URL = "https://api.schwabapi.com/trader/v1"
MARKETDATA_URL = "https://api.schwabapi.com/marketdata/v1"
ORDER_LOOKBACK_DAYS = 7  # orders entered this long ago are still followed by poll_updates
FOLLOW_MARGIN_SECONDS = 60  # an order entered this long before the first poll counts as new
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TOKEN_URL = "https://api.schwabapi.com/v1/oauth/token"
DEFAULT_TIMEOUT_SECONDS = 10
REFRESH_LEEWAY_SECONDS = 60
REAUTHORIZE = "re-authorize the Schwab account (log in through the Schwab OAuth flow again)"
REFRESH_TOKEN_LIFETIME_HOURS = 7 * 24  # Schwab's hard limit
REFRESH_WARN_HOURS = 24
STREAM_SAFETY_POLL_SECONDS = 60
STREAM_IDLE_SECONDS = 60
STREAM_BACKOFF_SECONDS = 1.0
STREAM_BACKOFF_MAX_SECONDS = 30.0
LOGIN_DENIED = 3  # the streamer's response code for a refused ADMIN LOGIN

ORDER_TYPES = {t: t.value for t in OrderType}  # MARKET, LIMIT, STOP, STOP_LIMIT, TRAILING_STOP
TIFS = {
    TimeInForce.DAY: "DAY",
    TimeInForce.GTC: "GOOD_TILL_CANCEL",
    TimeInForce.IOC: "IMMEDIATE_OR_CANCEL",
    TimeInForce.FOK: "FILL_OR_KILL",
}
TIFS_BACK = {v: k for k, v in TIFS.items()}
INSTRUCTIONS = {Side.BUY: "BUY", Side.SELL: "SELL"}
SIDES = {"BUY": Side.BUY, "BUY_TO_COVER": Side.BUY, "SELL": Side.SELL, "SELL_SHORT": Side.SELL}

OPEN = BrokerOrderStatus.OPEN
STATUSES: dict[str, BrokerOrderStatus] = {
    **dict.fromkeys(
        (
            "AWAITING_PARENT_ORDER",
            "AWAITING_CONDITION",
            "AWAITING_STOP_CONDITION",
            "AWAITING_MANUAL_REVIEW",
            "ACCEPTED",
            "AWAITING_UR_OUT",
            "PENDING_ACTIVATION",
            "QUEUED",
            "WORKING",
            "PENDING_CANCEL",
            "PENDING_REPLACE",
            "NEW",
            "AWAITING_RELEASE_TIME",
            "PENDING_ACKNOWLEDGEMENT",
            "PENDING_RECALL",
        ),
        OPEN,
    ),
    "FILLED": BrokerOrderStatus.FILLED,
    "CANCELED": BrokerOrderStatus.CANCELLED,
    "REPLACED": BrokerOrderStatus.CANCELLED,  # superseded by the order in the PUT's Location
    "REJECTED": BrokerOrderStatus.REJECTED,
    "EXPIRED": BrokerOrderStatus.EXPIRED,
}
TERMINAL_UPDATES = {
    BrokerOrderStatus.CANCELLED: UpdateKind.CANCELLED,
    BrokerOrderStatus.EXPIRED: UpdateKind.EXPIRED,
    BrokerOrderStatus.REJECTED: UpdateKind.REJECTED,
}


def order_status(raw: str) -> BrokerOrderStatus:
    """``UNKNOWN`` and anything new is an error: never guess an order's state."""
    try:
        return STATUSES[raw]
    except KeyError:
        raise BrokerError(f"Schwab reported an unknown order status {raw!r}", code="UNKNOWN_STATUS") from None


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise BrokerError(f"Schwab sent a malformed number {value!r}", code="BAD_RESPONSE") from None


def _reveal(value: Sealed | str) -> str:
    return value.reveal() if isinstance(value, Sealed) else value


def _price(value: Decimal) -> str:
    step = Decimal("0.01") if value >= 1 else Decimal("0.0001")
    if value <= 0 or value != value.quantize(step):
        raise BrokerRejected(
            f"Schwab takes prices with at most {-step.as_tuple().exponent} decimals here, not {value}",
            code="PRICE_INCREMENT",
        )
    return format(value.quantize(step), "f")


def _fill_id(order_id: str, cumulative: Decimal) -> str:
    return f"{order_id}:{format(cumulative.normalize(), 'f')}"


def _schwab_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def secret_parse(secret: str) -> dict[str, Any]:
    """The stored Schwab secret as a dict (see the module doc); a bare app secret is accepted."""
    try:
        stored = json.loads(secret)
    except ValueError:
        stored = None
    return stored if isinstance(stored, dict) else {"app_secret": secret}


def stored_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 moment from the stored secret (None when absent or unreadable; naive is UTC)."""
    try:
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def refresh_expires_at(issued: dt.datetime) -> dt.datetime:
    hours = getattr(settings, "SCHWAB_REFRESH_TOKEN_LIFETIME_HOURS", REFRESH_TOKEN_LIFETIME_HOURS)
    return issued + dt.timedelta(hours=hours)


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class _LoginDenied(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"code {code}: {message}")
        self.code, self.message = code, message


@dataclass(slots=True)
class _Seen:
    broker_order_id: str
    spec: dict
    sent_at: dt.datetime
    filled_qty: Decimal = Decimal(0)
    status: BrokerOrderStatus = OPEN
    accepted: bool = False


class SchwabAdapter:
    capabilities = Capabilities(
        asset_classes=frozenset({AssetClass.EQUITY}),
        order_types={t: Support.NATIVE for t in ORDER_TYPES},
        time_in_force=frozenset(TIFS),
        native_replace=True,
    )

    def __init__(self, account: BrokerAccount) -> None:
        self.account_pk = account.pk
        self.account_number = account.account_id
        self._sealed_key = account.api_key_encrypted
        self._sealed_secret = account.api_secret_encrypted
        self.base_url = getattr(settings, "SCHWAB_TRADER_URL", TRADER_URL).rstrip("/")
        self.marketdata_url = getattr(settings, "SCHWAB_MARKETDATA_URL", MARKETDATA_URL).rstrip("/")
        self.token_url = getattr(settings, "SCHWAB_TOKEN_URL", TOKEN_URL)
        self._client = httpx.Client(
            timeout=getattr(settings, "SCHWAB_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS),
            follow_redirects=False,
        )
        self._access_token: str | None = None
        self._access_expires = 0.0  # time.monotonic()
        self._refresh_token: str | None = None  # from the account until Schwab rotates it
        self._refresh_issued: dt.datetime | None = None  # of a rotated refresh token
        self._hash: str | None = None
        self._following_since: dt.datetime | None = None  # first read of the account's order list
        self._seen: dict[str, _Seen] = {}  # by our client_order_id
        self._owner: dict[str, str] = {}  # Schwab order id -> our client_order_id
        self._lock = threading.RLock()
        # the ACCT_ACTIVITY streamer (only the feed worker starts it)
        self._wakeup: Callable[[], None] | None = None
        self._stream = StreamThread(f"schwab-stream-{self.account_pk}", self._stream_run)
        self._cue = threading.Event()  # set by account activity and (re)connects: poll REST
        self._next_safety_poll = 0.0  # time.monotonic()
        self._stream_fatal: BrokerFatal | None = None
        self.stream_error: BrokerError | None = None  # why the stream is down, if it is
        self.stream_listening = threading.Event()
        self.stream_connects = 0
        self.stream_cues = 0

    # --- credentials and tokens -----------------------------------------------------------
    def _stored(self) -> tuple[str, dict[str, Any]]:
        """The app key and the stored secret (see the module doc)."""
        if not self._sealed_key or not self._sealed_secret:
            raise BrokerFatal(
                f"broker account {self.account_pk} has no Schwab app key / secret", code="NO_CREDENTIALS"
            )
        try:
            key, secret = _reveal(self._sealed_key), _reveal(self._sealed_secret)
        except DecryptionError as exc:
            raise BrokerFatal(
                f"the Schwab credentials of broker account {self.account_pk} cannot be decrypted: {exc}",
                code="CREDENTIALS_UNREADABLE",
            ) from exc
        stored = secret_parse(secret)
        if not stored.get("app_secret"):
            raise BrokerFatal(
                f"broker account {self.account_pk}: the Schwab secret has no app_secret",
                code="NO_CREDENTIALS",
            )
        return key, stored

    def _credentials(self) -> tuple[str, str, str]:
        key, stored = self._stored()
        refresh = self._refresh_token or stored.get("refresh_token")
        if not refresh:
            raise BrokerFatal(
                f"broker account {self.account_pk} has no Schwab refresh_token yet: connect it to Schwab "
                '(Connect to Schwab) or store JSON {"app_secret": ..., "refresh_token": ...}',
                code="NOT_AUTHORIZED",
            )
        return key, stored["app_secret"], refresh

    def refresh_issued_at(self) -> dt.datetime | None:
        """When the refresh token in use was issued (None when unknown: pasted by hand)."""
        if self._refresh_issued is not None:
            return self._refresh_issued
        _key, stored = self._stored()
        return stored_time(stored.get("refresh_issued_at"))

    def _refresh_expired(self) -> BrokerFatal | None:
        issued = self.refresh_issued_at()
        if issued is None or refresh_expires_at(issued) > timezone.now():
            return None
        return BrokerFatal(
            f"the Schwab refresh token expired on {_utc(refresh_expires_at(issued))} (it lasts 7 days): "
            f"{REAUTHORIZE}",
            code="REAUTHORIZE",
        )

    def _reload(self) -> bool:
        """Re-read the credentials from the account row; True if they changed (another process
        re-authorized the account)."""
        if self.account_pk is None:
            return False
        row = BrokerAccount.objects.filter(pk=self.account_pk).values_list(
            "api_key_encrypted", "api_secret_encrypted"
        )
        try:
            fresh = row.first()
        except DatabaseError:
            return False  # the row cannot be read now: the refusal stands, the caller reports it
        finally:
            if self._stream.is_current():
                db_connection.close()  # the streamer thread holds no connection between refusals
        if fresh is None or fresh == (self._sealed_key, self._sealed_secret):
            return False
        self._sealed_key, self._sealed_secret = fresh
        self._access_token, self._refresh_token, self._refresh_issued = None, None, None
        return True

    def _token(self, *, force: bool = False) -> str:
        with self._lock:
            if not force and self._access_token and time.monotonic() < self._access_expires:
                return self._access_token
            try:
                return self._new_token(force=force)
            except BrokerFatal as exc:
                if exc.code != "REAUTHORIZE" or not self._reload():
                    raise
            return self._new_token(force=force)

    def _new_token(self, *, force: bool) -> str:
        key, app_secret, refresh = self._credentials()
        if not force and self._access_token is None:  # the one the browser login stored
            _key, stored = self._stored()
            expires = stored_time(stored.get("access_expires_at"))
            if stored.get("access_token") and expires is not None:
                left = (expires - timezone.now()).total_seconds() - REFRESH_LEEWAY_SECONDS
                if left > 0:
                    self._access_token = stored["access_token"]
                    self._access_expires = time.monotonic() + left
                    return self._access_token
        expired = self._refresh_expired()
        if expired is not None:
            raise expired
        try:
            response = self._client.post(
                self.token_url,
                data={"grant_type": "refresh_token", "refresh_token": refresh},
                auth=(key, app_secret),
            )
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            raise BrokerRetryable(
                f"cannot reach the Schwab token endpoint: {exc}", code="UNREACHABLE"
            ) from exc
        payload = self._json(response)
        if response.status_code in (400, 401):
            reason = payload.get("error_description") or payload.get("error") or response.reason_phrase
            raise BrokerFatal(
                f"Schwab refused the refresh token ({reason}); it lasts 7 days: {REAUTHORIZE}",
                code="REAUTHORIZE",
            )
        if response.status_code == 429:
            raise BrokerRetryable("Schwab token endpoint rate limit", retry_after=self._retry_after(response))
        if response.status_code != 200 or "access_token" not in payload:
            raise BrokerRetryable(
                f"Schwab token endpoint answered {response.status_code}", code="TOKEN_UNAVAILABLE"
            )
        self._access_token = payload["access_token"]
        rotated = payload.get("refresh_token")
        if rotated and rotated != refresh:
            self._refresh_token, self._refresh_issued = rotated, timezone.now()
        else:
            self._refresh_token = refresh
        lifetime = int(payload.get("expires_in", 1800))
        self._access_expires = time.monotonic() + max(lifetime - REFRESH_LEEWAY_SECONDS, 0)
        return self._access_token

    # --- transport ------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict | None = None,
        base: str | None = None,
    ) -> httpx.Response:
        base = base or self.base_url
        content = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {self._token(force=attempt == 2)}",
                "Accept": "application/json",
            }
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self._client.request(
                    method, base + path, params=params, content=content, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise BrokerRetryable(f"cannot reach Schwab at {base}: {exc}", code="UNREACHABLE") from exc
            except httpx.TimeoutException as exc:
                raise BrokerUnknownOutcome(
                    f"Schwab did not answer {method} {path} in time", code="TIMEOUT"
                ) from exc
            except httpx.TransportError as exc:
                raise BrokerUnknownOutcome(f"connection to Schwab failed: {exc}", code="TRANSPORT") from exc
            if response.status_code != 401:
                break
        return self._check(response, write=method != "GET")

    def _check(self, response: httpx.Response, *, write: bool) -> httpx.Response:
        status = response.status_code
        if status < 300:
            return response
        payload = self._json(response)
        message = payload.get("message") or response.reason_phrase
        errors = payload.get("errors") or []
        if errors:
            message = f"{message}: {'; '.join(str(e) for e in errors)}"
        if status == 401:
            raise BrokerFatal(
                f"Schwab refused the access token even after a refresh ({message}): {REAUTHORIZE}",
                code="UNAUTHORIZED",
            )
        if status == 429:
            raise BrokerRetryable(
                f"Schwab rate limit reached: {message}",
                retry_after=self._retry_after(response),
                code="RATE_LIMITED",
            )
        if status >= 500:
            if write:
                raise BrokerUnknownOutcome(f"Schwab answered {status} ({message})", code=f"HTTP_{status}")
            raise BrokerRetryable(f"Schwab answered {status} ({message})", code=f"HTTP_{status}")
        raise BrokerRejected(f"Schwab rejected the request: {message}", code=f"HTTP_{status}")

    @staticmethod
    def _retry_after(response: httpx.Response) -> float:
        try:
            return max(int(Decimal(response.headers.get("Retry-After", "60"))), 0)
        except InvalidOperation:
            return 60

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content:
            return {}
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError:
            return {"message": response.text[:200]}

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self._json(self._request("GET", path, params=params))

    def _account_hash(self) -> str:
        if self._hash is None:
            rows = self._get("/accounts/accountNumbers")
            match = [r["hashValue"] for r in rows if str(r.get("accountNumber")) == self.account_number]
            if not match:
                raise BrokerFatal(
                    f"Schwab does not list account {self.account_number} for this login", code="NO_ACCOUNT"
                )
            self._hash = match[0]
        return self._hash

    # --- orders -----------------------------------------------------------------------------
    def _spec(self, request: BrokerOrderRequest) -> dict:
        if request.asset_class is not AssetClass.EQUITY:
            raise BrokerRejected(f"Schwab adapter does not trade {request.asset_class}", code="UNSUPPORTED")
        if request.quantity != request.quantity.to_integral_value() or request.quantity <= 0:
            raise BrokerRejected("Schwab takes whole shares only (no fractional orders)", code="FRACTIONAL")
        spec: dict[str, Any] = {
            "session": "NORMAL",
            "duration": TIFS[request.time_in_force],
            "orderType": ORDER_TYPES[request.order_type],
            "orderStrategyType": "SINGLE",
            "orderLegCollection": [
                {
                    "instruction": INSTRUCTIONS[request.side],
                    "quantity": int(request.quantity),
                    "instrument": {"symbol": request.symbol, "assetType": "EQUITY"},
                }
            ],
        }
        if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            spec["price"] = _price(self._need(request.price, "price"))
        if request.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
            spec["stopPrice"] = _price(self._need(request.stop_price, "stop price"))
        if request.order_type is OrderType.TRAILING_STOP:
            spec["stopPriceLinkBasis"] = "LAST"
            if request.trail_percent is not None:
                spec["stopPriceLinkType"], spec["stopPriceOffset"] = "PERCENT", _price(request.trail_percent)
            else:
                offset = _price(self._need(request.trail_amount, "trail amount"))
                spec["stopPriceLinkType"], spec["stopPriceOffset"] = "VALUE", offset
        return spec

    @staticmethod
    def _need(value: Decimal | None, name: str) -> Decimal:
        if value is None:
            raise BrokerRejected(f"a {name} is required", code="MISSING_PRICE")
        return value

    @staticmethod
    def _order_id(response: httpx.Response) -> str | None:
        location = response.headers.get("Location", "")
        tail = location.rstrip("/").rsplit("/", 1)[-1]
        return tail if tail.isdigit() else None

    def place(self, request: BrokerOrderRequest) -> list[BrokerOrderUpdate]:
        spec = self._spec(request)
        path = f"/accounts/{self._account_hash()}/orders"
        cid = request.client_order_id
        with self._lock:
            self._seen[cid] = _Seen(broker_order_id="", spec=spec, sent_at=timezone.now())
        response = self._request("POST", path, body=spec)
        order_id = self._order_id(response)
        if order_id is None:  # Schwab sometimes omits Location: find the order like after a timeout
            state = self.get_order(cid)
            if state is None:
                raise BrokerUnknownOutcome("Schwab accepted the order without a Location", code="NO_LOCATION")
            order_id = state.broker_order_id
        self._adopt(cid, order_id)
        return self._updates(cid, self._get(f"{path}/{order_id}"))

    def _entered_before_following(self, raw: dict) -> bool:
        entered = stored_time(raw.get("enteredTime"))
        return entered is None or self._following_since is None or entered < self._following_since

    def _track(self, cid: str, order_id: str) -> None:
        """Follow an order sent elsewhere (another process): already acknowledged; fills it had
        before are reported again and the service skips them by their fill ids."""
        with self._lock:
            if cid not in self._seen:
                self._seen[cid] = _Seen(
                    broker_order_id=order_id, spec={}, sent_at=timezone.now(), accepted=True
                )
                self._owner[order_id] = cid

    def _adopt(self, cid: str, order_id: str) -> None:
        with self._lock:
            self._seen[cid].broker_order_id = order_id
            self._owner[order_id] = cid

    def _updates(self, cid: str, raw: dict) -> list[BrokerOrderUpdate]:
        """The updates in ``raw`` (Schwab order JSON) that were not reported yet."""
        seen = self._seen[cid]
        order_id = str(raw["orderId"])
        status = order_status(raw["status"])
        now = timezone.now()
        updates: list[BrokerOrderUpdate] = []
        if not seen.accepted and status is not BrokerOrderStatus.REJECTED:
            seen.accepted = True
            updates.append(BrokerOrderUpdate(UpdateKind.ACCEPTED, cid, order_id, now))
        cumulative = Decimal(0)
        for activity in raw.get("orderActivityCollection") or []:
            if activity.get("activityType") != "EXECUTION":
                continue
            for leg in activity.get("executionLegs") or []:
                qty = _dec(leg["quantity"])
                cumulative += qty
                if cumulative > seen.filled_qty:
                    fill = FillReport(_fill_id(order_id, cumulative), qty, _dec(leg["price"]), Decimal(0))
                    updates.append(BrokerOrderUpdate(UpdateKind.FILL, cid, order_id, now, fill=fill))
        seen.filled_qty = max(seen.filled_qty, cumulative)
        if status in TERMINAL_UPDATES and seen.status is OPEN and raw["status"] != "REPLACED":
            reason = raw.get("statusDescription") or ""
            updates.append(BrokerOrderUpdate(TERMINAL_UPDATES[status], cid, order_id, now, reason=reason))
        seen.status = status if raw["status"] != "REPLACED" else seen.status
        return updates

    def _state(self, cid: str, raw: dict) -> BrokerOrderState:
        leg = raw["orderLegCollection"][0]
        fills: list[FillReport] = []
        cumulative = Decimal(0)
        for activity in raw.get("orderActivityCollection") or []:
            if activity.get("activityType") == "EXECUTION":
                for x in activity.get("executionLegs") or []:
                    cumulative += _dec(x["quantity"])
                    fills.append(
                        FillReport(
                            _fill_id(str(raw["orderId"]), cumulative),
                            _dec(x["quantity"]),
                            _dec(x["price"]),
                            Decimal(0),
                        )
                    )
        filled = _dec(raw.get("filledQuantity", 0))
        notional = sum((f.quantity * f.price for f in fills), Decimal(0))
        got = sum((f.quantity for f in fills), Decimal(0))
        return BrokerOrderState(
            client_order_id=cid,
            broker_order_id=str(raw["orderId"]),
            symbol=leg["instrument"]["symbol"],
            side=SIDES[leg["instruction"]],
            status=order_status(raw["status"]),
            quantity=_dec(raw["quantity"]),
            filled_quantity=filled,
            average_fill_price=(notional / got) if got else None,
            fills=tuple(fills),
        )

    def _matches(self, spec: dict, raw: dict) -> bool:
        leg, want = raw["orderLegCollection"][0], spec["orderLegCollection"][0]
        same = (
            leg["instrument"]["symbol"] == want["instrument"]["symbol"]
            and leg["instruction"] == want["instruction"]
            and _dec(raw["quantity"]) == want["quantity"]
            and raw["orderType"] == spec["orderType"]
            and raw["duration"] == spec["duration"]
        )
        for name in ("price", "stopPrice"):
            if name in spec:
                same = same and name in raw and _dec(raw[name]) == Decimal(spec[name])
        return same

    def get_order(self, client_order_id: str, broker_order_id: str | None = None) -> BrokerOrderState | None:
        """Schwab has no client order ids. An order this process sent is known by its id (or
        found by its spec after a lost answer); another process's order needs ``broker_order_id``
        (the service stores it) and is then followed here too. Without either, absence cannot be
        told from not knowing: that is an unknown outcome, never None."""
        seen = self._seen.get(client_order_id)
        path = f"/accounts/{self._account_hash()}/orders"
        if seen is None:
            if not broker_order_id:
                raise BrokerUnknownOutcome(
                    f"Schwab has no client order ids and this process did not send {client_order_id}: "
                    "it can be looked up by its Schwab order id only",
                    code="UNKNOWN_HERE",
                )
            raw = self._get(f"{path}/{broker_order_id}")
            self._track(client_order_id, str(raw["orderId"]))
            return self._state(client_order_id, raw)
        if not seen.broker_order_id:
            since = seen.sent_at - dt.timedelta(seconds=5)
            params = {
                "fromEnteredTime": _schwab_time(since),
                "toEnteredTime": _schwab_time(timezone.now() + dt.timedelta(minutes=1)),
            }
            found = [
                raw
                for raw in self._get(path, params)
                if str(raw["orderId"]) not in self._owner and self._matches(seen.spec, raw)
            ]
            if not found:
                return None
            raw = min(found, key=lambda r: str(r.get("enteredTime", "")))
            self._adopt(client_order_id, str(raw["orderId"]))
            return self._state(client_order_id, raw)
        return self._state(client_order_id, self._get(f"{path}/{seen.broker_order_id}"))

    def _broker_id(self, ref: OrderRef) -> str:
        seen = self._seen.get(ref.client_order_id)
        if seen is not None and seen.broker_order_id:
            return seen.broker_order_id  # the latest replacement, whatever id the caller holds
        if ref.broker_order_id:
            return ref.broker_order_id
        state = self.get_order(ref.client_order_id)
        if state is None:
            raise BrokerRejected(f"Schwab has no order for {ref.client_order_id}", code="UNKNOWN_ORDER")
        return state.broker_order_id

    def cancel(self, ref: OrderRef) -> list[BrokerOrderUpdate]:
        order_id = self._broker_id(ref)
        path = f"/accounts/{self._account_hash()}/orders/{order_id}"
        self._request("DELETE", path)
        raw = self._get(path)
        cid = ref.client_order_id
        self._track(cid, order_id)
        updates = self._updates(cid, raw)
        return updates  # a PENDING_CANCEL order reports CANCELLED with a later poll

    def replace(self, ref: OrderRef, change: OrderChange) -> list[BrokerOrderUpdate]:
        old_id = self._broker_id(ref)
        cid = ref.client_order_id
        seen = self._seen.get(cid)
        if seen is None or not seen.spec:
            raise BrokerRejected(
                "Schwab replace needs the order's spec, unknown here", code="REPLACE_UNKNOWN"
            )
        spec = json.loads(json.dumps(seen.spec))
        if change.quantity is not None:
            if change.quantity != change.quantity.to_integral_value():
                raise BrokerRejected("Schwab takes whole shares only", code="FRACTIONAL")
            spec["orderLegCollection"][0]["quantity"] = int(change.quantity)
        if change.price is not None:
            spec["price"] = _price(change.price)
        if change.stop_price is not None:
            spec["stopPrice"] = _price(change.stop_price)
        if change.time_in_force is not None:
            spec["duration"] = TIFS[change.time_in_force]
        path = f"/accounts/{self._account_hash()}/orders"
        response = self._request("PUT", f"{path}/{old_id}", body=spec)
        new_id = self._order_id(response)
        if new_id is None:
            raise BrokerUnknownOutcome("Schwab replaced the order without a Location", code="NO_LOCATION")
        with self._lock:
            seen.spec, seen.broker_order_id, seen.filled_qty = spec, new_id, Decimal(0)
            self._owner[new_id] = cid
        now_in_force = OrderChange(
            quantity=Decimal(spec["orderLegCollection"][0]["quantity"]),
            price=Decimal(spec["price"]) if "price" in spec else None,
            stop_price=Decimal(spec["stopPrice"]) if "stopPrice" in spec else None,
            time_in_force=TIFS_BACK[spec["duration"]],
        )
        return [BrokerOrderUpdate(UpdateKind.REPLACED, cid, new_id, timezone.now(), change=now_in_force)]

    def open_orders(self) -> list[BrokerOrderState]:
        now = timezone.now()
        params = {
            "fromEnteredTime": _schwab_time(now - dt.timedelta(days=60)),
            "toEnteredTime": _schwab_time(now + dt.timedelta(minutes=1)),
        }
        states = []
        for raw in self._get(f"/accounts/{self._account_hash()}/orders", params):
            if order_status(raw["status"]) is OPEN:
                order_id = str(raw["orderId"])
                states.append(self._state(self._owner.get(order_id, order_id), raw))
        return states

    def poll_updates(self, now: dt.datetime) -> list[BrokerOrderUpdate]:
        """Re-read the open orders over REST: on every call, or, while the streamer listens, only
        after a cue, a (re)connect or the slow safety cadence (see the module doc)."""
        listening, cued = self.stream_listening.is_set(), self._cue.is_set()
        if listening and not cued and time.monotonic() < self._next_safety_poll:
            return []
        self._cue.clear()  # before reading: a cue that arrives meanwhile makes the next poll read again
        self._next_safety_poll = time.monotonic() + getattr(
            settings, "SCHWAB_STREAM_SAFETY_POLL_SECONDS", STREAM_SAFETY_POLL_SECONDS
        )
        try:
            path = f"/accounts/{self._account_hash()}/orders"
            updates: list[BrokerOrderUpdate] = []
            for cid, seen in list(self._seen.items()):
                if seen.broker_order_id and seen.status is OPEN and not cid.startswith("#"):
                    updates += self._updates(cid, self._get(f"{path}/{seen.broker_order_id}"))
            updates += self._others(path, now)  # "#<id>": another process's, followed there
        except BrokerError:
            self._cue.set()  # nothing was read for sure: the next poll tries again
            raise
        return updates

    def _others(self, path: str, now: dt.datetime) -> list[BrokerOrderUpdate]:
        """Changes of orders another process sent (the feed worker did not place them): read from
        the account's order list and reported with an empty client order id, by Schwab order id,
        which the service resolves. An order first seen closed is reported only if it was entered
        after this adapter began to follow the account (it opened and closed between two polls);
        older closed orders were settled before (and reconciliation, which knows their ids,
        settles any other)."""
        lookback = dt.timedelta(days=getattr(settings, "SCHWAB_ORDER_LOOKBACK_DAYS", ORDER_LOOKBACK_DAYS))
        params = {
            "fromEnteredTime": _schwab_time(now - lookback),
            "toEnteredTime": _schwab_time(now + dt.timedelta(minutes=1)),
        }
        if self._following_since is None:
            self._following_since = now - dt.timedelta(seconds=FOLLOW_MARGIN_SECONDS)
        updates: list[BrokerOrderUpdate] = []
        for raw in self._get(path, params):
            order_id = str(raw["orderId"])
            if order_id in self._owner:
                continue  # this process's own, read above
            key = f"#{order_id}"
            first = key not in self._seen
            if first:
                self._seen[key] = _Seen(broker_order_id=order_id, spec={}, sent_at=now, accepted=True)
            found = self._updates(key, raw)
            if first and order_status(raw["status"]) is not OPEN and self._entered_before_following(raw):
                continue
            updates += [dataclasses.replace(u, client_order_id="") for u in found]
        return updates

    # --- the ACCT_ACTIVITY streamer -------------------------------------------------------------
    def stream_start(self, wakeup: Callable[[], None]) -> None:
        """Listen to account activity in a daemon thread (idempotent); ``wakeup()`` on every cue.

        Refused credentials (``REAUTHORIZE`` ...) are raised here until the account row holds new
        ones. A refused LOGIN is not: REST polling goes on, ``stream_error`` and ``health()`` say
        why, and the streamer stays off until the adapter is rebuilt (``adapters_reset``)."""
        with self._lock:
            self._wakeup = wakeup
            if self._stream_fatal is not None and self._stream_fatal.code != "STREAM_LOGIN_DENIED":
                if not self._reload():
                    raise self._stream_fatal
                self._stream_fatal = self.stream_error = None  # re-authorized meanwhile
            if self._stream_fatal is not None:
                return
            self._stream.ensure_started()

    def stream_stop(self) -> None:
        self._stream.stop(5)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup()

    def _stream_run(self) -> None:
        initial = getattr(settings, "SCHWAB_STREAM_BACKOFF_SECONDS", STREAM_BACKOFF_SECONDS)
        backoff, denied = initial, 0
        while not self._stream.stopping.is_set():
            try:
                self._stream_session(fresh_token=denied > 0)
            except _LoginDenied as exc:
                denied += 1
                if denied > 1:  # refused with a fresh access token too: reconnecting will not help
                    self._stream_fatal = BrokerFatal(
                        f"the Schwab streamer refused LOGIN ({exc}) even with a fresh access token: "
                        f"check the app's streaming access, or {REAUTHORIZE}",
                        code="STREAM_LOGIN_DENIED",
                    )
                    self.stream_error = self._stream_fatal
                    logger.warning("Schwab account %s: %s", self.account_pk, self._stream_fatal.message)
                    self._wake()
                    return
                self.stream_error = BrokerRetryable(f"the Schwab streamer refused LOGIN ({exc})")
            except BrokerFatal as exc:  # credentials: only a human can fix them
                self._stream_fatal = self.stream_error = exc
                logger.warning("Schwab account %s: streamer stopped: %s", self.account_pk, exc.message)
                self._wake()
                return
            except (BrokerError, OSError, ConnectionClosed, InvalidHandshake, InvalidURI, ValueError) as exc:
                # TimeoutError is an OSError; ValueError covers malformed frames
                self.stream_error = BrokerRetryable(f"Schwab streamer down: {exc}", code="STREAM_DOWN")
            if self.stream_listening.is_set():
                backoff, denied = initial, 0  # it was listening: start the backoff over
                self.stream_listening.clear()
                self._wake()  # REST polling takes over at once
            self._stream.stopping.wait(backoff)
            backoff = min(
                backoff * 2,
                getattr(settings, "SCHWAB_STREAM_BACKOFF_MAX_SECONDS", STREAM_BACKOFF_MAX_SECONDS),
            )

    def _streamer_info(self) -> dict[str, str]:
        info = self._get("/userPreference").get("streamerInfo")
        if isinstance(info, list):
            info = info[0] if info else None
        names = ("streamerSocketUrl", "schwabClientCustomerId", "schwabClientCorrelId")
        if not isinstance(info, dict) or not all(info.get(n) for n in names):
            raise BrokerError(
                f"Schwab userPreference has no usable streamerInfo: {info!r}", code="BAD_RESPONSE"
            )
        return info

    def _stream_session(self, *, fresh_token: bool) -> None:
        """One connection: LOGIN, SUBS ACCT_ACTIVITY, then cues until dropped or stopped."""
        info = self._streamer_info()
        token = self._token(force=fresh_token)
        timeout = getattr(settings, "SCHWAB_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
        idle = getattr(settings, "SCHWAB_STREAM_IDLE_SECONDS", STREAM_IDLE_SECONDS)
        with connect(info["streamerSocketUrl"], open_timeout=timeout, close_timeout=1) as ws:
            login = {
                "Authorization": token,
                "SchwabClientChannel": info.get("schwabClientChannel", ""),
                "SchwabClientFunctionId": info.get("schwabClientFunctionId", ""),
            }
            self._stream_command(ws, info, "0", "ADMIN", "LOGIN", login, timeout)
            subs = {"keys": info["schwabClientCorrelId"], "fields": "0,1,2,3"}
            self._stream_command(ws, info, "1", "ACCT_ACTIVITY", "SUBS", subs, timeout)
            self.stream_error = None
            self.stream_connects += 1
            self._cue.set()  # catch up over REST on what happened while not listening
            self.stream_listening.set()
            self._wake()
            last = time.monotonic()
            while not self._stream.stopping.is_set():
                try:
                    frame = ws.recv(timeout=0.2)
                except TimeoutError:
                    if time.monotonic() - last > idle:
                        raise TimeoutError(
                            f"no message or heartbeat from the Schwab streamer in {idle} s"
                        ) from None
                    continue
                last = time.monotonic()
                self._stream_message(self._frame(frame))
            ws.send(json.dumps(self._stream_request(info, "2", "ADMIN", "LOGOUT", {})))

    @staticmethod
    def _frame(frame: str | bytes) -> dict:
        message = json.loads(frame)
        if not isinstance(message, dict):
            raise ValueError(f"unexpected Schwab streamer frame {message!r}")
        return message

    @staticmethod
    def _stream_request(info: dict, requestid: str, service: str, command: str, parameters: dict) -> dict:
        return {
            "requests": [
                {
                    "service": service,
                    "command": command,
                    "requestid": requestid,
                    "SchwabClientCustomerId": info["schwabClientCustomerId"],
                    "SchwabClientCorrelId": info["schwabClientCorrelId"],
                    "parameters": parameters,
                }
            ]
        }

    def _stream_command(
        self,
        ws: Any,
        info: dict,
        requestid: str,
        service: str,
        command: str,
        parameters: dict,
        timeout: float,
    ) -> None:
        """Send one command and wait for its response (code 0), skipping heartbeats meanwhile."""
        ws.send(json.dumps(self._stream_request(info, requestid, service, command, parameters)))
        deadline = time.monotonic() + timeout
        while True:
            message = self._frame(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            for response in message.get("response") or []:
                if (response.get("requestid"), response.get("service"), response.get("command")) != (
                    requestid,
                    service,
                    command,
                ):
                    continue
                content = response.get("content") or {}
                code, msg = content.get("code"), str(content.get("msg", ""))
                if code == 0:
                    return
                if command == "LOGIN":
                    raise _LoginDenied(int(code) if isinstance(code, int) else LOGIN_DENIED, msg)
                raise BrokerRetryable(f"the Schwab streamer refused {service} {command} (code {code}: {msg})")

    def _stream_message(self, message: dict) -> None:
        for item in message.get("notify") or []:
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, dict) and content.get("code") not in (None, 0):
                code, msg = content.get("code"), content.get("msg")
                raise ConnectionError(f"the Schwab streamer closed the session (code {code}: {msg})")
        for item in message.get("data") or []:
            if item.get("service") != "ACCT_ACTIVITY":
                continue
            for event in item.get("content") or []:
                if event.get("2") and event.get("2") != "SUBSCRIBED":
                    self.stream_cues += 1
                    self._cue.set()
                    self._wake()

    # --- account ------------------------------------------------------------------------------
    def _securities(self) -> dict:
        return self._get(f"/accounts/{self._account_hash()}", {"fields": "positions"})["securitiesAccount"]

    def positions(self) -> list[BrokerPosition]:
        return [
            BrokerPosition(
                symbol=p["instrument"]["symbol"],
                quantity=_dec(p.get("longQuantity", 0)) - _dec(p.get("shortQuantity", 0)),
                average_cost=_dec(p.get("averagePrice", 0)),
            )
            for p in self._securities().get("positions") or []
        ]

    def account(self) -> AccountInfo:
        balances = self._securities()["currentBalances"]
        cash = balances.get("cashBalance", balances.get("availableFunds", 0))
        total = balances.get("liquidationValue", balances.get("equity", 0))
        return AccountInfo(
            cash=_dec(cash), buying_power=_dec(balances.get("buyingPower", 0)), total_value=_dec(total)
        )

    def quote(self, symbol: str) -> Quote:
        """Top of book from the Market Data API (``GET /marketdata/v1/quotes?symbols=``)."""
        payload = self._json(
            self._request(
                "GET", "/quotes", params={"symbols": symbol, "fields": "quote"}, base=self.marketdata_url
            )
        )
        entry = payload.get(symbol) if isinstance(payload, dict) else None
        if not entry:
            raise BrokerRejected(f"Schwab does not know the symbol {symbol}", code="UNKNOWN_SYMBOL")
        data = entry.get("quote") or {}

        def num(key: str) -> Decimal:
            return Decimal(0) if data.get(key) is None else _dec(data[key])

        bid, ask = num("bidPrice"), num("askPrice")
        if bid <= 0 or ask <= 0 or bid > ask:
            raise BrokerError(f"Schwab has no two-sided quote for {symbol} now", code="NO_QUOTE")
        millis = data.get("quoteTime")
        at = EPOCH + dt.timedelta(milliseconds=int(millis)) if millis else timezone.now()
        return Quote(
            symbol=symbol,
            bid=bid,
            ask=ask,
            bid_size=num("bidSize"),
            ask_size=num("askSize"),
            last=num("lastPrice") or (bid + ask) / 2,
            at=at,
        )

    def health(self) -> HealthReport:
        """DOWN when Schwab cannot be used (code first, e.g. ``REAUTHORIZE: ...``); DEGRADED in the
        refresh token's last hours or while the streamer is refused."""
        started = time.monotonic()
        try:
            with self._lock:
                expired = self._refresh_expired()
                if expired is not None and not self._reload():
                    raise expired  # even while the last access token still works
            self._get("/accounts/accountNumbers")
        except BrokerFatal as exc:
            return HealthReport(Health.DOWN, Decimal(0), f"{exc.code}: {exc.message}")
        except (BrokerRetryable, BrokerUnknownOutcome, BrokerRejected) as exc:
            return HealthReport(Health.DEGRADED, Decimal(0), exc.message)
        latency = Decimal(int((time.monotonic() - started) * 1000))
        issued = self.refresh_issued_at()
        if issued is not None:
            left = refresh_expires_at(issued) - timezone.now()
            warn = getattr(settings, "SCHWAB_REFRESH_WARN_HOURS", REFRESH_WARN_HOURS)
            if left <= dt.timedelta(hours=warn):
                hours = int(left.total_seconds() // 3600)
                return HealthReport(
                    Health.DEGRADED,
                    latency,
                    f"Schwab refresh token expires in {hours} h; re-authorize (Connect to Schwab) "
                    f"before {_utc(refresh_expires_at(issued))}",
                )
        if self._stream_fatal is not None:
            return HealthReport(Health.DEGRADED, latency, f"REST only: {self._stream_fatal.message}")
        return HealthReport(Health.CONNECTED, latency)
