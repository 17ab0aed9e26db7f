"""How often re-marked positions are announced on the live stream. Plain Python.

The market re-marks positions on every tick; announcing each mark would flood the outbox. A
user's new marks are announced at most once per interval, and never lost: marks that arrive
inside the interval wait and go out with the first tick after it (a trailing edge), even when
that tick moved none of the user's prices.
"""

from __future__ import annotations

from decimal import Decimal


class MarkThrottle:
    def __init__(self, interval_seconds: Decimal) -> None:
        self.interval = interval_seconds
        self.last: dict[int, Decimal] = {}
        self.pending: dict[int, set[str]] = {}

    def due(self, now: Decimal, touched: dict[int, set[str]]) -> dict[int, set[str]]:
        """Take this tick's re-marked symbols per user; return those to announce now (per user)."""
        for user_id, symbols in touched.items():
            self.pending.setdefault(user_id, set()).update(symbols)
        ready = {
            user_id: symbols
            for user_id, symbols in self.pending.items()
            if user_id not in self.last or now - self.last[user_id] >= self.interval
        }
        for user_id in ready:
            del self.pending[user_id]
            self.last[user_id] = now
        return ready
