"""Average-cost position accounting (orders.domain.positions). Pure Python, no database."""

from __future__ import annotations

import dataclasses
from decimal import Decimal, Inexact, localcontext

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from orders.domain.enums import Side
from orders.domain.positions import PositionState, Valuation, apply_fill, mark, net_realized

D = Decimal
BUY, SELL = Side.BUY, Side.SELL

# A fill written as (side, quantity, price, fee).
Fill = tuple[Side, Decimal, Decimal, Decimal]


def replay(fills: list[Fill], state: PositionState | None = None) -> PositionState:
    state = PositionState() if state is None else state
    for side, quantity, price, fee in fills:
        state = apply_fill(state, side=side, quantity=quantity, price=price, fee=fee)
    return state


def f(side: Side, quantity: str, price: str, fee: str = "0") -> Fill:
    return (side, D(quantity), D(price), D(fee))


# --- worked examples -------------------------------------------------------------------------------

WORKED_EXAMPLES = [
    pytest.param(
        [f(BUY, "10", "100")],
        PositionState(quantity=D(10), average_cost=D(100)),
        id="open-long",
    ),
    pytest.param(
        [f(BUY, "10", "100"), f(BUY, "30", "120")],
        # (10*100 + 30*120) / 40 = 4600 / 40
        PositionState(quantity=D(40), average_cost=D(115)),
        id="add-to-long",
    ),
    pytest.param(
        [f(BUY, "0.5", "30000.10"), f(BUY, "0.25", "30000.40")],
        # (15000.05 + 7500.10) / 0.75
        PositionState(quantity=D("0.75"), average_cost=D("30000.20")),
        id="add-fractional",
    ),
    pytest.param(
        [f(BUY, "10", "100"), f(SELL, "4", "110")],
        PositionState(quantity=D(6), average_cost=D(100), realized_pnl=D(40)),
        id="partial-reduce-long",
    ),
    pytest.param(
        [f(BUY, "10", "100"), f(SELL, "10", "95")],
        PositionState(quantity=D(0), average_cost=D(0), realized_pnl=D(-50)),
        id="full-close-long-at-loss",
    ),
    pytest.param(
        [f(BUY, "10", "100"), f(SELL, "15", "110")],
        # close 10 at +10 each, then open 5 short at the fill price
        PositionState(quantity=D(-5), average_cost=D(110), realized_pnl=D(100)),
        id="flip-long-to-short",
    ),
    pytest.param(
        [f(SELL, "10", "50"), f(BUY, "14", "45")],
        # cover 10 at +5 each, then open 4 long at the fill price
        PositionState(quantity=D(4), average_cost=D(45), realized_pnl=D(50)),
        id="flip-short-to-long",
    ),
    pytest.param(
        [f(SELL, "5", "20")],
        PositionState(quantity=D(-5), average_cost=D(20)),
        id="open-short",
    ),
    pytest.param(
        [f(SELL, "5", "20"), f(SELL, "15", "24")],
        # (5*20 + 15*24) / 20 = 460 / 20
        PositionState(quantity=D(-20), average_cost=D(23)),
        id="add-to-short",
    ),
    pytest.param(
        [f(SELL, "10", "50"), f(BUY, "10", "40")],
        PositionState(quantity=D(0), average_cost=D(0), realized_pnl=D(100)),
        id="cover-short-at-profit",
    ),
    pytest.param(
        [f(SELL, "10", "50"), f(BUY, "4", "55")],
        PositionState(quantity=D(-6), average_cost=D(50), realized_pnl=D(-20)),
        id="partial-cover-short-at-loss",
    ),
    pytest.param(
        [f(BUY, "10", "100", "1.25"), f(SELL, "4", "110", "0.50"), f(SELL, "6", "90", "0.75")],
        # realized +40 then -60; fees 1.25 + 0.50 + 0.75
        PositionState(quantity=D(0), average_cost=D(0), realized_pnl=D(-20), total_fees=D("2.50")),
        id="fees-accumulate",
    ),
    pytest.param(
        [f(BUY, "0.00000001", "65000.12345678"), f(SELL, "0.00000001", "65000.12345679")],
        PositionState(quantity=D(0), average_cost=D(0), realized_pnl=D("1E-16")),
        id="tiny-crypto-lot-keeps-precision",
    ),
]


@pytest.mark.parametrize(("fills", "expected"), WORKED_EXAMPLES)
def test_worked_example(fills: list[Fill], expected: PositionState) -> None:
    # given a flat position
    # when the fills are applied in order
    state = replay(fills)
    # then the position matches the hand-computed result
    assert state == expected


