"""Smart order routing on the paper venues: best execution, eligibility, load balancing, splitting.

Every expected price, fee and score below is worked out by hand from the books in conftest.py
(AAPL mid 100.00). A score is in basis points of the venue's mid (100.00): the all-in price
(depth walked for the whole quantity, fees in) less the mid, plus 5 bps times the share of the
order not available at the touch; latency, rejects and health add nothing here.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from brokers.models import BrokerAccount, PaperBalance, PaperOrder, PaperVenue
from brokers.services import adapters_reset, broker_connection_status_set
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from orders.models import Fill, Order
from routing.domain.scoring import Fees, OrderToRoute, Venue, route
from routing.models import AlgoOrder, AlgoSlice, RoutingDecision, SliceState
from tests.integration.routing.conftest import LABEL_A, LABEL_B, LABEL_B2, LABEL_CRYPTO
from trademaster.errors import TradeMasterError

pytestmark = pytest.mark.django_db

Q8 = D("0.00000001")
BPS = D("0.0001")


def decision_of(order: Order) -> RoutingDecision:
    return RoutingDecision.objects.get(order=order)


def scores(decision: RoutingDecision) -> list[tuple[int, D, D]]:
    """(account id, score, all-in price) of each candidate, best first, scores to 0.0001 bps."""
    return [
        (c["account_id"], D(c["score_bps"]).quantize(BPS), D(c["all_in_price"]).quantize(Q8))
        for c in decision.candidates
    ]


def skipped(decision: RoutingDecision) -> dict[int, str]:
    return {s["account_id"]: s["reason"] for s in decision.skipped}


def fills_of(order: Order) -> list[tuple[D, D, D]]:
    """(quantity, price, fee) of the order's fills, by price then quantity."""
    return sorted((f.quantity, f.price, f.fee) for f in Fill.objects.filter(order=order))


def children(parent: Order) -> list[Order]:
    return list(Order.objects.filter(parent=parent).order_by("broker_id"))


@pytest.fixture
def a(accounts) -> BrokerAccount:
    return accounts["PAPER-EQ-A"]


@pytest.fixture
def b(accounts) -> BrokerAccount:
    return accounts["PAPER-EQ-B"]


@pytest.fixture
def crypto(accounts) -> BrokerAccount:
    return accounts["PAPER-CRYPTO"]


# --- best execution: price + fees + depth ------------------------------------------------------


def test_a_small_order_goes_to_venue_b_whose_price_beats_a_plus_its_minimum_fee(place, a, b, crypto, aapl):
    # given A asks 100.01 + max(10 x 0.005, 1.00) = 1001.10 for 10 (100.11 each, 11 bps over the mid)
    # and B asks 100.03 with no fee = 1000.30 (100.03 each, 3 bps)
    # when the trader buys 10 at market without naming a broker
    order = place(quantity="10")
    # then it goes to B and fills there at B's ask, commission-free
    assert (order.broker_id, order.status, order.filled_quantity) == (b.pk, "FILLED", D(10))
    assert (order.average_fill_price, order.commission) == (D("100.03"), D(0))
    assert fills_of(order) == [(D(10), D("100.03"), D(0))]
    # and the decision is stored: candidates best first with their scores, the reason naming B
    decision = decision_of(order)
    assert (decision.winner_id, decision.explicit, decision.split) == (b.pk, False, [])
    assert scores(decision) == [(b.pk, D("3.0000"), D("100.03")), (a.pk, D("11.0000"), D("100.11"))]
    assert [D(c["buying_power_after"]) for c in decision.candidates] == [D("98999.70"), D("98998.90")]
    assert decision.reason == (
        f"{LABEL_B}: best expected all-in price and execution quality (3.00 bps), "
        f"8.00 bps better than {LABEL_A}"
    )
    assert skipped(decision) == {crypto.pk: "does not trade EQUITY"}
    assert decision.impact_bps == D("0.06")  # 140 bps x sqrt(10 / 55,000,000) = 0.0597


