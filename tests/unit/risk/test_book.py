"""The risk book's arithmetic: legs, contributions and running totals that never drift."""

from __future__ import annotations

from decimal import Decimal as D
from decimal import localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from orders.domain.enums import AssetClass, Side
from risk.domain.book import (
    BookLeg,
    BookTotals,
    OpenOrder,
    PositionLeg,
    contribution,
    legs_from,
    reserved_remaining,
    symbol_price,
    totals_of,
    with_open_order,
)

EQ, CR = AssetClass.EQUITY, AssetClass.CRYPTO


def test_a_long_position_with_open_orders_counts_its_worst_case():
    legs = legs_from(
        [PositionLeg(1, "AAPL", EQ, D("10"), D("100"))],
        [OpenOrder(1, "AAPL", Side.BUY, D("5"), D("99")), OpenOrder(1, "AAPL", Side.SELL, D("30"), D("101"))],
    )
    assert legs == [
        BookLeg(
            1,
            "AAPL",
            EQ,
            net=D("10"),
            open_buy=D("5"),
            open_sell=D("30"),
            open_orders=2,
            mark=D("100"),
            order_price=D("101"),
            market_value=D("1000"),
        )
    ]
    # the mark wins over the order prices; long case 15, short case -20: gross 2,000
    assert symbol_price(legs) == D("100")
    part = contribution(legs, D("100"))
    assert (part.gross, part.long_value, part.short_value) == (D("2000"), D("1500"), D("-2000"))


def test_without_a_position_a_symbol_is_valued_at_its_highest_order_price():
    legs = legs_from(
        [],
        [
            OpenOrder(2, "BTC/USD", Side.BUY, D("1"), D("50000")),
            OpenOrder(2, "BTC/USD", Side.BUY, D("1"), D("1")),
        ],
    )
    assert symbol_price(legs) == D("50000")
    assert legs[0].asset_class == CR  # from the symbol when the order does not say


def test_per_broker_gross_uses_each_accounts_own_legs():
    legs = legs_from(
        [PositionLeg(1, "AAPL", EQ, D("10"), D("10")), PositionLeg(2, "AAPL", EQ, D("-10"), D("10"))], []
    )
    part = contribution(legs, D("10"))
    assert part.gross == 0  # flat across brokers
    assert part.broker_gross == {1: D("100"), 2: D("100")}


def test_folding_in_an_order_gives_what_building_from_scratch_gives():
    position = PositionLeg(1, "AAPL", EQ, D("3"), D("100"))
    orders = [
        OpenOrder(1, "AAPL", Side.SELL, D("1"), D("101"), EQ, D("0")),
        OpenOrder(2, "AAPL", Side.BUY, D("2"), D("99"), EQ, D("198")),
    ]
    assert with_open_order(legs_from([position], orders[:1]), orders[1]) == legs_from([position], orders)


def test_a_reservation_is_released_pro_rata_and_rounded_once():
    assert reserved_remaining(D("100"), D("3"), D("1")) == D("66.6666666666666667")
    assert reserved_remaining(D("100"), D("3"), D("3")) == 0
    assert reserved_remaining(D("100"), D("3"), D("0")) == D("100")


def test_totals_keep_exact_sums_beyond_the_default_decimal_precision():
    quantity, price = D("123456789.12345678"), D("987654.87654321")
    with localcontext(prec=60):
        exact = quantity * price
    assert len(exact.as_tuple().digits) > 28  # the default context would round it
    legs = legs_from([PositionLeg(1, "BRK.A", EQ, quantity, price)], [])
    totals = totals_of(legs)
    assert totals.gross == totals.long_value == totals.market_value == exact
    assert totals.swap(legs, ()) == BookTotals()


leg_changes = st.lists(
    st.tuples(
        st.sampled_from(["AAA", "BBB", "BTC/USD"]),
        st.sampled_from([1, 2]),
        st.decimals(min_value=-50, max_value=50, places=8, allow_nan=False, allow_infinity=False),
        st.decimals(
            min_value=D("0.00000001"), max_value=1000, places=8, allow_nan=False, allow_infinity=False
        ),
        st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(changes=leg_changes)
def test_running_totals_equal_totals_from_scratch_after_any_changes(changes):
    """Each change replaces one symbol's legs; the running totals never drift from a rebuild."""
    book: dict[str, list[BookLeg]] = {}
    totals = BookTotals()
    for symbol, broker, quantity, price, as_order in changes:
        asset_class = CR if "/" in symbol else EQ
        if as_order:
            side = Side.BUY if quantity >= 0 else Side.SELL
            new = legs_from(
                [], [OpenOrder(broker, symbol, side, abs(quantity) or D(1), price, asset_class, price)]
            )
        else:
            new = legs_from([PositionLeg(broker, symbol, asset_class, quantity, price)], [])
        totals = totals.swap(book.get(symbol, []), new)
        book[symbol] = new
        assert totals == totals_of(leg for legs in book.values() for leg in legs)
