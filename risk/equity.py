"""Equity samples for the dashboard's chart of the day (``risk.models.EquitySample``).

The live risk monitor calls ``equity_sample_record`` on every run, under the user's RiskProfile
lock; this keeps at most one sample per user every ``EQUITY_SAMPLE_SECONDS`` (the first of a
day always, so every day's chart starts at its first run) and prunes samples older than
``EQUITY_SAMPLE_RETENTION`` whenever a day's first sample is written.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings

from risk.models import EquitySample

EQUITY_SAMPLE_RETENTION = dt.timedelta(days=7)


def day_start(now: dt.datetime) -> dt.datetime:
    """Midnight UTC of ``now``'s day: the day the risk profile's equity marks use."""
    return dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(0), tzinfo=dt.UTC)


def equity_sample_record(
    *, user, equity: Decimal, daily_pnl: Decimal, now: dt.datetime
) -> EquitySample | None:
    """Store a sample unless the user's last one is younger than ``EQUITY_SAMPLE_SECONDS`` (and of
    the same day). Returns the new sample, or None when throttled."""
    last_at = EquitySample.objects.filter(user=user).order_by("-at").values_list("at", flat=True).first()
    first_of_day = last_at is None or last_at < day_start(now)
    if not first_of_day and now - last_at < dt.timedelta(seconds=settings.EQUITY_SAMPLE_SECONDS):
        return None
    if first_of_day:
        EquitySample.objects.filter(user=user, at__lt=now - EQUITY_SAMPLE_RETENTION).delete()
    return EquitySample.objects.create(user=user, at=now, equity=equity, daily_pnl=daily_pnl)


def equity_samples_today(*, user, now: dt.datetime) -> list[EquitySample]:
    """The user's samples of ``now``'s day (UTC), oldest first."""
    return list(EquitySample.objects.filter(user=user, at__gte=day_start(now), at__lte=now).order_by("at"))