def test_a_300_share_order_goes_to_venue_a_because_b_shows_too_little_depth(place, a, b, aapl):
    # given 300 at A: 200 x 100.01 + 100 x 100.02 = 30004.00 + max(1.50, 1.00) = 30005.50,
    #   100.018333 each = 1.8333 bps, plus 5 x 100/300 = 1.6667 bps off the touch: 3.5 bps;
    # and 300 at B: 120 x 100.03 + 180 x 100.04 = 30010.80, 100.036 each = 3.6 bps,
    #   plus 5 x 180/300 = 3 bps off the touch: 6.6 bps
    order = place(quantity="300")
    # then A wins, and walks its book at the venue: two executions, each at least the 1.00 minimum
    assert (order.broker_id, order.status, order.filled_quantity) == (a.pk, "FILLED", D(300))
    assert fills_of(order) == [(D(100), D("100.02"), D("1.0000")), (D(200), D("100.01"), D("1.0000"))]
    assert order.average_fill_price == D("100.01333333")  # 30004.00 / 300
    assert order.commission == D("2.0000")
    decision = decision_of(order)
    assert scores(decision) == [
        (a.pk, D("3.5000"), (D("30005.50") / 300).quantize(Q8)),
        (b.pk, D("6.6000"), D("100.036")),
    ]
    assert decision.reason == (
        f"{LABEL_A}: best expected all-in price and execution quality (3.50 bps), "
        f"3.10 bps better than {LABEL_B}"
    )


# --- eligibility: never chosen ------------------------------------------------------------------


def test_an_account_whose_connection_is_down_is_never_chosen(place, a, b, crypto, aapl):
    # given B, which wins a small order on price, is DOWN
    broker_connection_status_set(account=b, status="DOWN", reason="test outage")
    order = place(quantity="10")
    # then the order goes to A, at A's ask plus its minimum fee
    assert (order.broker_id, order.status, order.average_fill_price, order.commission) == (
        a.pk,
        "FILLED",
        D("100.01"),
        D("1.0000"),
    )
    decision = decision_of(order)
    assert scores(decision) == [(a.pk, D("11.0000"), D("100.11"))]
    assert skipped(decision) == {b.pk: "broker connection is down", crypto.pk: "does not trade EQUITY"}
    assert not PaperOrder.objects.filter(account=b).exists()


def test_an_inactive_account_is_never_chosen(place, a, b, aapl):
    BrokerAccount.objects.filter(pk=b.pk).update(is_active=False)
    order = place(quantity="10")
    assert (order.broker_id, order.status) == (a.pk, "FILLED")
    assert skipped(decision_of(order))[b.pk] == "account is inactive"
    assert not PaperOrder.objects.filter(account=b).exists()


def test_a_symbol_no_venue_lists_is_refused_with_each_accounts_reason(place, a, b, crypto, aapl):
    # ZZZZ is a well-formed ticker that no paper venue lists
    with pytest.raises(TradeMasterError) as refused:
        place(symbol="ZZZZ", quantity="10")
    assert refused.value.code == "no_eligible_broker"
    assert refused.value.message == "No broker account can take a MARKET DAY equity order for ZZZZ."
    assert refused.value.extra == {
        "candidates": [
            f"{LABEL_A}: does not list ZZZZ",
            f"{LABEL_B}: does not list ZZZZ",
            f"{LABEL_CRYPTO}: does not trade EQUITY",
        ]
    }
    # and nothing was placed anywhere
    assert not Order.objects.exists()
    assert not PaperOrder.objects.exists()


def test_an_equity_order_never_goes_to_the_crypto_account_even_when_it_would_be_cheapest(
    place, a, b, crypto, aapl
):
    # given the crypto venue quotes AAPL (the paper venues share one market) on A's terms with no
    # fee: 10 there would cost 100.01 each (1 bps), cheaper than B (3 bps) and A (11 bps)
    PaperVenue.objects.filter(pk=crypto.paper_venue_id).update(
        spread_bps=D(2), depth_levels=5, size_factor=D(1), commission_bps=D(0)
    )
    adapters_reset()
    order = place(quantity="10", client_order_id="EQ-1")
    # then it still goes to B, the cheapest account that trades equities
    assert (order.broker_id, order.status) == (b.pk, "FILLED")
    assert skipped(decision_of(order)) == {crypto.pk: "does not trade EQUITY"}
    # and with both equity accounts unavailable the order is refused rather than sent to crypto
    broker_connection_status_set(account=a, status="DOWN")
    BrokerAccount.objects.filter(pk=b.pk).update(is_active=False)
    with pytest.raises(TradeMasterError) as refused:
        place(quantity="10", client_order_id="EQ-2")
    assert refused.value.code == "no_eligible_broker"
    assert refused.value.extra["candidates"] == [
        f"{LABEL_A}: broker connection is down",
        f"{LABEL_B}: account is inactive",
        f"{LABEL_CRYPTO}: does not trade EQUITY",
    ]
    assert list(Order.objects.values_list("client_order_id", flat=True)) == ["EQ-1"]
    assert not PaperOrder.objects.filter(account=crypto).exists()


