"""Unit tests for the pre-trade risk rules (risk/domain/rules.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from orders.domain.enums import AssetClass, OrderType, Side
from risk.domain.assessment import ProjectedExposure, RiskAssessment
from risk.domain.context import Quote, RiskContext, TradingState
from risk.domain.rules import RULES, Exposure, assess, derive
from tests.unit.risk.builders import (
    NOW,
    OTHER_BROKER,
    context,
    leg,
    open_order,
    proposed,
    proposed_market,
    recent,
)

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
EQUITY, CRYPTO = AssetClass.EQUITY, AssetClass.CRYPTO
QTY_STEP = D("0.00000001")  # the smallest quantity / price step (DECIMAL(18,8))

ALL_CODES = [
    "TRADING_HALTED",
    "TRADING_STATE_REDUCING",
    "RESTRICTED_SYMBOL",
    "SHORT_SELLING_NOT_ALLOWED",
    "NO_REFERENCE_PRICE",
    "PRICE_COLLAR",
    "MAX_ORDER_QUANTITY",
    "MAX_ORDER_NOTIONAL",
    "MAX_POSITION_QUANTITY",
    "MAX_POSITION_NOTIONAL",
    "MAX_GROSS_EXPOSURE",
    "MAX_NET_EXPOSURE",
    "MAX_ASSET_CLASS_EXPOSURE",
    "MAX_BROKER_EXPOSURE",
    "MAX_OPEN_ORDERS",
    "MAX_ORDER_RATE",
    "DAILY_LOSS_LIMIT",
    "MAX_DRAWDOWN",
    "INSUFFICIENT_BUYING_POWER",
    "DUPLICATE_ORDER",
]


def codes(result: RiskAssessment) -> list[str]:
    return [f.rule for f in result.failures]


def failure(result: RiskAssessment, code: str):
    [found] = [f for f in result.failures if f.rule == code]
    return found


# ---------------------------------------------------------------------------------------------
# The rule table
# ---------------------------------------------------------------------------------------------


def test_rules_are_named_functions_in_code_order():
    assert [rule.__name__.upper() for rule in RULES] == ALL_CODES


def test_a_plain_order_with_no_limits_is_approved():
    result = assess(context())
    assert result.approved
    assert result.reasons == []
    assert result.reserve == D("1000")


# ---------------------------------------------------------------------------------------------
# Numeric limits: pass exactly at the limit, fail one smallest step above it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    code: str
    build: Callable[[bool], RiskContext]  # above=False: exactly at the limit; True: one step above
    limit: Decimal
    value: Decimal  # the value one step above the limit
    limit_text: str
    value_text: str


def _at_or_above(above: bool, at: str, over: str) -> Decimal:
    return D(over) if above else D(at)


EDGES = [
    Edge(
        "MAX_ORDER_QUANTITY",
        lambda above: context(
            max_order_quantity=D("100"), order=proposed(quantity=D("100") + (QTY_STEP if above else 0))
        ),
        D("100"),
        D("100.00000001"),
        "100",
        "100.00000001",
    ),
    Edge(
        "MAX_ORDER_NOTIONAL",
        lambda above: context(
            max_order_notional=D("10000"),
            order=proposed(quantity=D("100"), price=_at_or_above(above, "100", "100.0001")),
        ),
        D("10000"),
        D("10000.01"),
        "10,000.00",
        "10,000.01",
    ),
    Edge(
        "MAX_POSITION_QUANTITY",
        lambda above: context(
            max_position_quantity=D("100"),
            positions=(leg(quantity="60"), leg(quantity="20", broker_id=OTHER_BROKER)),
            open_orders=(open_order(side=BUY, remaining="10"), open_order(side=SELL, remaining="50")),
            order=proposed(quantity=D("10") + (QTY_STEP if above else 0)),
        ),
        D("100"),
        D("100.00000001"),
        "100",
        "100.00000001",
    ),
    Edge(
        "MAX_POSITION_QUANTITY",  # the short side
        lambda above: context(
            max_position_quantity=D("100"),
            positions=(leg(quantity="-60"),),
            order=proposed(side=SELL, quantity=D("40") + (QTY_STEP if above else 0)),
        ),
        D("100"),
        D("100.00000001"),
        "100",
        "-100.00000001",
    ),
    Edge(
        "MAX_POSITION_NOTIONAL",  # the whole position is valued at the reference price, not the mark
        lambda above: context(
            max_position_notional=D("10000"),
            positions=(leg(quantity="50", price="90"),),
            order=proposed(quantity=D("50"), price=_at_or_above(above, "100", "100.0001")),
        ),
        D("10000"),
        D("10000.01"),
        "10,000.00",
        "10,000.01",
    ),
    Edge(
        "MAX_GROSS_EXPOSURE",
        lambda above: context(
            max_gross_exposure=D("15000"),
            positions=(leg(quantity="50"), leg("MSFT", "-100", "50", broker_id=OTHER_BROKER)),
            order=proposed(quantity=D("50"), price=_at_or_above(above, "100", "100.0001")),
        ),
        D("15000"),
        D("15000.01"),
        "15,000.00",
        "15,000.01",
    ),
    Edge(
        "MAX_NET_EXPOSURE",
        lambda above: context(
            max_net_exposure=D("5000"),
            positions=(leg(quantity="50"), leg("MSFT", "-100", "50", broker_id=OTHER_BROKER)),
            order=proposed(quantity=D("50"), price=_at_or_above(above, "100", "100.0001")),
        ),
        D("5000"),
        D("5000.01"),
        "5,000.00",
        "5,000.01",
    ),
    Edge(
        "MAX_ASSET_CLASS_EXPOSURE",  # only the order's class is checked; crypto is over its own limit
        lambda above: context(
            max_asset_class_exposure={EQUITY: D("10000"), CRYPTO: D("1")},
            positions=(leg("BTC/USD", "1", "50000", asset_class=CRYPTO),),
            order=proposed(quantity=D("100"), price=_at_or_above(above, "100", "100.0001")),
        ),
        D("10000"),
        D("10000.01"),
        "10,000.00",
        "10,000.01",
    ),
    Edge(
        "MAX_BROKER_EXPOSURE",  # broker 2's AAPL does not count toward broker 1
        lambda above: context(
            max_broker_exposure=D("10000"),
            positions=(leg(quantity="100", broker_id=OTHER_BROKER), leg("MSFT", "100", "50")),
            order=proposed(quantity=D("50"), price=_at_or_above(above, "100", "100.0002")),
        ),
        D("10000"),
        D("10000.01"),
        "10,000.00",
        "10,000.01",
    ),
    Edge(
        "MAX_OPEN_ORDERS",
        lambda above: context(
            max_open_orders=30,
            open_orders=tuple(open_order("MSFT", price="50") for _ in range(30 if above else 29)),
        ),
        D("30"),
        D("31"),
        "30",
        "31",
    ),
    Edge(
        "MAX_ORDER_RATE",  # orders exactly 60 s old or older do not count
        lambda above: context(
            max_orders_per_minute=30,
            recent_orders=(
                *(recent(age=1 + i % 59, quantity=str(i + 1)) for i in range(30 if above else 29)),
                recent(age=60),
                recent(age=61),
            ),
            order=proposed(client_order_id_given=True),
        ),
        D("30"),
        D("31"),
        "30",
        "31",
    ),
    Edge(
        "INSUFFICIENT_BUYING_POWER",
        lambda above: context(
            buying_power="15000",
            reserved="5000",
            order=proposed(quantity=D("100"), price=_at_or_above(above, "100", "100.0001")),
        ),
        D("10000"),
        D("10000.01"),
        "10,000.00",
        "10,000.01",
    ),
    Edge(
        "PRICE_COLLAR",  # a BUY limit over ask + 5%
        lambda above: context(
            price_collar_percent=D("5"), order=proposed(price=D("105") + (QTY_STEP if above else 0))
        ),
        D("105"),
        D("105.00000001"),
        "105.00",
        "105.00000001",
    ),
    Edge(
        "PRICE_COLLAR",  # a SELL limit under bid - 5%
        lambda above: context(
            price_collar_percent=D("5"),
            order=proposed(side=SELL, price=D("94.05") - (QTY_STEP if above else 0)),
        ),
        D("94.05"),
        D("94.04999999"),
        "94.05",
        "94.04999999",
    ),
    Edge(
        "PRICE_COLLAR",  # a STOP over last + 5%
        lambda above: context(
            price_collar_percent=D("5"),
            order=proposed(
                order_type=OrderType.STOP, price=None, stop_price=D("104.475") + (QTY_STEP if above else 0)
            ),
        ),
        D("104.475"),
        D("104.47500001"),
        "104.475",
        "104.47500001",
    ),
    Edge(
        "PRICE_COLLAR",  # a STOP_LIMIT under last - 5%
        lambda above: context(
            price_collar_percent=D("5"),
            order=proposed(
                order_type=OrderType.STOP_LIMIT,
                side=SELL,
                price=D("94"),
                stop_price=D("94.525") - (QTY_STEP if above else 0),
            ),
        ),
        D("94.525"),
        D("94.52499999"),
        "94.525",
        "94.52499999",
    ),
]


@pytest.mark.parametrize("edge", EDGES, ids=[f"{e.code}-{i}" for i, e in enumerate(EDGES)])
def test_numeric_limit_passes_at_the_limit_and_fails_just_above(edge: Edge):
    at_limit = assess(edge.build(False))
    assert at_limit.approved, at_limit.reasons

    above = assess(edge.build(True))
    assert codes(above) == [edge.code]
    [f] = above.failures
    assert f.limit == edge.limit
    assert f.value == abs(edge.value)
    assert edge.limit_text in f.reason
    assert edge.value_text in f.reason
    assert f.reason.endswith(f"({edge.code}).")


@pytest.mark.parametrize(
    ("code", "build", "limit_text", "value_text"),
    [
        (
            "DAILY_LOSS_LIMIT",
            lambda reached: context(daily_loss_limit=D("1000"), daily_pnl="-1000" if reached else "-999.99"),
            "1,000.00",
            "1,000.00",
        ),
        (
            "MAX_DRAWDOWN",
            lambda reached: context(max_drawdown=D("2500"), drawdown="2500" if reached else "2499.99"),
            "2,500.00",
            "2,500.00",
        ),
    ],
)
def test_loss_limits_pass_just_below_and_fail_once_reached(code, build, limit_text, value_text):
    """The daily loss and the drawdown block new risk at the limit, not past it."""
    assert assess(build(False)).approved
    reached = assess(build(True))
    assert codes(reached) == [code]
    assert limit_text in reached.failures[0].reason
    assert value_text in reached.failures[0].reason


def test_reason_reads_like_the_example():
    ctx = context(max_order_notional=D("10000"), order=proposed(quantity=D("125")))
    assert assess(ctx).reasons == [
        "Order notional 12,500.00 exceeds the limit of 10,000.00 (MAX_ORDER_NOTIONAL)."
    ]


def test_big_numbers_get_thousands_separators_and_quantities_are_normalized():
    ctx = context(
        max_order_quantity=D("1000.50"),
        max_order_notional=D("1000000"),
        buying_power="10000000",
        order=proposed(quantity=D("2000.000"), price=D("1234.5")),
    )
    assert assess(ctx).reasons == [
        "Order quantity 2,000 exceeds the limit of 1,000.5 (MAX_ORDER_QUANTITY).",
        "Order notional 2,469,000.00 exceeds the limit of 1,000,000.00 (MAX_ORDER_NOTIONAL).",
    ]


# ---------------------------------------------------------------------------------------------
# Trading state
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order",
    [
        proposed(),
        proposed_market(side=SELL),
        proposed(side=SELL, quantity=D("5")),  # would reduce the long below
    ],
)
def test_halted_refuses_every_order(order):
    ctx = context(trading_state=TradingState.HALTED, order=order, positions=(leg(quantity="100"),))
    result = assess(ctx)
    assert codes(result) == ["TRADING_HALTED"]
    assert result.reasons == ["Trading is halted: no new orders are accepted (TRADING_HALTED)."]


@pytest.mark.parametrize(
    ("positions", "open_orders", "order"),
    [
        ((leg(quantity="100"),), (), proposed(side=SELL, quantity=D("40"))),
        ((leg(quantity="100"),), (), proposed(side=SELL, quantity=D("100"))),  # to flat
        (
            (leg(quantity="60"), leg(quantity="40", broker_id=OTHER_BROKER)),
            (),
            proposed(side=SELL, quantity=D("100")),
        ),
        ((leg(quantity="-50"),), (), proposed(side=BUY, quantity=D("50"))),
        (
            (leg(quantity="100"),),
            (open_order(side=SELL, remaining="60"),),
            proposed(side=SELL, quantity=D("40")),
        ),
    ],
    ids=["sell-part-of-long", "sell-to-flat", "sell-across-brokers", "cover-short", "with-working-sells"],
)
def test_reducing_state_accepts_a_reducing_order(positions, open_orders, order):
    ctx = context(
        trading_state=TradingState.REDUCING, positions=positions, open_orders=open_orders, order=order
    )
    assert assess(ctx).approved


@pytest.mark.parametrize(
    ("positions", "open_orders", "order"),
    [
        ((leg(quantity="100"),), (), proposed(side=BUY, quantity=D("1"))),  # increases
        ((), (), proposed(side=SELL, quantity=D("1"))),  # flat: nothing to reduce
        ((leg(quantity="100"),), (), proposed(side=SELL, quantity=D("100.00000001"))),  # flips
        ((leg(quantity="-5"),), (), proposed(side=BUY, quantity=D("6"))),  # flips a short
        (
            (leg(quantity="100"),),
            (open_order(side=SELL, remaining="60"),),
            proposed(side=SELL, quantity=D("41")),
        ),
        ((leg("MSFT", "100"),), (), proposed(side=SELL, quantity=D("1"))),  # another symbol's long
    ],
    ids=["increase", "flat", "flip", "flip-short", "flip-with-working-sells", "other-symbol"],
)
def test_reducing_state_refuses_an_increasing_or_flipping_order(positions, open_orders, order):
    ctx = context(
        trading_state=TradingState.REDUCING, positions=positions, open_orders=open_orders, order=order
    )
    result = assess(ctx)
    assert codes(result) == ["TRADING_STATE_REDUCING"]
    assert result.reasons[0].startswith("Trading is reducing-only:")


# ---------------------------------------------------------------------------------------------
# Restricted symbols and short selling
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("listed", ["AAPL", "aapl"])
def test_restricted_symbol_is_refused_whatever_the_case(listed):
    result = assess(context(restricted_symbols=frozenset({listed, "GME"})))
    assert codes(result) == ["RESTRICTED_SYMBOL"]
    assert result.reasons == ["AAPL is on the restricted list (RESTRICTED_SYMBOL)."]


def test_unrestricted_symbol_passes():
    assert assess(context(restricted_symbols=frozenset({"GME"}))).approved


def test_restricted_symbol_refuses_even_a_reducing_order():
    ctx = context(
        restricted_symbols=frozenset({"AAPL"}),
        positions=(leg(quantity="10"),),
        order=proposed(side=SELL, quantity=D("10")),
    )
    assert codes(assess(ctx)) == ["RESTRICTED_SYMBOL"]


@pytest.mark.parametrize(
    ("positions", "open_orders", "quantity", "projected"),
    [
        ((), (), "10", "-10"),
        ((leg(quantity="10"),), (), "10.00000001", "-0.00000001"),
        ((leg(quantity="10"),), (open_order(side=SELL, remaining="5"),), "10", "-5"),
        ((leg(quantity="4"), leg(quantity="4", broker_id=OTHER_BROKER)), (), "10", "-2"),
    ],
)
def test_short_sale_refused_when_short_selling_is_off(positions, open_orders, quantity, projected):
    ctx = context(
        allow_short_selling=False,
        positions=positions,
        open_orders=open_orders,
        order=proposed(side=SELL, quantity=D(quantity)),
    )
    result = assess(ctx)
    assert codes(result) == ["SHORT_SELLING_NOT_ALLOWED"]
    f = result.failures[0]
    assert f.value == D(projected)
    assert f.limit == 0
    assert projected in f.reason


@pytest.mark.parametrize(
    ("allow", "positions", "side", "quantity"),
    [
        (False, (leg(quantity="10"),), SELL, "10"),  # sells exactly the long
        (False, (), BUY, "10"),  # buys are never short sales
        (True, (), SELL, "10"),  # allowed
    ],
)
def test_sales_that_do_not_go_short_or_when_allowed_pass(allow, positions, side, quantity):
    ctx = context(
        allow_short_selling=allow, positions=positions, order=proposed(side=side, quantity=D(quantity))
    )
    assert assess(ctx).approved


# ---------------------------------------------------------------------------------------------
# Price collar and the reference price
# ---------------------------------------------------------------------------------------------

COLLAR = {"price_collar_percent": D("5")}  # quote: bid 99, ask 100, last 99.50


@pytest.mark.parametrize(
    "order",
    [
        proposed(side=BUY, price=D("1")),  # passive buy far below the market
        proposed(side=SELL, price=D("1000")),  # passive sell far above the market
        proposed_market(),
        proposed_market(side=SELL),
        proposed(order_type=OrderType.TRAILING_STOP, price=None),
        proposed(order_type=OrderType.STOP_LIMIT, price=D("150"), stop_price=D("100")),  # limit not collared
    ],
    ids=["passive-buy", "passive-sell", "market-buy", "market-sell", "trailing", "stop-limit-limit-price"],
)
def test_collar_lets_passive_limits_and_market_orders_through(order):
    assert assess(context(order=order, **COLLAR)).approved


def test_collar_reason_names_the_market_and_the_band():
    result = assess(context(order=proposed(price=D("110")), **COLLAR))
    assert result.reasons == [
        "The limit price 110.00 is more than 5% above the ask of 100.00; the collar ends at 105.00 "
        "(PRICE_COLLAR)."
    ]


def test_collar_is_skipped_without_a_quote_when_the_order_has_a_price():
    assert assess(context(quote=None, order=proposed(price=D("500")), **COLLAR)).approved


def test_collar_is_off_without_a_percent():
    assert assess(context(order=proposed(price=D("500")))).approved


@pytest.mark.parametrize(
    ("order", "price"),
    [
        (proposed(price=D("101.5")), "101.5"),
        (proposed(order_type=OrderType.STOP_LIMIT, price=D("101.5"), stop_price=D("101")), "101.5"),
        (proposed(order_type=OrderType.STOP, price=None, stop_price=D("102")), "102"),
        (proposed_market(), "100"),  # the ask
        (proposed_market(side=SELL), "99"),  # the bid
        (proposed(order_type=OrderType.TRAILING_STOP, price=None), "100"),
        (proposed(order_type=OrderType.TRAILING_STOP, side=SELL, price=None), "99"),
    ],
)
def test_reference_price_per_order_type(order, price):
    d = derive(context(order=order))
    assert d.reference_price == D(price)
    assert d.order_notional == D(price) * 10


@pytest.mark.parametrize(
    ("order", "quote"),
    [
        (proposed_market(), None),
        (proposed_market(side=SELL), None),
        (proposed(order_type=OrderType.TRAILING_STOP, price=None), None),
        (proposed(price=None), None),  # a malformed limit order
        (proposed_market(side=SELL), Quote(bid=D("0"), ask=D("100"), last=D("99"))),  # no bid
    ],
)
def test_no_reference_price_fails_closed_and_skips_every_notional_rule(order, quote):
    tiny = D("0.01")
    ctx = context(
        order=order,
        quote=quote,
        buying_power="0",
        max_order_notional=tiny,
        max_position_notional=tiny,
        max_gross_exposure=tiny,
        max_net_exposure=tiny,
        max_asset_class_exposure={EQUITY: tiny},
        max_broker_exposure=tiny,
        max_order_quantity=D("1"),  # not a notional rule: still checked
        max_position_quantity=D("1"),
    )
    result = assess(ctx)
    assert codes(result) == ["NO_REFERENCE_PRICE", "MAX_ORDER_QUANTITY", "MAX_POSITION_QUANTITY"]
    assert result.reasons[0].startswith("No price to value this ")
    assert result.reserve == 0
    assert result.projected.order_notional == 0
    assert result.projected.position_quantity == 10 * order.side.sign


# ---------------------------------------------------------------------------------------------
# Duplicate orders
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "age",
    [dt.timedelta(0), dt.timedelta(seconds=1), dt.timedelta(seconds=5)],
    ids=["now", "1s", "exactly-5s"],
)
def test_same_order_within_the_window_is_a_duplicate(age):
    result = assess(context(recent_orders=(recent(age=age, price="100.00"),)))
    assert codes(result) == ["DUPLICATE_ORDER"]
    assert result.reasons == [
        "The same order (BUY 10 AAPL at 100.00) was placed in the last 5 seconds; send your own "
        "client_order_id to place it again (DUPLICATE_ORDER)."
    ]


def test_same_market_order_within_the_window_is_a_duplicate():
    result = assess(context(order=proposed_market(), recent_orders=(recent(price=None),)))
    assert codes(result) == ["DUPLICATE_ORDER"]
    assert "at market" in result.reasons[0]


@pytest.mark.parametrize(
    "other",
    [
        recent(age=dt.timedelta(seconds=5, microseconds=1)),  # just outside the window
        recent(symbol="MSFT"),
        recent(side=SELL),
        recent(quantity="11"),
        recent(price="100.01"),
        recent(price=None),  # a market order is not the same as a limit order
    ],
    ids=["after-window", "symbol", "side", "quantity", "price", "market-vs-limit"],
)
def test_different_or_old_orders_are_not_duplicates(other):
    assert assess(context(recent_orders=(other,))).approved


def test_window_length_comes_from_the_limits():
    ctx = context(duplicate_window_seconds=30, recent_orders=(recent(age=30),))
    assert codes(assess(ctx)) == ["DUPLICATE_ORDER"]
    assert "last 30 seconds" in assess(ctx).reasons[0]


def test_a_client_chosen_order_id_is_a_deliberate_repeat():
    ctx = context(order=proposed(client_order_id_given=True), recent_orders=(recent(),))
    assert assess(ctx).approved


# ---------------------------------------------------------------------------------------------
# Reducing orders and the exposure rules
# ---------------------------------------------------------------------------------------------

OVER_EVERY_LIMIT = {
    "max_position_quantity": D("10"),
    "max_position_notional": D("1000"),
    "max_gross_exposure": D("1000"),
    "max_net_exposure": D("1000"),
    "max_asset_class_exposure": {EQUITY: D("1000")},
    "max_broker_exposure": D("1000"),
    "daily_loss_limit": D("100"),
    "max_drawdown": D("100"),
}


def test_a_reducing_order_passes_the_exposure_and_loss_rules_of_a_book_already_over_them():
    ctx = context(
        positions=(leg(quantity="100"),),
        daily_pnl="-5000",
        drawdown="5000",
        buying_power="0",
        order=proposed(side=SELL, quantity=D("40")),
        **OVER_EVERY_LIMIT,
    )
    result = assess(ctx)
    assert result.approved, result.reasons
    assert result.reserve == 0
    assert result.projected.buying_power_after == 0


def test_the_same_book_refuses_an_increasing_order_on_every_count():
    ctx = context(
        positions=(leg(quantity="100"),),
        daily_pnl="-5000",
        drawdown="5000",
        buying_power="0",
        order=proposed(side=BUY, quantity=D("1")),
        **OVER_EVERY_LIMIT,
    )
    assert codes(assess(ctx)) == [
        "MAX_POSITION_QUANTITY",
        "MAX_POSITION_NOTIONAL",
        "MAX_GROSS_EXPOSURE",
        "MAX_NET_EXPOSURE",
        "MAX_ASSET_CLASS_EXPOSURE",
        "MAX_BROKER_EXPOSURE",
        "DAILY_LOSS_LIMIT",
        "MAX_DRAWDOWN",
        "INSUFFICIENT_BUYING_POWER",
    ]


def test_a_reducing_order_still_faces_the_order_size_rules():
    ctx = context(
        positions=(leg(quantity="100"),),
        max_order_quantity=D("10"),
        max_order_notional=D("500"),
        order=proposed(side=SELL, quantity=D("40")),
    )
    assert codes(assess(ctx)) == ["MAX_ORDER_QUANTITY", "MAX_ORDER_NOTIONAL"]


def test_a_reducing_sale_that_raises_the_net_exposure_of_a_net_short_book_is_checked():
    # Long 10 AAPL (1,000), short 100 MSFT at 50 (-5,000): net 4,000. Selling the AAPL leaves -5,000.
    positions = (leg(quantity="10"), leg("MSFT", "-100", "50"))
    ctx = context(
        max_net_exposure=D("4500"), positions=positions, order=proposed(side=SELL, quantity=D("10"))
    )
    result = assess(ctx)
    assert codes(result) == ["MAX_NET_EXPOSURE"]
    assert failure(result, "MAX_NET_EXPOSURE").value == D("5000")


def test_a_reducing_sale_at_another_broker_is_checked_against_that_brokers_exposure():
    # The long sits at broker 2; selling it at broker 1 opens a short there.
    ctx = context(
        max_broker_exposure=D("500"),
        positions=(leg(quantity="10", broker_id=OTHER_BROKER),),
        order=proposed(side=SELL, quantity=D("10")),
    )
    result = assess(ctx)
    assert derive(ctx).reduces
    assert codes(result) == ["MAX_BROKER_EXPOSURE"]
    assert failure(result, "MAX_BROKER_EXPOSURE").value == D("1000")


def test_a_short_sale_reserves_buying_power():
    ctx = context(buying_power="500", order=proposed(side=SELL, quantity=D("10")))
    result = assess(ctx)
    assert result.reserve == D("1000")
    assert codes(result) == ["INSUFFICIENT_BUYING_POWER"]
    assert result.reasons == [
        "This order needs 1,000.00 of buying power but 500.00 is available (500.00 less 0.00 reserved by "
        "open orders) (INSUFFICIENT_BUYING_POWER)."
    ]


def test_a_sale_that_flips_the_long_reserves_its_whole_notional():
    ctx = context(positions=(leg(quantity="4"),), order=proposed(side=SELL, quantity=D("10")))
    d = derive(ctx)
    assert not d.reduces
    assert assess(ctx).reserve == D("1000")


# ---------------------------------------------------------------------------------------------
# Every failure together; projected exposure values
# ---------------------------------------------------------------------------------------------


def test_every_failure_is_reported_together_in_rule_order():
    ctx = context(
        trading_state=TradingState.HALTED,
        restricted_symbols=frozenset({"AAPL"}),
        allow_short_selling=False,
        price_collar_percent=D("1"),
        max_order_quantity=D("1"),
        max_order_notional=D("1"),
        max_position_quantity=D("1"),
        max_position_notional=D("1"),
        max_gross_exposure=D("1"),
        max_net_exposure=D("1"),
        max_asset_class_exposure={EQUITY: D("1")},
        max_broker_exposure=D("1"),
        max_open_orders=1,
        max_orders_per_minute=1,
        daily_loss_limit=D("1"),
        max_drawdown=D("1"),
        open_orders=(open_order("MSFT"),),
        recent_orders=(recent(side=SELL, price="50"),),
        daily_pnl="-1",
        drawdown="1",
        buying_power="1",
        order=proposed(side=SELL, price=D("50")),
    )
    result = assess(ctx)
    expected = [c for c in ALL_CODES if c not in {"TRADING_STATE_REDUCING", "NO_REFERENCE_PRICE"}]
    assert codes(result) == expected
    for f in result.failures:
        assert f.reason[0].isupper()
        assert f.reason.endswith(f"({f.rule}).")
    assert not result.approved
    assert len(result.reasons) == len(expected)


def test_projected_exposure_is_exact():
    ctx = context(
        positions=(
            leg("AAPL", "30", "98"),  # valued at the order's reference price, 101
            leg("AAPL", "20", "98", broker_id=OTHER_BROKER),
            leg("MSFT", "-40", "50"),
            leg("BTC/USD", "0.5", "60000", broker_id=OTHER_BROKER, asset_class=CRYPTO),
        ),
        open_orders=(
            open_order("AAPL", BUY, "5", "99"),  # same side: counts
            open_order("AAPL", SELL, "100", "110"),  # opposite side: its own worst case
            open_order("NVDA", BUY, "2", "900", broker_id=OTHER_BROKER),  # no position: at its price
        ),
        buying_power="100000",
        reserved="1800",
        order=proposed(quantity=D("10"), price=D("101")),
    )
    d = derive(ctx)
    assert d.reference_price == D("101")
    assert d.position == D("50")
    assert d.position_before == D("55")
    assert d.projected_position == D("65")
    assert not d.reduces
    # AAPL cases: long 50 + 5 + 10 = 65, short 50 - 100 = -50 -> 65 * 101 = 6,565
    # MSFT -40 * 50 = 2,000; BTC 0.5 * 60,000 = 30,000; NVDA 2 * 900 = 1,800
    # AAPL: long case 50 + 5 + 10 = 65, short case 50 - 100 = -50 -> 65 * 101 = 6,565
    # MSFT: 40 * 50 = 2,000; BTC/USD: 0.5 * 60,000 = 30,000; NVDA: long case 2 * 900 = 1,800
    assert d.after == Exposure(
        gross=D("40365"),
        net=D("36365"),  # long cases 6,565 - 2,000 + 30,000 + 1,800 (short cases: 22,950)
        asset_class=D("10365"),  # equities: AAPL, MSFT, NVDA
        broker=D("9070"),  # broker 1: AAPL max(30 + 5 + 10, |30 - 100|) = 70 -> 7,070; MSFT 2,000
    )
    assert d.before == Exposure(
        gross=D("39355"),  # AAPL long case 55 -> 5,555
        net=D("35355"),
        asset_class=D("9355"),
        broker=D("9070"),  # this buy does not raise broker 1's worst case: the short case rules there
    )
    result = assess(ctx)
    assert result.approved
    assert result.reserve == D("1010")
    assert result.projected == ProjectedExposure(
        order_notional=D("1010"),
        position_quantity=D("65"),
        position_notional=D("6565"),
        gross_exposure=D("40365"),
        net_exposure=D("36365"),
        buying_power_after=D("97190"),
    )


def test_now_is_the_contexts_clock():
    assert context().now == NOW
