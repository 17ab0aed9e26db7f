"""The Schwab adapter against a fake Schwab Trader API on loopback (real HTTP, no mocks)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.adapters.schwab import TOKEN_URL, TRADER_URL, SchwabAdapter
from brokers.domain.adapter import (
    BrokerError,
    BrokerFatal,
    BrokerOrderRequest,
    BrokerOrderStatus,
    BrokerPosition,
    BrokerRejected,
    BrokerRetryable,
    BrokerUnknownOutcome,
    Health,
    OrderChange,
    OrderRef,
    UpdateKind,
)
from brokers.models import BrokerAccount
from brokers.ratelimit import rate_store_reset
from brokers.services import adapter_for, adapters_reset, broker_account_sync
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from orders.models import Order, OrderEvent, Position
from orders.reconcile import reconcile_account
from orders.services import Actor, order_apply_updates, order_cancel, order_place
from tests.builders import order_request
from tests.fakes.schwab import FakeSchwab
from trademaster.crypto import Sealed

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def fake():
    server = FakeSchwab().start()
    yield server
    server.stop()


@pytest.fixture
def schwab_account(trader, fake):
    created = BrokerAccount.objects.create(
        user=trader,
        broker_name="schwab",
        account_id=fake.account_number,
        label="Schwab",
        api_key_encrypted=fake.app_key,
        api_secret_encrypted=fake.secret_json(),
        sandbox_mode=False,
    )
    return BrokerAccount.objects.get(pk=created.pk)


@pytest.fixture
def adapter(settings, fake, schwab_account) -> SchwabAdapter:
    settings.SCHWAB_TRADER_URL = fake.trader_url
    settings.SCHWAB_MARKETDATA_URL = fake.marketdata_url
    settings.SCHWAB_TOKEN_URL = fake.token_url
    settings.SCHWAB_TIMEOUT_SECONDS = 2
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "schwab": "brokers.adapters.schwab.SchwabAdapter"}
    adapters_reset()
    return adapter_for(schwab_account)


def order(
    cid: str = "tm-1",
    symbol: str = "AAPL",
    qty: str = "10",
    order_type: OrderType = OrderType.MARKET,
    tif: TimeInForce = TimeInForce.DAY,
    side: Side = Side.BUY,
    **prices: Decimal,
) -> BrokerOrderRequest:
    return BrokerOrderRequest(
        client_order_id=cid,
        symbol=symbol,
        asset_class=AssetClass.EQUITY,
        side=side,
        order_type=order_type,
        quantity=D(qty),
        time_in_force=tif,
        **prices,
    )


def kinds(updates) -> list[UpdateKind]:
    return [u.kind for u in updates]


def placed_bodies(fake) -> list[dict]:
    return [b for m, p, b in fake.requests if m == "POST" and p.endswith("/orders")]


# --- configuration --------------------------------------------------------------------------------
def test_adapter_for_builds_the_schwab_adapter_on_the_configured_urls(adapter, fake):
    assert isinstance(adapter, SchwabAdapter)
    assert (adapter.base_url, adapter.token_url) == (fake.trader_url, fake.token_url)


def test_default_urls_are_schwabs(settings, trader):
    for name in ("SCHWAB_TRADER_URL", "SCHWAB_TOKEN_URL"):
        if hasattr(settings, name):
            delattr(settings, name)
    adapter = SchwabAdapter(BrokerAccount(user=trader, broker_name="schwab", account_id="1"))
    assert (adapter.base_url, adapter.token_url) == (TRADER_URL, TOKEN_URL)
    assert TRADER_URL == "https://api.schwabapi.com/trader/v1"


# --- place ----------------------------------------------------------------------------------------
def test_place_market_order_uses_the_account_hash_location_and_reports_the_fill(adapter, fake):
    fake.fills["AAPL"] = [(D("10"), D("187.25"))]

    updates = adapter.place(order())

    assert kinds(updates) == [UpdateKind.ACCEPTED, UpdateKind.FILL]
    [order_id] = fake.orders
    assert {u.broker_order_id for u in updates} == {str(order_id)}
    fill = updates[1].fill
    assert (fill.quantity, fill.price, fill.fee, fill.broker_fill_id) == (
        D("10"),
        D("187.25"),
        D(0),
        f"{order_id}:10",
    )
    assert fake.requests[0][:2] == ("GET", "/accounts/accountNumbers")
    assert ("POST", f"/accounts/{fake.account_hash}/orders") in [(m, p) for m, p, _ in fake.requests]
    assert placed_bodies(fake) == [
        {
            "session": "NORMAL",
            "duration": "DAY",
            "orderType": "MARKET",
            "orderStrategyType": "SINGLE",
            "orderLegCollection": [
                {
                    "instruction": "BUY",
                    "quantity": 10,
                    "instrument": {"symbol": "AAPL", "assetType": "EQUITY"},
                }
            ],
        }
    ]


@pytest.mark.parametrize(
    ("order_type", "tif", "prices", "expected"),
    [
        (OrderType.LIMIT, TimeInForce.GTC, {"price": D("150.25")}, {"price": "150.25"}),
        (OrderType.STOP, TimeInForce.IOC, {"stop_price": D("0.5123")}, {"stopPrice": "0.5123"}),
        (
            OrderType.STOP_LIMIT,
            TimeInForce.FOK,
            {"price": D("99"), "stop_price": D("99.5")},
            {"price": "99.00", "stopPrice": "99.50"},
        ),
        (
            OrderType.TRAILING_STOP,
            TimeInForce.DAY,
            {"trail_percent": D("2.5")},
            {"stopPriceLinkBasis": "LAST", "stopPriceLinkType": "PERCENT", "stopPriceOffset": "2.50"},
        ),
    ],
)
def test_order_types_tif_and_prices_as_strings(adapter, fake, order_type, tif, prices, expected):
    adapter.place(order(order_type=order_type, tif=tif, side=Side.SELL, **prices))
    [body] = placed_bodies(fake)
    durations = {"DAY": "DAY", "GTC": "GOOD_TILL_CANCEL", "IOC": "IMMEDIATE_OR_CANCEL", "FOK": "FILL_OR_KILL"}
    assert (body["orderType"], body["duration"]) == (order_type.value, durations[tif])
    assert body["orderLegCollection"][0]["instruction"] == "SELL"
    assert {k: body[k] for k in expected} == expected


def test_fractional_and_sub_penny_orders_are_refused_before_sending(adapter, fake):
    with pytest.raises(BrokerRejected, match="whole shares"):
        adapter.place(order(qty="1.5"))
    with pytest.raises(BrokerRejected, match="at most 2 decimals"):
        adapter.place(order(order_type=OrderType.LIMIT, price=D("10.001")))
    assert placed_bodies(fake) == []


def test_validation_error_is_rejected_with_schwabs_message(adapter, fake):
    fake.fail_next(400, {"message": "A validation error occurred", "errors": ["Symbol is invalid"]})
    with pytest.raises(BrokerRejected, match="A validation error occurred: Symbol is invalid"):
        adapter.place(order())


def test_order_rejected_by_schwab_reports_rejected_with_the_status_description(adapter, fake):
    fake.reject_next = "Opening transactions for this security must be placed with a broker"
    updates = adapter.place(order(symbol="OTCX"))
    assert kinds(updates) == [UpdateKind.REJECTED]
    assert updates[0].reason.startswith("Opening transactions")
    assert adapter.get_order("tm-1").status is BrokerOrderStatus.REJECTED


def test_insufficient_buying_power_is_rejected(adapter, fake):
    with pytest.raises(BrokerRejected, match="insufficient buying power"):
        adapter.place(order(qty="100000", order_type=OrderType.LIMIT, price=D("100")))


# --- errors -------------------------------------------------------------------------------------
def test_rate_limit_is_retryable_with_the_advised_delay(adapter, fake):
    adapter.account()
    fake.fail_next(429, {"message": "Too Many Requests", "errors": []}, {"Retry-After": "7"})
    with pytest.raises(BrokerRetryable) as err:
        adapter.place(order())
    assert (err.value.retry_after, err.value.code) == (7, "RATE_LIMITED")
    assert fake.orders == {}


def test_expired_access_token_is_refreshed_once_and_the_call_retried(adapter, fake):
    adapter.account()
    assert fake.token_requests == 1
    fake.expire_access_token()
    assert adapter.account().cash == D("50000.00")
    assert fake.token_requests == 2


def test_expired_refresh_token_is_fatal_asking_to_reauthorize(adapter, fake):
    fake.refresh_token_expired = True
    with pytest.raises(BrokerFatal, match="re-authorize the Schwab account") as err:
        adapter.account()
    assert err.value.code == "REAUTHORIZE"
    assert fake.requests == []


def test_persistent_401_after_refresh_is_fatal(adapter, fake):
    adapter.account()
    fake.fail_next(401, {"message": "Unauthorized", "errors": []})
    fake.fail_next(401, {"message": "Unauthorized", "errors": []})
    with pytest.raises(BrokerFatal, match="even after a refresh"):
        adapter.positions()
    assert fake.token_requests == 2


def test_credentials_are_sealed_and_a_malformed_secret_is_fatal(settings, adapter, fake, schwab_account):
    assert isinstance(schwab_account.api_secret_encrypted, Sealed)
    schwab_account.api_secret_encrypted = "just-the-app-secret"
    with pytest.raises(BrokerFatal, match="refresh_token"):
        SchwabAdapter(schwab_account).account()


def test_unknown_account_number_is_fatal(adapter, fake):
    adapter.account_number = "99999999"
    with pytest.raises(BrokerFatal, match="does not list account 99999999"):
        adapter.account()


def test_timeout_on_place_is_unknown_then_resolved_by_searching_recent_orders(settings, adapter, fake):
    settings.SCHWAB_TIMEOUT_SECONDS = 0.3
    slow = SchwabAdapter(BrokerAccount.objects.get(pk=adapter.account_pk))
    slow.account()  # token and hash first
    fake.fills["AAPL"] = [(D("10"), D("187.25"))]
    fake.fill_on_place = True
    other = fake._new_order(  # someone else's order on the account, same symbol, another quantity
        {
            "duration": "DAY",
            "orderType": "MARKET",
            "orderLegCollection": [
                {"instruction": "BUY", "quantity": 3, "instrument": {"symbol": "MSFT", "assetType": "EQUITY"}}
            ],
        }
    )
    fake.delay_next(5)

    with pytest.raises(BrokerUnknownOutcome):
        slow.place(order(cid="tm-slow"))

    state = slow.get_order("tm-slow")
    assert state is not None and state.broker_order_id != str(other["orderId"])
    assert (state.status, state.filled_quantity, state.average_fill_price) == (
        BrokerOrderStatus.FILLED,
        D("10"),
        D("187.25"),
    )
    searches = [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/orders")]
    assert len(searches) == 1  # one search of the recent orders, then the order is mapped
    updates = slow.poll_updates(timezone.now())
    assert kinds(updates) == [UpdateKind.ACCEPTED, UpdateKind.FILL]


def test_get_order_of_a_client_id_never_sent_here_is_unknown_not_absent(adapter):
    # Schwab cannot be asked by client id: "None" (never received) would be a guess
    with pytest.raises(BrokerUnknownOutcome):
        adapter.get_order("never-sent")


def test_server_error_on_place_is_unknown_and_on_read_is_retryable(adapter, fake):
    adapter.account()
    fake.fail_next(503, {"message": "Service Unavailable", "errors": []})
    with pytest.raises(BrokerUnknownOutcome):
        adapter.place(order())
    fake.fail_next(500, {"message": "Internal Server Error", "errors": []})
    with pytest.raises(BrokerRetryable):
        adapter.open_orders()


def test_unreachable_broker_is_retryable(settings, schwab_account, fake):
    fake.stop()
    settings.SCHWAB_TRADER_URL, settings.SCHWAB_TOKEN_URL = fake.trader_url, fake.token_url
    with pytest.raises(BrokerRetryable, match="cannot reach"):
        SchwabAdapter(schwab_account).account()


# --- fills, cancel, open orders -------------------------------------------------------------------
def test_partial_fill_then_fill_over_polls(adapter, fake):
    fake.fills["MSFT"] = [(D("4"), D("410.00")), (D("6"), D("410.10"))]
    placed = adapter.place(order(symbol="MSFT", order_type=OrderType.LIMIT, price=D("411")))
    first = adapter.poll_updates(timezone.now())
    second = adapter.poll_updates(timezone.now())

    assert kinds(placed) == [UpdateKind.ACCEPTED, UpdateKind.FILL]
    assert (placed[1].fill.quantity, placed[1].fill.price) == (D("4"), D("410.00"))
    assert kinds(first) == [UpdateKind.FILL]
    assert (first[0].fill.quantity, first[0].fill.price) == (D("6"), D("410.10"))
    assert placed[1].fill.broker_fill_id != first[0].fill.broker_fill_id
    assert second == []
    state = adapter.get_order("tm-1")
    assert (state.status, state.filled_quantity, state.average_fill_price) == (
        BrokerOrderStatus.FILLED,
        D("10"),
        D("410.06"),
    )


def test_open_orders_cancel_and_cancel_of_a_filled_order(adapter, fake):
    [accepted] = adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    [state] = adapter.open_orders()
    assert (state.client_order_id, state.status, state.quantity, state.symbol, state.side) == (
        "tm-1",
        BrokerOrderStatus.OPEN,
        D("10"),
        "AAPL",
        Side.BUY,
    )
    updates = adapter.cancel(OrderRef("tm-1", accepted.broker_order_id))
    assert kinds(updates) == [UpdateKind.CANCELLED]
    assert adapter.open_orders() == []

    fake.fills["AAPL"] = [(D("10"), D("187"))]
    adapter.place(order(cid="tm-2"))
    with pytest.raises(BrokerRejected, match="not cancelable"):
        adapter.cancel(OrderRef("tm-2"))


def test_replace_puts_the_full_spec_and_follows_the_new_order(adapter, fake):
    [accepted] = adapter.place(order(order_type=OrderType.LIMIT, price=D("100")))
    old_id = int(accepted.broker_order_id)

    [replaced] = adapter.replace(
        OrderRef("tm-1", accepted.broker_order_id), OrderChange(quantity=D("15"), price=D("101.5"))
    )

    assert fake.orders[old_id]["status"] == "REPLACED"
    method, path, body = fake.requests[-1]
    assert (method, path) == ("PUT", f"/accounts/{fake.account_hash}/orders/{old_id}")
    assert (body["price"], body["orderLegCollection"][0]["quantity"]) == ("101.50", 15)
    new_id = replaced.broker_order_id
    assert (replaced.kind, replaced.client_order_id) == (UpdateKind.REPLACED, "tm-1")
    assert new_id != str(old_id) and fake.orders[int(new_id)]["status"] == "WORKING"
    assert replaced.change == OrderChange(quantity=D("15"), price=D("101.50"), time_in_force=TimeInForce.DAY)
    assert adapter.get_order("tm-1").broker_order_id == new_id
    [cancelled] = adapter.cancel(OrderRef("tm-1", str(old_id)))  # the caller's stale id
    assert cancelled.broker_order_id == new_id and fake.orders[int(new_id)]["status"] == "CANCELED"


# --- positions and account ----------------------------------------------------------------------
def test_positions_are_signed_and_account_reads_balances_as_decimals(adapter, fake):
    fake.positions = [
        {
            "longQuantity": D("12"),
            "shortQuantity": D("0"),
            "averagePrice": D("180.5"),
            "marketValue": D("2200"),
            "instrument": {"symbol": "AAPL", "assetType": "EQUITY", "cusip": "037833100"},
        },
        {
            "longQuantity": D("0"),
            "shortQuantity": D("3"),
            "averagePrice": D("250.123"),
            "marketValue": D("-750"),
            "instrument": {"symbol": "TSLA", "assetType": "EQUITY", "cusip": "88160R101"},
        },
    ]
    assert adapter.positions() == [
        BrokerPosition("AAPL", D("12"), D("180.5")),
        BrokerPosition("TSLA", D("-3"), D("250.123")),
    ]
    info = adapter.account()
    assert (info.cash, info.buying_power, info.total_value) == (D("50000"), D("100000"), D("75000.5"))
    assert all(type(v) is Decimal for v in (info.cash, info.buying_power, info.total_value))


def test_health_is_connected_then_down_when_the_refresh_token_expired(adapter, fake):
    assert adapter.health().status is Health.CONNECTED
    fake.expire_access_token()
    fake.refresh_token_expired = True
    report = adapter.health()
    assert (report.status, "re-authorize" in report.detail) == (Health.DOWN, True)


def test_the_fake_speaks_schwab_json(fake):
    assert json.loads(fake.secret_json()) == {
        "app_secret": fake.app_secret,
        "refresh_token": fake.refresh_token,
    }


def test_quote_comes_from_the_market_data_api_with_exact_decimals(adapter, fake):
    fake.set_quote("AAPL", D("150.01"), D("150.03"), last=D("150.02"), size=D("300"))
    quote = adapter.quote("AAPL")
    assert (quote.bid, quote.ask, quote.last, quote.bid_size) == (
        D("150.01"),
        D("150.03"),
        D("150.02"),
        D("300"),
    )
    assert quote.mid == D("150.02")


def test_quote_of_an_unknown_symbol_is_refused_and_a_one_sided_book_is_no_quote(adapter, fake):
    with pytest.raises(BrokerRejected, match="does not know the symbol ZZZZ"):
        adapter.quote("ZZZZ")
    fake.set_quote("AAPL", D("0"), D("150.03"))
    with pytest.raises(BrokerError, match="no two-sided quote") as caught:
        adapter.quote("AAPL")
    assert caught.value.code == "NO_QUOTE"


def test_an_order_placed_through_the_oms_fills_in_two_parts_and_opens_a_position(
    adapter, fake, trader, schwab_account
):
    fake.set_quote("AAPL", D("150.20"), D("150.30"))
    fake.fills["AAPL"] = [(D("4"), D("150.25")), (D("6"), D("150.28"))]
    broker_account_sync(account=schwab_account)  # buying power for the pre-trade check
    placed = order_place(
        user=trader,
        request=order_request(symbol="AAPL", quantity="10"),
        actor=Actor.for_user(trader),
        broker_id=schwab_account.pk,
    ).order
    assert placed.broker_id == schwab_account.pk
    statuses = [placed.status]
    while placed.status != "FILLED" and len(statuses) < 5:
        order_apply_updates(account=schwab_account, updates=adapter.poll_updates(timezone.now()))
        placed.refresh_from_db()
        statuses.append(placed.status)
    assert "PARTIALLY_FILLED" in statuses and statuses[-1] == "FILLED", statuses
    fills = list(placed.fills.order_by("id").values_list("quantity", "price"))
    assert fills == [(D("4"), D("150.25")), (D("6"), D("150.28"))]
    assert placed.average_fill_price == D("150.268")
    position = Position.objects.get(user=trader, broker=schwab_account, symbol="AAPL")
    assert (position.quantity, position.average_cost) == (D("10"), D("150.268"))


def test_a_process_that_did_not_place_an_order_follows_it_by_its_schwab_id(
    adapter, fake, trader, schwab_account
):
    """Schwab has no client order ids: the feed worker (another process) did not place the
    order, so it reports the order's fills by Schwab order id, and the OMS resolves that."""
    fake.set_quote("AAPL", D("150.20"), D("150.30"))
    fake.fill_on_place = fake.fill_on_read = False
    broker_account_sync(account=schwab_account)
    placed = order_place(
        user=trader,
        request=order_request(symbol="AAPL", quantity="10", order_type="LIMIT", price="150.30"),
        actor=Actor.for_user(trader),
        broker_id=schwab_account.pk,
    ).order
    assert placed.status == "ACCEPTED"
    worker = SchwabAdapter(schwab_account)  # the feed worker's adapter: it never saw this order
    assert worker.poll_updates(timezone.now()) == []  # first seen open, nothing filled: nothing new

    fake.fills["AAPL"] = [(D("4"), D("150.25")), (D("6"), D("150.28"))]
    fake.execute(int(placed.broker_order_id))
    updates = worker.poll_updates(timezone.now())
    assert [(u.kind, u.client_order_id, u.broker_order_id) for u in updates] == [
        (UpdateKind.FILL, "", placed.broker_order_id)
    ]
    order_apply_updates(account=schwab_account, updates=updates)
    placed.refresh_from_db()
    assert (placed.status, placed.filled_quantity) == ("PARTIALLY_FILLED", D("4"))

    fake.execute(int(placed.broker_order_id))
    order_apply_updates(account=schwab_account, updates=worker.poll_updates(timezone.now()))
    placed.refresh_from_db()
    assert (placed.status, placed.filled_quantity) == ("FILLED", D("10"))
    assert not placed.events.filter(event_type="BROKER_ANOMALY").exists()