def test_an_account_short_of_buying_power_is_skipped_and_the_next_best_wins(place, a, b, aapl):
    # given A, which wins 300 shares (3.5 vs 6.6 bps), has 30,000 of buying power: it needs 30,005.50
    BrokerAccount.objects.filter(pk=a.pk).update(buying_power=D("30000"))
    order = place(quantity="300")
    # then B gets it and fills it across two of its levels
    assert (order.broker_id, order.status) == (b.pk, "FILLED")
    assert fills_of(order) == [(D(120), D("100.03"), D(0)), (D(180), D("100.04"), D(0))]
    assert order.average_fill_price == D("100.036")  # 30010.80 / 300
    decision = decision_of(order)
    assert scores(decision) == [(b.pk, D("6.6000"), D("100.036"))]
    reason = skipped(decision)[a.pk]
    assert reason.startswith("buying power 30,000")
    assert reason.endswith(" is short of the 30,005.50 needed")
    assert not PaperOrder.objects.filter(account=a).exists()


def test_when_no_account_has_the_buying_power_the_pre_trade_check_rejects_the_order(place, a, b, aapl):
    # given neither equity account has the 1,000.30 (B) or 1,001.10 (A) that 10 shares need
    BrokerAccount.objects.filter(pk__in=[a.pk, b.pk]).update(buying_power=D("500"))
    order = place(quantity="10")
    # then the order is still created, at the best of them (B), and REJECTED by the pre-trade
    # check with its reason, so that the refusal is on record; nothing reaches the venue
    assert (order.broker_id, order.status, order.filled_quantity) == (b.pk, "REJECTED", D(0))
    assert order.status_reason == (
        "This order needs 1,000.30 of buying power but 500.00 is available "
        "(500.00 less 0.00 reserved by open orders) (INSUFFICIENT_BUYING_POWER)."
    )
    assert not PaperOrder.objects.exists()
    decision = decision_of(order)
    assert decision.reason == f"{LABEL_B}: no account has the buying power; the pre-trade check decides"
    assert [c["account_id"] for c in decision.candidates] == [b.pk, a.pk]
    reasons = skipped(decision)
    assert reasons[a.pk].endswith(" is short of the 1,001.10 needed")
    assert reasons[b.pk].endswith(" is short of the 1,000.30 needed")


def test_a_named_broker_bypasses_scoring(place, a, aapl):
    # B is cheaper for 10 shares (3 vs 11 bps), but the client names A
    order = place(quantity="10", broker_id=a.pk)
    assert (order.broker_id, order.status, order.average_fill_price, order.commission) == (
        a.pk,
        "FILLED",
        D("100.01"),
        D("1.0000"),
    )
    decision = decision_of(order)
    assert (decision.explicit, decision.winner_id, decision.impact_bps) == (True, a.pk, None)
    assert decision.reason == f"{LABEL_A}: named by the client (scoring bypassed; eligibility checked)"
    assert scores(decision) == [(a.pk, D("11.0000"), D("100.11"))]


def test_a_named_broker_is_still_checked_for_eligibility(place, a, aapl):
    broker_connection_status_set(account=a, status="DOWN")
    with pytest.raises(TradeMasterError) as refused:
        place(quantity="10", broker_id=a.pk)
    assert refused.value.code == "broker_ineligible"
    assert refused.value.message == f"Broker account {LABEL_A} broker connection is down."
    assert refused.value.extra == {"fields": {"broker_id": [f"{LABEL_A} broker connection is down."]}}
    assert not Order.objects.exists()


