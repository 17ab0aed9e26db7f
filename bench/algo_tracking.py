"""TWAP/VWAP tracking error in the paper simulator, over many windows, against a naive order.

    .venv/bin/python bench/algo_tracking.py [--runs 50] [--symbols AAPL,SOL/USD] [--minutes 60]
        [--step-seconds 10] [--slice-seconds 60] [--seed 20261125]
        [--database-url sqlite | postgres://postgres@127.0.0.1:5432/trademaster_bench_algo]

Each run is one window with its own market: ``MARKET_SEED`` = seed + run, every instrument back
at its starting mid and step 0, a start time of day cycling through 09:30 ... 15:00 New York (so
the window lies in the NYSE session and VWAP meets every part of the volume curve) on a future
weekday (``start_time`` may not be in the past). A fresh user places, for every symbol, a TWAP
and a VWAP buy over the window (``order_place`` with ``AlgoParams``); the paper market has no
price impact, so the parents share the window without affecting each other. Then, every
``--step-seconds`` of simulated time ``t``: ``market_tick(now=t)`` (one seeded random-walk step
of every mid; resting paper orders matched), ``algo_release_due(now=t)``, and the mid after the
tick and the volume traded in ``[t, t + step)`` (``brokers.domain.volume.step_volume``) are
recorded. Market TWAP = mean of the mids; market VWAP = sum(mid * volume) / sum(volume).

Errors are in bps of the benchmark, signed so that + means the buy paid more:

* fill: the parent's ``average_fill_price`` (its children aggregated) against the benchmark. The
  MARKET IOC children pay the venue's half spread (paper-equities-b 3 bps, paper-crypto 4 bps,
  rounded up to the tick) on top of the mid; the commission is booked apart and not included.
* schedule: the quantity-weighted mid at which the slices traded (spread excluded) against the
  benchmark: what the schedule itself gets right or wrong.
* naive: the whole quantity at once at the first step, walking the same venue's displayed book
  (fill), or at the first mid (schedule).

``K`` is the schedule tolerance of tests/integration/routing/test_algo_tracking.py: the walk's
sd per step. "market VWAP - TWAP" is how far apart the two benchmarks are in the same window.

Each run is one transaction, rolled back at the end, so every run starts from the migrated
database. SQLite in a temporary directory by default; a PostgreSQL URL (its database name must
contain "bench": it is dropped and created) runs the same on PostgreSQL. A parent that ends with
a status other than FILLED although fully filled is listed (a bug); one not fully filled is
left out of the figures and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path

from benchdb import drop_database, fresh_database

ROOT = Path(__file__).resolve().parent.parent
BPS = D(10000)
Q2 = D("0.01")
KINDS = ("TWAP", "VWAP")
QUANTITY = {"AAPL": D(180), "SOL/USD": D(90)}  # whole lots per slice; within each account's cash
START_TIMES = [dt.time(9, 30), *(dt.time(h, m) for h in range(10, 15) for m in (0, 30)), dt.time(15)]


def pct(values: list[D], p: int) -> D:
    """Nearest rank: the value at rank ceil(p * n / 100) of the sorted values."""
    ranked = sorted(values)
    return ranked[max(0, -(-p * len(ranked) // 100) - 1)]


def bps(value: D, price: D) -> D:
    return (value / price * BPS).quantize(Q2)


@dataclass
class Series:
    values: list[D] = field(default_factory=list)

    def row(self) -> str:
        signed, absolute = self.values, [abs(v) for v in self.values]
        mean = (sum(signed, D(0)) / len(signed)).quantize(Q2)
        abs_mean = (sum(absolute, D(0)) / len(absolute)).quantize(Q2)
        left = [mean, pct(signed, 50), pct(signed, 95), max(signed), min(signed)]
        right = [abs_mean, pct(absolute, 50), pct(absolute, 95), max(absolute)]
        return " ".join(f"{c:>7}" for c in left) + " | " + " ".join(f"{c:>7}" for c in right)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--symbols", default="AAPL,SOL/USD")
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--step-seconds", type=int, default=10)
    parser.add_argument("--slice-seconds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=20261125, help="run r uses MARKET_SEED = seed + r")
    parser.add_argument("--database-url", default="sqlite", help="'sqlite' (a temp dir) or postgres://...")
    args = parser.parse_args()
    args.symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    unknown = [s for s in args.symbols if s not in QUANTITY]
    if unknown:
        raise SystemExit(f"--symbols: only {', '.join(QUANTITY)} are sized for this bench, not {unknown}")
    window = args.minutes * 60
    if window % args.slice_seconds or args.slice_seconds % args.step_seconds:
        raise SystemExit("--slice-seconds must divide the window and be a multiple of --step-seconds")

    var_dir = tempfile.mkdtemp(prefix="tm-bench-algo-")
    os.environ.update(DJANGO_SETTINGS_MODULE="trademaster.settings", TRADEMASTER_VAR_DIR=var_dir)
    os.environ.pop("TRADEMASTER_CLOCK_FILE", None)
    server = name = None
    if args.database_url == "sqlite":
        os.environ.pop("DATABASE_URL", None)
        os.environ["SQLITE_PATH"] = str(Path(var_dir) / "bench.sqlite3")
        args.database_label = "SQLite in a temp dir (removed at the end)"
    elif args.database_url.startswith("postgres"):
        server, name = fresh_database(args.database_url)
        os.environ["DATABASE_URL"] = args.database_url
        args.database_label = f"PostgreSQL ({name})"
    else:
        raise SystemExit(f"--database-url must be sqlite or postgres://..., not {args.database_url!r}")
    sys.path.insert(0, str(ROOT))
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if server is not None and name is not None:
            drop_database(server, name)
        shutil.rmtree(var_dir, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from brokers.adapters.paper import instrument_spec, venue_spec
    from brokers.domain.calendar import NEW_YORK
    from brokers.domain.market import build_book
    from brokers.domain.volume import step_volume
    from brokers.models import Instrument
    from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
    from orders.domain.validation import OrderRequest
    from orders.models import Order
    from orders.services import Actor, market_tick, order_place
    from routing.algos import AlgoParams, algo_release_due
    from routing.models import AlgoSlice

    settings.ALGO_SLICE_SECONDS = args.slice_seconds
    step = dt.timedelta(seconds=args.step_seconds)
    window = args.minutes * 60
    steps = window // args.step_seconds
    start_mids = dict(Instrument.objects.values_list("symbol", "mid"))
    first_day = timezone.now().astimezone(NEW_YORK).date() + dt.timedelta(days=7)

    def weekday(n: int) -> dt.date:
        day = first_day
        while n or day.weekday() >= 5:
            if day.weekday() < 5:
                n -= 1
            day += dt.timedelta(days=1)
        return day

    def schedule_k(inst: Instrument) -> D:
        v = D(inst.volatility_ticks)
        return bps(inst.tick_size * (v * (v + 1) / 3).sqrt(), start_mids[inst.symbol])

    def naive_fill(mid: D, inst: Instrument, venue, quantity: D) -> D:
        """A MARKET buy of everything at once: the displayed asks, best first (the rest at the last)."""
        left, cost, price = quantity, D(0), mid
        for level in build_book(mid, instrument_spec(inst), venue_spec(venue)).asks:
            price, take = level.price, min(left, level.size)
            cost, left = cost + take * price, left - take
            if not left:
                break
        return (cost + left * price) / quantity

    series: dict[tuple[str, str, str], Series] = {}
    within_k: dict[tuple[str, str, str], int] = {}
    failures: list[str] = []
    anomalies: list[str] = []

    class Rollback(Exception):
        pass

    def one_run(r: int) -> None:
        settings.MARKET_SEED = args.seed + r
        start = dt.datetime.combine(weekday(r), START_TIMES[r % len(START_TIMES)], tzinfo=NEW_YORK)
        for symbol, mid in start_mids.items():  # as migrated (the rollback of each run restores them too)
            Instrument.objects.filter(symbol=symbol).update(mid=mid, step=0)
        user = get_user_model().objects.create_user(f"algo-bench-{r}", password=None)
        parents: dict[tuple[str, str], Order] = {}
        for symbol in args.symbols:
            for kind in KINDS:
                request = OrderRequest(
                    symbol=symbol,
                    side=Side.BUY,
                    order_type=OrderType.MARKET,
                    quantity=QUANTITY[symbol],
                    time_in_force=TimeInForce.DAY,
                )
                params = AlgoParams(kind=kind, start_time=start, duration_seconds=window)
                parents[symbol, kind] = order_place(
                    user=user, request=request, actor=Actor.for_user(user), algo=params
                ).order
        instruments = {i.symbol: i for i in Instrument.objects.filter(symbol__in=args.symbols)}
        mids: dict[str, list[D]] = {s: [] for s in args.symbols}
        volumes: dict[str, list[D]] = {s: [] for s in args.symbols}
        for k in range(steps):
            now = start + k * step
            market_tick(now=now)
            algo_release_due(now=now)
            for inst in Instrument.objects.filter(symbol__in=args.symbols):
                mids[inst.symbol].append(inst.mid)
                volumes[inst.symbol].append(
                    step_volume(
                        inst.symbol,
                        AssetClass(inst.asset_class),
                        inst.average_daily_volume,
                        now,
                        args.step_seconds,
                        seed=settings.MARKET_SEED,
                        step=inst.step,
                    )
                )
        benchmarks = {}
        for symbol in args.symbols:
            m, v = mids[symbol], volumes[symbol]
            twap = sum(m, D(0)) / len(m)
            vwap = sum((a * b for a, b in zip(m, v, strict=True)), D(0)) / sum(v, D(0))
            benchmarks[symbol, "TWAP"], benchmarks[symbol, "VWAP"] = twap, vwap
            series.setdefault((symbol, "market", "VWAP - TWAP"), Series()).values.append(
                bps(vwap - twap, twap)
            )
        for (symbol, kind), parent in parents.items():
            parent.refresh_from_db()
            quantity = QUANTITY[symbol]
            if parent.filled_quantity != quantity:
                failures.append(
                    f"run {r} {symbol} {kind}: {parent.status} {parent.filled_quantity}/{quantity}"
                )
                continue
            if parent.status != "FILLED":
                anomalies.append(f"run {r} {symbol} {kind}: {parent.status} although {quantity} filled")
            m, benchmark = mids[symbol], benchmarks[symbol, kind]
            slices = list(
                AlgoSlice.objects.filter(algo__parent=parent, child__isnull=False)
                .select_related("child__broker__paper_venue")
                .order_by("seq")
            )
            traded = sum((s.child.filled_quantity * m[(s.released_at - start) // step] for s in slices), D(0))
            venue = slices[0].child.broker.paper_venue  # the naive order goes where the algo started
            figures = {
                "algo fill": bps(parent.average_fill_price - benchmark, benchmark),
                "algo schedule": bps(traded / quantity - benchmark, benchmark),
                "naive fill": bps(
                    naive_fill(m[0], instruments[symbol], venue, quantity) - benchmark, benchmark
                ),
                "naive schedule": bps(m[0] - benchmark, benchmark),
            }
            k_bps = schedule_k(instruments[symbol])
            for what, value in figures.items():
                key = (symbol, kind, what)
                series.setdefault(key, Series()).values.append(value)
                if what.endswith("schedule") and abs(value) <= k_bps:
                    within_k[key] = within_k.get(key, 0) + 1

    started = time.perf_counter_ns()
    for r in range(args.runs):
        try:
            with transaction.atomic():
                one_run(r)
                raise Rollback
        except Rollback:
            pass
        so_far = D(time.perf_counter_ns() - started) / D(10**9)
        print(f"run {r + 1}/{args.runs} done, {so_far:.0f} s", file=sys.stderr, flush=True)
    elapsed = D(time.perf_counter_ns() - started) / D(10**9)

    print(
        f"TWAP/VWAP tracking in the paper simulator: {args.runs} runs x {', '.join(args.symbols)}, "
        f"{args.minutes}-min windows starting 09:30-15:00 New York, {args.step_seconds} s steps, "
        f"{window // args.slice_seconds} slices of {args.slice_seconds} s; MARKET_SEED {args.seed}+run; "
        f"{args.database_label}"
    )
    print("error in bps of the market benchmark (+ = the buy paid more); fill includes the half spread")
    header = "signed: mean     p50     p95     max     min |  abs: mean     p50     p95     max"
    print(f"  {'':34} {header}")
    for symbol in args.symbols:
        inst = Instrument.objects.get(symbol=symbol)
        for kind in KINDS:
            for what in ("algo fill", "algo schedule", "naive fill", "naive schedule"):
                s = series.get((symbol, kind, what))
                if s is not None:
                    label = f"{symbol} {kind} {what}"
                    print(f"  {label:34} {s.row()}")
        print(f"  {symbol + ' market VWAP - TWAP':34} {series[symbol, 'market', 'VWAP - TWAP'].row()}")
        k_bps = schedule_k(inst)
        counts = ", ".join(
            f"{kind} algo {within_k.get((symbol, kind, 'algo schedule'), 0)}/{args.runs} "
            f"naive {within_k.get((symbol, kind, 'naive schedule'), 0)}/{args.runs}"
            for kind in KINDS
        )
        print(f"  {symbol}: |schedule error| <= K = {k_bps} bps (the test's tolerance): {counts}")
    windows = args.runs
    print(
        f"run time: {elapsed:.1f} s for {windows} windows ({elapsed / windows:.1f} s each, "
        f"{steps} ticks and {len(args.symbols) * 2 * (window // args.slice_seconds)} child orders per window)"
    )
    if anomalies:
        print(f"parents whose status is not FILLED although fully filled: {len(anomalies)}")
        print("  " + "\n  ".join(anomalies))
    if failures:
        print("NOT FILLED (left out of the figures):\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
