"""The IB adapter through the real path: adapter -> bridge (HTTP) -> gateway (ib_async) -> FakeTws.

The gateway and its bridge run in this process (their own threads and asyncio loop) except in the
subprocess test, which starts ``manage.py run_ib_gateway``; the fake TWS is a real TCP server
speaking the TWS API at server version 176. Orders also go through ``orders.services``. Nothing is
mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from brokers.adapters.ibkr import IbkrAdapter, account_endpoint
from brokers.domain.adapter import (
    BrokerFatal,
    BrokerOrderRequest,
    BrokerOrderStatus,
    BrokerOrderUpdate,
    BrokerPosition,
    BrokerRejected,
    BrokerRetryable,
    BrokerUnknownOutcome,
    Health,
    OrderChange,
    OrderRef,
    UpdateKind,
)
from brokers.ibkr.bridge import IbBridge
from brokers.ibkr.gateway import IbGateway
from brokers.models import BrokerAccount
from brokers.services import adapter_for, adapters_reset
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from orders.models import Fill, OrderEvent, Position
from orders.services import Actor, order_apply_updates, order_cancel, order_place
from tests.builders import order_request
from tests.fakes.ibkr import FakeTws

pytestmark = pytest.mark.django_db

D = Decimal
TOKEN = "test-ib-bridge-token"


@pytest.fixture
def tws():
    server = FakeTws().start()
    yield server
    server.stop()


@pytest.fixture
def gateway(settings):
    """Gateway + bridge in this process; short TWS waits so timeouts are quick."""
    gw = IbGateway(connect_timeout=2, request_timeout=1.0, reconnect_min=0.05, reconnect_max=0.2).start()
    bridge = IbBridge(gw, token=TOKEN).start()
    settings.IB_GATEWAY_URL = bridge.url
    settings.IB_GATEWAY_TOKEN = TOKEN
    settings.IB_GATEWAY_TIMEOUT_SECONDS = 8
    settings.IB_GATEWAY_STREAM_WAIT_SECONDS = 2
    gw.bridge = bridge
    yield gw
    bridge.stop()
    gw.stop()


@pytest.fixture
def ib_account(trader, tws):
    """Read back from the database, so the TWS endpoint JSON is sealed as in production."""
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="ibkr",
        account_id="DU1234567",
        label="IB paper",
        api_key_encrypted=json.dumps({"host": "127.0.0.1", "port": tws.port, "client_id": 7}),
        sandbox_mode=True,
        buying_power=D("400000"),
        cash=D("100000"),
        total_value=D("100000"),
    )
    return BrokerAccount.objects.get(pk=created.pk)


@pytest.fixture
def adapter(settings, gateway, ib_account):
    # The local call limiter (brokers.ratelimit, 45/s burst 5 for ibkr) would refuse the tight
    # polling loops of these tests; TWS pacing itself stays on in ib_async inside the gateway.
    settings.BROKER_RATE_LIMITS = {**(getattr(settings, "BROKER_RATE_LIMITS", None) or {}), "ibkr": []}
    adapters_reset()
    made = adapter_for(ib_account)
    yield made
    made.stream_stop()


def order(
    cid: str = "tm-1",
    symbol: str = "AAPL",
    qty: str = "10",
    order_type: OrderType = OrderType.MARKET,
    tif: TimeInForce = TimeInForce.DAY,
    side: Side = Side.BUY,
    asset_class: AssetClass = AssetClass.EQUITY,
    **prices: Decimal,
) -> BrokerOrderRequest:
    return BrokerOrderRequest(
        client_order_id=cid,
        symbol=symbol,
        asset_class=asset_class,
        side=side,
        order_type=order_type,
        quantity=D(qty),
        time_in_force=tif,
        **prices,
    )


def kinds(updates) -> list[UpdateKind]:
    return [u.kind for u in updates]


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Re-check ``check`` until it holds, failing after ``timeout`` seconds."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        pause.wait(0.05)


def poll_until(
    adapter: IbkrAdapter, done: Callable[[list[BrokerOrderUpdate]], bool], timeout: float = 5.0
) -> list[BrokerOrderUpdate]:
    got: list[BrokerOrderUpdate] = []

    def check() -> bool:
        got.extend(adapter.poll_updates(timezone.now()))
        return done(got)

    wait_until(check, timeout)
    return got


def fills(updates) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [(u.client_order_id, u.fill.quantity, u.fill.price, u.fill.fee) for u in updates if u.fill]


# --- configuration ------------------------------------------------------------------------------
def test_adapter_for_builds_the_ibkr_adapter_on_the_bridge(adapter, gateway):
    assert isinstance(adapter, IbkrAdapter)
    assert adapter.base_url == gateway.bridge.url


def test_tws_endpoint_follows_sandbox_mode_and_credentials_override(settings, trader):
    settings.IB_TWS_HOST, settings.IB_TWS_PORT_PAPER, settings.IB_TWS_PORT_LIVE = "10.0.0.5", 7497, 7496
    settings.IB_TWS_CLIENT_ID = 17
    paper = BrokerAccount(user=trader, broker_name="ibkr", account_id="DU1", sandbox_mode=True, pk=1)
    live = BrokerAccount(user=trader, broker_name="ibkr", account_id="U2", sandbox_mode=False, pk=2)
    assert account_endpoint(paper) == {
        "key": "1",
        "host": "10.0.0.5",
        "port": 7497,
        "client_id": 17,
        "account_code": "DU1",
    }
    assert account_endpoint(live)["port"] == 7496
    live.api_key_encrypted = json.dumps({"port": 4001, "client_id": 3})
    assert (account_endpoint(live)["port"], account_endpoint(live)["client_id"]) == (4001, 3)
    live.api_key_encrypted = "not json"
    with pytest.raises(BrokerFatal, match="must be JSON"):
        account_endpoint(live)


def test_capabilities_are_us_equities_with_native_types_and_tifs(adapter, tws):
    caps = IbkrAdapter.capabilities
    for order_type in (OrderType.MARKET, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP):
        assert caps.supports(AssetClass.EQUITY, order_type, TimeInForce.FOK) is None
    assert caps.supports(AssetClass.CRYPTO, OrderType.MARKET, TimeInForce.GTC) == "does not trade crypto"
    with pytest.raises(BrokerRejected, match="Interactive Brokers does not trade crypto"):
        adapter.place(order(symbol="BTC/USD", asset_class=AssetClass.CRYPTO, tif=TimeInForce.GTC))
    assert tws.placed == []


# --- order types and TIFs on the wire -----------------------------------------------------------
WIRE_CASES = [
    (dict(order_type=OrderType.MARKET, tif=TimeInForce.DAY), ("MKT", "", "", "DAY", "")),
    (
        dict(order_type=OrderType.LIMIT, tif=TimeInForce.GTC, price=D("187.10")),
        ("LMT", "187.10", "", "GTC", ""),
    ),
    (
        dict(order_type=OrderType.STOP, tif=TimeInForce.IOC, stop_price=D("180")),
        ("STP", "", "180", "IOC", ""),
    ),
    (
        dict(order_type=OrderType.STOP_LIMIT, tif=TimeInForce.FOK, price=D("179.5"), stop_price=D("180.25")),
        ("STP LMT", "179.5", "180.25", "FOK", ""),
    ),
    (
        dict(order_type=OrderType.TRAILING_STOP, tif=TimeInForce.GTC, trail_amount=D("1.50")),
        ("TRAIL", "", "1.50", "GTC", ""),
    ),
    (
        dict(order_type=OrderType.TRAILING_STOP, tif=TimeInForce.DAY, trail_percent=D("2.5")),
        ("TRAIL", "", "", "DAY", "2.5"),
    ),
]


@pytest.mark.parametrize(("fields", "wire"), WIRE_CASES)
def test_every_order_type_and_tif_round_trips_with_the_right_wire_fields(adapter, tws, fields, wire):
    updates = adapter.place(order(cid="tm-wire", side=Side.SELL, qty="12.5", **fields))

    assert kinds(updates) == [UpdateKind.ACCEPTED]
    [sent] = tws.placed_for("tm-wire")
    assert (sent["action"], sent["totalQuantity"], sent["symbol"], sent["secType"], sent["currency"]) == (
        "SELL",
        "12.5",
        "AAPL",
        "STK",
        "USD",
    )
    assert sent["exchange"] == "SMART"
    assert (
        sent["orderType"],
        sent["lmtPrice"],
        sent["auxPrice"],
        sent["tif"],
        sent["trailingPercent"],
    ) == wire
    assert sent["orderRef"] == "tm-wire"
    fake_order = tws.order_by_ref("tm-wire")
    assert updates[0].broker_order_id == str(fake_order.perm_id)
    state = adapter.get_order("tm-wire")
    assert (state.status, state.side, state.quantity, state.symbol) == (
        BrokerOrderStatus.OPEN,
        Side.SELL,
        D("12.5"),
        "AAPL",
    )


def test_ib_async_stays_in_the_gateway_loop(adapter, gateway, tws):
    adapter.place(order(order_type=OrderType.LIMIT, price=D("150")))

    # asyncio is not patched (no nest_asyncio) and this thread has no loop of ib_async's
    assert asyncio.run.__module__ == "asyncio.runners"
    assert asyncio.run(asyncio.sleep(0, result="free")) == "free"
    [connection] = gateway.connections.values()
    loops = {t.name for t in threading.enumerate()}
    assert "ib-gateway-loop" in loops
    assert connection.ib.client.MaxRequests == 45  # ib_async's own pacing stays on


def test_share_class_symbols_keep_their_space(adapter, tws):
    adapter.place(order(cid="tm-brk", symbol="BRK B", order_type=OrderType.LIMIT, price=D("400")))
    assert tws.placed_for("tm-brk")[0]["symbol"] == "BRK B"


def test_unknown_stock_is_rejected_before_an_order_is_sent(adapter, tws):
    with pytest.raises(BrokerRejected, match="IB does not know the US stock 'NOPE'"):
        adapter.place(order(symbol="NOPE"))
    assert tws.placed == []


# --- fills --------------------------------------------------------------------------------------
def test_market_order_filled_at_once_reports_the_fill_with_its_commission(adapter, tws):
    tws.next_place("fill", price="187.25", commission="1.05")

    updates = adapter.place(order())
    updates += poll_until(adapter, lambda got: any(u.fill for u in updates + got))

    assert kinds(updates) == [UpdateKind.ACCEPTED, UpdateKind.FILL]
    assert fills(updates) == [("tm-1", D("10"), D("187.25"), D("1.05"))]
    assert updates[1].fill.broker_fill_id == tws.executions[0].exec_id
    assert adapter.poll_updates(timezone.now()) == []  # delivered once


def test_partial_fill_then_fill_gives_two_fills_with_fees(adapter, tws):
    tws.next_place("partial", quantity="4", price="410.00", commission="1.00")
    placed = adapter.place(order(symbol="MSFT", order_type=OrderType.LIMIT, price=D("411")))
    first = placed + poll_until(adapter, lambda got: any(u.fill for u in placed + got))

    tws.fill("tm-1", price="410.10", commission="1.20")
    second = poll_until(adapter, lambda got: any(u.fill for u in got))

    assert fills(first) == [("tm-1", D("4"), D("410.00"), D("1.00"))]
    assert fills(second) == [("tm-1", D("6"), D("410.10"), D("1.20"))]
    state = adapter.get_order("tm-1")
    assert (state.status, state.filled_quantity, state.average_fill_price) == (
        BrokerOrderStatus.FILLED,
        D("10"),
        D("410.06"),
    )
    assert [f.fee for f in state.fills] == [D("1.00"), D("1.20")]


# --- cancel, replace, reject -------------------------------------------------------------------
def test_cancel_reports_cancelled_and_a_second_cancel_is_refused(adapter, tws):
    [accepted] = adapter.place(order(order_type=OrderType.LIMIT, price=D("150")))

    updates = adapter.cancel(OrderRef("tm-1", accepted.broker_order_id))

    assert kinds(updates) == [UpdateKind.CANCELLED]
    assert tws.order_by_ref("tm-1").status == "Cancelled"
    assert tws.cancels == [tws.order_by_ref("tm-1").order_id]
    assert adapter.open_orders() == []
    with pytest.raises(BrokerRejected, match="already cancelled"):
        adapter.cancel(OrderRef("tm-1"))
    assert len(tws.cancels) == 1
    assert adapter.poll_updates(timezone.now()) == []


def test_cancel_made_in_tws_arrives_as_a_cancelled_update(adapter, tws):
    adapter.place(order(order_type=OrderType.LIMIT, price=D("150")))

    tws.cancel_at_broker("tm-1")
    got = poll_until(adapter, lambda got: bool(got))

    assert [(u.kind, u.client_order_id) for u in got] == [(UpdateKind.CANCELLED, "tm-1")]
    assert adapter.get_order("tm-1").status is BrokerOrderStatus.CANCELLED


def test_replace_resends_the_same_order_id_with_new_quantity_and_price(adapter, tws):
    adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))

    updates = adapter.replace(OrderRef("tm-1"), OrderChange(quantity=D("15"), price=D("101.5")))

    first, second = tws.placed_for("tm-1")
    assert first["orderId"] == second["orderId"]
    assert (second["totalQuantity"], second["lmtPrice"], second["orderType"]) == ("15", "101.5", "LMT")
    assert len(tws.orders) == 1
    [replaced] = updates
    assert replaced.kind is UpdateKind.REPLACED
    assert replaced.change == OrderChange(quantity=D("15"), price=D("101.5"), time_in_force=TimeInForce.DAY)
    assert adapter.get_order("tm-1").quantity == D("15")

    tws.fill("tm-1", price="101.4")
    got = poll_until(adapter, lambda got: any(u.fill for u in got))
    assert fills(got) == [("tm-1", D("15"), D("101.4"), D("1.00"))]


def test_replace_of_a_trailing_stop_changes_the_trail(adapter, tws):
    adapter.place(order(order_type=OrderType.TRAILING_STOP, side=Side.SELL, trail_amount=D("1.5")))
    [replaced] = adapter.replace(OrderRef("tm-1"), OrderChange(trail_percent=D("3")))
    assert (tws.placed_for("tm-1")[1]["auxPrice"], tws.placed_for("tm-1")[1]["trailingPercent"]) == ("", "3")
    assert (replaced.change.trail_percent, replaced.change.trail_amount) == (D("3"), None)


def test_replace_of_a_filled_order_is_refused_without_sending(adapter, tws):
    tws.next_place("fill", price="187.25")
    adapter.place(order())
    wait_until(lambda: adapter.get_order("tm-1").status is BrokerOrderStatus.FILLED)
    with pytest.raises(BrokerRejected, match="already filled"):
        adapter.replace(OrderRef("tm-1"), OrderChange(quantity=D("20")))
    assert len(tws.placed_for("tm-1")) == 1


def test_reject_201_is_the_orders_rejected_update_with_ibs_reason(adapter, tws):
    tws.next_place("reject", reason="YOUR ORDER IS NOT ACCEPTED. INSUFFICIENT EQUITY")

    [rejected] = adapter.place(order(qty="100000"))

    assert rejected.kind is UpdateKind.REJECTED
    assert rejected.reason == "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. INSUFFICIENT EQUITY"
    assert adapter.get_order("tm-1").status is BrokerOrderStatus.REJECTED
    assert adapter.poll_updates(timezone.now()) == []


# --- unknown outcome, disconnects, health --------------------------------------------------------
def test_swallowed_reply_is_unknown_then_found_by_order_ref_and_not_sent_twice(adapter, tws):
    tws.next_place("swallow")

    with pytest.raises(BrokerUnknownOutcome, match="did not acknowledge"):
        adapter.place(order(cid="tm-lost", order_type=OrderType.LIMIT, price=D("150")))

    state = adapter.get_order("tm-lost")
    assert state is not None
    assert (state.client_order_id, state.status, state.quantity) == (
        "tm-lost",
        BrokerOrderStatus.OPEN,
        D("10"),
    )
    assert len(tws.placed_for("tm-lost")) == 1
    with pytest.raises(BrokerRejected, match="already sent to IB"):
        adapter.place(order(cid="tm-lost", order_type=OrderType.LIMIT, price=D("150")))
    assert len(tws.placed_for("tm-lost")) == 1


def test_slow_reply_is_unknown_and_the_late_acknowledgement_arrives_as_an_update(adapter, tws):
    tws.next_place("rest", delay=1.5)
    with pytest.raises(BrokerUnknownOutcome):
        adapter.place(order(cid="tm-slow", order_type=OrderType.LIMIT, price=D("150")))

    late = poll_until(adapter, lambda got: bool(got))

    assert [(u.kind, u.client_order_id) for u in late] == [(UpdateKind.ACCEPTED, "tm-slow")]
    assert adapter.get_order("tm-slow").status is BrokerOrderStatus.OPEN
    assert len(tws.placed_for("tm-slow")) == 1


def test_fill_while_disconnected_is_found_after_reconnect(adapter, tws, gateway):
    adapter.place(order(order_type=OrderType.LIMIT, price=D("187")))
    assert adapter.health().status is Health.CONNECTED

    tws.refusing = True
    tws.drop()
    wait_until(lambda: adapter.health().status is Health.DOWN)
    tws.fill("tm-1", price="186.90", commission="1.10")  # no client is connected
    assert tws.clients() == 0
    tws.refusing = False

    got = poll_until(adapter, lambda got: any(u.fill for u in got), timeout=10)

    assert fills(got) == [("tm-1", D("10"), D("186.90"), D("1.10"))]
    assert adapter.health().status is Health.CONNECTED
    [connection] = gateway.connections.values()
    assert connection.reconnects >= 1
    assert adapter.get_order("tm-1").status is BrokerOrderStatus.FILLED
    assert adapter.poll_updates(timezone.now()) == []


def test_order_cancelled_while_disconnected_is_reported_after_reconnect(adapter, tws, gateway):
    adapter.place(order(order_type=OrderType.LIMIT, price=D("187")))
    tws.refusing = True
    tws.drop()
    wait_until(lambda: adapter.health().status is Health.DOWN)
    tws.cancel_at_broker("tm-1")
    tws.refusing = False

    got = poll_until(adapter, lambda got: bool(got), timeout=10)

    assert kinds(got) == [UpdateKind.CANCELLED]


def test_health_is_connected_with_a_latency(adapter, tws):
    report = adapter.health()
    assert report.status is Health.CONNECTED
    assert D(0) <= report.latency_ms < D(2000)
    assert any(m[0] == "49" for m in tws.received)  # reqCurrentTime went to TWS


def test_tws_losing_its_ib_connection_degrades_health_until_restored(adapter, tws):
    assert adapter.health().status is Health.CONNECTED
    tws.notify(1100, "Connectivity between IB and Trader Workstation has been lost.")
    wait_until(lambda: adapter.health().status is Health.DEGRADED)
    assert "1100" in adapter.health().detail
    tws.notify(1102, "Connectivity between IB and TWS has been restored - data maintained.")
    wait_until(lambda: adapter.health().status is Health.CONNECTED)


def test_tws_down_is_retryable_and_health_down_with_a_clear_message(settings, gateway, ib_account, tws):
    tws.stop()
    adapter = IbkrAdapter(ib_account)
    with pytest.raises(BrokerRetryable, match="not connected to TWS") as err:
        adapter.place(order())
    assert err.value.code == "IB_NOT_CONNECTED"
    report = adapter.health()
    assert report.status is Health.DOWN
    assert f"127.0.0.1:{tws.port}" in report.detail


def test_gateway_down_is_retryable_and_health_down(settings, gateway, ib_account):
    gateway.bridge.stop()
    adapter = IbkrAdapter(ib_account)
    with pytest.raises(BrokerRetryable, match="IB gateway unreachable") as err:
        adapter.place(order())
    assert err.value.code == "IB_GATEWAY_DOWN"
    assert adapter.health().status is Health.DOWN


def test_wrong_token_is_fatal(settings, adapter):
    settings.IB_GATEWAY_TOKEN = "wrong"
    with pytest.raises(BrokerFatal, match="refused the token"):
        adapter.account()


# --- reads ---------------------------------------------------------------------------------------
def test_account_positions_quote_and_open_orders(adapter, tws):
    tws.next_place("fill", price="187.25")
    adapter.place(order(qty="10"))
    adapter.place(order(cid="tm-2", order_type=OrderType.LIMIT, price=D("180")))
    tws.set_account_value("TotalCashValue", "98127.50")

    wait_until(lambda: adapter.account().cash == D("98127.50"))
    info = adapter.account()
    assert (info.buying_power, info.total_value) == (D("400000.00"), D("100000.00"))
    assert adapter.positions() == [BrokerPosition("AAPL", D("10"), D("187.25"))]
    quote = adapter.quote("AAPL")
    assert (quote.bid, quote.ask, quote.last, quote.bid_size, quote.ask_size) == (
        D("187.2"),
        D("187.3"),
        D("187.25"),
        D("300"),
        D("500"),
    )
    assert [(s.client_order_id, s.status) for s in adapter.open_orders()] == [
        ("tm-2", BrokerOrderStatus.OPEN)
    ]


def test_get_order_of_an_unknown_client_id_is_none(adapter, tws):
    assert adapter.get_order("never-sent") is None
    assert {m[0] for m in tws.received} >= {"16", "99", "7"}  # asked TWS before answering


def test_orders_from_before_a_gateway_restart_are_found(settings, adapter, tws, gateway, ib_account):
    tws.next_place("fill", price="187.25")
    adapter.place(order(cid="tm-old"))
    adapter.place(order(cid="tm-open", order_type=OrderType.LIMIT, price=D("150")))
    gateway.bridge.stop()
    gateway.stop()

    restarted = IbGateway(connect_timeout=2, request_timeout=1.0).start()
    bridge = IbBridge(restarted, token=TOKEN).start()
    settings.IB_GATEWAY_URL = bridge.url
    try:
        fresh = IbkrAdapter(ib_account)
        old = fresh.get_order("tm-old")
        assert (old.status, old.filled_quantity, old.average_fill_price) == (
            BrokerOrderStatus.FILLED,
            D("10"),
            D("187.25"),
        )
        assert fresh.get_order("tm-open").status is BrokerOrderStatus.OPEN
        [cancelled] = fresh.cancel(OrderRef("tm-open"))
        assert cancelled.kind is UpdateKind.CANCELLED
        # a new gateway epoch: its buffer (the re-synced fill) is read from the start
        assert fills(fresh.poll_updates(timezone.now())) == [("tm-old", D("10"), D("187.25"), D("1.00"))]
    finally:
        bridge.stop()
        restarted.stop()


# --- the update stream ---------------------------------------------------------------------------
def test_stream_wakes_the_feed_at_once_on_a_fill(adapter, tws):
    woke = threading.Event()
    adapter.stream_start(woke.set)
    assert adapter.stream_listening.wait(5)
    adapter.place(order(order_type=OrderType.LIMIT, price=D("187")))
    woke.clear()

    tws.fill("tm-1", price="186.95")

    assert woke.wait(5)
    got = poll_until(adapter, lambda got: any(u.fill for u in got))
    assert fills(got) == [("tm-1", D("10"), D("186.95"), D("1.00"))]
    adapter.stream_start(woke.set)  # idempotent
    assert sum(t.name == f"ib-updates-{adapter.account_pk}" for t in threading.enumerate()) == 1


# --- through the order service --------------------------------------------------------------------
def place(trader, account, **kw):
    return order_place(
        user=trader, request=order_request(**kw), actor=Actor.for_user(trader), broker_id=account.pk
    ).order


def test_partial_then_full_fill_updates_the_order_and_the_position(trader, ib_account, adapter, tws):
    tws.next_place("partial", quantity="4", price="187.00", commission="1.00")

    placed = place(
        trader, ib_account, order_type="LIMIT", price="187.50", quantity="10", client_order_id="ib-1"
    )

    assert placed.broker_id == ib_account.pk
    [sent] = tws.placed_for("ib-1")
    assert (sent["action"], sent["totalQuantity"], sent["orderType"], sent["lmtPrice"]) == (
        "BUY",
        "10",
        "LMT",
        "187.50",
    )
    # the partial fill came with the place reply or comes through the update feed
    first = poll_until(
        adapter, lambda got: placed.filled_quantity + sum(u.fill.quantity for u in got if u.fill) >= 4
    )
    order_apply_updates(account=ib_account, updates=first)
    placed.refresh_from_db()
    assert (placed.status, placed.filled_quantity) == ("PARTIALLY_FILLED", D("4"))

    tws.fill("ib-1", price="187.25", commission="1.30")
    rest = poll_until(adapter, lambda got: any(u.fill for u in got))
    order_apply_updates(account=ib_account, updates=rest)

    placed.refresh_from_db()
    assert (placed.status, placed.filled_quantity, placed.average_fill_price) == (
        "FILLED",
        D("10"),
        D("187.15"),
    )
    assert sorted(Fill.objects.filter(order=placed).values_list("fee", flat=True)) == [D("1.00"), D("1.30")]
    position = Position.objects.get(user=trader, broker=ib_account, symbol="AAPL")
    assert (position.quantity, position.average_cost) == (D("10"), D("187.15"))
    events = list(OrderEvent.objects.filter(order=placed).values_list("event_type", flat=True))
    assert events.count("FILL") == 2
    assert "BROKER_ANOMALY" not in events


def test_reject_201_rejects_the_order_with_ibs_reason(trader, ib_account, adapter, tws):
    tws.next_place("reject", reason="Order size exceeds the size limit")

    placed = place(trader, ib_account, order_type="LIMIT", price="187.50", quantity="10")

    assert placed.status == "REJECTED"
    assert placed.status_reason == "Order rejected - reason:Order size exceeds the size limit"


def test_cancel_through_the_service(trader, ib_account, adapter, tws):
    placed = place(trader, ib_account, order_type="LIMIT", price="150", quantity="5")
    assert placed.status == "ACCEPTED"

    cancelled = order_cancel(user=trader, order_id=placed.pk, actor=Actor.for_user(trader))

    assert cancelled.status == "CANCELLED"
    assert tws.order_by_ref(placed.client_order_id).status == "Cancelled"


def test_unknown_outcome_is_resolved_by_order_ref_without_a_second_send(trader, ib_account, adapter, tws):
    tws.next_place("swallow")

    placed = place(
        trader, ib_account, order_type="LIMIT", price="150", quantity="5", client_order_id="ib-lost"
    )

    assert placed.status == "ACCEPTED"  # found at IB by orderRef, not sent elsewhere or again
    assert len(tws.placed_for("ib-lost")) == 1
    assert placed.broker_order_id == str(tws.order_by_ref("ib-lost").perm_id)


# --- the gateway as its own process ------------------------------------------------------------
@pytest.fixture
def gateway_process(tws):
    """``manage.py run_ib_gateway`` on a free port, waited on until it prints ``ready <url>``."""
    env = {
        **os.environ,
        "IB_GATEWAY_URL": "http://127.0.0.1:7510",
        "IB_GATEWAY_TOKEN": TOKEN,
        "IB_TWS_REQUEST_TIMEOUT_SECONDS": "2",
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "trademaster.settings"),
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_ib_gateway", "--port", "0", "--no-preconnect"],
        cwd=Path(django_settings.BASE_DIR),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=60)
        assert line.startswith("ready http://127.0.0.1:"), line
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait(10)


def test_gateway_subprocess_serves_the_adapter(settings, gateway_process, ib_account, tws):
    settings.IB_GATEWAY_URL = gateway_process
    settings.IB_GATEWAY_TOKEN = TOKEN
    adapter = IbkrAdapter(ib_account)

    assert adapter.health().status is Health.CONNECTED
    tws.next_place("fill", price="187.25", commission="1.00")
    updates = adapter.place(order(cid="ib-proc"))
    updates += poll_until(adapter, lambda got: any(u.fill for u in updates + got))

    assert [u.kind for u in updates] == [UpdateKind.ACCEPTED, UpdateKind.FILL]
    assert adapter.get_order("ib-proc").status is BrokerOrderStatus.FILLED
    assert tws.placed_for("ib-proc")[0]["orderRef"] == "ib-proc"


def test_feed_applies_streamed_updates(trader, ib_account, adapter, tws):
    """The way the feed worker uses it: stream_start(wakeup), then poll_updates + apply."""
    woke = threading.Event()
    adapter_for(ib_account).stream_start(woke.set)
    placed = place(trader, ib_account, order_type="LIMIT", price="187.50", quantity="3")
    woke.clear()

    tws.fill(placed.client_order_id, price="187.40")

    assert woke.wait(5)
    order_apply_updates(account=ib_account, updates=adapter.poll_updates(timezone.now()))
    placed.refresh_from_db()
    assert (placed.status, placed.filled_quantity) == ("FILLED", D("3"))
