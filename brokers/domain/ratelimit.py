"""Broker rate limits, the token bucket that keeps them, and the re-send delay. Plain Python.

A broker limit reads "at most ``count`` units per ``seconds``" (units are requests, request
weight or orders, per broker account). It is kept as a token bucket of ``burst`` tokens refilled
at ``(count - burst) / seconds`` tokens a second: any window of ``seconds`` then sees at most a
full bucket plus one period of refill, ``count`` units, so a broker counting per fixed or
sliding window is never exceeded while short bursts still go out at once.

The bucket is one integer, the time in microseconds at which it would be full again (the
"theoretical arrival time" of GCRA, the same bucket seen from its refill time). Taking ``cost``
tokens at ``now`` succeeds when ``max(full_at, now) + cost * interval - now <= burst * interval``
and moves ``full_at`` to ``max(full_at, now) + cost * interval``; otherwise the caller must wait
the excess. Integer math only: the Redis script of :mod:`brokers.ratelimit` does the same sums.

The default table holds the brokers' published limits (noted beside each entry);
``settings.BROKER_RATE_LIMITS`` replaces a broker's list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

US = 1_000_000  # microseconds per second

# calls that create, cancel or change an order: they also take from the "orders" limits
WRITE_METHODS = frozenset({"place", "cancel", "replace"})
# the adapter interface methods the limiter counts (others pass through uncounted)
COUNTED_METHODS = frozenset(
    {"place", "cancel", "replace", "get_order", "open_orders", "positions", "account", "quote"}
)
# paced by their own schedules (the feed worker, the 30 s health beat) and often answered without
# a request (a stream's buffer): never held back by a bucket, though a broker cooldown stops them
UNCOUNTED_METHODS = frozenset({"poll_updates", "health"})


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` units per ``seconds``; ``burst`` of them may go out back to back.

    ``orders_only`` limits count the write calls only. ``weights`` gives a method's units
    (default 1; 0 means the limit does not count that method).
    """

    name: str
    count: int
    seconds: int
    burst: int
    orders_only: bool = False
    weights: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.burst < 1 or self.count <= self.burst:
            raise ValueError(f"limit {self.name!r}: need seconds > 0 and count > burst >= 1")

    @property
    def interval_us(self) -> int:
        """Microseconds per token, rounded up (never faster than the limit)."""
        return -(-self.seconds * US // (self.count - self.burst))

    def cost(self, method: str) -> int:
        if method not in COUNTED_METHODS or (self.orders_only and method not in WRITE_METHODS):
            return 0
        return dict(self.weights).get(method, 1)


@dataclass(frozen=True, slots=True)
class Take:
    allowed: bool
    full_at_us: int  # the bucket's new state (unchanged when refused)
    wait_us: int  # how long until the tokens are there (0 when allowed)


def bucket_take(*, full_at_us: int, now_us: int, cost: int, interval_us: int, burst: int) -> Take:
    """Take ``cost`` tokens from a bucket whose state is ``full_at_us`` (0: never used)."""
    start = max(full_at_us, now_us)
    after = start + cost * interval_us
    excess = after - now_us - burst * interval_us
    if excess > 0:
        return Take(False, full_at_us, excess)
    return Take(True, after, 0)


def bucket_tokens(*, full_at_us: int, now_us: int, interval_us: int, burst: int) -> Decimal:
    """Tokens in the bucket at ``now_us`` (for display and tests)."""
    missing = Decimal(max(full_at_us - now_us, 0)) / interval_us
    return Decimal(burst) - missing


# Binance REQUEST_WEIGHT per adapter call (the endpoint weights of the Spot API; a call that makes
# several requests sums them): get_order GET /order 4; open_orders GET /openOrders without a
# symbol 80; positions and account GET /account 20; quote bookTicker 2 + ticker/price 2;
# replace GET /order 4 + cancelReplace 1.
BINANCE_WEIGHTS = (
    ("place", 1),
    ("cancel", 1),
    ("replace", 5),
    ("get_order", 4),
    ("open_orders", 80),
    ("positions", 20),
    ("account", 20),
    ("quote", 4),
)

DEFAULT_LIMITS: dict[str, tuple[Limit, ...]] = {
    # 200 requests a minute per account (paper = live); 429 with X-Ratelimit-Reset beyond
    "alpaca": (Limit("requests", 200, 60, 20),),
    # REQUEST_WEIGHT 6000/min (per IP; kept per account here), ORDERS 50/10 s and 160,000/day per
    # account (new orders; a cancel is not an order)
    "binance": (
        Limit("request_weight", 6000, 60, 600, weights=BINANCE_WEIGHTS),
        Limit("orders", 50, 10, 5, orders_only=True, weights=(("cancel", 0),)),
        Limit("orders_day", 160_000, 86_400, 1000, orders_only=True, weights=(("cancel", 0),)),
    ),
    # non-order requests 120/min (per app); order requests (place/replace/cancel) up to 120/min
    # per account, as chosen at app registration: 120 here, lower it in settings if yours is less
    "schwab": (
        Limit("requests", 120, 60, 10, weights=(("place", 0), ("cancel", 0), ("replace", 0))),
        Limit("orders", 120, 60, 10, orders_only=True),
    ),
    # TWS takes 50 messages/s from a client and drops the connection past it: 45 leaves headroom
    "ibkr": (Limit("messages", 45, 1, 5),),
    # the simulated venues have no limit
    "paper": (),
}


def limit_from(data: Mapping[str, Any]) -> Limit:
    """A limit from settings: ``{"name", "count", "seconds", "burst", "orders_only"?, "weights"?}``."""
    weights = data.get("weights") or {}
    return Limit(
        name=str(data["name"]),
        count=int(data["count"]),
        seconds=int(data["seconds"]),
        burst=int(data.get("burst", max(int(data["count"]) // 10, 1))),
        orders_only=bool(data.get("orders_only", False)),
        weights=tuple((str(k), int(v)) for k, v in dict(weights).items()),
    )


def limits_for(
    broker_name: str, overrides: Mapping[str, Iterable[Mapping[str, Any]]] | None = None
) -> tuple[Limit, ...]:
    """The limits of a broker: the settings' list when it names the broker, else the default
    table; a broker in neither has no limit."""
    if overrides and broker_name in overrides:
        return tuple(limit_from(item) for item in overrides[broker_name])
    return DEFAULT_LIMITS.get(broker_name, ())


def seconds(us: int) -> Decimal:
    """Microseconds as seconds, rounded up to the millisecond."""
    return (Decimal(us) / US).quantize(Decimal("0.001"), rounding=ROUND_CEILING)


def retry_delay(*, attempt: int, advised: Decimal, base: Decimal, cap: Decimal, jitter: Decimal) -> Decimal:
    """Seconds to wait before re-sending an order after its ``attempt``-th refusal (1, 2, ...).

    Exponential backoff ``base * 2**(attempt - 1)``, at most ``cap``, with "equal jitter" (half of
    it fixed, the other half scaled by ``jitter`` in [0, 1)) so that orders refused together do
    not come back together; never sooner than the broker ``advised``.
    """
    backoff = min(cap, base * 2 ** (attempt - 1))
    half = backoff / 2
    return max(half + half * jitter, advised)
