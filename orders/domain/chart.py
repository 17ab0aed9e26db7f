"""The dashboard's equity line chart, as SVG coordinates. Plain Python: no Django, no I/O, no clock.

Everything is Decimal: the caller gives the points as (x, value) with x in any unit that grows
with time (e.g. seconds since the day began) and the day's starting equity as the baseline; the
result is the polyline in a ``width`` x ``height`` box (y grows downwards, as in SVG), the
baseline's y, the trend against the baseline and the figures the chart's text alternative needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
HUNDRED = Decimal(100)
COORD = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class LineChart:
    width: int
    height: int
    points: tuple[tuple[Decimal, Decimal], ...]  # SVG (x, y), rounded to 0.01
    baseline_y: Decimal
    trend: str  # "up" (last above the baseline), "down" (below) or "flat"
    first: Decimal
    last: Decimal
    low: Decimal
    high: Decimal

    @property
    def polyline(self) -> str:
        """The ``points`` attribute of an SVG <polyline>."""
        return " ".join(f"{x},{y}" for x, y in self.points)

    @property
    def area(self) -> str:
        """The ``points`` of a <polygon> between the line and the baseline (for a faint fill)."""
        first_x, last_x = self.points[0][0], self.points[-1][0]
        return f"{first_x},{self.baseline_y} {self.polyline} {last_x},{self.baseline_y}"


def percent_change(change: Decimal, base: Decimal) -> Decimal | None:
    """``change`` as a percentage of ``base``; None when ``base`` is not positive."""
    if base <= 0:
        return None
    return change * HUNDRED / base


def line_chart(
    series: Sequence[tuple[Decimal, Decimal]],
    *,
    baseline: Decimal,
    width: int = 600,
    height: int = 180,
    pad: int = 8,
) -> LineChart:
    """Scale ``series`` (at least one (x, value), x ascending) into the box, keeping ``baseline``
    in view. One point is drawn as a level line across the box; a flat series sits mid-height."""
    if not series:
        raise ValueError("A chart needs at least one point.")
    for x, value in series:
        if not isinstance(x, Decimal) or not isinstance(value, Decimal):
            raise TypeError("Chart points must be Decimals.")
    if not isinstance(baseline, Decimal):
        raise TypeError("The baseline must be a Decimal.")
    if len(series) == 1:
        series = [(ZERO, series[0][1]), (Decimal(1), series[0][1])]
    values = [v for _, v in series]
    low, high = min(values), max(values)
    lo, hi = min(low, baseline), max(high, baseline)
    x0, x1 = series[0][0], series[-1][0]
    inner_w, inner_h = Decimal(width - 2 * pad), Decimal(height - 2 * pad)
    mid = Decimal(height) / 2

    def sx(x: Decimal) -> Decimal:
        if x1 == x0:
            return Decimal(pad)
        return (Decimal(pad) + (x - x0) * inner_w / (x1 - x0)).quantize(COORD)

    def sy(value: Decimal) -> Decimal:
        if hi == lo:
            return mid.quantize(COORD)
        return (Decimal(pad) + (hi - value) * inner_h / (hi - lo)).quantize(COORD)

    last = values[-1]
    trend = "up" if last > baseline else "down" if last < baseline else "flat"
    return LineChart(
        width=width,
        height=height,
        points=tuple((sx(x), sy(v)) for x, v in series),
        baseline_y=sy(baseline),
        trend=trend,
        first=values[0],
        last=last,
        low=low,
        high=high,
    )
