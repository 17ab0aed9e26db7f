"""How much trades when: the intraday volume curve and the simulated market's traded volume.

Plain Python: no Django, no I/O, no clock; every instant is passed in as an aware datetime.

* :func:`intraday_weight` is the relative volume intensity at an instant, averaging 1 over a
  session. Equities: a U over the regular session 09:30-16:00 New York (open and close heavy,
  midday light), 0 outside it and on weekends (holidays are not modelled, as in
  :mod:`brokers.domain.calendar`). Crypto: a mild daily tent around the clock, 1.3 at 15:00 UTC
  down to 0.7 at 03:00 UTC.
* :func:`expected_volume` integrates the curve over a window, by clock-minute buckets, so that
  ``adv`` trades over a whole session (6.5 h for equities, one UTC day for crypto).
* :func:`step_volume` is what the simulated market trades in one step: the expected volume times
  a noise factor drawn from ``random.Random(f"{seed}:{symbol}:vol:{step}")``.

Quantities are :class:`~decimal.Decimal` throughout.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from functools import cache

from brokers.domain.calendar import NEW_YORK
from orders.domain.enums import AssetClass

ZERO = Decimal(0)
Q8 = Decimal("0.00000001")
MINUTE = dt.timedelta(minutes=1)
MICROSECOND = dt.timedelta(microseconds=1)

EQUITY_OPEN_SECONDS = 9 * 3600 + 30 * 60  # 09:30 New York
SESSION_SECONDS: dict[AssetClass, int] = {AssetClass.EQUITY: 23400, AssetClass.CRYPTO: 86400}

CRYPTO_PEAK_SECONDS = 15 * 3600  # 15:00 UTC
CRYPTO_PEAK = Decimal("1.3")
CRYPTO_SLOPE_PER_HOUR = Decimal("0.05")  # 1.3 at the peak, 0.7 twelve hours away


def _equity_weight(seconds_since_open: Decimal) -> Decimal:
    """``1/2 + 3/2 * u**2`` with ``u`` running from -1 at the open to 1 at the close (mean 1)."""
    session = SESSION_SECONDS[AssetClass.EQUITY]
    if seconds_since_open < 0 or seconds_since_open >= session:
        return ZERO
    u = 2 * seconds_since_open / session - 1
    return (Decimal("0.5") + Decimal("1.5") * u * u).quantize(Q8)


def _crypto_weight(seconds_of_day: Decimal) -> Decimal:
    """``1.3 - 0.05 * hours away from 15:00 UTC`` (around the clock, so at most 12): mean 1."""
    away = abs(seconds_of_day - CRYPTO_PEAK_SECONDS)
    away = min(away, 86400 - away)
    return (CRYPTO_PEAK - CRYPTO_SLOPE_PER_HOUR * away / 3600).quantize(Q8)


def _local(asset_class: AssetClass, at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError("volume needs aware datetimes")
    return at.astimezone(NEW_YORK if asset_class is AssetClass.EQUITY else dt.UTC)


def _weight(asset_class: AssetClass, weekend: bool, seconds_of_day: Decimal) -> Decimal:
    if asset_class is AssetClass.CRYPTO:
        return _crypto_weight(seconds_of_day)
    if weekend:
        return ZERO
    return _equity_weight(seconds_of_day - EQUITY_OPEN_SECONDS)


@cache
def _bucket_weight(asset_class: AssetClass, weekend: bool, minute_of_day: int) -> Decimal:
    """The weight at the midpoint of one local clock minute."""
    return _weight(asset_class, weekend, Decimal(minute_of_day * 60 + 30))


def intraday_weight(asset_class: AssetClass, at: dt.datetime) -> Decimal:
    """Relative volume intensity at ``at`` (0 when the market is shut), averaging 1 over a session."""
    local = _local(asset_class, at)
    seconds = Decimal(local.hour * 3600 + local.minute * 60 + local.second)
    seconds += Decimal(local.microsecond) / 1_000_000
    return _weight(asset_class, local.weekday() >= 5, seconds)


def expected_volume(asset_class: AssetClass, adv: Decimal, start: dt.datetime, end: dt.datetime) -> Decimal:
    """Expected market volume in ``[start, end)``: ``adv`` times the curve's integral over one session.

    The window is cut at clock minutes; each minute counts with the weight at its midpoint, pro
    rata to the part of it inside the window, so adjacent windows add up. 0 for an empty window.
    """
    if adv < 0:
        raise ValueError("adv must not be negative")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("volume needs aware datetimes")
    if start >= end or adv == 0:
        return ZERO
    cursor = start.astimezone(dt.UTC).replace(second=0, microsecond=0)
    weighted = ZERO  # weight x microseconds
    while cursor < end:
        following = cursor + MINUTE
        local = _local(asset_class, cursor)
        weight = _bucket_weight(asset_class, local.weekday() >= 5, local.hour * 60 + local.minute)
        if weight:
            inside = (min(following, end) - max(cursor, start)) // MICROSECOND
            weighted += weight * inside
        cursor = following
    return (adv * weighted / (SESSION_SECONDS[asset_class] * 1_000_000)).quantize(Q8)


def step_volume(
    symbol: str,
    asset_class: AssetClass,
    adv: Decimal,
    at: dt.datetime,
    step_seconds: int,
    *,
    seed: int,
    step: int,
) -> Decimal:
    """Volume the simulated market trades in ``[at, at + step_seconds)``.

    :func:`expected_volume` times a factor in ``[0.5, 1.5]`` (thousandths, ``randint(500, 1500)``
    from ``random.Random(f"{seed}:{symbol}:vol:{step}")``), quantized to 8 places.
    """
    if step_seconds <= 0:
        raise ValueError("step_seconds must be positive")
    expected = expected_volume(asset_class, adv, at, at + dt.timedelta(seconds=step_seconds))
    rng = random.Random(f"{seed}:{symbol}:vol:{step}")
    factor = Decimal(rng.randint(500, 1500)) / 1000
    return (expected * factor).quantize(Q8)
