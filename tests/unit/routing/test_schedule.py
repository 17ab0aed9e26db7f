"""TWAP/VWAP slice plans, how much a due slice releases, and progress against the plan."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.domain.volume import expected_volume
from orders.domain.enums import AssetClass
from routing.domain.schedule import (
    Slice,
    largest_remainder,
    progress,
    release_quantity,
    scheduled_by,
    slice_count,
    twap_plan,
    vwap_plan,
)

NY = ZoneInfo("America/New_York")
T0 = dt.datetime(2025, 6, 4, 14, 0, tzinfo=dt.UTC)
ONE = D(1)


def at(minutes: int, seconds: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes, seconds=seconds)


def plan_of(*quantities: str) -> list[Slice]:
    """A plan with one slice a minute from T0."""
    return [Slice(i, at(i), D(q)) for i, q in enumerate(quantities)]


# --- slice_count -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "seconds", "kw", "expected"),
    [
        (10, 0, {}, 10),
        (10, 1, {}, 11),  # a started interval counts
        (0, 0, {}, 1),  # at least one
        (0, 20, {}, 1),
        (24 * 60, 0, {}, 390),  # at most max_slices
        (60, 0, {"interval_seconds": 300}, 12),
        (60, 0, {"max_slices": 5}, 5),
    ],
)
def test_slice_count(minutes: int, seconds: int, kw: dict[str, int], expected: int) -> None:
    assert slice_count(T0, at(minutes, seconds), **kw) == expected


def test_slice_count_refuses_a_backwards_window() -> None:
    with pytest.raises(ValueError, match="before"):
        slice_count(at(5), at(0))


# --- twap_plan ---------------------------------------------------------------------------------


def test_twap_gives_n_equal_slices_at_exact_times() -> None:
    plan = twap_plan(quantity=D(1000), start=T0, end=at(10), slices=10, lot=ONE)
    assert plan == [Slice(i, at(i), D(100)) for i in range(10)]


def test_twap_gives_the_odd_lots_to_the_earliest_slices() -> None:
    plan = twap_plan(quantity=D(1003), start=T0, end=at(10), slices=10, lot=ONE)
    assert [s.quantity for s in plan] == [D(101)] * 3 + [D(100)] * 7


def test_twap_counts_in_lots() -> None:
    plan = twap_plan(quantity=D("0.0700"), start=T0, end=at(3), slices=3, lot=D("0.01"))
    assert [s.quantity for s in plan] == [D("0.03"), D("0.02"), D("0.02")]


def test_twap_with_fewer_lots_than_slices_spreads_one_lot_per_slice_over_the_window() -> None:
    plan = twap_plan(quantity=D(400), start=T0, end=at(10), slices=10, lot=D(100))
    assert plan == [Slice(i, at(0, 150 * i), D(100)) for i in range(4)]


def test_twap_due_times_round_down_to_the_microsecond() -> None:
    plan = twap_plan(quantity=D(3), start=T0, end=at(0, 1), slices=3, lot=ONE)
    assert [s.due_at for s in plan] == [
        T0,
        T0 + dt.timedelta(microseconds=333333),
        T0 + dt.timedelta(microseconds=666666),
    ]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"quantity": D(150), "lot": D(100)}, "multiple of the lot"),
        ({"quantity": D(0)}, "multiple of the lot"),
        ({"quantity": D(-100)}, "multiple of the lot"),
        ({"lot": D(0)}, "lot must be positive"),
        ({"slices": 0}, "slices"),
        ({"randomize": D("0.6")}, "randomize"),
        ({"randomize": D("-0.1")}, "randomize"),
        ({"end": T0 - dt.timedelta(minutes=1)}, "before"),
    ],
)
def test_twap_refuses_bad_arguments(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"quantity": D(1000), "start": T0, "end": at(10), "slices": 10, "lot": ONE}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        twap_plan(**args)  # type: ignore[arg-type]


def test_twap_randomized_is_deterministic_per_seed_and_stays_on_the_grid() -> None:
    kw = {"quantity": D(10000), "start": T0, "end": at(20), "slices": 20, "lot": ONE, "randomize": D("0.3")}
    first, again = twap_plan(**kw, seed=5), twap_plan(**kw, seed=5)  # type: ignore[arg-type]
    other = twap_plan(**kw, seed=6)  # type: ignore[arg-type]
    assert first == again
    assert [s.quantity for s in first] != [s.quantity for s in other]
    assert [s.due_at for s in first] == [at(i) for i in range(20)]
    assert len({s.quantity for s in first}) > 1


@given(
    lots=st.integers(min_value=1, max_value=5000),
    slices=st.integers(min_value=1, max_value=60),
    lot=st.sampled_from([D(1), D(100), D("0.001")]),
    randomize=st.sampled_from([D(0), D("0.1"), D("0.25"), D("0.5")]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_twap_randomized_keeps_the_total_the_lots_and_the_bounds(
    lots: int, slices: int, lot: D, randomize: D, seed: int
) -> None:
    quantity = lots * lot
    plain = twap_plan(quantity=quantity, start=T0, end=at(60), slices=slices, lot=lot)
    shaken = twap_plan(
        quantity=quantity, start=T0, end=at(60), slices=slices, lot=lot, randomize=randomize, seed=seed
    )
    assert sum(s.quantity for s in shaken) == quantity
    assert len(shaken) == len(plain) == min(lots, slices)
    assert [s.seq for s in shaken] == list(range(len(shaken)))
    assert [s.due_at for s in shaken] == [s.due_at for s in plain]
    for before, after in zip(plain, shaken, strict=True):
        assert after.quantity > 0
        assert after.quantity % lot == 0
        assert abs(after.quantity - before.quantity) <= randomize * before.quantity


# --- vwap_plan ---------------------------------------------------------------------------------


def test_vwap_follows_the_equity_volume_curve_over_a_session() -> None:
    # given a full New York session in 13 half-hour slices of the U-shaped curve
    def volume(a: dt.datetime, b: dt.datetime) -> D:
        return expected_volume(AssetClass.EQUITY, D(5_000_000), a, b)

    start = dt.datetime(2025, 6, 4, 9, 30, tzinfo=NY)
    end = dt.datetime(2025, 6, 4, 16, 0, tzinfo=NY)
    plan = vwap_plan(quantity=D(13000), start=start, end=end, slices=13, lot=ONE, volume=volume)
    sizes = [s.quantity for s in plan]
    # then the morning slices are bigger than the midday ones and the close picks up again
    assert sum(sizes) == D(13000)
    assert sizes[0] > sizes[2] > sizes[6]
    assert sizes[12] > sizes[10] > sizes[6]
    assert [s.due_at for s in plan] == [start + dt.timedelta(minutes=30 * i) for i in range(13)]


def test_vwap_shares_are_proportional_with_largest_remainder() -> None:
    volumes = {at(0): D(1), at(1): D(2), at(2): D(3)}
    plan = vwap_plan(quantity=D(100), start=T0, end=at(3), slices=3, lot=ONE, volume=lambda a, _: volumes[a])
    # exact shares 16.67, 33.33, 50: the odd lot goes to the largest fraction
    assert [s.quantity for s in plan] == [D(17), D(33), D(50)]


def test_vwap_drops_slices_without_volume_and_renumbers_the_rest() -> None:
    volumes = {at(0): D(0), at(1): D(5), at(2): D(0), at(3): D(5)}
    plan = vwap_plan(quantity=D(10), start=T0, end=at(4), slices=4, lot=ONE, volume=lambda a, _: volumes[a])
    assert plan == [Slice(0, at(1), D(5)), Slice(1, at(3), D(5))]


def test_vwap_with_no_expected_volume_falls_back_to_twap() -> None:
    kw = {"quantity": D(1000), "start": T0, "end": at(10), "slices": 10, "lot": ONE}
    assert vwap_plan(**kw, volume=lambda a, b: D(0)) == twap_plan(**kw)  # type: ignore[arg-type]


@given(
    lots=st.integers(min_value=1, max_value=3000),
    volumes=st.lists(st.decimals(min_value=0, max_value=10**6, places=3), min_size=1, max_size=40),
)
def test_vwap_sums_exactly_in_positive_lots(lots: int, volumes: list[D]) -> None:
    by_start = {at(i): v for i, v in enumerate(volumes)}
    n = len(volumes)
    plan = vwap_plan(
        quantity=lots * D(100), start=T0, end=at(n), slices=n, lot=D(100), volume=lambda a, _: by_start[a]
    )
    assert sum(s.quantity for s in plan) == lots * D(100)
    assert all(s.quantity > 0 and s.quantity % 100 == 0 for s in plan)
    assert [s.seq for s in plan] == list(range(len(plan)))


def test_largest_remainder_breaks_ties_to_the_earlier_weight() -> None:
    assert largest_remainder(2, [D(1), D(1), D(1)]) == [1, 1, 0]


# --- release_quantity --------------------------------------------------------------------------

PLAN = plan_of("100", "100", "100", "100")
TOTAL = D(400)


def release(upto_seq: int, filled: str = "0", working: str = "0", **kw: D | None) -> D:
    return release_quantity(
        plan=PLAN, upto_seq=upto_seq, filled=D(filled), working=D(working), total=TOTAL, lot=ONE, **kw
    )


def test_an_on_time_slice_releases_its_own_quantity() -> None:
    assert release(0) == D(100)
    assert release(1, filled="100") == D(100)


def test_the_unfilled_rest_of_earlier_slices_rolls_in() -> None:
    # slice 0 filled 60 of 100 and nothing is working: slice 1 wants 200 - 60
    assert release(1, filled="60") == D(140)


def test_working_quantity_is_not_released_twice() -> None:
    assert release(1, filled="60", working="40") == D(100)
    assert release(1, filled="100", working="150") == D(0)  # ahead: never negative


def test_a_late_slice_catches_up_within_the_limit() -> None:
    late = plan_of("100", "100", "100", "100", "100")
    # slices 0-2 never released: slice 3 wants 400 but may only catch up to 3 x 100
    kw = {"plan": late, "upto_seq": 3, "filled": D(0), "working": D(0), "total": D(500), "lot": ONE}
    assert release_quantity(**kw) == D(300)  # type: ignore[arg-type]
    assert release_quantity(**kw, catch_up_limit=D(2)) == D(200)  # type: ignore[arg-type]


def test_the_final_slice_releases_everything_left_without_the_catch_up_limit() -> None:
    assert release(3) == TOTAL
    assert release(3, filled="250", working="30") == D(120)


def test_the_participation_cap_limits_the_release() -> None:
    assert release(1, filled="60", participation_cap=D(75)) == D(75)
    assert release(3, participation_cap=D(75)) == D(75)  # the final slice too
    assert release(1, participation_cap=D(500)) == D(200)


def test_the_release_is_rounded_down_to_whole_lots() -> None:
    plan = plan_of("300", "300")
    kw = {"plan": plan, "upto_seq": 0, "filled": D(0), "working": D(0), "total": D(600), "lot": D(100)}
    assert release_quantity(**kw, participation_cap=D("250.5")) == D(200)  # type: ignore[arg-type]


def test_an_unknown_slice_is_refused() -> None:
    with pytest.raises(ValueError, match="no slice 9"):
        release(9)


@given(
    upto_seq=st.integers(min_value=0, max_value=3),
    filled=st.integers(min_value=0, max_value=400),
    working=st.integers(min_value=0, max_value=400),
    cap=st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
)
def test_a_release_is_never_negative_nor_more_than_is_left(
    upto_seq: int, filled: int, working: int, cap: int | None
) -> None:
    released = release(
        upto_seq, filled=str(filled), working=str(working), participation_cap=None if cap is None else D(cap)
    )
    assert D(0) <= released <= max(TOTAL - filled - working, D(0))
    assert released % 1 == 0


# --- scheduled_by and progress -----------------------------------------------------------------


def test_scheduled_by_counts_slices_due_by_now() -> None:
    assert scheduled_by(PLAN, T0 - dt.timedelta(seconds=1)) == 0
    assert scheduled_by(PLAN, T0) == D(100)
    assert scheduled_by(PLAN, at(2, 30)) == D(300)
    assert scheduled_by(PLAN, at(60)) == TOTAL


def test_progress_ahead_of_the_plan() -> None:
    got = progress(PLAN, at(1), D(250), TOTAL)
    assert (got.scheduled, got.filled, got.total) == (D(200), D(250), TOTAL)
    assert (got.percent_filled, got.percent_scheduled, got.ahead) == (D("62.50"), D("50.00"), D(50))


def test_progress_behind_the_plan() -> None:
    got = progress(plan_of("1", "1", "1"), at(2), D(1), D(3))
    assert (got.percent_filled, got.percent_scheduled, got.ahead) == (D("33.33"), D("100.00"), D(-2))
