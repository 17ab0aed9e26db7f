"""The NYSE trading calendar, computed from the exchange's published holiday rules.

Plain Python: no Django, no I/O, no clock and no data files. Every function takes the date it is
about; nothing reads "today".

Rules (NYSE Rule 7.2 and the holiday schedule the exchange publishes each year):

* Saturdays and Sundays never trade.
* Full-day holidays: New Year's Day, Martin Luther King Jr. Day (third Monday of January, from
  1998), Washington's Birthday (third Monday of February), Good Friday (two days before Western
  Easter, by the Gregorian computus), Memorial Day (last Monday of May), Juneteenth National
  Independence Day (June 19, from 2022), Independence Day (July 4), Labor Day (first Monday of
  September), Thanksgiving Day (fourth Thursday of November) and Christmas Day (December 25).
* A holiday that falls on a Saturday is observed on the Friday before, and one that falls on a
  Sunday on the Monday after. The exception is New Year's Day on a Saturday: the exchange does not
  close on the Friday before, because that Friday ends a monthly and yearly accounting period
  (2021-12-31 traded although 2022-01-01 was a Saturday).
* Special closures that no rule predicts (national days of mourning, weather, 9/11) are data:
  :data:`SPECIAL_CLOSURES`. Add new ones there when the exchange announces them.
* Early closes at 13:00 America/New_York: July 3 when it is a trading day (the day before
  Independence Day), the Friday after Thanksgiving, and December 24 when it is a trading day.
  Regular sessions close at 16:00.

The rules are modelled from 1998 (the first year the exchange closed for Martin Luther King Jr.
Day); earlier years raise ``ValueError`` instead of returning a calendar that never existed.
Future years follow today's rules; a new holiday or an unannounced closure needs a code change.
Times are naive ``datetime.time`` values in :data:`EXCHANGE_TIMEZONE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Protocol

EXCHANGE_TIMEZONE = "America/New_York"
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
FIRST_SUPPORTED_YEAR = 1998

_ONE_DAY = timedelta(days=1)
_MONDAY, _THURSDAY, _FRIDAY, _SATURDAY, _SUNDAY = 0, 3, 4, 5, 6

# Full-day closures the holiday rules do not predict. Source: NYSE announcements and its
# "closings history" list.
SPECIAL_CLOSURES: Mapping[date, str] = MappingProxyType(
    {
        date(2001, 9, 11): "September 11 attacks",
        date(2001, 9, 12): "September 11 attacks",
        date(2001, 9, 13): "September 11 attacks",
        date(2001, 9, 14): "September 11 attacks",
        date(2004, 6, 11): "National Day of Mourning for President Ronald Reagan",
        date(2007, 1, 2): "National Day of Mourning for President Gerald Ford",
        date(2012, 10, 29): "Hurricane Sandy",
        date(2012, 10, 30): "Hurricane Sandy",
        date(2018, 12, 5): "National Day of Mourning for President George H. W. Bush",
        date(2025, 1, 9): "National Day of Mourning for President Jimmy Carter",
    }
)


class TradingCalendar(Protocol):
    """What the day-trading rules need from a calendar (the NYSE one, or a fake in tests)."""

    def is_trading_day(self, d: date, /) -> bool: ...

    def previous_trading_days(self, d: date, n: int, /) -> list[date]: ...


def easter_sunday(year: int) -> date:
    """Western (Gregorian) Easter Sunday: the anonymous Gregorian computus (Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_offset = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_offset) // 451
    month, day = divmod(h + weekday_offset - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based) given weekday of a month."""
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last = next_month - _ONE_DAY
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _check_year(year: int) -> None:
    if year < FIRST_SUPPORTED_YEAR:
        raise ValueError(f"the NYSE calendar is modelled from {FIRST_SUPPORTED_YEAR}; {year} is earlier")


@lru_cache(maxsize=256)
def _rule_holidays(year: int) -> Mapping[date, str]:
    """The weekday closures the standing rules give for one year (no special closures)."""
    _check_year(year)
    out: dict[date, str] = {}

    def fixed(month: int, day: int, name: str, *, friday_observance: bool = True) -> None:
        actual = date(year, month, day)
        if actual.weekday() == _SATURDAY:
            if friday_observance:
                out[actual - _ONE_DAY] = f"{name} (observed)"
        elif actual.weekday() == _SUNDAY:
            out[actual + _ONE_DAY] = f"{name} (observed)"
        else:
            out[actual] = name

    fixed(1, 1, "New Year's Day", friday_observance=False)
    out[_nth_weekday(year, 1, _MONDAY, 3)] = "Martin Luther King Jr. Day"
    out[_nth_weekday(year, 2, _MONDAY, 3)] = "Washington's Birthday"
    out[easter_sunday(year) - timedelta(days=2)] = "Good Friday"
    out[_last_weekday(year, 5, _MONDAY)] = "Memorial Day"
    if year >= 2022:
        fixed(6, 19, "Juneteenth National Independence Day")
    fixed(7, 4, "Independence Day")
    out[_nth_weekday(year, 9, _MONDAY, 1)] = "Labor Day"
    out[_nth_weekday(year, 11, _THURSDAY, 4)] = "Thanksgiving Day"
    fixed(12, 25, "Christmas Day")
    return MappingProxyType(dict(sorted(out.items())))


@dataclass(frozen=True, slots=True)
class ExchangeCalendar:
    """The NYSE calendar; ``special_closures`` can be replaced (e.g. a new announced closure)."""

    name: str = "XNYS"
    special_closures: Mapping[date, str] = field(default_factory=lambda: SPECIAL_CLOSURES, hash=False)

    def holidays(self, year: int) -> dict[date, str]:
        """Every weekday on which the exchange is closed in ``year``, with its name, by date."""
        closed = dict(_rule_holidays(year))
        closed.update({d: why for d, why in self.special_closures.items() if d.year == year})
        return dict(sorted(closed.items()))

    def early_closes(self, year: int) -> dict[date, str]:
        """The trading days of ``year`` that close at 13:00 instead of 16:00."""
        candidates = {
            date(year, 7, 3): "Day before Independence Day",
            _nth_weekday(year, 11, _THURSDAY, 4) + _ONE_DAY: "Day after Thanksgiving",
            date(year, 12, 24): "Christmas Eve",
        }
        return {d: why for d, why in candidates.items() if self.is_trading_day(d)}

    def is_trading_day(self, d: date, /) -> bool:
        if d.weekday() >= _SATURDAY:
            _check_year(d.year)
            return False
        return d not in _rule_holidays(d.year) and d not in self.special_closures

    def previous_trading_days(self, d: date, n: int, /) -> list[date]:
        """The ``n`` trading days ending with ``d`` if it trades, else before ``d``; oldest first."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        days: list[date] = []
        cursor = d
        while len(days) < n:
            if self.is_trading_day(cursor):
                days.append(cursor)
            cursor -= _ONE_DAY
        days.reverse()
        return days

    def previous_trading_day(self, d: date, /) -> date:
        """The last trading day strictly before ``d``."""
        return self.previous_trading_days(d - _ONE_DAY, 1)[0]

    def next_trading_day(self, d: date, /) -> date:
        """The first trading day strictly after ``d``."""
        cursor = d + _ONE_DAY
        while not self.is_trading_day(cursor):
            cursor += _ONE_DAY
        return cursor

    def trading_days_between(self, a: date, b: date, /) -> list[date]:
        """The trading days from ``a`` to ``b``, both included, oldest first; empty if ``a > b``."""
        days: list[date] = []
        cursor = a
        while cursor <= b:
            if self.is_trading_day(cursor):
                days.append(cursor)
            cursor += _ONE_DAY
        return days

    def session_close(self, d: date, /) -> time:
        """Closing time of the regular session on ``d`` (America/New_York): 16:00, or 13:00."""
        if not self.is_trading_day(d):
            raise ValueError(f"{d.isoformat()} is not an NYSE trading day")
        return EARLY_CLOSE if d in self.early_closes(d.year) else REGULAR_CLOSE


NYSE = ExchangeCalendar()


def is_trading_day(d: date) -> bool:
    return NYSE.is_trading_day(d)


def previous_trading_days(d: date, n: int) -> list[date]:
    return NYSE.previous_trading_days(d, n)


def previous_trading_day(d: date) -> date:
    return NYSE.previous_trading_day(d)


def next_trading_day(d: date) -> date:
    return NYSE.next_trading_day(d)


def trading_days_between(a: date, b: date) -> list[date]:
    return NYSE.trading_days_between(a, b)


def session_close(d: date) -> time:
    return NYSE.session_close(d)


def holidays(year: int) -> dict[date, str]:
    return NYSE.holidays(year)


def early_closes(year: int) -> dict[date, str]:
    return NYSE.early_closes(year)
