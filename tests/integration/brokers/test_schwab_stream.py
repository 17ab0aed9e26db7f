"""The Schwab adapter's ACCT_ACTIVITY streamer against the fake's streamer WebSocket on loopback:
LOGIN and SUBS, activity as a cue for the REST re-read, drop and reconnect, refused LOGIN."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.adapters.schwab import SchwabAdapter
from brokers.domain.adapter import (
    AssetClass,
    BrokerFatal,
    BrokerOrderRequest,
    Health,
    UpdateKind,
)
from brokers.models import BrokerAccount
from brokers.services import adapter_for
from orders.domain.enums import OrderType, Side, TimeInForce
from tests.fakes.schwab import FakeSchwab

pytestmark = pytest.mark.django_db

D = Decimal
WAIT = 5.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll a condition until it holds or the deadline passes (the event is in another thread)."""
    deadline = time.monotonic() + timeout
    ready = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        ready.wait(0.01)
    return True


@pytest.fixture
def fake():
    server = FakeSchwab()
    server.fill_on_read = False  # executions happen when a test says so, and push activity
    server.fill_on_place = False
    server.heartbeat_seconds = 0.2
    server.start()
    yield server
    server.stop()


@pytest.fixture
def adapter(settings, trader, fake):
    settings.SCHWAB_TRADER_URL = fake.trader_url
    settings.SCHWAB_TOKEN_URL = fake.token_url
    settings.SCHWAB_TIMEOUT_SECONDS = 2
    settings.SCHWAB_STREAM_SAFETY_POLL_SECONDS = 3600  # no safety poll unless a test wants one
    settings.SCHWAB_STREAM_BACKOFF_SECONDS = 0.05
    settings.SCHWAB_STREAM_IDLE_SECONDS = 5
    account = BrokerAccount.objects.create(
        user=trader,
        broker_name="schwab",
        account_id=fake.account_number,
        label="Schwab",
        api_key_encrypted=fake.app_key,
        api_secret_encrypted=fake.secret_json(),
        sandbox_mode=False,
    )
    built: SchwabAdapter = adapter_for(BrokerAccount.objects.get(pk=account.pk))
    yield built
    built.stream_stop()


@pytest.fixture
def woke() -> threading.Event:
    return threading.Event()


def order(cid: str = "tm-1", qty: str = "10") -> BrokerOrderRequest:
    return BrokerOrderRequest(
        client_order_id=cid,
        symbol="AAPL",
        asset_class=AssetClass.EQUITY,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D(qty),
        time_in_force=TimeInForce.DAY,
    )


def rest_reads(fake) -> int:
    return sum(1 for method, path, _ in fake.requests if method == "GET" and "/orders/" in path)


def logins(fake) -> list[dict]:
    return [r for r in fake.stream_requests if r.get("command") == "LOGIN"]


def listening(adapter, woke) -> None:
    adapter.stream_start(woke.set)
    assert adapter.stream_listening.wait(WAIT), adapter.stream_error
    assert woke.wait(WAIT)  # the catch-up wake-up


def test_login_and_subs_follow_the_user_preference_streamer_info(adapter, fake, woke):
    listening(adapter, woke)

    login, subs = fake.stream_requests[:2]
    assert (login["service"], login["command"], login["requestid"]) == ("ADMIN", "LOGIN", "0")
    assert login["SchwabClientCustomerId"] == fake.customer_id
    assert login["SchwabClientCorrelId"] == fake.correl_id
    assert login["parameters"]["Authorization"] in fake.access_tokens
    params = login["parameters"]
    assert (params["SchwabClientChannel"], params["SchwabClientFunctionId"]) == ("N9", "APIAPP")
    assert (subs["service"], subs["command"]) == ("ACCT_ACTIVITY", "SUBS")
    assert subs["parameters"] == {"keys": fake.correl_id, "fields": "0,1,2,3"}
    assert ("GET", "/userPreference", None) in fake.requests
    assert fake.stream_subscribers() == 1
    adapter.stream_start(woke.set)  # idempotent: no second connection
    assert len(logins(fake)) == 1 and adapter.stream_connects == 1


def test_a_fill_is_a_cue_and_the_next_poll_returns_it_from_rest(adapter, fake, woke):
    fake.fills["AAPL"] = [(D("4"), D("187.25")), (D("6"), D("187.30"))]
    assert [u.kind for u in adapter.place(order())] == [UpdateKind.ACCEPTED]
    [order_id] = fake.orders
    listening(adapter, woke)
    assert adapter.poll_updates(timezone.now()) == []  # the catch-up read: nothing new yet
    reads = rest_reads(fake)
    assert adapter.poll_updates(timezone.now()) == []
    assert rest_reads(fake) == reads  # no cue, no REST
    woke.clear()

    started = time.monotonic()
    fake.execute(order_id)
    assert woke.wait(WAIT)
    cue_seconds = time.monotonic() - started
    updates = adapter.poll_updates(timezone.now())

    assert cue_seconds < 2.0  # the REST poll interval it replaces is seconds to a minute
    assert [(u.kind, u.fill.quantity, u.fill.price) for u in updates] == [
        (UpdateKind.FILL, D("4"), D("187.25"))
    ]
    assert updates[0].fill.broker_fill_id == f"{order_id}:4"
    assert rest_reads(fake) == reads + 1
    assert adapter.stream_cues == 1  # ExecutionCreated (the SUBSCRIBED message is not a cue)
    woke.clear()
    fake.execute(order_id)
    assert woke.wait(WAIT)
    assert wait_until(lambda: adapter.stream_cues == 3)  # ExecutionCreated + OrderFillCompleted
    assert [u.fill.quantity for u in adapter.poll_updates(timezone.now())] == [D("6")]
    assert adapter.poll_updates(timezone.now()) == []  # filled: nothing open to read


