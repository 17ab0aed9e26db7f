"""Trading sessions of the simulated venues, used for DAY expiry. Plain Python.

Equities trade one session per weekday that closes at 16:00 New York time; an order entered
after the close or on a weekend belongs to the next weekday's session. Crypto trades around the
clock; its "day" is the UTC date. (Exchange holidays come with the exchange calendar of the risk
work; the paper venue trades on them.)
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from orders.domain.enums import AssetClass

NEW_YORK = ZoneInfo("America/New_York")
EQUITY_CLOSE = dt.time(16, 0)


def session_date(now: dt.datetime, asset_class: AssetClass) -> dt.date:
    if now.tzinfo is None:
        raise ValueError("session_date needs an aware datetime")
    if asset_class is AssetClass.CRYPTO:
        return now.astimezone(dt.UTC).date()
    local = now.astimezone(NEW_YORK)
    day = local.date()
    if local.time() >= EQUITY_CLOSE:
        day += dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day