def test_average_cost_keeps_full_precision_without_quantizing() -> None:
    # given a long of 1 at 1
    state = replay([f(BUY, "1", "1")])
    # when 2 more are bought at 2, making the average 5/3
    state = apply_fill(state, side=BUY, quantity=D(2), price=D(2))
    # then the average is the context-precision quotient, not rounded to 8 places
    assert state.average_cost == D(5) / D(3)
    assert state.average_cost != D("1.66666667")


def test_net_realized_subtracts_every_fee() -> None:
    # given a round trip that realized -20 and paid 2.50 in fees
    state = replay([f(BUY, "10", "100", "1.25"), f(SELL, "4", "110", "0.50"), f(SELL, "6", "90", "0.75")])
    # when the net figure is asked for
    net = net_realized(state)
    # then it is the gross realized P&L minus the fees
    assert net == D("-22.50")


def test_fee_on_an_opening_fill_is_kept_out_of_the_average_cost() -> None:
    # given a flat position
    # when a fill opens it with a fee
    state = apply_fill(PositionState(), side=BUY, quantity=D(10), price=D(100), fee=D(5))
    # then the cost is the fill price alone and the fee is only in total_fees
    assert state == PositionState(quantity=D(10), average_cost=D(100), total_fees=D(5))


def test_apply_fill_returns_a_new_state_and_leaves_the_old_one_alone() -> None:
    # given a long position
    before = PositionState(quantity=D(10), average_cost=D(100))
    # when it is reduced
    after = apply_fill(before, side=SELL, quantity=D(4), price=D(110))
    # then the original is unchanged and cannot be mutated
    assert before == PositionState(quantity=D(10), average_cost=D(100))
    assert after is not before
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.quantity = D(0)  # type: ignore[misc]


# --- mark ------------------------------------------------------------------------------------------

MARK_EXAMPLES = [
    pytest.param(
        PositionState(quantity=D(10), average_cost=D(100)),
        D(110),
        Valuation(market_value=D(1100), unrealized_pnl=D(100)),
        id="long-in-profit",
    ),
    pytest.param(
        PositionState(quantity=D(10), average_cost=D(100)),
        D("92.5"),
        Valuation(market_value=D(925), unrealized_pnl=D(-75)),
        id="long-at-loss",
    ),
    pytest.param(
        PositionState(quantity=D(-5), average_cost=D(110)),
        D(100),
        Valuation(market_value=D(-500), unrealized_pnl=D(50)),
        id="short-in-profit",
    ),
    pytest.param(
        PositionState(quantity=D(-5), average_cost=D(110)),
        D(120),
        Valuation(market_value=D(-600), unrealized_pnl=D(-50)),
        id="short-at-loss",
    ),
    pytest.param(
        PositionState(realized_pnl=D(30)),
        D(120),
        Valuation(market_value=D(0), unrealized_pnl=D(0)),
        id="flat",
    ),
]


@pytest.mark.parametrize(("state", "price", "expected"), MARK_EXAMPLES)
def test_mark(state: PositionState, price: Decimal, expected: Valuation) -> None:
    # given an open (or flat) position
    # when it is marked at a price
    valuation = mark(state, price)
    # then market value and unrealized P&L follow the sign of the quantity
    assert valuation == expected


# --- refused inputs --------------------------------------------------------------------------------

BAD_FILLS = [
    pytest.param({"quantity": D(0)}, id="quantity-zero"),
    pytest.param({"quantity": D("-1")}, id="quantity-negative"),
    pytest.param({"quantity": D("NaN")}, id="quantity-nan"),
    pytest.param({"quantity": D("sNaN")}, id="quantity-snan"),
    pytest.param({"quantity": D("Infinity")}, id="quantity-infinite"),
    pytest.param({"price": D(0)}, id="price-zero"),
    pytest.param({"price": D("-0.01")}, id="price-negative"),
    pytest.param({"price": D("NaN")}, id="price-nan"),
    pytest.param({"price": D("Infinity")}, id="price-infinite"),
    pytest.param({"fee": D("-0.01")}, id="fee-negative"),
    pytest.param({"fee": D("NaN")}, id="fee-nan"),
    pytest.param({"fee": D("Infinity")}, id="fee-infinite"),
]


@pytest.mark.parametrize("override", BAD_FILLS)
def test_apply_fill_refuses_invalid_amounts(override: dict[str, Decimal]) -> None:
    # given an open position and an otherwise valid fill
    state = PositionState(quantity=D(10), average_cost=D(100))
    fill = {"quantity": D(1), "price": D(100), "fee": D(0)} | override
    # when / then one bad amount is refused
    with pytest.raises(ValueError):
        apply_fill(state, side=BUY, **fill)


def test_apply_fill_accepts_a_zero_fee() -> None:
    # given a flat position
    # when a fill carries an explicit zero fee
    state = apply_fill(PositionState(), side=SELL, quantity=D(1), price=D(1), fee=D("0.00"))
    # then it is accepted and no fee is recorded
    assert state == PositionState(quantity=D(-1), average_cost=D(1))