def test_a_venue_without_the_order_type_or_time_in_force_is_never_chosen():
    # (tests/unit/routing/test_scoring.py covers the order type; this adds the time in force.)
    # given three equity venues, the two cheapest each missing something this order needs
    book = {
        "asset_classes": frozenset({AssetClass.EQUITY}),
        "buying_power": D("1000000"),
        "bid": D("99.99"),
        "bids": ((D("99.99"), D("1000")),),
    }
    cheapest = {"ask": D("100.00"), "asks": ((D("100.00"), D("1000")),)}
    no_limit = Venue(
        account_id=1, label="no-limit", order_types=frozenset({OrderType.MARKET}), **book, **cheapest
    )
    no_ioc = Venue(
        account_id=2, label="no-ioc", time_in_force=frozenset({TimeInForce.DAY}), **book, **cheapest
    )
    dearer = Venue(
        account_id=3, label="dearer", ask=D("100.01"), asks=((D("100.01"), D("1000")),), fees=Fees(), **book
    )
    order = OrderToRoute(
        symbol="AAPL",
        asset_class=AssetClass.EQUITY,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        quantity=D(100),
        limit_price=D("100.05"),
    )
    decision = route([no_limit, no_ioc, dearer], order)
    assert decision.winner is not None
    assert [c.account_id for c in decision.candidates] == [3]
    assert decision.skipped == (
        (1, "no-limit", "does not take LIMIT orders"),
        (2, "no-ioc", "does not take IOC orders"),
    )
    # and the same venues take the orders they do support, where they are cheapest
    market_day = OrderToRoute(
        symbol="AAPL",
        asset_class=AssetClass.EQUITY,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.DAY,
        quantity=D(100),
    )
    assert [c.account_id for c in route([no_limit, no_ioc, dearer], market_day).candidates] == [1, 2, 3]


# --- load balancing -----------------------------------------------------------------------------


def test_two_equal_accounts_at_one_venue_take_turns(place, a, b, second_b, aapl):
    # Rule (routing.domain.scoring): scores within 0.01 bps tie, and a tie goes to the account
    # with the most buying power left after the order, then to the lower account id.
    # Given B and B2 both at 100,000 and both scoring 3 bps for 10 shares (A: 11 bps), each fill
    # costs the account 1,000.30 and its buying power is re-read from the venue after the fill:
    #   1: B 98,999.70 left = B2 98,999.70 -> B (lower id)   2: B 97,999.40 < B2 98,999.70 -> B2
    #   3: equal again -> B ... and so on.
    sequence = [place(quantity="10", client_order_id=f"LB-{i}").broker_id for i in range(6)]
    assert sequence == [b.pk, second_b.pk, b.pk, second_b.pk, b.pk, second_b.pk]
    assert Order.objects.filter(broker=b).count() == Order.objects.filter(broker=second_b).count() == 3
    assert not Order.objects.filter(broker=a).exists()
    for account in (b, second_b):
        account.refresh_from_db()
        assert account.buying_power == D("100000") - 3 * D("1000.30")
    last = decision_of(Order.objects.get(client_order_id="LB-5"))
    assert last.reason == f"{LABEL_B2}: tied with {LABEL_B} on 3.00 bps; more buying power left (96,999.10)"
    assert [c["account_id"] for c in last.candidates] == [second_b.pk, b.pk, a.pk]


def test_the_account_with_more_buying_power_is_used_until_the_two_are_even(place, b, second_b, aapl):
    # given B2 has 2,000 more than B: it takes orders until it has less left than B would
    BrokerAccount.objects.filter(pk=second_b.pk).update(buying_power=D("102000"), cash=D("102000"))
    PaperBalance.objects.filter(account=second_b).update(cash=D("102000"))
    sequence = [place(quantity="10", client_order_id=f"UB-{i}").broker_id for i in range(6)]
    # B2 100,999.70 > B 98,999.70; B2 99,999.40 > B 98,999.70; B2 98,999.10 < B 98,999.70 -> B; ...
    assert sequence == [second_b.pk, second_b.pk, b.pk, second_b.pk, b.pk, second_b.pk]
    b.refresh_from_db()
    second_b.refresh_from_db()
    # and they end within one order's cost of each other: 100,000 - 2 x 1,000.30, 102,000 - 4 x 1,000.30
    assert (b.buying_power, second_b.buying_power) == (D("97999.40"), D("97998.80"))


# --- fragmentation ------------------------------------------------------------------------------


