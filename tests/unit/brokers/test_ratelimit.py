"""The token bucket, the broker limits table and the re-send delay (brokers.domain.ratelimit)."""

from __future__ import annotations

from collections import deque
from decimal import Decimal as D

import pytest

from brokers.domain.ratelimit import (
    DEFAULT_LIMITS,
    US,
    Limit,
    bucket_take,
    bucket_tokens,
    limits_for,
    retry_delay,
    seconds,
)
from brokers.ratelimit import CallStats, LocalStore

T0 = 1_764_990_000 * US  # any epoch time in microseconds


def take(limit: Limit, full_at: int, now: int, cost: int = 1):
    return bucket_take(
        full_at_us=full_at, now_us=now, cost=cost, interval_us=limit.interval_us, burst=limit.burst
    )


def test_the_interval_leaves_room_for_the_burst_and_rounds_up():
    alpaca = Limit("requests", 200, 60, 20)
    assert alpaca.interval_us == 333_334  # 60 s / 180 tokens, never faster than the limit
    assert Limit("messages", 45, 1, 5).interval_us == 25_000


def test_a_full_bucket_lets_the_burst_out_at_once_then_one_token_per_interval():
    limit = Limit("orders", 50, 10, 5)  # 45 tokens per 10 s after a burst of 5
    state = 0
    for _ in range(5):
        result = take(limit, state, T0)
        assert result.allowed
        state = result.full_at_us
    refused = take(limit, state, T0)
    assert (refused.allowed, refused.full_at_us) == (False, state)  # a refusal changes nothing
    assert refused.wait_us == limit.interval_us
    assert not take(limit, state, T0 + limit.interval_us - 1).allowed
    assert take(limit, state, T0 + limit.interval_us).allowed


def test_a_weighted_call_waits_for_all_its_tokens():
    limit = Limit("request_weight", 6000, 60, 600)
    state = take(limit, 0, T0, cost=580).full_at_us
    assert bucket_tokens(full_at_us=state, now_us=T0, interval_us=limit.interval_us, burst=600) == D(20)
    refused = take(limit, state, T0, cost=80)
    assert not refused.allowed
    assert refused.wait_us == 60 * limit.interval_us


def test_a_greedy_caller_never_exceeds_the_limit_in_any_window():
    limit = Limit("requests", 200, 60, 20)
    sent: deque[int] = deque()
    state, most = 0, 0
    for step in range(0, 180 * US, 20_000):  # try every 20 ms for three minutes
        now = T0 + step
        result = take(limit, state, now)
        if result.allowed:
            state = result.full_at_us
            sent.append(now)
        while sent and sent[0] <= now - limit.seconds * US:
            sent.popleft()
        most = max(most, len(sent))
    # the burst plus a period of refill: up to the broker's limit, never past it
    assert 195 <= most <= 200


def test_idle_time_refills_the_bucket_but_never_beyond_the_burst():
    limit = Limit("requests", 200, 60, 20)
    state = take(limit, 0, T0, cost=20).full_at_us
    later = T0 + 3600 * US
    assert bucket_tokens(full_at_us=state, now_us=later, interval_us=limit.interval_us, burst=20) == D(20)
    assert take(limit, state, later, cost=20).allowed
    assert not take(limit, state, later, cost=21).allowed


def test_the_limits_table_follows_the_brokers_documentation():
    (alpaca,) = limits_for("alpaca")
    assert (alpaca.count, alpaca.seconds) == (200, 60)
    weight, orders, daily = limits_for("binance")
    assert (weight.count, weight.seconds, orders.count, orders.seconds, daily.count, daily.seconds) == (
        6000,
        60,
        50,
        10,
        160_000,
        86_400,
    )
    # request weight per endpoint; orders count new orders only
    assert (weight.cost("open_orders"), weight.cost("account"), weight.cost("place")) == (80, 20, 1)
    assert (orders.cost("place"), orders.cost("replace"), orders.cost("cancel"), orders.cost("quote")) == (
        1,
        1,
        0,
        0,
    )
    requests, schwab_orders = limits_for("schwab")
    assert (requests.count, schwab_orders.count, schwab_orders.seconds) == (120, 120, 60)
    assert (requests.cost("place"), requests.cost("quote"), schwab_orders.cost("cancel")) == (0, 1, 1)
    (ib,) = limits_for("ibkr")
    assert (ib.count, ib.seconds) == (45, 1)
    assert limits_for("paper") == () == limits_for("unknown-broker")


