"""The rate-limiting wrapper (brokers.ratelimit) around the real Alpaca adapter, against the fake
Alpaca server on loopback: the fake counts every request it receives."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal as D

import pytest
import redis
from django.utils import timezone

from brokers.adapters.alpaca import AlpacaAdapter
from brokers.domain.adapter import BrokerRetryable, BrokerUnknownOutcome, Health, OrderRef
from brokers.domain.ratelimit import US, Limit
from brokers.models import BrokerAccount, ConnectionStatus
from brokers.ratelimit import LimitedAdapter, RedisStore, call_stats
from brokers.services import adapter_for, broker_account_health_check
from orders.domain.enums import OrderType
from tests.fakes.alpaca import FakeAlpaca
from tests.integration.brokers.test_alpaca_adapter import order
from trademaster.clock import clock_set
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db

REDIS_URL = "redis://127.0.0.1:6379/0"
START = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)
RATE_LIMITED = (429, {"code": 42910000, "message": "rate limit exceeded"})


@pytest.fixture
def fake():
    server = FakeAlpaca().start()
    yield server
    server.stop()


@pytest.fixture
def clock(settings, tmp_path):
    """The service clock (trademaster.clock), moved by the test: ``clock(seconds)`` after START."""
    path = tmp_path / "clock"
    settings.TRADEMASTER_CLOCK_FILE = str(path)

    def at(seconds: float = 0) -> dt.datetime:
        now = START + dt.timedelta(seconds=seconds)
        clock_set(path, now)
        return now

    at(0)
    return at


@pytest.fixture
def account(trader, fake, settings):
    settings.ALPACA_TRADING_URL = fake.url
    settings.ALPACA_TIMEOUT_SECONDS = 2
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "alpaca": "brokers.adapters.alpaca.AlpacaAdapter"}
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="alpaca",
        account_id="PA3TEST0001",
        label="Alpaca paper",
        api_key_encrypted=fake.key,
        api_secret_encrypted=fake.secret,
        sandbox_mode=True,
    )
    return BrokerAccount.objects.get(pk=created.pk)


@pytest.fixture
def redis_prefix():
    """A key prefix of its own in the real Redis; its keys are deleted afterwards."""
    prefix = f"test:rl:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)


def test_a_429_stops_every_call_to_the_account_until_the_advised_time(account, fake, clock):
    adapter = adapter_for(account)
    fake.fail_next(
        *RATE_LIMITED, {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0", "Retry-After": "7"}
    )
    with pytest.raises(BrokerRetryable) as first:
        adapter.place(order("rl-1"))
    assert (first.value.retry_after, first.value.code) == (7, "RATE_LIMITED")
    reached = len(fake.requests)

    # within the cooldown nothing reaches Alpaca, reads included, and the wait shrinks with time
    clock(3)
    for call in (lambda: adapter.place(order("rl-1")), adapter.account, lambda: adapter.quote("AAPL")):
        with pytest.raises(BrokerRetryable, match="the broker asked to wait") as held:
            call()
        assert (held.value.code, held.value.retry_after) == ("RATE_LIMITED", D("4.000"))
    assert len(fake.requests) == reached

    clock(7)
    updates = adapter.place(order("rl-1"))
    assert updates[0].client_order_id == "rl-1"
    assert len(fake.requests) == reached + 1
    assert len([o for o in fake.orders.values() if o["client_order_id"].endswith("rl-1")]) == 1


def test_a_429_with_only_the_reset_header_cools_down_until_the_reset(account, fake, clock, settings):
    settings.TRADEMASTER_CLOCK_FILE = ""  # the adapter reads X-Ratelimit-Reset against the wall clock
    adapter = adapter_for(account)
    reset = int(timezone.now().timestamp()) + 30
    fake.fail_next(*RATE_LIMITED, {"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(reset)})
    with pytest.raises(BrokerRetryable):
        adapter.account()
    with pytest.raises(BrokerRetryable) as held:
        adapter.account()
    assert D(28) <= held.value.retry_after <= D(30)
    assert len(fake.requests) == 1


def test_the_local_bucket_refuses_without_calling_the_broker_and_refills_with_time(
    account, fake, clock, settings
):
    settings.BROKER_RATE_LIMITS = {"alpaca": [{"name": "requests", "count": 3, "seconds": 60, "burst": 2}]}
    adapter = adapter_for(account)
    adapter.account()
    adapter.account()
    with pytest.raises(BrokerRetryable, match="local requests limit reached") as held:
        adapter.account()
    assert (held.value.code, held.value.retry_after) == ("RATE_LIMITED", D("60.000"))  # 1 token per 60 s
    assert len(fake.requests) == 2
    # polling and health checks are paced elsewhere: an empty bucket does not stop them
    assert adapter.health().status is Health.CONNECTED
    assert adapter.poll_updates(timezone.now()) == []
    clock(60)
    adapter.account()
    assert [path for _m, path, _b in fake.requests].count("/v2/account") == 3


def test_write_calls_also_take_from_the_orders_limit(account, fake, clock, settings):
    settings.BROKER_RATE_LIMITS = {
        "alpaca": [
            {"name": "requests", "count": 200, "seconds": 60, "burst": 20},
            {"name": "orders", "count": 2, "seconds": 10, "burst": 1, "orders_only": True},
        ]
    }
    fake.fill_on_place = False
    adapter = adapter_for(account)
    [accepted] = adapter.place(order("w-1", order_type=OrderType.LIMIT, price=D("100")))
    with pytest.raises(BrokerRetryable, match="local orders limit reached") as held:
        adapter.cancel(OrderRef("w-1", accepted.broker_order_id))
    assert held.value.retry_after == D("10.000")
    assert adapter.account().cash == D("100000")  # reads still go out
    assert [m for m, _p, _b in fake.requests] == ["POST", "GET"]


def test_the_wrapper_forwards_attributes_and_isinstance(account):
    adapter = adapter_for(account)
    assert isinstance(adapter, AlpacaAdapter)
    assert type(adapter) is LimitedAdapter
    assert adapter.capabilities is adapter.wrapped.capabilities
    assert adapter.stream_start.__func__ is AlpacaAdapter.stream_start
    assert not hasattr(adapter, "no_such_attribute")
    adapter.base_url = "http://127.0.0.1:9"  # a setting changes on the adapter itself
    assert adapter.wrapped.base_url == "http://127.0.0.1:9"


def test_the_error_rate_of_the_window_degrades_a_connected_account(account, fake, clock, settings):
    settings.BROKER_ERROR_RATE_MIN_CALLS = 4
    settings.BROKER_ERROR_RATE_DEGRADED_PERCENT = D(20)
    adapter = adapter_for(account)
    adapter.account()
    adapter.account()
    for cid in ("e-1", "e-2"):
        fake.fail_next(500, {"code": 50010000, "message": "internal server error"})
        with pytest.raises(BrokerUnknownOutcome):
            adapter.place(order(cid))
    stats = call_stats(account.pk)
    assert (stats.calls, stats.errors, stats.error_rate) == (4, 2, D("50.00"))

    assert broker_account_health_check(account=account) == ConnectionStatus.DEGRADED
    account.refresh_from_db()
    assert (account.connection_status, account.error_rate, account.calls_checked) == (
        "DEGRADED",
        D("40.00"),
        5,
    )
    [event] = OutboxEvent.objects.filter(type="BROKER_STATUS", account_id=account.pk).values_list(
        "payload", flat=True
    )
    assert (event["old_status"], event["new_status"]) == ("CONNECTED", "DEGRADED")
    assert event["reason"] == "40.00% of the last 5 broker calls failed (threshold 20%)"

    # the window moves on: the failures age out and the next check finds the account healthy
    clock(settings.BROKER_CALL_STATS_WINDOW_SECONDS + 10)
    for _ in range(4):
        adapter.account()
    assert broker_account_health_check(account=account) == ConnectionStatus.CONNECTED
    account.refresh_from_db()
    assert (account.error_rate, account.calls_checked) == (D("0.00"), 5)


def test_a_redis_store_is_shared_by_two_processes_adapters(account, fake, clock, redis_prefix):
    """Two wrappers over two adapter instances, as in two processes: one bucket, one cooldown."""
    limits = (Limit("requests", 3, 60, 2),)

    def process() -> LimitedAdapter:
        return LimitedAdapter(
            AlpacaAdapter(account),
            account_pk=account.pk,
            limits=limits,
            store=RedisStore(REDIS_URL, redis_prefix),
        )

    web, worker = process(), process()
    web.account()
    worker.account()
    with pytest.raises(BrokerRetryable, match="local requests limit reached"):
        web.account()
    assert len(fake.requests) == 2

    clock(60)
    fake.fail_next(*RATE_LIMITED, {"Retry-After": "9"})
    with pytest.raises(BrokerRetryable):
        worker.account()
    clock(61)
    with pytest.raises(BrokerRetryable, match="the broker asked to wait") as held:
        web.account()
    assert held.value.retry_after == D("8.000")
    assert len(fake.requests) == 3
    stats = call_stats(account.pk, store=RedisStore(REDIS_URL, redis_prefix))
    assert (stats.calls, stats.errors) == (3, 1)


def test_the_redis_script_never_grants_more_tokens_than_the_bucket_holds(redis_prefix):
    store = RedisStore(REDIS_URL, redis_prefix)
    charges = [("bucket:1:requests", 60 * US, 25, 1)]  # 25 at once, then one a minute
    now = int(START.timestamp()) * US
    granted: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(20):
            wait, _key = store.acquire("cool:1", charges, now)
            if wait == 0:
                with lock:
                    granted.append(1)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(granted) == 25
    assert store.acquire("cool:1", charges, now + 60 * US) == (0, "")