def test_a_large_market_order_is_split_by_displayed_depth_and_the_parent_aggregates_the_fills(
    place, a, b, crypto, aapl, settings
):
    settings.ROUTING_SPLIT_MIN_NOTIONAL = D("50000")
    # given 900 shares (about 90,000 > 50,000). Cost per share of each level, per-share fee in:
    #   A 100.015 x 200, A 100.025 x 400, B 100.03 x 120, A 100.035 x 600, B 100.04 x 240, ...
    # so the cheapest 900 are A 200 + 400 + 180 = 780 and B 120
    parent = place(quantity="900")
    assert (parent.algo, parent.broker_id, parent.parent_id) == ("SPLIT", None, None)
    kids = children(parent)
    assert [(c.broker_id, c.quantity, c.order_type, c.time_in_force, c.status) for c in kids] == [
        (a.pk, D(780), "MARKET", "IOC", "FILLED"),
        (b.pk, D(120), "MARKET", "IOC", "FILLED"),
    ]
    assert {c.algo for c in kids} == {""}
    assert fills_of(kids[0]) == [
        (D(180), D("100.03"), D("1.0000")),  # 0.90 raised to the 1.00 minimum
        (D(200), D("100.01"), D("1.0000")),
        (D(400), D("100.02"), D("2.0000")),
    ]
    assert fills_of(kids[1]) == [(D(120), D("100.03"), D(0))]
    # then the parent is FILLED with the sum of its children and their volume-weighted price
    parent.refresh_from_db()
    every_fill = Fill.objects.filter(order__parent=parent)
    notional = sum((f.quantity * f.price for f in every_fill), D(0))
    quantity = sum((f.quantity for f in every_fill), D(0))
    assert (notional, quantity) == (D("90019.00"), D(900))
    assert parent.status == "FILLED"
    assert parent.filled_quantity == sum((c.filled_quantity for c in kids), D(0)) == D(900)
    assert parent.average_fill_price == (notional / quantity).quantize(Q8) == D("100.02111111")
    assert parent.commission == sum((c.commission for c in kids), D(0)) == D("4.0000")
    # and the split is recorded on the parent's decision
    decision = decision_of(parent)
    assert (decision.winner_id, decision.explicit, decision.impact_bps) == (None, False, D("0.57"))
    assert decision.split == [
        {
            "account_id": a.pk,
            "label": LABEL_A,
            "quantity": "780.00000000",
            "expected_price": str(D("78015.40") / 780),  # (200 x 100.01 + 400 x 100.02 + 180 x 100.03) / 780
        },
        {"account_id": b.pk, "label": LABEL_B, "quantity": "120.00000000", "expected_price": "100.03000000"},
    ]
    assert decision.reason.startswith(
        "split across 2 venues by displayed depth (estimated impact 0.57 bps); "
    )
    # A's 900 all-in: (90019.00 + 4.50) / 900 = 100.0261 -> 2.6111 + 5 x 700/900 = 6.5 bps;
    # B's: 90085.2225 / 900 (180 beyond its depth at 100.05 + 25 bps) -> 9.4692 + 4.3333 = 13.8025 bps
    assert scores(decision) == [
        (a.pk, D("6.5000"), (D("90023.50") / 900).quantize(Q8)),
        (b.pk, D("13.8025"), (D("90085.2225") / 900).quantize(Q8)),
    ]
    assert skipped(decision) == {crypto.pk: "does not trade EQUITY"}
    # and each child has its own decision: explicit, to its venue
    for child, label in zip(kids, (LABEL_A, LABEL_B), strict=True):
        own = decision_of(child)
        assert (own.explicit, own.winner_id, own.split) == (True, child.broker_id, [])
        assert own.reason == f"{label}: named by the client (scoring bypassed; eligibility checked)"
    algo = AlgoOrder.objects.get(parent=parent)
    assert (algo.kind, algo.state) == ("SPLIT", "DONE")
    assert list(
        AlgoSlice.objects.filter(algo=algo).values_list("broker_id", "quantity", "state", "child_id")
    ) == [
        (a.pk, D(780), SliceState.RELEASED, kids[0].pk),
        (b.pk, D(120), SliceState.RELEASED, kids[1].pk),
    ]


