"""Best-execution scoring: the cheapest eligible venue wins, ineligible ones never do, ties spread."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from routing.domain.scoring import Fees, OrderToRoute, Venue, route

EQ = frozenset({AssetClass.EQUITY})


def venue(account_id: int, **kw) -> Venue:
    """An equities account quoting 99.99 / 100.01 with 1,000 shown at each of two levels."""
    fields = {
        "account_id": account_id,
        "label": f"acct-{account_id}",
        "asset_classes": EQ,
        "buying_power": D("1000000"),
        "bid": D("99.99"),
        "ask": D("100.01"),
        "bids": ((D("99.99"), D("1000")), (D("99.98"), D("1000"))),
        "asks": ((D("100.01"), D("1000")), (D("100.02"), D("1000"))),
    }
    fields.update(kw)
    return Venue(**fields)


def buy(quantity: str = "100", **kw) -> OrderToRoute:
    fields = {
        "symbol": "AAPL",
        "asset_class": AssetClass.EQUITY,
        "side": Side.BUY,
        "order_type": OrderType.MARKET,
        "time_in_force": TimeInForce.DAY,
        "quantity": D(quantity),
    }
    fields.update(kw)
    return OrderToRoute(**fields)


def test_the_cheapest_venue_on_price_plus_fees_wins_and_says_why():
    tight_but_dear = venue(1, fees=Fees(per_unit=D("0.01")))  # 100.01 + 0.01
    wide_but_free = venue(2, ask=D("100.015"), asks=((D("100.015"), D("1000")),))  # 100.015
    decision = route([tight_but_dear, wide_but_free], buy())
    assert decision.winner.account_id == 2
    assert [c.account_id for c in decision.candidates] == [2, 1]
    assert decision.winner.all_in_price == D("100.015")
    assert "better than acct-1" in decision.reason


def test_a_sell_is_scored_on_what_it_receives():
    rich_bid = venue(1, bid=D("99.995"), bids=((D("99.995"), D("1000")),))
    assert route([venue(2), rich_bid], buy(side=Side.SELL)).winner.account_id == 1


def test_walking_the_depth_costs_slippage():
    deep = venue(1, asks=((D("100.01"), D("1000")),))
    shallow = venue(2, asks=((D("100.01"), D("100")), (D("100.50"), D("1000"))))
    decision = route([shallow, deep], buy("500"))
    assert decision.winner.account_id == 1
    shallow_score = next(c for c in decision.candidates if c.account_id == 2)
    assert shallow_score.all_in_price == (D("100") * D("100.01") + D("400") * D("100.50")) / D("500")
    assert shallow_score.liquidity_bps == D(5) * D("400") / D("500")  # 80 % not at the touch


def test_ineligible_venues_are_never_chosen_and_say_why():
    cheapest = dict(ask=D("99.00"), asks=((D("99.00"), D("1000")),))
    down = venue(1, status="DOWN", **cheapest)
    inactive = venue(2, active=False, **cheapest)
    no_symbol = venue(3, has_symbol=False, **cheapest)
    no_type = venue(4, order_types=frozenset({OrderType.MARKET}), **cheapest)
    poor = venue(5, buying_power=D("500"), **cheapest)
    crypto_only = venue(6, asset_classes=frozenset({AssetClass.CRYPTO}), **cheapest)
    fine = venue(7)
    decision = route(
        [down, inactive, no_symbol, no_type, poor, crypto_only, fine], buy(order_type=OrderType.LIMIT)
    )
    assert decision.winner.account_id == 7
    reasons = {account: reason for account, _, reason in decision.skipped}
    assert reasons[1] == "broker connection is down"
    assert reasons[2] == "account is inactive"
    assert reasons[3] == "does not list AAPL"
    assert reasons[4] == "does not take LIMIT orders"
    assert reasons[5].startswith("buying power 500.00 is short of the 9,900.00 needed")
    assert reasons[6] == "does not trade EQUITY"


def test_no_eligible_venue_means_no_winner():
    decision = route([venue(1, status="DOWN")], buy())
    assert (decision.winner, decision.reason) == (None, "no eligible broker account")


def test_equal_venues_go_to_the_account_with_most_buying_power_left():
    accounts = [
        venue(1, buying_power=D("50000")),
        venue(2, buying_power=D("80000")),
        venue(3, buying_power=D("20000")),
    ]
    first = route(accounts, buy())
    assert first.winner.account_id == 2
    assert "tied with" in first.reason
    # as orders use it up, the next goes elsewhere: the accounts are spread, none exhausted
    after = [
        replace(a, buying_power=a.buying_power - (D("40000") if a.account_id == 2 else 0)) for a in accounts
    ]
    assert route(after, buy()).winner.account_id == 1
    # and a full tie is broken by the lowest id, so the choice is always the same
    assert route([venue(9), venue(4)], buy()).winner.account_id == 4


def test_latency_rejects_and_a_degraded_link_weigh_in():
    slow = venue(1, latency_ms=400)  # 2 bps
    flaky = venue(2, reject_rate=D("0.2"))  # 4 bps
    degraded = venue(3, status="DEGRADED")  # 10 bps
    decision = route([slow, flaky, degraded], buy())
    assert [c.account_id for c in decision.candidates] == [1, 2, 3]
    assert [c.score_bps - decision.candidates[0].price_bps for c in decision.candidates] == [
        D(2),
        D(4),
        D(10),
    ]


def test_a_sell_goes_to_the_account_that_holds_the_position():
    # account 1 bids more, but only account 2 holds the 50 shares: selling at 1 would open a short
    richer_bid = venue(1, bid=D("99.995"), bids=((D("99.995"), D("1000")),))
    holder = venue(2, long_position=D("50"))
    decision = route([richer_bid, holder], buy("50", side=Side.SELL))
    assert decision.winner.account_id == 2
    assert decision.skipped == ((1, "acct-1", "does not hold the position (another account does)"),)
    # selling more than anyone holds: scored as usual
    assert route([richer_bid, holder], buy("60", side=Side.SELL)).winner.account_id == 1


def test_a_limit_order_is_priced_no_worse_than_its_limit():
    # 1,500 to buy at 100.01 limit: 1,000 shown at the limit, the rest rests at the limit
    decision = route([venue(1)], buy("1500", order_type=OrderType.LIMIT, limit_price=D("100.01")))
    assert decision.winner.all_in_price == D("100.01")
    assert decision.winner.liquidity_bps == D(5) * D(500) / D(1500)


def test_a_minimum_fee_applies_only_when_there_is_a_fee():
    assert Fees(minimum=D("1.00")).of(D(10), D(1000)) == D(0)
    assert Fees(per_unit=D("0.005"), minimum=D("1.00")).of(D(10), D(1000)) == D("1.00")


def test_a_sell_holder_that_is_down_does_not_block_the_others():
    down_holder = venue(2, long_position=D("50"), status="DOWN")
    decision = route([venue(1), down_holder], buy("50", side=Side.SELL))
    assert decision.winner.account_id == 1
