"""Fixtures for the routing integration tests: AAPL at 100.00 on the paper venues, placing orders
without naming a broker, and a second account at venue B.

With the mid at 100.00 the venues show (brokers/domain/market.py build_book, terms from
brokers/migrations/0002_paper_venues_and_instruments.py):

* venue A (2 bps spread, 5 levels, size factor 1, 0.005/share, minimum 1.00 per execution):
  99.99 / 100.01; asks 100.01 x 200, 100.02 x 400, 100.03 x 600, 100.04 x 800, 100.05 x 1000;
* venue B (6 bps spread, 3 levels, size factor 0.6, no commission):
  99.97 / 100.03; asks 100.03 x 120, 100.04 x 240, 100.05 x 360.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.models import BrokerAccount, BrokerName, PaperBalance
from orders.models import Order
from orders.services import Actor, order_place
from tests.builders import order_request

LABEL_A = "Paper Equities A (tight spread, per-share fee)"
LABEL_B = "Paper Equities B (wider spread, no commission)"
LABEL_B2 = "Paper Equities B (second account)"
LABEL_CRYPTO = "Paper Crypto (bps fee)"


@pytest.fixture
def aapl(set_mid):
    set_mid("AAPL", "100.00")


@pytest.fixture
def place(trader):
    """Place ``order_request(**request)`` for the trader, routed by the service unless broker_id."""

    def place_(*, broker_id: int | None = None, **request) -> Order:
        return order_place(
            user=trader, request=order_request(**request), actor=Actor.for_user(trader), broker_id=broker_id
        ).order

    return place_


@pytest.fixture
def second_b(trader, accounts) -> BrokerAccount:
    """A second account of the trader at venue B, funded like the first (100,000 cash)."""
    cash = Decimal("100000")
    account = BrokerAccount.objects.create(
        user=trader,
        broker_name=BrokerName.PAPER,
        account_id="PAPER-EQ-B2",
        label=LABEL_B2,
        paper_venue=accounts["PAPER-EQ-B"].paper_venue,
        margin_account=True,
        day_trading_policy="legacy_pdt",
        sandbox_mode=True,
        buying_power=cash,
        cash=cash,
        total_value=cash,
    )
    PaperBalance.objects.create(account=account, cash=cash)
    return account