@pytest.mark.parametrize("field", ["quantity", "price", "fee"])
def test_apply_fill_refuses_non_decimal_amounts(field: str) -> None:
    # given a fill whose amount is not a Decimal
    fill: dict[str, object] = {"quantity": D(1), "price": D(100), "fee": D(0)}
    fill[field] = 1
    # when / then it is refused rather than converted
    with pytest.raises(TypeError):
        apply_fill(PositionState(), side=BUY, **fill)  # type: ignore[arg-type]


@pytest.mark.parametrize("price", [D(0), D(-1), D("NaN"), D("-Infinity")])
def test_mark_refuses_invalid_price(price: Decimal) -> None:
    # given an open position
    state = PositionState(quantity=D(10), average_cost=D(100))
    # when / then marking at a meaningless price is refused
    with pytest.raises(ValueError):
        mark(state, price)


# --- properties ------------------------------------------------------------------------------------


def scaled(low: int, high: int) -> st.SearchStrategy[Decimal]:
    """Decimals with up to 4 decimal places, built from integers so the arithmetic stays exact."""
    return st.integers(low, high).map(lambda n: Decimal(n).scaleb(-4))


quantities = scaled(1, 10_000_0000)  # 0.0001 .. 10 000
prices = scaled(1, 100_000_0000)  # 0.0001 .. 100 000
fees = scaled(0, 1_000_0000)  # 0 .. 1 000
fills_strategy = st.lists(st.tuples(st.sampled_from(Side), quantities, prices, fees), min_size=1, max_size=25)

# Growing a position divides to get the weighted average. When that quotient does not terminate it
# is rounded at the context's 28 significant digits, so cash conservation can then only hold to
# within rounding. With the magnitudes above that error stays around 1E-19, well inside this bound.
ROUNDING_BOUND = D("1E-15")


@given(fills=fills_strategy)
def test_quantity_is_the_sum_of_signed_fill_quantities(fills: list[Fill]) -> None:
    # given any sequence of fills
    # when they are applied to a flat position
    state = replay(fills)
    # then the quantity is exactly the signed sum of the fills
    assert state.quantity == sum((side.sign * quantity for side, quantity, _, _ in fills), D(0))


@given(fills=fills_strategy, mark_price=prices)
def test_cash_is_conserved(fills: list[Fill], mark_price: Decimal) -> None:
    # given any sequence of fills and a mark price
    with localcontext() as ctx:
        ctx.clear_flags()
        # when they are applied and the position is marked
        state = replay(fills)
        total_pnl = state.realized_pnl + mark(state, mark_price).unrealized_pnl
        rounded = ctx.flags[Inexact]
    # then realized + unrealized equals the cash paid/received plus the value of what is held
    expected = sum((-side.sign * quantity * price for side, quantity, price, _ in fills), D(0))
    expected += state.quantity * mark_price
    if rounded:
        event("an average cost was rounded")
        assert abs(total_pnl - expected) <= ROUNDING_BOUND
    else:
        event("exact arithmetic")
        assert total_pnl == expected


@given(fills=fills_strategy, closing_price=prices, mark_price=prices)
def test_a_flat_position_has_no_average_cost_and_no_unrealized_pnl(
    fills: list[Fill], closing_price: Decimal, mark_price: Decimal
) -> None:
    # given any sequence of fills followed by the fill that brings the position back to flat
    state = replay(fills)
    if state.quantity != 0:
        closing_side = SELL if state.quantity > 0 else BUY
        state = apply_fill(state, side=closing_side, quantity=abs(state.quantity), price=closing_price)
    # when the flat position is marked
    valuation = mark(state, mark_price)
    # then nothing is open, nothing is carried at cost and nothing is unrealized
    assert state.quantity == 0
    assert state.average_cost == 0
    assert valuation == Valuation(market_value=D(0), unrealized_pnl=D(0))


@given(fills=fills_strategy)
def test_fees_change_nothing_but_total_fees(fills: list[Fill]) -> None:
    # given any sequence of fills, and the same fills without their fees
    without_fees = [(side, quantity, price, D(0)) for side, quantity, price, _ in fills]
    # when both are applied to a flat position
    charged = replay(fills)
    free = replay(without_fees)
    # then quantity, average cost and realized P&L agree, and the fees only show in total_fees
    assert (charged.quantity, charged.average_cost, charged.realized_pnl) == (
        free.quantity,
        free.average_cost,
        free.realized_pnl,
    )
    assert free.total_fees == 0
    assert charged.total_fees == sum((fee for _, _, _, fee in fills), D(0))
    assert net_realized(charged) == charged.realized_pnl - charged.total_fees
