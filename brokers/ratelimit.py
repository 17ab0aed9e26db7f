"""Rate limiting and call statistics for every broker call, shared by all processes.

:class:`LimitedAdapter` wraps the adapter ``brokers.services.adapter_for`` hands out. Before a
counted call it takes tokens from the account's buckets (:mod:`brokers.domain.ratelimit`; write
calls also from the "orders" limits) and checks the account's cooldown; when either says wait,
it raises ``BrokerRetryable(code="RATE_LIMITED", retry_after=<seconds>)`` without calling the
broker, and never sleeps. A ``BrokerRetryable`` from the broker itself (429, 418, ...) sets the
cooldown "no call before now + retry_after", so every process stops calling that broker account
until then. Each call that reached the broker is recorded (outcome and latency) in a rolling
window per account, from which the health check takes the error rate.

The state lives in Redis when ``REDIS_URL`` is set (several processes: one Lua script per
acquisition, so a bucket is never over-spent by a race), else in this process (the embedded
single-host default).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from brokers.domain.adapter import BrokerRejected, BrokerRetryable
from brokers.domain.ratelimit import US, Limit, bucket_take, limits_for, seconds
from trademaster.clock import clock_now

logger = logging.getLogger(__name__)

# (bucket key, interval_us, burst, cost) for one acquisition
Charge = tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class CallStats:
    """Calls that reached the broker in the window, those that failed, and their total latency."""

    calls: int = 0
    errors: int = 0
    latency_us: int = 0

    @property
    def error_rate(self) -> Decimal:
        """Failed calls in percent of all calls (0 with no calls)."""
        if not self.calls:
            return Decimal("0.00")
        return (Decimal(self.errors) * 100 / self.calls).quantize(Decimal("0.01"))

    @property
    def average_latency_ms(self) -> Decimal:
        if not self.calls:
            return Decimal(0)
        return (Decimal(self.latency_us) / self.calls / 1000).quantize(Decimal("0.1"))


# --- the stores ---------------------------------------------------------------------------------


class LocalStore:
    """Buckets, cooldowns and statistics of this process (no Redis: one host, one process tree)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}  # bucket key -> full_at_us; cooldown key -> until_us
        self._slots: dict[str, dict[int, list[int]]] = {}  # stats key -> slot -> [calls, errors, latency]

    def acquire(self, cooldown_key: str, charges: list[Charge], now_us: int) -> tuple[int, str]:
        """0 and "" when granted, else the microseconds to wait and which key said so."""
        with self._lock:
            until = self._values.get(cooldown_key, 0)
            if until > now_us:
                return until - now_us, cooldown_key
            taken: list[tuple[str, int]] = []
            wait_us, which = 0, ""
            for key, interval_us, burst, cost in charges:
                take = bucket_take(
                    full_at_us=self._values.get(key, 0),
                    now_us=now_us,
                    cost=cost,
                    interval_us=interval_us,
                    burst=burst,
                )
                taken.append((key, take.full_at_us))
                if take.wait_us > wait_us:  # the longest wait decides, as in the Redis script
                    wait_us, which = take.wait_us, key
            if wait_us:
                return wait_us, which
            self._values.update(taken)
            return 0, ""

    def cool_down(self, cooldown_key: str, until_us: int, now_us: int) -> None:
        with self._lock:
            if until_us > self._values.get(cooldown_key, 0):
                self._values[cooldown_key] = until_us

    def cooldown_until(self, cooldown_key: str) -> int:
        with self._lock:
            return self._values.get(cooldown_key, 0)

    def record(self, stats_key: str, slot: int, *, ok: bool, latency_us: int, keep_slots: int) -> None:
        with self._lock:
            slots = self._slots.setdefault(stats_key, {})
            counts = slots.get(slot)
            if counts is None:  # a new slot: the ones that left the window go
                for old in [s for s in slots if s <= slot - keep_slots]:
                    del slots[old]
                counts = slots[slot] = [0, 0, 0]
            counts[0] += 1
            counts[1] += 0 if ok else 1
            counts[2] += latency_us

    def stats(self, stats_key: str, slots: range) -> CallStats:
        with self._lock:
            kept = self._slots.get(stats_key, {})
            rows = [kept.get(s, [0, 0, 0]) for s in slots]
        return CallStats(sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows))

    def reset(self) -> None:
        with self._lock:
            self._values.clear()
            self._slots.clear()