def test_polling_and_health_checks_are_never_held_back_by_a_bucket():
    for limits in DEFAULT_LIMITS.values():
        for limit in limits:
            assert limit.cost("poll_updates") == 0 == limit.cost("health")
            assert limit.cost("stream_start") == 0


def test_settings_replace_a_brokers_limits():
    overrides = {"schwab": [{"name": "orders", "count": 60, "seconds": 60, "burst": 5, "orders_only": True}]}
    (only,) = limits_for("schwab", overrides)
    assert (only.name, only.count, only.burst, only.orders_only) == ("orders", 60, 5, True)
    assert limits_for("alpaca", overrides) == DEFAULT_LIMITS["alpaca"]
    with pytest.raises(ValueError, match="count > burst"):
        limits_for("x", {"x": [{"name": "bad", "count": 5, "seconds": 1, "burst": 5}]})


def test_the_resend_delay_backs_off_exponentially_with_jitter_and_honours_the_advice():
    base, cap = D(1), D(60)
    no_jitter = [retry_delay(attempt=n, advised=D(0), base=base, cap=cap, jitter=D(0)) for n in range(1, 9)]
    assert no_jitter == [D("0.5"), D(1), D(2), D(4), D(8), D(16), D(30), D(30)]  # half of 1, 2, 4 ... 60
    assert retry_delay(attempt=3, advised=D(0), base=base, cap=cap, jitter=D("0.999")) == D("3.998")
    # never sooner than the broker said
    assert retry_delay(attempt=1, advised=D(7), base=base, cap=cap, jitter=D("0.5")) == D(7)
    assert retry_delay(attempt=8, advised=D(7), base=base, cap=cap, jitter=D("0.5")) == D(45)


def test_microseconds_round_up_to_whole_milliseconds():
    assert seconds(1) == D("0.001")
    assert seconds(2_500_000) == D("2.5")


def test_the_local_store_refuses_during_a_cooldown_and_charges_all_buckets_or_none():
    store = LocalStore()
    charges = [("bucket:1:requests", 1000, 2, 1), ("bucket:1:orders", 1000, 1, 1)]
    assert store.acquire("cool:1", charges, T0) == (0, "")
    # the orders bucket is empty: refused, and the requests bucket keeps its token
    assert store.acquire("cool:1", charges, T0) == (1000, "bucket:1:orders")
    assert store.acquire("cool:1", charges[:1], T0) == (0, "")
    store.cool_down("cool:1", T0 + 5 * US, T0)
    store.cool_down("cool:1", T0 + 2 * US, T0)  # a shorter cooldown never cuts a longer one
    assert store.acquire("cool:1", [], T0 + US) == (4 * US, "cool:1")
    assert store.acquire("cool:1", [], T0 + 5 * US) == (0, "")


def test_call_statistics_roll_over_a_window_of_slots():
    store = LocalStore()
    for slot, ok in [(10, True), (11, False), (12, True), (12, False)]:
        store.record("stats:1", slot, ok=ok, latency_us=2000, keep_slots=3)
    window = store.stats("stats:1", range(10, 13))
    assert (window.calls, window.errors, window.error_rate, window.average_latency_ms) == (
        4,
        2,
        D("50.00"),
        D("2.0"),
    )
    store.record("stats:1", 13, ok=True, latency_us=4000, keep_slots=3)  # slot 10 falls out
    later = store.stats("stats:1", range(11, 14))
    assert (later.calls, later.errors, later.error_rate) == (4, 2, D("50.00"))
    assert store.stats("stats:1", range(10, 11)) == CallStats()
    assert CallStats().error_rate == D("0.00")
