"""Failover between real adapters over loopback fakes: no broker is faked in-process here.

The trader has an Alpaca account (the better quote, so routing picks it first) and a Schwab
account; the paper accounts every user gets are switched off so only these two compete.
"""

from __future__ import annotations

import datetime as dt
import socket
from decimal import Decimal as D

import pytest
from django.utils import timezone

from brokers.models import BrokerAccount
from brokers.services import adapter_for, adapters_reset, broker_account_sync
from orders.models import OrderEvent
from orders.services import Actor, order_apply_updates, order_place, orders_resend_due
from tests.builders import order_request
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.schwab import FakeSchwab

pytestmark = pytest.mark.django_db


@pytest.fixture
def fakes(settings):
    alpaca_data, alpaca, schwab = FakeAlpaca().start(), FakeAlpaca().start(), FakeSchwab().start()
    settings.ALPACA_DATA_URL = alpaca_data.url  # market data answers even when trading is down
    settings.ALPACA_TRADING_URL = alpaca.url
    settings.ALPACA_TIMEOUT_SECONDS = 0.5
    settings.SCHWAB_TRADER_URL = schwab.trader_url
    settings.SCHWAB_MARKETDATA_URL = schwab.marketdata_url
    settings.SCHWAB_TOKEN_URL = schwab.token_url
    settings.SCHWAB_TIMEOUT_SECONDS = 2
    alpaca_data.set_quote("AAPL", D("187.00"), D("187.02"))  # Alpaca's ask is the better one
    schwab.set_quote("AAPL", D("187.00"), D("187.10"))
    alpaca.fills["AAPL"] = [(D("10"), D("187.02"))]
    schwab.fills["AAPL"] = [(D("10"), D("187.10"))]
    yield alpaca, schwab
    for fake in (alpaca_data, alpaca, schwab):
        fake.stop()


@pytest.fixture
def brokers(trader, fakes):
    alpaca_fake, schwab_fake = fakes
    BrokerAccount.objects.filter(user=trader, broker_name="paper").update(is_active=False)
    alpaca = BrokerAccount.objects.create(
        user=trader,
        broker_name="alpaca",
        account_id="PA3TEST0001",
        api_key_encrypted=alpaca_fake.key,
        api_secret_encrypted=alpaca_fake.secret,
    )
    schwab = BrokerAccount.objects.create(
        user=trader,
        broker_name="schwab",
        account_id=schwab_fake.account_number,
        api_key_encrypted=schwab_fake.app_key,
        api_secret_encrypted=schwab_fake.secret_json(),
    )
    for account in (alpaca, schwab):
        broker_account_sync(account=BrokerAccount.objects.get(pk=account.pk))
    return BrokerAccount.objects.get(pk=alpaca.pk), BrokerAccount.objects.get(pk=schwab.pk)


def buy(trader):
    return order_place(
        user=trader, request=order_request(symbol="AAPL", quantity="10"), actor=Actor.for_user(trader)
    ).order


def test_with_the_chosen_brokers_server_down_the_order_goes_to_the_other_broker(
    settings, trader, fakes, brokers
):
    _, schwab_fake = fakes
    alpaca, schwab = brokers
    # Alpaca's trading API refuses connections (nothing listens there); its market data answers
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.ALPACA_TRADING_URL = f"http://127.0.0.1:{probe.getsockname()[1]}"
    adapters_reset()

    order = buy(trader)

    assert order.broker_id == schwab.pk
    [failover] = OrderEvent.objects.filter(order=order, event_type="FAILOVER").values_list("data", flat=True)
    assert (failover["from_broker"], failover["to_broker"]) == (alpaca.pk, schwab.pk)
    assert "cannot reach Alpaca" in failover["reason"]
    order_apply_updates(account=schwab, updates=_poll(schwab))
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.average_fill_price) == ("FILLED", D("10"), D("187.10"))
    assert len(schwab_fake.orders) == 1


def test_a_timed_out_submission_the_broker_accepted_is_found_and_not_sent_again(trader, fakes, brokers):
    alpaca_fake, schwab_fake = fakes
    alpaca, _ = brokers
    alpaca_fake.delay_next(3)  # Alpaca takes (and fills) the order but answers after our timeout

    order = buy(trader)

    # the lookup by client_order_id found it at Alpaca: it stays there, nothing goes to Schwab
    assert order.broker_id == alpaca.pk
    assert not OrderEvent.objects.filter(order=order, event_type="FAILOVER").exists()
    assert [o["client_order_id"] for o in alpaca_fake.orders.values()] == [order.client_order_id]
    assert schwab_fake.orders == {}
    order_apply_updates(account=alpaca, updates=_poll(alpaca))
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("FILLED", D("10"))


def test_a_submission_that_never_arrived_moves_to_the_other_broker(trader, fakes, brokers):
    alpaca_fake, schwab_fake = fakes
    _, schwab = brokers
    alpaca_fake.fail_next(503, {"code": 50300000, "message": "service unavailable"})  # not taken

    order = buy(trader)

    # 503 on a write is an unknown outcome: Alpaca was asked first, did not have it, so it moved
    assert order.broker_id == schwab.pk
    assert alpaca_fake.orders == {}
    lookups = [r for r in alpaca_fake.requests if r[1] == "/v2/orders:by_client_order_id"]
    assert len(lookups) == 1
    assert len(schwab_fake.orders) == 1


def _poll(account):
    return adapter_for(account).poll_updates(timezone.now())


def test_a_submission_that_never_arrived_at_a_named_broker_is_sent_again_later(trader, fakes, brokers):
    alpaca_fake, _ = fakes
    alpaca, _ = brokers
    alpaca_fake.fail_next(503, {"code": 50300000, "message": "service unavailable"})  # not taken

    order = order_place(
        user=trader,
        request=order_request(symbol="AAPL", quantity="10"),
        actor=Actor.for_user(trader),
        broker_id=alpaca.pk,  # named: it cannot move
    ).order

    # looked up, not there: kept and sent again after a pause, not rejected
    assert (order.status, order.broker_id) == ("SUBMITTED", alpaca.pk)
    [deferred] = OrderEvent.objects.filter(order=order, event_type="SUBMIT_DEFERRED").values_list(
        "data", flat=True
    )
    assert deferred["broker_code"] == "NOT_RECEIVED"
    assert orders_resend_due(now=timezone.now() + dt.timedelta(minutes=1)) == 1
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("FILLED", D("10"))
    assert [o["client_order_id"] for o in alpaca_fake.orders.values()] == [order.client_order_id]
