"""The service's idea of now for scheduled work (algo slices), which tests and replays can set.

Normally the wall clock. When ``TRADEMASTER_CLOCK_FILE`` names a file holding an ISO-8601
timestamp, that timestamp is now, for every process that reads the same file: a test moves time
forward by rewriting it, so a real Celery worker releases slices exactly when the test says,
with no sleeping. An empty or missing file means the wall clock.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.utils import timezone


def clock_now() -> dt.datetime:
    path = settings.TRADEMASTER_CLOCK_FILE
    if path:
        try:
            text = Path(path).read_text().strip()
        except FileNotFoundError:
            text = ""
        if text:
            return dt.datetime.fromisoformat(text)
    return timezone.now()


def clock_set(path: str | Path, at: dt.datetime) -> None:
    """Write ``at`` to a clock file atomically (readers never see half a timestamp)."""
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(at.isoformat())
    tmp.replace(target)