@pytest.mark.parametrize(("threshold", "split"), [("0.5", True), ("0.58", False)])
def test_an_order_is_split_when_its_estimated_impact_exceeds_the_threshold(
    place, a, b, aapl, settings, threshold, split
):
    # 900 AAPL: 140 bps x sqrt(900 / 55,000,000) = 0.57 bps against the threshold; the notional
    # (about 90,000) stays under the default 100,000
    settings.ROUTING_SPLIT_MIN_IMPACT_BPS = D(threshold)
    order = place(quantity="900")
    assert order.status == "FILLED"
    if split:
        assert (order.algo, order.broker_id) == ("SPLIT", None)
        assert [(c.broker_id, c.quantity) for c in children(order)] == [(a.pk, D(780)), (b.pk, D(120))]
    else:
        assert (order.algo, order.broker_id) == ("", a.pk)
        assert children(order) == []


def test_a_split_limit_order_takes_only_the_depth_within_its_limit(place, a, b, aapl, settings):
    settings.ROUTING_SPLIT_MIN_NOTIONAL = D("50000")
    # given a limit buy of 900 at 100.03: within the limit A shows 200 @ 100.01, 400 @ 100.02 and
    # 600 @ 100.03 (each + 0.005 fee), B shows 120 @ 100.03 (no fee); cheapest first: A's 200 and
    # 400, then B's 120 (100.03 beats A's 100.035), then 180 more of A's 100.03
    parent = place(quantity="900", order_type="LIMIT", price="100.03", time_in_force="GTC")
    assert parent.algo == "SPLIT"
    kids = children(parent)
    assert [(c.broker_id, c.quantity, c.order_type, c.price, c.status) for c in kids] == [
        (a.pk, D(780), "LIMIT", D("100.03"), "FILLED"),
        (b.pk, D(120), "LIMIT", D("100.03"), "FILLED"),
    ]
    # then the parent aggregates every fill: (20002.00 + 40008.00 + 180 x 100.03 + 120 x 100.03) / 900
    parent.refresh_from_db()
    assert (parent.status, parent.filled_quantity) == ("FILLED", D(900))
    assert parent.average_fill_price == (D("90019.00") / 900).quantize(Q8) == D("100.02111111")
    assert parent.commission == D("4.0000")  # A: 1.00 + 2.00 + 1.00 (180 x 0.005 raised to the minimum)


def test_a_limit_order_only_one_venue_reaches_is_not_split(place, a, aapl, settings):
    settings.ROUTING_SPLIT_MIN_NOTIONAL = D("50000")
    # at 100.02 only A shows depth within the limit (200 @ 100.01, 400 @ 100.02): nothing to split;
    # A scores 2.33 bps price + 3.89 liquidity against B's 2.00 + 5.00 (all of it would rest)
    order = place(quantity="900", order_type="LIMIT", price="100.02", time_in_force="GTC")
    assert (order.algo, order.broker_id) == ("", a.pk)
    assert (order.status, order.filled_quantity) == ("PARTIALLY_FILLED", D(600))
    assert decision_of(order).split == []


def test_two_accounts_at_one_venue_count_its_displayed_depth_once(place, a, b, second_b, aapl, settings):
    settings.ROUTING_SPLIT_MIN_NOTIONAL = D("50000")
    # B and B2 show the same book (venue B's 120 @ 100.03 first): it is one venue's depth, not two,
    # so the split is A 780 and B 120 as with one B account (B: the best-ranked of the two, tied
    # on score and buying power, lower id)
    parent = place(quantity="900")
    assert [(c.broker_id, c.quantity) for c in children(parent)] == [(a.pk, D(780)), (b.pk, D(120))]
    assert [row["account_id"] for row in decision_of(parent).split] == [a.pk, b.pk]


def test_an_order_naming_a_broker_is_never_split(place, a, aapl, settings):
    settings.ROUTING_SPLIT_MIN_NOTIONAL = D("50000")
    order = place(quantity="900", broker_id=a.pk)
    assert (order.algo, order.parent_id, order.broker_id, order.status) == ("", None, a.pk, "FILLED")
    assert fills_of(order) == [
        (D(200), D("100.01"), D("1.0000")),
        (D(300), D("100.03"), D("1.5000")),
        (D(400), D("100.02"), D("2.0000")),
    ]
    assert not Order.objects.filter(parent=order).exists()
    assert not AlgoOrder.objects.exists()
    assert decision_of(order).split == []