def test_another_process_looks_an_order_up_by_its_schwab_id_never_guessing_absence(
    adapter, fake, trader, schwab_account
):
    placed = adapter.place(order(cid="tm-elsewhere", order_type=OrderType.LIMIT, price=D("150.00")))
    schwab_id = placed[0].broker_order_id
    other = SchwabAdapter(schwab_account)  # e.g. the reconciliation task in the Celery worker

    with pytest.raises(BrokerUnknownOutcome, match="looked up by its Schwab order id only"):
        other.get_order("tm-elsewhere")  # not None: that would read as "never received"
    state = other.get_order("tm-elsewhere", schwab_id)
    assert (state.client_order_id, state.broker_order_id, state.status) == (
        "tm-elsewhere",
        schwab_id,
        BrokerOrderStatus.OPEN,
    )


def test_after_a_restart_reconciliation_repairs_a_fill_the_service_missed(
    adapter, fake, trader, schwab_account
):
    fake.set_quote("AAPL", D("150.20"), D("150.30"))
    fake.fill_on_place = fake.fill_on_read = False
    broker_account_sync(account=schwab_account)
    placed = order_place(
        user=trader,
        request=order_request(symbol="AAPL", quantity="10", order_type="LIMIT", price="150.30"),
        actor=Actor.for_user(trader),
        broker_id=schwab_account.pk,
    ).order
    # while the service is down, Schwab fills the order
    fake.fills["AAPL"] = [(D("10"), D("150.26"))]
    fake.execute(int(placed.broker_order_id))
    adapters_reset()  # the restart: no adapter remembers the order

    report = reconcile_account(account=schwab_account)

    placed.refresh_from_db()
    assert (placed.status, placed.filled_quantity, placed.average_fill_price) == (
        "FILLED",
        D("10"),
        D("150.26"),
    )
    assert report.repaired == {placed.client_order_id: ["filled 10 at the broker"]}