# KEYS[1] the cooldown, KEYS[2..] the buckets; ARGV[1] now_us, then interval_us, burst, cost per
# bucket. Returns {0, 0} when granted (every bucket charged), else {wait_us, index of the key}.
# Numbers are written with %.0f: Lua's own tostring would round microsecond times.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local cool = tonumber(redis.call('GET', KEYS[1]) or '0')
if cool > now then return {cool - now, 1} end
local after = {}
local wait, which = 0, 0
for i = 2, #KEYS do
  local j = (i - 2) * 3 + 2
  local interval, burst, cost = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local start = tonumber(redis.call('GET', KEYS[i]) or '0')
  if start < now then start = now end
  after[i] = start + cost * interval
  local excess = after[i] - now - burst * interval
  if excess > wait then wait, which = excess, i end
end
if wait > 0 then return {wait, which} end
for i = 2, #KEYS do
  local ttl_ms = math.floor((after[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', after[i]), 'PX', string.format('%d', ttl_ms))
end
return {0, 0}
"""

# KEYS[1] the cooldown; ARGV[1] until_us, ARGV[2] now_us. Only ever moves the cooldown later.
_COOL_DOWN = """
local untl, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  local ttl_ms = math.floor((untl - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', string.format('%d', ttl_ms))
end
return 0
"""


class RedisStore:
    """The same state in Redis, shared by every process that uses the same URL and prefix."""

    def __init__(self, url: str, prefix: str = "tm:rl:") -> None:
        import redis

        self.prefix = prefix
        self._redis = redis.Redis.from_url(url)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._cool_down = self._redis.register_script(_COOL_DOWN)

    def acquire(self, cooldown_key: str, charges: list[Charge], now_us: int) -> tuple[int, str]:
        keys = [self.prefix + cooldown_key] + [self.prefix + c[0] for c in charges]
        args: list[int] = [now_us]
        for _key, interval_us, burst, cost in charges:
            args += [interval_us, burst, cost]
        wait_us, which = self._acquire(keys=keys, args=args)
        if int(wait_us) <= 0:
            return 0, ""
        return int(wait_us), keys[int(which) - 1][len(self.prefix) :]

    def cool_down(self, cooldown_key: str, until_us: int, now_us: int) -> None:
        self._cool_down(keys=[self.prefix + cooldown_key], args=[until_us, now_us])

    def cooldown_until(self, cooldown_key: str) -> int:
        return int(self._redis.get(self.prefix + cooldown_key) or 0)

    def record(self, stats_key: str, slot: int, *, ok: bool, latency_us: int, keep_slots: int) -> None:
        key = f"{self.prefix}{stats_key}:{slot}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(key, "calls", 1)
        if not ok:
            pipe.hincrby(key, "errors", 1)
        pipe.hincrby(key, "latency_us", latency_us)
        pipe.expire(key, max(keep_slots * int(settings.BROKER_CALL_STATS_SLOT_SECONDS), 60))
        pipe.execute()

    def stats(self, stats_key: str, slots: range) -> CallStats:
        pipe = self._redis.pipeline(transaction=False)
        for slot in slots:
            pipe.hmget(f"{self.prefix}{stats_key}:{slot}", "calls", "errors", "latency_us")
        rows = [[int(v or 0) for v in row] for row in pipe.execute()]
        return CallStats(sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows))


_local = LocalStore()
_redis_stores: dict[tuple[str, str], RedisStore] = {}
_redis_lock = threading.Lock()


def rate_store() -> LocalStore | RedisStore:
    """Redis when ``REDIS_URL`` is set, else this process's store."""
    url = settings.REDIS_URL
    if not url:
        return _local
    prefix = settings.BROKER_RATE_LIMIT_KEY_PREFIX
    store = _redis_stores.get((url, prefix))
    if store is None:
        with _redis_lock:
            store = _redis_stores.setdefault((url, prefix), RedisStore(url, prefix))
    return store


def rate_store_reset() -> None:
    """Forget this process's buckets, cooldowns and statistics (tests; Redis keys expire)."""
    _local.reset()


# --- keys and the statistics window ---------------------------------------------------------------


def cooldown_key(account_pk: int) -> str:
    return f"cool:{account_pk}"


def stats_key(account_pk: int) -> str:
    return f"stats:{account_pk}"


def now_us() -> int:
    """The service clock (trademaster.clock) in microseconds since the epoch."""
    now = clock_now()
    return int(now.timestamp()) * US + now.microsecond


def _window(at_us: int) -> tuple[int, range]:
    """The current statistics slot and the slots of the window that ends with it."""
    slot_us = int(settings.BROKER_CALL_STATS_SLOT_SECONDS) * US
    count = max(int(settings.BROKER_CALL_STATS_WINDOW_SECONDS) * US // slot_us, 1)
    slot = at_us // slot_us
    return slot, range(slot - count + 1, slot + 1)


def call_stats(
    account_pk: int, *, at_us: int | None = None, store: LocalStore | RedisStore | None = None
) -> CallStats:
    """The account's calls in the window ending at ``at_us`` (default now)."""
    _slot, slots = _window(now_us() if at_us is None else at_us)
    return (store or rate_store()).stats(stats_key(account_pk), slots)


# --- the wrapper ----------------------------------------------------------------------------------


def _store_failed(what: str, exc: Exception) -> None:
    logger.warning("broker rate-limit store unavailable (%s): %s; calling without it", what, exc)


class LimitedAdapter:
    """Forwards every method and attribute to the adapter it wraps, counting and pacing the
    interface calls (see the module docstring). ``isinstance`` sees the wrapped class."""

    _OWN = frozenset({"_inner", "_account_pk", "_limits", "_store", "_now_us", "_perf_ns"})

    def __init__(
        self,
        inner: Any,
        *,
        account_pk: int,
        limits: tuple[Limit, ...],
        store: LocalStore | RedisStore | None = None,
        clock_us: Callable[[], int] = now_us,
        perf_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_account_pk", account_pk)
        object.__setattr__(self, "_limits", limits)
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_now_us", clock_us)
        object.__setattr__(self, "_perf_ns", perf_ns)

    @classmethod
    def for_account(cls, inner: Any, account: Any) -> LimitedAdapter:
        overrides = getattr(settings, "BROKER_RATE_LIMITS", None) or {}
        return cls(inner, account_pk=account.pk, limits=limits_for(account.broker_name, overrides))

    # the wrapped adapter answers for everything else (capabilities, stream_start, ...)
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    @property
    def wrapped(self) -> Any:
        return self._inner

    # --- the interface ------------------------------------------------------------------------
    def place(self, request):
        return self._call("place", request)

    def cancel(self, ref):
        return self._call("cancel", ref)

    def replace(self, ref, change):
        return self._call("replace", ref, change)

    def get_order(self, client_order_id, broker_order_id=None):
        return self._call("get_order", client_order_id, broker_order_id)

    def open_orders(self):
        return self._call("open_orders")

    def positions(self):
        return self._call("positions")

    def account(self):
        return self._call("account")

    def quote(self, symbol):
        return self._call("quote", symbol)

    def poll_updates(self, now):
        return self._call("poll_updates", now)

    def health(self):
        return self._call("health")

    # --- pacing and statistics ------------------------------------------------------------------
    def _charges(self, method: str) -> list[Charge]:
        charges = []
        for limit in self._limits:
            cost = limit.cost(method)
            if cost:
                charges.append(
                    (f"bucket:{self._account_pk}:{limit.name}", limit.interval_us, limit.burst, cost)
                )
        return charges

    def _call(self, method: str, *args: Any) -> Any:
        store = self._store or rate_store()
        cool = cooldown_key(self._account_pk)
        start_us = self._now_us()
        try:
            wait_us, key = store.acquire(cool, self._charges(method), start_us)
        except RedisError as exc:
            _store_failed("acquire", exc)
            wait_us, key = 0, ""
        if wait_us > 0:
            wait = seconds(wait_us)
            if key == cool:
                why = f"the broker asked to wait; no calls to this account for {wait}s more"
            else:
                why = f"local {key.rsplit(':', 1)[-1]} limit reached; next token in {wait}s"
            raise BrokerRetryable(f"rate limited: {why}", retry_after=wait, code="RATE_LIMITED")
        began = self._perf_ns()
        ok = False  # until the broker answers; a refusal is an answer, not a connection error
        try:
            result = getattr(self._inner, method)(*args)
            ok = True
            return result
        except BrokerRejected:
            ok = True
            raise
        except BrokerRetryable as exc:
            advised = Decimal(str(exc.retry_after))
            if advised > 0:
                until = self._now_us() + int(advised * US)
                try:
                    store.cool_down(cool, until, start_us)
                except RedisError as store_exc:
                    _store_failed("cool_down", store_exc)
            raise
        finally:
            self._record(ok, (self._perf_ns() - began) // 1000, start_us)

    def _record(self, ok: bool, latency_us: int, at_us: int) -> None:
        store = self._store or rate_store()
        slot, slots = _window(at_us)
        try:
            store.record(
                stats_key(self._account_pk), slot, ok=ok, latency_us=latency_us, keep_slots=len(slots)
            )
        except RedisError as exc:
            _store_failed("record", exc)