def test_the_safety_cadence_reads_rest_without_a_cue(settings, adapter, fake, woke):
    settings.SCHWAB_STREAM_SAFETY_POLL_SECONDS = 1
    adapter.place(order())
    listening(adapter, woke)
    adapter.poll_updates(timezone.now())  # the catch-up read starts the cadence
    started, reads = time.monotonic(), rest_reads(fake)
    adapter.poll_updates(timezone.now())
    assert rest_reads(fake) == reads  # not due yet, and no cue

    assert wait_until(lambda: adapter.poll_updates(timezone.now()) == [] and rest_reads(fake) > reads)
    assert time.monotonic() - started >= 0.9


def test_drop_falls_back_to_rest_then_reconnects_and_catches_up(settings, adapter, fake, woke):
    settings.SCHWAB_STREAM_BACKOFF_SECONDS = 0.5  # long enough to act while it is down
    fake.fills["AAPL"] = [(D("3"), D("10.00")), (D("3"), D("10.10")), (D("4"), D("10.20"))]
    adapter.place(order())
    [order_id] = fake.orders
    listening(adapter, woke)
    adapter.poll_updates(timezone.now())

    fake.drop_streams()
    assert wait_until(lambda: not adapter.stream_listening.is_set())
    assert adapter.stream_error is not None and adapter.stream_error.code == "STREAM_DOWN"
    fake.execute(order_id)  # nobody is subscribed: no cue
    down = adapter.poll_updates(timezone.now())  # REST on every poll while down
    assert [u.fill.quantity for u in down] == [D("3")]

    assert wait_until(lambda: adapter.stream_connects == 2 and adapter.stream_listening.is_set())
    assert len(logins(fake)) == 2 and adapter.stream_error is None
    woke.clear()
    fake.execute(order_id)
    assert woke.wait(WAIT)
    assert [u.fill.quantity for u in adapter.poll_updates(timezone.now())] == [D("3")]


def test_a_silent_streamer_is_reconnected(settings, adapter, fake, woke):
    fake.heartbeat_seconds = 60
    settings.SCHWAB_STREAM_IDLE_SECONDS = 0.3
    listening(adapter, woke)

    assert wait_until(lambda: adapter.stream_connects >= 2)
    assert len(logins(fake)) >= 2


def test_heartbeats_keep_the_stream_up(settings, adapter, fake, woke):
    fake.heartbeat_seconds = 0.05
    settings.SCHWAB_STREAM_IDLE_SECONDS = 0.5
    listening(adapter, woke)
    assert not wait_until(lambda: adapter.stream_connects > 1, timeout=1.5)


def test_refused_login_is_retried_once_with_a_fresh_token_then_a_clear_error(adapter, fake, woke):
    fake.stream_login_denied = "Login Denied."
    fake.fills["AAPL"] = [(D("10"), D("50.00"))]
    adapter.place(order())
    [order_id] = fake.orders

    adapter.stream_start(woke.set)

    assert wait_until(
        lambda: adapter.stream_error is not None and adapter.stream_error.code != "BROKER_RETRYABLE"
    )
    error = adapter.stream_error
    assert isinstance(error, BrokerFatal) and error.code == "STREAM_LOGIN_DENIED"
    assert "the Schwab streamer refused LOGIN (code 3: Login Denied.: Login Denied.)" in error.message
    tokens = [r["parameters"]["Authorization"] for r in logins(fake)]
    assert len(tokens) == 2 and tokens[0] != tokens[1]  # the second with a fresh access token
    adapter.stream_start(woke.set)  # the feed worker calls it every round: no error, no new LOGIN
    assert len(logins(fake)) == 2 and adapter.stream_error is error
    report = adapter.health()
    assert report.status is Health.DEGRADED and "refused LOGIN" in report.detail
    fake.execute(order_id)
    assert [u.kind for u in adapter.poll_updates(timezone.now())] == [UpdateKind.FILL]  # REST goes on


def test_a_login_refused_once_is_retried_with_a_fresh_token(settings, adapter, fake, woke):
    settings.SCHWAB_STREAM_BACKOFF_SECONDS = 0.5
    fake.stream_login_denied = "Login Denied."
    adapter.stream_start(woke.set)
    assert wait_until(lambda: len(logins(fake)) == 1)
    fake.stream_login_denied = None

    assert adapter.stream_listening.wait(WAIT)

    first, second = (r["parameters"]["Authorization"] for r in logins(fake))
    assert first != second and second in fake.access_tokens
    assert adapter.stream_error is None and adapter.stream_connects == 1


def test_a_refused_refresh_token_stops_the_stream_with_reauthorize(adapter, fake, woke):
    fake.refresh_token_expired = True

    adapter.stream_start(woke.set)

    assert woke.wait(WAIT)
    assert wait_until(lambda: adapter.stream_error is not None)
    assert adapter.stream_error.code == "REAUTHORIZE"
    assert "re-authorize the Schwab account" in adapter.stream_error.message
    with pytest.raises(BrokerFatal, match="re-authorize"):
        adapter.stream_start(woke.set)
    assert fake.stream_requests == []

    # the user re-authorizes (here: a new secret row; the OAuth flow writes the same way)
    fake.refresh_token_expired = False
    BrokerAccount.objects.filter(pk=adapter.account_pk).update(api_secret_encrypted=fake.secret_json())
    adapter.stream_start(woke.set)

    assert adapter.stream_listening.wait(WAIT)
    assert adapter.stream_error is None and len(logins(fake)) == 1
