"""Positions, fees and the broker account's money as fills flow through the pipeline.

Venue A (PAPER-EQ-A, $100,000): 2 bps, $0.005/share, $1 minimum per execution. At AAPL 100.00:
99.99 / 100.01; at 101.00 and 105.00 the half spread is 0.02 (101.00 * 2 / 20000 = 0.0101 -> 0.02).
Venue B (PAPER-EQ-B, $100,000): 6 bps, no commission. At 100.00: 99.97 / 100.03; at 102.00: ask 102.04.
Crypto (PAPER-CRYPTO, $50,000): 8 bps, 10 bps fee. SOL/USD at 200.00: 199.92 / 200.08.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.models import BrokerAccount, PaperBalance, PaperHolding, PaperOrder
from orders.models import Fill, Position
from orders.services import market_tick
from tests.integration.pipeline.support import fills, place

pytestmark = pytest.mark.django_db

D = Decimal


def position(user, account, symbol="AAPL") -> Position:
    return Position.objects.get(user=user, broker=account, symbol=symbol)


def test_buy_then_sell_more_flips_to_a_short_with_exact_realized_pnl(trader, accounts, set_mid):
    account = accounts["PAPER-EQ-A"]
    # given a long of 10 bought at 100.01 (fee 1.00)
    set_mid("AAPL", "100.00")
    place(trader, account, side="BUY", order_type="MARKET", quantity="10")
    # when the market rises to 101.00 (bid 100.98) and the trader sells 15 (fee 1.00)
    set_mid("AAPL", "101.00")
    sell = place(trader, account, side="SELL", order_type="MARKET", quantity="15").order
    assert (sell.status, sell.average_fill_price) == ("FILLED", D("100.98"))
    # then 10 closed at a gain of (100.98 - 100.01) * 10 and a short of 5 opened at 100.98
    pos = position(trader, account)
    assert pos.quantity == D("-5")
    assert pos.average_cost == D("100.98")
    assert pos.realized_pnl == D("9.70")
    assert pos.total_fees == D("2.00")
    assert pos.market_price == D("100.98")
    assert pos.market_value == D("-504.90")
    assert pos.unrealized_pnl == D("0")
    # and the venue's own book agrees
    holding = PaperHolding.objects.get(account=account, symbol="AAPL")
    assert (holding.quantity, holding.average_cost) == (D("-5"), D("100.98"))


def test_average_cost_after_two_buys_at_different_prices(trader, accounts, set_mid):
    account = accounts["PAPER-EQ-B"]
    # given 10 bought at 100.03
    set_mid("AAPL", "100.00")
    place(trader, account, side="BUY", order_type="MARKET", quantity="10")
    # when the market rises to 102.00 and the trader buys 30 more (at 102.04)
    set_mid("AAPL", "102.00")
    second = place(trader, account, side="BUY", order_type="MARKET", quantity="30").order
    assert second.average_fill_price == D("102.04")
    # then the average cost is the weighted average: (10*100.03 + 30*102.04) / 40 = 4061.50 / 40
    pos = position(trader, account)
    assert pos.quantity == D("40")
    assert pos.average_cost == D("101.5375")
    assert pos.realized_pnl == D("0")
    assert pos.total_fees == D("0")
    # marked at the last fill price: 40 * 102.04, (102.04 - 101.5375) * 40
    assert pos.market_value == D("4081.60")
    assert pos.unrealized_pnl == D("20.10")


def test_fees_accumulate_on_the_order_and_the_position(trader, accounts, set_mid):
    account = accounts["PAPER-EQ-A"]
    # given AAPL at 100.00
    set_mid("AAPL", "100.00")
    # when the trader buys 300 (200 @ 100.01 and 100 @ 100.02: fees 1.00 and 0.50 raised to the 1.00 minimum)
    first = place(trader, account, side="BUY", order_type="MARKET", quantity="300").order
    # then the order's commission is the sum of its executions' fees
    assert [fee for _, _, fee, _ in fills(first)] == [D("1.0000"), D("1.0000")]
    assert first.commission == D("2.0000")
    assert position(trader, account).total_fees == D("2.00")
    # when the trader buys 400 more (200 @ 100.01: 1.00, 200 @ 100.02: 1.00)
    second = place(trader, account, side="BUY", order_type="MARKET", quantity="400").order
    assert second.commission == D("2.0000")
    # then the position carries every fee paid, the order only its own
    pos = position(trader, account)
    assert pos.total_fees == D("4.00")
    assert pos.quantity == D("700")
    # (200*100.01 + 100*100.02 + 200*100.01 + 200*100.02) / 700 = 70010.00 / 700 = 100.0142857...
    assert pos.average_cost == D("100.01428571")
    assert sum(Fill.objects.filter(user=trader).values_list("fee", flat=True)) == D("4.0000")


def test_crypto_fees_are_basis_points_of_notional(trader, accounts, set_mid):
    account = accounts["PAPER-CRYPTO"]
    # given SOL/USD at 200.00 (ask 200.08)
    set_mid("SOL/USD", "200.00")
    # when the trader buys 10
    order = place(trader, account, symbol="SOL/USD", side="BUY", order_type="MARKET", quantity="10").order
    # then the fee is 10 bps of 2000.80
    assert order.average_fill_price == D("200.08")
    assert order.commission == D("2.0008")
    assert position(trader, account, "SOL/USD").total_fees == D("2.0008")


def test_market_tick_revalues_positions_at_the_new_mid(trader, accounts, set_mid):
    # given a long of 10 AAPL at 100.01 on venue A and a short of 5 at 99.97 on venue B
    set_mid("AAPL", "100.00")
    place(trader, accounts["PAPER-EQ-A"], side="BUY", order_type="MARKET", quantity="10")
    place(trader, accounts["PAPER-EQ-B"], side="SELL", order_type="MARKET", quantity="5")
    # when the market moves to 105.00 and the venue ticks without moving prices itself
    set_mid("AAPL", "105.00")
    market_tick(advance=False)
    # then both positions are marked at 105.00
    long = position(trader, accounts["PAPER-EQ-A"])
    assert long.market_price == D("105.00")
    assert long.market_value == D("1050.00")
    assert long.unrealized_pnl == D("49.90")  # (105.00 - 100.01) * 10
    short = position(trader, accounts["PAPER-EQ-B"])
    assert short.market_price == D("105.00")
    assert short.market_value == D("-525.00")
    assert short.unrealized_pnl == D("-25.15")  # (105.00 - 99.97) * -5
    # and cost and realized P&L are untouched
    assert (long.average_cost, long.realized_pnl) == (D("100.01"), D("0"))
    assert (short.average_cost, short.realized_pnl) == (D("99.97"), D("0"))


def test_broker_account_money_follows_the_fills(trader, accounts, set_mid):
    account = accounts["PAPER-EQ-A"]
    assert (account.cash, account.buying_power, account.total_value) == (D("100000"),) * 3
    # given AAPL at 100.00
    set_mid("AAPL", "100.00")
    # when the trader buys 10 at 100.01 with a 1.00 fee
    place(trader, account, side="BUY", order_type="MARKET", quantity="10")
    # then the venue debits notional and fee, and the account's cached figures follow
    account = BrokerAccount.objects.get(pk=account.pk)
    assert PaperBalance.objects.get(account=account).cash == D("98998.90")  # 100000 - 1000.10 - 1.00
    assert account.cash == D("98998.90")
    assert account.buying_power == D("98998.90")
    assert account.total_value == D("99998.90")  # cash + 10 * mid 100.00
    # when the market rises to 105.00 (bid 104.98) and the trader sells the 10
    set_mid("AAPL", "105.00")
    place(trader, account, side="SELL", order_type="MARKET", quantity="10")
    # then the proceeds less the fee are credited
    account = BrokerAccount.objects.get(pk=account.pk)
    assert account.cash == D("100047.70")  # 98998.90 + 1049.80 - 1.00
    assert account.buying_power == D("100047.70")
    assert account.total_value == D("100047.70")  # flat
    # and the other accounts are untouched
    other = BrokerAccount.objects.get(pk=accounts["PAPER-EQ-B"].pk)
    assert (other.cash, other.total_value) == (D("100000"), D("100000"))


def test_crypto_account_money_follows_the_fills(trader, accounts, set_mid):
    account = accounts["PAPER-CRYPTO"]
    # given SOL/USD at 200.00
    set_mid("SOL/USD", "200.00")
    # when the trader buys 10 at 200.08 with a 2.0008 fee
    place(trader, account, symbol="SOL/USD", side="BUY", order_type="MARKET", quantity="10")
    # then the cash is debited by notional and fee and the holding is valued at the mid
    account = BrokerAccount.objects.get(pk=account.pk)
    assert account.cash == D("47997.1992")  # 50000 - 2000.80 - 2.0008
    assert account.buying_power == D("47997.1992")
    assert account.total_value == D("49997.1992")  # + 10 * 200.00


def test_buying_more_than_the_cash_is_rejected_for_buying_power(trader, accounts, set_mid):
    account = accounts["PAPER-EQ-A"]
    # given AAPL at 100.00 and $100,000 at venue A
    set_mid("AAPL", "100.00")
    # when the trader buys 1000 at market (1000 * ask 100.01 = 100,010.00)
    order = place(trader, account, side="BUY", order_type="MARKET", quantity="1000").order
    # then the pre-trade check refuses it for buying power, with the numbers, and nothing trades
    assert order.status == "REJECTED"
    assert order.status_reason == (
        "This order needs 100,010.00 of buying power but 100,000.00 is available "
        "(100,000.00 less 0.00 reserved by open orders) (INSUFFICIENT_BUYING_POWER)."
    )
    assert order.filled_quantity == D("0")
    assert not Fill.objects.filter(order=order).exists()
    assert not Position.objects.filter(user=trader).exists()
    assert not PaperOrder.objects.filter(client_order_id=order.client_order_id).exists()
    account = BrokerAccount.objects.get(pk=account.pk)
    assert (account.cash, account.buying_power) == (D("100000"), D("100000"))
    assert PaperBalance.objects.get(account=account).cash == D("100000")


def test_selling_crypto_not_held_is_rejected(trader, accounts, set_mid):
    account = accounts["PAPER-CRYPTO"]
    set_mid("SOL/USD", "200.00")
    # when the trader sells 1 SOL holding none
    order = place(trader, account, symbol="SOL/USD", side="SELL", order_type="MARKET", quantity="1").order
    # then the venue refuses: no short selling of crypto
    assert order.status == "REJECTED"
    assert "insufficient SOL" in order.status_reason
    assert "no short selling" in order.status_reason
    assert not Position.objects.filter(user=trader).exists()
    # given 1 SOL bought
    place(trader, account, symbol="SOL/USD", side="BUY", order_type="MARKET", quantity="1")
    # when the trader sells 2
    order = place(trader, account, symbol="SOL/USD", side="SELL", order_type="MARKET", quantity="2").order
    # then it is refused too and the holding is unchanged
    assert order.status == "REJECTED"
    assert "holding 1" in order.status_reason
    assert position(trader, account, "SOL/USD").quantity == D("1")


def test_new_marks_are_announced_on_the_stream_at_most_once_per_interval(trader, accounts, set_mid, settings):
    from trademaster.models import OutboxEvent

    # a fresh throttle of its own: an interval no other test uses
    settings.POSITION_MARK_EVENT_SECONDS = D("3600.000417")
    account = accounts["PAPER-EQ-A"]
    set_mid("AAPL", "100.00")
    place(trader, account, side="BUY", order_type="MARKET", quantity="10")

    def marked():
        return list(OutboxEvent.objects.filter(type="POSITIONS_MARKED", user_id=trader.pk).order_by("id"))

    # when the market moves, the new marks go out with the user's position and its P&L
    set_mid("AAPL", "101.00")
    market_tick(advance=False)
    (event,) = marked()
    (data,) = event.payload["positions"]
    assert (data["symbol"], D(data["quantity"])) == ("AAPL", D("10"))
    assert D(data["unrealized_pnl"]) == position(trader, account).unrealized_pnl != 0
    # and a move inside the interval is held back, not announced again
    set_mid("AAPL", "102.00")
    market_tick(advance=False)
    assert len(marked()) == 1
    assert position(trader, account).market_price == D("102.00")  # the mark itself is applied


def test_held_back_marks_go_out_with_the_first_tick_after_the_interval(trader, accounts, set_mid, settings):
    from trademaster.models import OutboxEvent

    settings.POSITION_MARK_EVENT_SECONDS = D("0.000001")  # any tick is after the interval
    account = accounts["PAPER-EQ-A"]
    set_mid("AAPL", "100.00")
    place(trader, account, side="BUY", order_type="MARKET", quantity="10")
    set_mid("AAPL", "101.00")
    market_tick(advance=False)
    set_mid("AAPL", "103.00")
    market_tick(advance=False)
    events = OutboxEvent.objects.filter(type="POSITIONS_MARKED", user_id=trader.pk).order_by("id")
    assert [D(e.payload["positions"][0]["unrealized_pnl"]) for e in events][-1] == (
        position(trader, account).unrealized_pnl
    )
    assert events.count() == 2
