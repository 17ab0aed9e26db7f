"""Square-root market impact, and splitting one order over several venues by displayed depth."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.domain.enums import Side
from routing.domain.impact import Allocation, Book, impact_bps, split_by_depth
from routing.domain.scoring import Fees

ONE = D(1)
FREE = Fees()


def book(account_id: int, *levels: tuple[str, str], fees: Fees = FREE) -> Book:
    return Book(account_id, tuple((D(p), D(s)) for p, s in levels), fees)


def quantities(allocations: list[Allocation]) -> dict[int, D]:
    return {a.account_id: a.quantity for a in allocations}


# --- impact_bps --------------------------------------------------------------------------------


def test_impact_is_volatility_times_the_square_root_of_the_adv_share() -> None:
    # 1% of ADV at 200 bps daily volatility: 200 x 0.1
    assert impact_bps(quantity=D(10_000), adv=D(1_000_000), daily_volatility_bps=D(200)) == D("20.00")
    assert impact_bps(
        quantity=D(10_000), adv=D(1_000_000), daily_volatility_bps=D(200), coefficient=D("0.5")
    ) == D("10.00")


def test_four_times_the_quantity_doubles_the_impact() -> None:
    small = impact_bps(quantity=D(10_000), adv=D(1_000_000), daily_volatility_bps=D(150))
    large = impact_bps(quantity=D(40_000), adv=D(1_000_000), daily_volatility_bps=D(150))
    assert large == 2 * small == D("30.00")


@given(
    quantity=st.integers(min_value=1, max_value=10**7),
    adv=st.integers(min_value=1, max_value=10**9),
    sigma=st.integers(min_value=1, max_value=1000),
)
def test_impact_grows_as_the_square_root(quantity: int, adv: int, sigma: int) -> None:
    small = impact_bps(quantity=D(quantity), adv=D(adv), daily_volatility_bps=D(sigma))
    large = impact_bps(quantity=D(4 * quantity), adv=D(adv), daily_volatility_bps=D(sigma))
    assert abs(large - 2 * small) <= D("0.01")
    assert large.as_tuple().exponent == -2


def test_no_quantity_no_impact() -> None:
    assert impact_bps(quantity=D(0), adv=D(1_000_000), daily_volatility_bps=D(200)) == 0


def test_an_unknown_adv_gives_the_large_sentinel() -> None:
    assert impact_bps(quantity=D(100), adv=D(0), daily_volatility_bps=D(200), coefficient=D(2)) == D(
        "4000.00"
    )


# --- split_by_depth ----------------------------------------------------------------------------


def test_the_cheaper_venues_depth_is_taken_first() -> None:
    cheap = book(2, ("100.00", "300"), ("100.02", "300"))
    dear = book(1, ("100.01", "500"))
    got = split_by_depth(quantity=D(500), side=Side.BUY, books=[cheap, dear], lot=ONE)
    # 300 @ 100.00 at 2, then 200 @ 100.01 at 1 (before 2's second level at 100.02)
    assert got == [Allocation(1, D(200), D("100.01")), Allocation(2, D(300), D("100.00"))]


def test_the_expected_price_is_the_vwap_of_the_levels_taken() -> None:
    only = book(1, ("10.00", "100"), ("10.10", "100"))
    got = split_by_depth(quantity=D(150), side=Side.BUY, books=[only], lot=ONE)
    assert got == [Allocation(1, D(150), D("10.00") + D("0.10") / 3)]


def test_fees_change_the_ranking() -> None:
    # 100.00 + 0.02 per unit costs more than 100.01 free
    per_unit = book(1, ("100.00", "1000"), fees=Fees(per_unit=D("0.02")))
    free = book(2, ("100.01", "1000"))
    assert quantities(split_by_depth(quantity=D(500), side=Side.BUY, books=[per_unit, free], lot=ONE)) == {
        2: D(500)
    }
    # 2 bps of 100 is 0.02 as well
    in_bps = book(1, ("100.00", "1000"), fees=Fees(bps=D(2)))
    assert quantities(split_by_depth(quantity=D(500), side=Side.BUY, books=[in_bps, free], lot=ONE)) == {
        2: D(500)
    }


def test_a_sell_takes_the_highest_net_price_first() -> None:
    low = book(1, ("99.98", "1000"))
    high = book(2, ("99.99", "200"), ("99.97", "1000"))
    got = split_by_depth(quantity=D(500), side=Side.SELL, books=[low, high], lot=ONE)
    assert got == [Allocation(1, D(300), D("99.98")), Allocation(2, D(200), D("99.99"))]


def test_a_sell_pays_its_fees_out_of_the_price() -> None:
    # 99.99 - 0.02 per unit receives less than 99.98 free
    dear = book(1, ("99.99", "1000"), fees=Fees(per_unit=D("0.02")))
    free = book(2, ("99.98", "1000"))
    assert quantities(split_by_depth(quantity=D(500), side=Side.SELL, books=[dear, free], lot=ONE)) == {
        2: D(500)
    }


def test_equal_costs_go_to_the_lower_account_id_first() -> None:
    a, b = book(7, ("50.00", "100")), book(3, ("50.00", "100"))
    assert quantities(split_by_depth(quantity=D(150), side=Side.BUY, books=[a, b], lot=ONE)) == {
        3: D(100),
        7: D(50),
    }


def test_beyond_all_depth_goes_in_proportion_to_displayed_size() -> None:
    small = book(1, ("100.00", "100"))
    large = book(2, ("100.01", "300"))
    got = split_by_depth(quantity=D(800), side=Side.BUY, books=[small, large], lot=ONE)
    # 400 displayed, 400 beyond: 100 more to 1, 300 more to 2; prices stay those displayed
    assert got == [Allocation(1, D(200), D("100.00")), Allocation(2, D(600), D("100.01"))]


def test_beyond_depth_ties_go_to_the_lower_account_id() -> None:
    a, b = book(1, ("100.00", "1")), book(2, ("100.00", "1"))
    assert quantities(split_by_depth(quantity=D(5), side=Side.BUY, books=[b, a], lot=ONE)) == {
        1: D(3),
        2: D(2),
    }


def test_a_venue_without_depth_gets_nothing_while_others_show_some() -> None:
    empty = book(1)
    shown = book(2, ("100.00", "10"))
    got = split_by_depth(quantity=D(30), side=Side.BUY, books=[empty, shown], lot=ONE)
    assert got == [Allocation(2, D(30), D("100.00"))]


def test_with_no_depth_anywhere_the_order_is_split_evenly_and_unpriced() -> None:
    got = split_by_depth(quantity=D(300), side=Side.BUY, books=[book(2), book(1)], lot=D(100))
    assert got == [Allocation(1, D(200), None), Allocation(2, D(100), None)]


def test_part_lots_are_rounded_down_and_the_rest_goes_to_the_best_first_level() -> None:
    best = book(1, ("100.00", "150"))
    next_best = book(2, ("100.01", "150"))
    got = split_by_depth(quantity=D(300), side=Side.BUY, books=[best, next_best], lot=D(100))
    # 150 / 150 rounds down to 100 / 100; the lot left over goes to 1
    assert quantities(got) == {1: D(200), 2: D(100)}


def test_children_below_min_child_merge_into_the_largest() -> None:
    books = [book(1, ("100.00", "700")), book(2, ("100.01", "200")), book(3, ("100.02", "100"))]
    plain = split_by_depth(quantity=D(1000), side=Side.BUY, books=books, lot=ONE)
    assert quantities(plain) == {1: D(700), 2: D(200), 3: D(100)}
    merged = split_by_depth(quantity=D(1000), side=Side.BUY, books=books, lot=ONE, min_child=D(150))
    assert merged == [Allocation(1, D(800), D("100.00")), Allocation(2, D(200), D("100.01"))]


def test_all_children_below_min_child_make_one_order() -> None:
    books = [book(1, ("100.00", "60")), book(2, ("100.01", "40"))]
    got = split_by_depth(quantity=D(100), side=Side.BUY, books=books, lot=ONE, min_child=D(500))
    assert quantities(got) == {1: D(100)}


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"books": []}, "no venue"),
        ({"quantity": D(150)}, "multiple of the lot"),
        ({"quantity": D(0)}, "multiple of the lot"),
        ({"lot": D(0)}, "lot must be positive"),
        ({"books": [book(1, ("100", "10")), book(1, ("101", "10"))]}, "twice"),
        ({"books": [book(1, ("100", "-10"))]}, "negative size"),
    ],
)
def test_split_refuses_bad_arguments(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "quantity": D(200),
        "side": Side.BUY,
        "books": [book(1, ("100", "10"))],
        "lot": D(100),
    }
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        split_by_depth(**args)  # type: ignore[arg-type]


level = st.tuples(
    st.decimals(min_value=1, max_value=1000, places=2),
    st.decimals(min_value=0, max_value=5000, places=3),
)
venue_books = st.lists(
    st.tuples(
        st.lists(level, max_size=5),
        st.decimals(min_value=0, max_value=50, places=1),
        st.decimals(min_value=0, max_value=1, places=3),
    ),
    min_size=1,
    max_size=5,
)


@given(
    lots=st.integers(min_value=1, max_value=20_000),
    lot=st.sampled_from([D(1), D(100), D("0.01")]),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    raw=venue_books,
    min_child_lots=st.one_of(st.none(), st.integers(min_value=1, max_value=50)),
)
def test_split_sums_exactly_in_positive_lot_multiples(
    lots: int, lot: D, side: Side, raw: list[tuple[list[tuple[D, D]], D, D]], min_child_lots: int | None
) -> None:
    books = [
        Book(i * 10, levels, Fees(bps=bps, per_unit=per_unit))
        for i, (levels, bps, per_unit) in enumerate(raw)
    ]
    quantity = lots * lot
    min_child = None if min_child_lots is None else min_child_lots * lot
    got = split_by_depth(quantity=quantity, side=side, books=books, lot=lot, min_child=min_child)
    assert sum(a.quantity for a in got) == quantity
    assert [a.account_id for a in got] == sorted({a.account_id for a in got})
    for a in got:
        assert a.quantity > 0
        assert a.quantity % lot == 0
    if min_child is not None and len(got) > 1:
        assert all(a.quantity >= min_child for a in got)
