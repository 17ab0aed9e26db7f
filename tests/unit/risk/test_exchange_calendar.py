"""The NYSE calendar (risk.domain.exchange_calendar) against the exchange's published dates."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from risk.domain.exchange_calendar import (
    NYSE,
    SPECIAL_CLOSURES,
    ExchangeCalendar,
    early_closes,
    easter_sunday,
    holidays,
    is_trading_day,
    next_trading_day,
    previous_trading_day,
    previous_trading_days,
    session_close,
    trading_days_between,
)

d = date

# The full-day closures NYSE publishes (nyse.com "Holidays & Trading Hours").
PUBLISHED_CLOSURES = {
    2025: {
        d(2025, 1, 1): "New Year's Day",
        d(2025, 1, 9): "National Day of Mourning for President Jimmy Carter",
        d(2025, 1, 20): "Martin Luther King Jr. Day",
        d(2025, 2, 17): "Washington's Birthday",
        d(2025, 4, 18): "Good Friday",
        d(2025, 5, 26): "Memorial Day",
        d(2025, 6, 19): "Juneteenth National Independence Day",
        d(2025, 7, 4): "Independence Day",
        d(2025, 9, 1): "Labor Day",
        d(2025, 11, 27): "Thanksgiving Day",
        d(2025, 12, 25): "Christmas Day",
    },
    2026: {
        d(2026, 1, 1): "New Year's Day",
        d(2026, 1, 19): "Martin Luther King Jr. Day",
        d(2026, 2, 16): "Washington's Birthday",
        d(2026, 4, 3): "Good Friday",
        d(2026, 5, 25): "Memorial Day",
        d(2026, 6, 19): "Juneteenth National Independence Day",
        d(2026, 7, 3): "Independence Day (observed)",
        d(2026, 9, 7): "Labor Day",
        d(2026, 11, 26): "Thanksgiving Day",
        d(2026, 12, 25): "Christmas Day",
    },
    2027: {
        d(2027, 1, 1): "New Year's Day",
        d(2027, 1, 18): "Martin Luther King Jr. Day",
        d(2027, 2, 15): "Washington's Birthday",
        d(2027, 3, 26): "Good Friday",
        d(2027, 5, 31): "Memorial Day",
        d(2027, 6, 18): "Juneteenth National Independence Day (observed)",
        d(2027, 7, 5): "Independence Day (observed)",
        d(2027, 9, 6): "Labor Day",
        d(2027, 11, 25): "Thanksgiving Day",
        d(2027, 12, 24): "Christmas Day (observed)",
    },
}


# --- holidays ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", sorted(PUBLISHED_CLOSURES))
def test_holidays_are_exactly_the_published_closures(year):
    # Given the closures NYSE published for the year
    expected = PUBLISHED_CLOSURES[year]

    # When the calendar computes the year from its rules
    computed = holidays(year)

    # Then it lists the same dates, with the same names, and none of them trades
    assert computed == expected
    assert [day for day in computed if is_trading_day(day)] == []


@pytest.mark.parametrize(("year", "trading_days"), [(2025, 250), (2026, 251), (2027, 251)])
def test_trading_days_in_a_year(year, trading_days):
    assert len(trading_days_between(d(year, 1, 1), d(year, 12, 31))) == trading_days


@pytest.mark.parametrize(
    ("day", "trades"),
    [
        pytest.param(d(2021, 12, 31), True, id="new-year-on-saturday-no-friday-closure-2021"),
        pytest.param(d(2022, 1, 3), True, id="new-year-on-saturday-no-monday-closure-2022"),
        pytest.param(d(2027, 12, 31), True, id="new-year-on-saturday-no-friday-closure-2027"),
        pytest.param(d(2023, 1, 2), False, id="new-year-on-sunday-observed-monday"),
        pytest.param(d(2021, 12, 24), False, id="christmas-on-saturday-observed-friday"),
        pytest.param(d(2022, 12, 26), False, id="christmas-on-sunday-observed-monday"),
        pytest.param(d(2021, 7, 5), False, id="independence-day-on-sunday-observed-monday"),
        pytest.param(d(2021, 6, 18), True, id="juneteenth-not-a-holiday-before-2022"),
        pytest.param(d(2022, 6, 20), False, id="juneteenth-on-sunday-observed-monday"),
        pytest.param(d(1998, 1, 19), False, id="mlk-day-from-1998"),
        pytest.param(d(2024, 3, 29), False, id="good-friday-2024"),
        pytest.param(d(2012, 10, 29), False, id="hurricane-sandy-day-1"),
        pytest.param(d(2012, 10, 30), False, id="hurricane-sandy-day-2"),
        pytest.param(d(2018, 12, 5), False, id="mourning-george-h-w-bush"),
        pytest.param(d(2025, 1, 9), False, id="mourning-jimmy-carter"),
        pytest.param(d(2025, 1, 10), True, id="day-after-carter-closure"),
        pytest.param(d(2026, 11, 27), True, id="day-after-thanksgiving-trades"),
        pytest.param(d(2026, 7, 4), False, id="saturday"),
        pytest.param(d(2026, 7, 5), False, id="sunday"),
        pytest.param(d(2026, 7, 6), True, id="plain-monday"),
    ],
)
def test_is_trading_day(day, trades):
    assert is_trading_day(day) is trades


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2008, d(2008, 3, 23)),
        (2011, d(2011, 4, 24)),
        (2019, d(2019, 4, 21)),
        (2024, d(2024, 3, 31)),
        (2025, d(2025, 4, 20)),
        (2026, d(2026, 4, 5)),
        (2027, d(2027, 3, 28)),
        (2038, d(2038, 4, 25)),
    ],
)
def test_easter_computus_and_good_friday(year, easter):
    assert easter_sunday(year) == easter
    assert holidays(year)[easter - timedelta(days=2)] == "Good Friday"


def test_the_carter_closure_is_data_not_a_rule():
    assert SPECIAL_CLOSURES[d(2025, 1, 9)] == "National Day of Mourning for President Jimmy Carter"
    without_special_closures = ExchangeCalendar(special_closures={})
    assert without_special_closures.is_trading_day(d(2025, 1, 9)) is True
    assert d(2025, 1, 9) not in without_special_closures.holidays(2025)


def test_a_newly_announced_closure_is_added_as_data():
    # Given a closure announced after this code was written (hypothetical date)
    announced = {**SPECIAL_CLOSURES, d(2026, 3, 2): "Hypothetical closure"}

    # When a calendar is built with it
    calendar = ExchangeCalendar(special_closures=announced)

    # Then that day no longer trades, and the default calendar is unchanged
    assert calendar.is_trading_day(d(2026, 3, 2)) is False
    assert calendar.holidays(2026)[d(2026, 3, 2)] == "Hypothetical closure"
    assert NYSE.is_trading_day(d(2026, 3, 2)) is True


@pytest.mark.parametrize("year", [1997, 1950])
def test_years_before_the_modelled_rules_raise(year):
    with pytest.raises(ValueError, match="modelled from 1998"):
        holidays(year)
    with pytest.raises(ValueError, match="modelled from 1998"):
        is_trading_day(d(year, 6, 2))


# --- navigation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        pytest.param(
            d(2026, 11, 27),
            5,
            [d(2026, 11, 20), d(2026, 11, 23), d(2026, 11, 24), d(2026, 11, 25), d(2026, 11, 27)],
            id="ends-on-trading-day-skips-thanksgiving",
        ),
        pytest.param(
            d(2026, 7, 8),
            5,
            [d(2026, 7, 1), d(2026, 7, 2), d(2026, 7, 6), d(2026, 7, 7), d(2026, 7, 8)],
            id="skips-july-3-observed-and-weekend",
        ),
        pytest.param(d(2026, 11, 26), 2, [d(2026, 11, 24), d(2026, 11, 25)], id="holiday-ends-before"),
        pytest.param(d(2026, 7, 4), 3, [d(2026, 6, 30), d(2026, 7, 1), d(2026, 7, 2)], id="saturday"),
        pytest.param(d(2025, 1, 10), 2, [d(2025, 1, 8), d(2025, 1, 10)], id="skips-special-closure"),
        pytest.param(d(2026, 7, 8), 0, [], id="none"),
    ],
)
def test_previous_trading_days(day, n, expected):
    assert previous_trading_days(day, n) == expected


def test_previous_trading_days_rejects_a_negative_count():
    with pytest.raises(ValueError, match="n must be >= 0"):
        previous_trading_days(d(2026, 7, 8), -1)


@pytest.mark.parametrize(
    ("day", "next_day", "previous_day"),
    [
        (d(2026, 7, 2), d(2026, 7, 6), d(2026, 7, 1)),
        (d(2026, 7, 3), d(2026, 7, 6), d(2026, 7, 2)),
        (d(2025, 1, 8), d(2025, 1, 10), d(2025, 1, 7)),
        (d(2021, 12, 30), d(2021, 12, 31), d(2021, 12, 29)),
        (d(2027, 12, 23), d(2027, 12, 27), d(2027, 12, 22)),
        (d(2026, 11, 25), d(2026, 11, 27), d(2026, 11, 24)),
    ],
)
def test_next_and_previous_trading_day_are_strict(day, next_day, previous_day):
    assert next_trading_day(day) == next_day
    assert previous_trading_day(day) == previous_day


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (
            d(2026, 11, 23),
            d(2026, 11, 30),
            [d(2026, 11, 23), d(2026, 11, 24), d(2026, 11, 25), d(2026, 11, 27), d(2026, 11, 30)],
        ),
        (d(2026, 7, 3), d(2026, 7, 5), []),
        (d(2026, 7, 6), d(2026, 7, 6), [d(2026, 7, 6)]),
        (d(2026, 7, 7), d(2026, 7, 6), []),
    ],
)
def test_trading_days_between_includes_both_ends(a, b, expected):
    assert trading_days_between(a, b) == expected


# --- session close ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "close"),
    [
        pytest.param(d(2025, 7, 3), time(13, 0), id="day-before-independence-day-2025"),
        pytest.param(d(2025, 11, 28), time(13, 0), id="day-after-thanksgiving-2025"),
        pytest.param(d(2025, 12, 24), time(13, 0), id="christmas-eve-2025"),
        pytest.param(d(2024, 7, 3), time(13, 0), id="day-before-independence-day-2024"),
        pytest.param(d(2026, 11, 27), time(13, 0), id="day-after-thanksgiving-2026"),
        pytest.param(d(2026, 12, 24), time(13, 0), id="christmas-eve-2026"),
        pytest.param(d(2026, 7, 2), time(16, 0), id="july-2-full-day-when-july-3-is-the-holiday"),
        pytest.param(d(2021, 12, 23), time(16, 0), id="dec-23-full-day-when-dec-24-is-the-holiday"),
        pytest.param(d(2026, 7, 6), time(16, 0), id="regular-day"),
    ],
)
def test_session_close(day, close):
    assert session_close(day) == close


def test_early_closes_of_a_year():
    assert early_closes(2025) == {
        d(2025, 7, 3): "Day before Independence Day",
        d(2025, 11, 28): "Day after Thanksgiving",
        d(2025, 12, 24): "Christmas Eve",
    }
    assert early_closes(2027) == {d(2027, 11, 26): "Day after Thanksgiving"}


@pytest.mark.parametrize("day", [d(2026, 7, 3), d(2026, 7, 4), d(2025, 1, 9)])
def test_session_close_of_a_closed_day_raises(day):
    with pytest.raises(ValueError, match="is not an NYSE trading day"):
        session_close(day)


# --- properties -------------------------------------------------------------------------------------

days = st.dates(min_value=d(1999, 1, 1), max_value=d(2100, 12, 31))


@given(day=days, n=st.integers(min_value=0, max_value=30))
def test_previous_trading_days_are_the_last_n_consecutive_trading_days(day, n):
    result = previous_trading_days(day, n)

    assert len(result) == n
    assert all(is_trading_day(x) for x in result)
    assert result == sorted(set(result))
    if result:
        assert result[-1] <= day
        assert trading_days_between(result[0], day) == result


@given(day=days)
def test_next_trading_day_skips_only_closed_days(day):
    following = next_trading_day(day)

    assert following > day
    assert is_trading_day(following)
    assert trading_days_between(day + timedelta(days=1), following) == [following]
    assert previous_trading_days(following, 1) == [following]
