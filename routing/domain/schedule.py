"""TWAP and VWAP schedules: how a parent order is cut into timed slices, and how much to release.

Plain Python: no Django, no I/O, no clock (``now`` and every time are passed in, aware).

* A plan is a list of :class:`Slice` on a grid: slice ``i`` of ``n`` is due at
  ``start + i * (end - start) / n`` (microseconds rounded down). Every slice is a positive whole
  number of lots and the slices add up to the parent quantity exactly.
* :func:`twap_plan` sizes the slices equally (the odd lots go to the earliest slices), optionally
  perturbed by a seeded random amount; :func:`vwap_plan` sizes them in proportion to the
  expected market volume of each slice's interval (largest remainder).
* :func:`release_quantity` says how much a child order should be released for when a slice comes
  due: what the plan wants done by then, less what is filled or working, with limits on catching
  up and on participation. The final slice releases everything left.
* :func:`scheduled_by` and :func:`progress` compare fills with the plan.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

ZERO = Decimal(0)
HUNDRED = Decimal(100)
PERCENT_QUANTUM = Decimal("0.01")
MAX_RANDOMIZE = Decimal("0.5")


@dataclass(frozen=True, slots=True)
class Slice:
    seq: int  # from 0
    due_at: dt.datetime
    quantity: Decimal


@dataclass(frozen=True)
class Progress:
    scheduled: Decimal  # planned cumulative quantity due by now
    filled: Decimal
    total: Decimal
    percent_filled: Decimal
    percent_scheduled: Decimal
    ahead: Decimal  # filled - scheduled: negative when behind


def largest_remainder(units: int, weights: Sequence[Decimal]) -> list[int]:
    """``units`` whole units split in proportion to ``weights``; the sum is exactly ``units``.

    Each share is rounded down, then the units left over go one each to the largest fractional
    parts, ties to the earlier weight. The arithmetic is exact (rationals), whatever the digits.
    """
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    total = sum((Fraction(w) for w in weights), Fraction(0))
    if total == 0:
        raise ValueError("weights must not all be zero")
    exact = [units * Fraction(w) / total for w in weights]
    shares = [int(e) for e in exact]  # non-negative, so int() rounds down
    left = units - sum(shares)
    by_fraction = sorted(range(len(exact)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_fraction[:left]:
        shares[i] += 1
    return shares


def slice_count(
    start: dt.datetime, end: dt.datetime, *, interval_seconds: int = 60, max_slices: int = 390
) -> int:
    """One slice per started ``interval_seconds`` of the window, at least 1, at most ``max_slices``."""
    if interval_seconds <= 0 or max_slices < 1:
        raise ValueError("interval_seconds and max_slices must be positive")
    if end < start:
        raise ValueError("end is before start")
    started = -((start - end) // dt.timedelta(seconds=interval_seconds))  # ceiling division
    return max(1, min(max_slices, started))


def _validate(quantity: Decimal, start: dt.datetime, end: dt.datetime, slices: int, lot: Decimal) -> int:
    """The number of lots in ``quantity``, after checking the plan's arguments."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("schedules need aware datetimes")
    if end < start:
        raise ValueError("end is before start")
    if slices < 1:
        raise ValueError("slices must be at least 1")
    if lot <= 0:
        raise ValueError("lot must be positive")
    if quantity <= 0 or quantity % lot != 0:
        raise ValueError(f"quantity {quantity} is not a positive multiple of the lot {lot}")
    return int(quantity // lot)


def _grid(start: dt.datetime, end: dt.datetime, slices: int) -> list[dt.datetime]:
    """The ``slices + 1`` boundaries of the slice grid, ``start`` first and ``end`` last."""
    span = end - start
    return [start + span * i // slices for i in range(slices)] + [end]


def _randomized(lots: list[int], randomize: Decimal, seed: int) -> list[int]:
    """Each slice moved by at most ``randomize`` of its size in whole lots; the total is unchanged.

    Every slice draws a move in ``[-b, b]`` lots (``b`` = its size times ``randomize``, rounded
    down), then the excess is worked off slice by slice in a shuffled order within the same bounds.
    With ``randomize <= 0.5`` a slice keeps at least half its size, so none becomes empty.
    """
    rng = random.Random(seed)
    bounds = [int(n * randomize) for n in lots]  # non-negative, so int() rounds down
    moves = [rng.randint(-b, b) for b in bounds]
    excess = sum(moves)
    order = list(range(len(lots)))
    rng.shuffle(order)
    for i in order:
        if excess == 0:
            break
        if excess > 0:
            back = min(excess, moves[i] + bounds[i])
            moves[i] -= back
            excess -= back
        else:
            more = min(-excess, bounds[i] - moves[i])
            moves[i] += more
            excess += more
    return [n + m for n, m in zip(lots, moves, strict=True)]


def twap_plan(
    *,
    quantity: Decimal,
    start: dt.datetime,
    end: dt.datetime,
    slices: int,
    lot: Decimal,
    randomize: Decimal = ZERO,
    seed: int = 0,
) -> list[Slice]:
    """Equal slices of whole lots on the grid; the odd lots go one each to the earliest slices.

    With fewer lots than ``slices``, one lot per slice spread over the window. ``randomize`` (0 to
    0.5) moves each size by up to that share of it, deterministically from ``random.Random(seed)``,
    keeping whole lots and the exact total; due times stay on the grid.
    """
    lots = _validate(quantity, start, end, slices, lot)
    if not ZERO <= randomize <= MAX_RANDOMIZE:
        raise ValueError(f"randomize must be between 0 and {MAX_RANDOMIZE}")
    count = min(slices, lots)
    base, odd = divmod(lots, count)
    sizes = [base + (1 if i < odd else 0) for i in range(count)]
    if randomize:
        sizes = _randomized(sizes, randomize, seed)
    due = _grid(start, end, count)
    return [Slice(i, due[i], n * lot) for i, n in enumerate(sizes)]


def vwap_plan(
    *,
    quantity: Decimal,
    start: dt.datetime,
    end: dt.datetime,
    slices: int,
    lot: Decimal,
    volume: Callable[[dt.datetime, dt.datetime], Decimal],
) -> list[Slice]:
    """Slices on the grid in proportion to ``volume(slice_start, slice_end)``, in whole lots.

    Largest remainder keeps the total exact; slices that get nothing are left out and the rest
    renumbered from 0 (each keeps its own due time). No expected volume at all: :func:`twap_plan`.
    """
    lots = _validate(quantity, start, end, slices, lot)
    bounds = _grid(start, end, slices)
    volumes = [volume(bounds[i], bounds[i + 1]) for i in range(slices)]
    if any(v < 0 for v in volumes):
        raise ValueError("expected volume must not be negative")
    if sum(volumes, ZERO) == 0:
        return twap_plan(quantity=quantity, start=start, end=end, slices=slices, lot=lot)
    shares = largest_remainder(lots, volumes)
    kept = [(bounds[i], n) for i, n in enumerate(shares) if n > 0]
    return [Slice(seq, due_at, n * lot) for seq, (due_at, n) in enumerate(kept)]


def release_quantity(
    *,
    plan: Sequence[Slice],
    upto_seq: int,
    filled: Decimal,
    working: Decimal,
    total: Decimal,
    lot: Decimal,
    catch_up_limit: Decimal = Decimal(3),
    participation_cap: Decimal | None = None,
) -> Decimal:
    """How much to release when slice ``upto_seq`` comes due (on time or late).

    Wanted = what the plan has due up to and including the slice (``total`` on the final slice)
    minus ``filled`` and ``working``, so the unfilled rest of earlier slices rolls in. Except on
    the final slice it is capped at ``catch_up_limit`` times the slice's own quantity; then at
    ``participation_cap`` when given. Never more than is left, never negative, whole lots (down).
    """
    if lot <= 0:
        raise ValueError("lot must be positive")
    current = next((s for s in plan if s.seq == upto_seq), None)
    if current is None:
        raise ValueError(f"the plan has no slice {upto_seq}")
    final = upto_seq == max(s.seq for s in plan)
    target = total if final else sum((s.quantity for s in plan if s.seq <= upto_seq), ZERO)
    left = total - filled - working
    want = target - filled - working
    if not final:
        want = min(want, catch_up_limit * current.quantity)
    if participation_cap is not None:
        want = min(want, participation_cap)
    want = max(min(want, left), ZERO)
    return (want // lot) * lot


def scheduled_by(plan: Sequence[Slice], now: dt.datetime) -> Decimal:
    """The planned cumulative quantity due by ``now`` (slices with ``due_at <= now``)."""
    return sum((s.quantity for s in plan if s.due_at <= now), ZERO)


def progress(plan: Sequence[Slice], now: dt.datetime, filled: Decimal, total: Decimal) -> Progress:
    """Fills against the plan at ``now``; percentages of ``total`` to 0.01 (half up)."""
    if total <= 0:
        raise ValueError("total must be positive")
    scheduled = scheduled_by(plan, now)
    return Progress(
        scheduled=scheduled,
        filled=filled,
        total=total,
        percent_filled=(filled * HUNDRED / total).quantize(PERCENT_QUANTUM, rounding=ROUND_HALF_UP),
        percent_scheduled=(scheduled * HUNDRED / total).quantize(PERCENT_QUANTUM, rounding=ROUND_HALF_UP),
        ahead=filled - scheduled,
    )
