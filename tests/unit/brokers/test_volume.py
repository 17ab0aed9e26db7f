"""The intraday volume curve and the simulated market's traded volume."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.domain.volume import expected_volume, intraday_weight, step_volume
from orders.domain.enums import AssetClass

NY = ZoneInfo("America/New_York")
EQ, CX = AssetClass.EQUITY, AssetClass.CRYPTO
ADV = D(1_000_000)
TOLERANCE = D("0.00000001")


def ny(hour: int, minute: int = 0, day: int = 4) -> dt.datetime:
    """A time in New York on a day of June 2025 (the 4th is a Wednesday, the 7th a Saturday)."""
    return dt.datetime(2025, 6, day, hour, minute, tzinfo=NY)


def utc(hour: int, minute: int = 0, day: int = 4) -> dt.datetime:
    return dt.datetime(2025, 6, day, hour, minute, tzinfo=dt.UTC)


def session_minutes(start: dt.datetime, count: int) -> list[dt.datetime]:
    """The midpoints of ``count`` minutes from ``start``."""
    return [start + dt.timedelta(minutes=i, seconds=30) for i in range(count)]


# --- intraday_weight ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        ny(9, 29),
        ny(16, 0),  # the close itself is outside [09:30, 16:00)
        ny(20, 0),
        ny(3, 0),
        ny(10, 0, day=7),  # Saturday
        ny(12, 0, day=8),  # Sunday
    ],
)
def test_equity_weight_is_zero_outside_the_session(at: dt.datetime) -> None:
    assert intraday_weight(EQ, at) == 0


def test_equity_weight_is_u_shaped_over_the_session() -> None:
    # given the open, late morning, midday, mid-afternoon and the last minute
    opening, morning, midday, afternoon, closing = (
        intraday_weight(EQ, t) for t in (ny(9, 30), ny(11, 0), ny(12, 45), ny(14, 30), ny(15, 59))
    )
    # then it is heaviest at the ends and lightest at midday (the middle of 09:30-16:00)
    assert opening == D(2)
    assert midday == D("0.5")
    assert opening > morning > midday
    assert closing > afternoon > midday


def test_equity_weight_is_the_same_in_new_york_time_across_daylight_saving() -> None:
    # given 10:00 New York in winter (UTC-5) and summer (UTC-4) / then the weight is the same
    winter = dt.datetime(2025, 1, 8, 15, 0, tzinfo=dt.UTC)
    summer = dt.datetime(2025, 6, 4, 14, 0, tzinfo=dt.UTC)
    assert intraday_weight(EQ, winter) == intraday_weight(EQ, summer) > 0


def test_equity_weight_averages_one_over_a_session() -> None:
    weights = [intraday_weight(EQ, t) for t in session_minutes(ny(9, 30), 390)]
    assert abs(sum(weights) / 390 - 1) < D("0.01")


def test_crypto_weight_is_positive_all_day_mild_and_averages_one() -> None:
    weights = [intraday_weight(CX, t) for t in session_minutes(utc(0), 1440)]
    assert all(D("0.7") <= w <= D("1.3") for w in weights)
    assert abs(sum(weights) / 1440 - 1) < D("0.01")
    assert intraday_weight(CX, utc(15)) == D("1.3")  # the mid-afternoon peak
    assert intraday_weight(CX, utc(3)) == D("0.7")


def test_crypto_trades_on_weekends_too() -> None:
    assert intraday_weight(CX, utc(15, day=7)) == intraday_weight(CX, utc(15, day=4))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        intraday_weight(EQ, dt.datetime(2025, 6, 4, 10, 0))  # noqa: DTZ001


# --- expected_volume ---------------------------------------------------------------------------


def test_a_whole_equity_session_trades_the_adv() -> None:
    volume = expected_volume(EQ, ADV, ny(9, 30), ny(16, 0))
    assert abs(volume - ADV) / ADV < D("0.005")


def test_a_whole_equity_day_trades_the_same_as_its_session() -> None:
    day = expected_volume(EQ, ADV, ny(0, 0), ny(0, 0, day=5))
    assert day == expected_volume(EQ, ADV, ny(9, 30), ny(16, 0))


def test_a_whole_crypto_day_trades_the_adv() -> None:
    volume = expected_volume(CX, ADV, utc(0), utc(0, day=5))
    assert abs(volume - ADV) / ADV < D("0.005")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (ny(16, 0), ny(9, 30, day=5)),  # overnight
        (ny(9, 0, day=7), ny(17, 0, day=7)),  # Saturday
        (ny(10, 0), ny(10, 0)),  # empty
        (ny(11, 0), ny(10, 0)),  # backwards
    ],
)
def test_no_volume_in_a_closed_or_empty_window(start: dt.datetime, end: dt.datetime) -> None:
    assert expected_volume(EQ, ADV, start, end) == 0


def test_the_opening_half_hour_trades_more_than_the_midday_half_hour() -> None:
    assert expected_volume(EQ, ADV, ny(9, 30), ny(10, 0)) > 2 * expected_volume(
        EQ, ADV, ny(12, 30), ny(13, 0)
    )


def test_part_of_a_minute_counts_pro_rata() -> None:
    # given one whole minute at midday, where the curve is flat to 8 places
    minute = expected_volume(EQ, ADV, ny(12, 44), ny(12, 45))
    # when only its first 15 seconds are asked for / then a quarter of it trades
    quarter = expected_volume(EQ, ADV, ny(12, 44), ny(12, 44) + dt.timedelta(seconds=15))
    assert abs(quarter * 4 - minute) <= 4 * TOLERANCE


@given(
    offset=st.integers(min_value=0, max_value=2 * 86400),
    first=st.integers(min_value=1, max_value=4 * 3600),
    second=st.integers(min_value=1, max_value=4 * 3600),
    asset_class=st.sampled_from([EQ, CX]),
)
def test_expected_volume_adds_up_over_adjacent_windows(
    offset: int, first: int, second: int, asset_class: AssetClass
) -> None:
    start = ny(0, 0) + dt.timedelta(seconds=offset)
    middle = start + dt.timedelta(seconds=first)
    end = middle + dt.timedelta(seconds=second)
    whole = expected_volume(asset_class, ADV, start, end)
    parts = expected_volume(asset_class, ADV, start, middle) + expected_volume(asset_class, ADV, middle, end)
    assert abs(whole - parts) <= 2 * TOLERANCE


# --- step_volume -------------------------------------------------------------------------------


def test_step_volume_is_deterministic_for_the_same_seed_and_step() -> None:
    first = [step_volume("ACME", EQ, ADV, ny(10, s), 60, seed=7, step=s) for s in range(30)]
    second = [step_volume("ACME", EQ, ADV, ny(10, s), 60, seed=7, step=s) for s in range(30)]
    assert first == second
    assert len(set(first)) > 1


def test_step_volume_follows_the_seeded_noise_formula() -> None:
    factor = D(random.Random("42:ACME:vol:3").randint(500, 1500)) / 1000
    expected = expected_volume(EQ, ADV, ny(10, 0), ny(10, 1))
    assert step_volume("ACME", EQ, ADV, ny(10, 0), 60, seed=42, step=3) == (expected * factor).quantize(
        TOLERANCE
    )


def test_step_volume_depends_on_symbol_and_seed() -> None:
    base = [step_volume("ACME", EQ, ADV, ny(10), 60, seed=1, step=s) for s in range(20)]
    assert base != [step_volume("OTHER", EQ, ADV, ny(10), 60, seed=1, step=s) for s in range(20)]
    assert base != [step_volume("ACME", EQ, ADV, ny(10), 60, seed=2, step=s) for s in range(20)]


@given(
    seed=st.integers(min_value=0, max_value=10**6),
    step=st.integers(min_value=0, max_value=10**6),
    minute=st.integers(min_value=0, max_value=389),
    asset_class=st.sampled_from([EQ, CX]),
)
def test_step_volume_is_within_half_and_one_and_a_half_times_expected(
    seed: int, step: int, minute: int, asset_class: AssetClass
) -> None:
    at = ny(9, 30) + dt.timedelta(minutes=minute)
    expected = expected_volume(asset_class, ADV, at, at + dt.timedelta(seconds=60))
    volume = step_volume("ACME", asset_class, ADV, at, 60, seed=seed, step=step)
    assert expected / 2 - TOLERANCE <= volume <= expected * D("1.5") + TOLERANCE


def test_no_step_volume_when_the_market_is_shut() -> None:
    assert step_volume("ACME", EQ, ADV, ny(20, 0), 60, seed=1, step=1) == 0


def test_step_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="step_seconds"):
        step_volume("ACME", EQ, ADV, ny(10), 0, seed=1, step=1)