def test_the_worker_reports_an_order_that_opened_and_closed_between_two_of_its_polls(
    adapter, fake, trader, schwab_account
):
    fake.set_quote("AAPL", D("150.20"), D("150.30"))
    fake.fill_on_read = False
    broker_account_sync(account=schwab_account)
    worker = SchwabAdapter(schwab_account)
    assert worker.poll_updates(timezone.now()) == []  # the worker follows the account from here
    # the web process places two orders: one fills at once, the other is cancelled by the trader
    fake.fills["AAPL"] = [(D("10"), D("150.29"))]
    filled = order_place(
        user=trader,
        request=order_request(symbol="AAPL", quantity="10"),
        actor=Actor.for_user(trader),
        broker_id=schwab_account.pk,
    ).order
    resting = order_place(
        user=trader,
        request=order_request(symbol="AAPL", quantity="5", order_type="LIMIT", price="149.00"),
        actor=Actor.for_user(trader),
        broker_id=schwab_account.pk,
    ).order
    order_cancel(user=trader, order_id=resting.pk, actor=Actor.for_user(trader))
    order_apply_updates(account=schwab_account, updates=adapter.poll_updates(timezone.now()))
    resting.refresh_from_db()
    assert resting.status == "CANCELLED"

    # the worker's next poll sees both closed: the fill is new to it, the cancel is not new to the OMS
    updates = worker.poll_updates(timezone.now())
    assert {(u.kind, u.broker_order_id) for u in updates} >= {(UpdateKind.FILL, filled.broker_order_id)}
    order_apply_updates(account=schwab_account, updates=updates)
    filled.refresh_from_db()
    assert (filled.status, filled.filled_quantity) == ("FILLED", D("10"))
    assert filled.fills.count() == 1  # the web process had booked it already: not twice
    assert not OrderEvent.objects.filter(event_type="BROKER_ANOMALY").exists()


