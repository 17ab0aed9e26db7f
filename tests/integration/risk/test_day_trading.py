"""Day-trading compliance runs as each account's policy inside the pre-trade check."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, PaperBalance
from brokers.services import broker_account_sync
from orders.services import Actor, order_place
from tests.builders import order_request

pytestmark = pytest.mark.django_db


def place(user, account, **kw):
    return order_place(
        user=user, request=order_request(**kw), actor=Actor.for_user(user), broker_id=account.pk
    ).order


def small_account(account: BrokerAccount, policy: str) -> BrokerAccount:
    """A margin account with less than $25,000 equity under ``policy``."""
    PaperBalance.objects.filter(account=account).update(cash=D("20000"))
    BrokerAccount.objects.filter(pk=account.pk).update(day_trading_policy=policy, margin_account=True)
    return broker_account_sync(account=BrokerAccount.objects.get(pk=account.pk))


def day_trade(user, account, symbol: str) -> None:
    assert place(user, account, symbol=symbol, quantity="1").status == "FILLED"
    assert place(user, account, symbol=symbol, side="SELL", quantity="1").status == "FILLED"


@pytest.fixture
def prices(set_mid):
    for symbol, mid in {"AAPL": "100.00", "MSFT": "200.00", "NVDA": "50.00", "AMZN": "150.00"}.items():
        set_mid(symbol, mid)


def test_legacy_pdt_refuses_the_order_that_could_be_the_fourth_day_trade(trader, accounts, prices):
    account = small_account(accounts["PAPER-EQ-B"], "legacy_pdt")
    # given three day trades today
    for symbol in ("AAPL", "MSFT", "NVDA"):
        day_trade(trader, account, symbol)
    # when the trader opens and then tries to close a fourth round trip
    assert place(trader, account, symbol="AMZN", quantity="1").status == "FILLED"
    closing = place(trader, account, symbol="AMZN", side="SELL", quantity="1")
    # then the closing order is refused, naming the count and the rule
    assert closing.status == "REJECTED"
    assert "day trade #4" in closing.status_reason


@pytest.mark.parametrize("policy", ["off", "intraday_margin", "broker_enforced"])
def test_other_policies_do_not_count_round_trips(trader, accounts, prices, policy):
    account = small_account(accounts["PAPER-EQ-B"], policy)
    BrokerAccount.objects.filter(pk=account.pk).update(day_trading_policy=policy)
    for symbol in ("AAPL", "MSFT", "NVDA"):
        day_trade(trader, account, symbol)
    assert place(trader, account, symbol="AMZN", quantity="1").status == "FILLED"
    closing = place(trader, account, symbol="AMZN", side="SELL", quantity="1")
    # a closing (reducing) order is never a new intraday margin deficit, and the others do not count
    assert closing.status == "FILLED"


def test_accounts_with_25000_or_more_equity_are_not_limited(trader, accounts, prices):
    account = accounts["PAPER-EQ-B"]  # 100,000
    for symbol in ("AAPL", "MSFT", "NVDA", "AMZN"):
        day_trade(trader, account, symbol)


def test_the_profile_switch_turns_enforcement_off(trader, accounts, prices):
    from risk.models import RiskProfile
    from risk.services import risk_profile_get

    account = small_account(accounts["PAPER-EQ-B"], "legacy_pdt")
    RiskProfile.objects.filter(pk=risk_profile_get(user=trader).pk).update(pdt_enforcement=False)
    for symbol in ("AAPL", "MSFT", "NVDA", "AMZN"):
        day_trade(trader, account, symbol)