@pytest.mark.parametrize("same_process", [True, False], ids=["same-process", "other-process"])
def test_a_lost_answer_whose_lookup_also_failed_is_settled_by_reconciliation_not_lost(
    settings, adapter, fake, trader, schwab_account, same_process
):
    """Double fault: Schwab takes the order but its answer is late, and the lookup that follows
    fails too. The order stays SUBMITTED (uncertain), and reconciliation finds it by its details:
    it is never rejected while it works at Schwab, and nothing executes there unmapped."""
    settings.SCHWAB_TIMEOUT_SECONDS = 0.5
    adapters_reset()
    schwab_adapter = adapter_for(schwab_account)
    fake.set_quote("AAPL", D("150.20"), D("150.30"))
    fake.fills["AAPL"] = [(D("10"), D("150.27"))]
    broker_account_sync(account=schwab_account)
    fake.delay_next(2)  # the placement is processed, its answer comes after the timeout
    fake.fail_next_read(500, {"message": "Internal Server Error", "errors": []})  # the lookup fails
    order_place(
        user=trader,
        request=order_request(symbol="AAPL", quantity="10", client_order_id="tm-double"),
        actor=Actor.for_user(trader),
        broker_id=schwab_account.pk,
    )
    order = Order.objects.get(client_order_id="tm-double")
    assert order.status == "SUBMITTED"
    assert order.events.filter(event_type="SUBMIT_UNCERTAIN").exists()

    rate_store_reset()  # a second later: the cooldown the 500 started is over
    if not same_process:
        adapters_reset()  # reconciliation in another process (or after a restart): no memory of it
    report = reconcile_account(account=schwab_account)

    order.refresh_from_db()
    [at_schwab] = fake.orders.values()
    if same_process:  # found by its details, with its fill
        assert schwab_adapter is adapter_for(schwab_account)
        assert order.broker_order_id == str(at_schwab["orderId"])
        assert (order.status, order.filled_quantity) == ("FILLED", D("10"))
        assert report.repaired[order.client_order_id]
    else:  # cannot be told from absent here: left as it is for a person to look at, never rejected
        assert (order.status, report.unreachable) == ("SUBMITTED", 1)
