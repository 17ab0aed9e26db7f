"""Route determination time: 4 brokers x 3 accounts, live quotes, on SQLite and PostgreSQL.

    .venv/bin/python bench/route_determination.py [--db sqlite|postgres|both] [--routes 5000]
        [--step 20] [--warmup 300] [--history 600] [--profile auto|always|never]
        [--database-url postgres://postgres@127.0.0.1:5432/tm_bench_route]

One user with 12 paper accounts: four equity venues (paper-equities-a and -b from the seeded
market, plus -c and -d created here with other spreads, depth and fees) x three accounts each,
with different cash, latencies, long positions and a last hour of sent and rejected orders
(the reject rates routing weighs). The market is live: every ``--step`` routes the simulator
moves one step (``brokers.services.market_advance``) and the accounts' buying power changes (as
fills elsewhere would change it), so the quotes, the winner and the load balancing move.

Varied orders (AAPL/MSFT/NVDA, buy or sell, 1..2,000 shares, MARKET or LIMIT, DAY/GTC/IOC/FOK),
each timed three ways, interleaved (each way runs first, second and last in turn), with
``time.perf_counter_ns`` (wall) and ``time.thread_time_ns`` (this thread's CPU: on a shared
machine the wall-time tail includes the time the process waited for a core):

(a) ``routing.services.route_decide``: what order placement pays; the reads of the accounts,
    positions, reject rates, instrument statistics and one live quote per account, then the
    scoring, the impact estimate and the split;
(b) the decision alone on the live quotes already in memory: the venues of the same market step
    (``routing.services.route_venues``, built once per step and symbol, untimed), then
    ``routing.domain.scoring.route`` and the impact / split (``routing.services._split`` over
    ``routing.domain.impact``; ``_short_of_power`` when no account can pay) as ``route_decide``
    applies them. This is the figure the 0.5 ms goal is about;
(c) a sketch of the fix the profile points to (bench-local, not the service): the same venues
    read with four queries (the accounts with their venue terms, positions, reject rates, the
    instrument once) and one book per venue instead of two reads and a book per account, then (b).

Every (b) and (c) decision must equal (a)'s (candidates and scores, impact, split): the bench
exits 1 otherwise, so the in-memory figures are those of the decision the service makes.
It also counts the SQL statements of ``route_decide`` (``CaptureQueriesContext``) and, when (a)
misses the seed's 10 ms or (b) the 0.5 ms goal at p99 (or with ``--profile always``), profiles
each with cProfile. Percentiles are nearest-rank. ``--db both`` (the default) runs SQLite, then
PostgreSQL, one after the other, each in its own process. The SQLite file is a throwaway one;
the PostgreSQL database (its name must contain "bench") is dropped and created, and dropped at
the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal as D
from pathlib import Path

from benchdb import drop_database, fresh_database

ROOT = Path(__file__).resolve().parent.parent
GOAL_NS = 500_000  # the goal for route determination: p99 under 0.5 ms
SEED_NS = 10_000_000  # the seed's bound: under 10 ms
SYMBOLS = ("AAPL", "MSFT", "NVDA")
CENT = D("0.01")
SHORT_OF_POWER = "no account has the buying power; the pre-trade check decides"

# The two venues this bench adds to paper-equities-a (2 bps, 5 levels, 0.005/share, min 1.00)
# and paper-equities-b (6 bps, 3 levels x 0.6, no commission):
# name, spread bps, depth levels, size factor, commission bps, per unit, minimum
EXTRA_VENUES = (
    ("paper-equities-c", D("4"), 4, D("1.5"), D("0.5"), D("0"), D("0.50")),
    ("paper-equities-d", D("1"), 2, D("0.3"), D("0"), D("0.0035"), D("0.35")),
)
VENUE_LATENCY_MS = {
    "paper-equities-a": 6,
    "paper-equities-b": 15,
    "paper-equities-c": 9,
    "paper-equities-d": 28,
}
ACCOUNT_CASH = (D("150000"), D("400000"), D("1200000"))  # the three accounts at each venue


def pct(samples: list[int], p: int) -> int:
    """Nearest rank: the value at rank ceil(p * N / 100) of the sorted samples."""
    ranked = sorted(samples)
    return ranked[max(0, -(-p * len(ranked) // 100) - 1)]


def ms(ns: int) -> str:
    return f"{D(ns) / D(1_000_000):.3f}"


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)  # minus idle and iowait


def process_ticks(pid: int) -> int:
    """utime + stime of a process, in ticks (0 if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--routes", type=int, default=5000, help="measured routes (per database)")
    parser.add_argument("--step", type=int, default=20, help="routes per market step")
    parser.add_argument("--warmup", type=int, default=300, help="routes run first and not measured")
    parser.add_argument("--history", type=int, default=600, help="orders sent in the last hour")
    parser.add_argument("--queries-sample", type=int, default=60, help="routes whose SQL is counted")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--profile-routes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tm_bench_route")
    args = parser.parse_args()
    if args.routes < 1 or args.step < 1:
        parser.error("--routes and --step must be positive")

    if args.db == "both":  # one process per database: Django's settings are per process
        status = 0
        for db in ("sqlite", "postgres"):
            argv = [sys.executable, __file__, "--db", db]
            for option, value in vars(args).items():
                if option != "db":
                    argv += [f"--{option.replace('_', '-')}", str(value)]
            status = max(status, subprocess.run(argv, check=False).returncode)
            print(flush=True)
        return status

    var_dir = tempfile.mkdtemp(prefix="tm-bench-route-")
    os.environ.update(DJANGO_SETTINGS_MODULE="trademaster.settings", TRADEMASTER_VAR_DIR=var_dir)
    server = name = None
    if args.db == "postgres":
        server, name = fresh_database(args.database_url)
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["SQLITE_PATH"] = str(Path(var_dir) / "bench.sqlite3")
    sys.path.insert(0, str(ROOT))
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if server is not None:
            drop_database(server, name)
        shutil.rmtree(var_dir, ignore_errors=True)


@dataclass(frozen=True)
class Spec:
    """One order of the run, before the market it meets is known (the limit is set off the mid)."""

    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: D
    limit_offset_bps: int  # LIMIT: price = mid +/- this many bps (negative: away from the market)


def order_specs(rng: random.Random, n: int) -> list[Spec]:
    specs = []
    for _ in range(n):
        low, high = rng.choice(((1, 99), (100, 499), (500, 2000)))  # small, medium, large
        specs.append(
            Spec(
                symbol=rng.choice(SYMBOLS),
                side=rng.choice(("BUY", "SELL")),
                order_type=rng.choice(("MARKET", "LIMIT")),
                time_in_force=rng.choice(("DAY", "DAY", "DAY", "DAY", "GTC", "GTC", "IOC", "IOC", "FOK")),
                quantity=D(rng.randint(low, high)),
                limit_offset_bps=rng.randint(-20, 20),
            )
        )
    return specs


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    import datetime as dt

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from brokers.adapters.paper import instrument_spec, venue_spec
    from brokers.domain.adapter import Quote
    from brokers.domain.market import build_book
    from brokers.models import BrokerAccount, BrokerName, Instrument, PaperBalance, PaperVenue
    from brokers.services import adapter_for, adapters_reset, market_advance
    from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
    from orders.models import Order, Position
    from routing.domain.scoring import OrderToRoute, route
    from routing.services import (
        _reject_rates,
        _short_of_power,
        _split,
        _venue,
        market_stats,
        route_decide,
        route_venues,
        weights,
    )
    from trademaster.errors import TradeMasterError

    rng = random.Random(args.seed)

    # --- the user: 4 equity venues x 3 accounts ------------------------------------------------
    for name, spread, depth, size, bps, per_unit, minimum in EXTRA_VENUES:
        PaperVenue.objects.update_or_create(
            name=name,
            defaults={
                "asset_classes": ["EQUITY"],
                "spread_bps": spread,
                "depth_levels": depth,
                "size_factor": size,
                "commission_bps": bps,
                "commission_per_unit": per_unit,
                "min_commission": minimum,
            },
        )
    user = get_user_model().objects.create_user("route-bench", password=None)
    BrokerAccount.objects.filter(user=user).exclude(paper_venue__name__in=VENUE_LATENCY_MS).delete()
    accounts = []
    for v, venue in enumerate(PaperVenue.objects.filter(name__in=VENUE_LATENCY_MS).order_by("name")):
        for k, base in enumerate(ACCOUNT_CASH):
            cash = base + D(25000) * v
            existing = BrokerAccount.objects.filter(user=user, paper_venue=venue).order_by("id")
            if k < existing.count():  # the default PAPER-EQ-A / PAPER-EQ-B account is the first
                account = existing[k]
            else:
                account = BrokerAccount.objects.create(
                    user=user,
                    broker_name=BrokerName.PAPER,
                    account_id=f"BENCH-{venue.name[-1].upper()}{k + 1}",
                    label=f"{venue.name} #{k + 1}",
                    paper_venue=venue,
                    sandbox_mode=True,
                )
                PaperBalance.objects.create(account=account, cash=cash)
            PaperBalance.objects.filter(account=account).update(cash=cash)
            BrokerAccount.objects.filter(pk=account.pk).update(
                buying_power=cash, cash=cash, total_value=cash, latency_ms=VENUE_LATENCY_MS[venue.name]
            )
            account.refresh_from_db()
            accounts.append(account)
    adapters_reset()
    if len(accounts) != 12 or BrokerAccount.objects.filter(user=user).count() != 12:
        raise SystemExit(f"expected 12 accounts, got {BrokerAccount.objects.filter(user=user).count()}")
    base_cash = {a.pk: a.cash for a in accounts}

    # long positions (sells up to them need no buying power) on about half the (account, symbol) pairs
    Position.objects.bulk_create(
        Position(
            user=user,
            broker=a,
            symbol=s,
            asset_class="EQUITY",
            quantity=D(rng.randint(1, 15) * 100),
            average_cost=D(100),
        )
        for a in accounts
        for s in SYMBOLS
        if rng.randint(0, 1)
    )
    # the last hour of orders sent to each account, some refused (the reject rates routing weighs)
    now = timezone.now()
    reject_share = {a.pk: rng.choice((0, 0, 2, 5, 10)) for a in accounts}  # percent
    history = []
    for i in range(args.history):
        a = accounts[i % len(accounts)]
        rejected = rng.randint(1, 100) <= reject_share[a.pk]
        history.append(
            Order(
                user=user,
                broker=a,
                client_order_id=f"hist-{i}",
                symbol=rng.choice(SYMBOLS),
                asset_class="EQUITY",
                order_type="MARKET",
                side="BUY",
                quantity=D(10),
                time_in_force="DAY",
                status="REJECTED" if rejected else "FILLED",
                submitted_at=now - dt.timedelta(minutes=rng.randint(1, 50)),
            )
        )
    Order.objects.bulk_create(history)

    # --- the decision alone, as route_decide applies it, on venues already in memory -----------
    wts = weights()
    stats = {s: market_stats(s) for s in SYMBOLS}
    by_id = {a.pk: a for a in BrokerAccount.objects.filter(user=user).select_related("paper_venue")}

    def decide(venues: dict, order: OrderToRoute):
        """(decision, impact, split): routing.services.route_decide without its reads (the same
        scoring, fallback and split functions, applied in the same order)."""
        decision = route(venues.values(), order, wts)
        if decision.winner is None:  # no account can pay: the best goes whole, the risk check rejects
            return _short_of_power(decision, venues, order), None, []
        impact, split = _split(order, decision, venues, by_id, stats[order.symbol])
        return decision, impact, split

    # --- the live market ----------------------------------------------------------------------
    def market_step() -> dict[str, D]:
        """One simulator step and new buying power (as fills would leave it); the new mids."""
        mids = market_advance()
        for a in accounts:
            a.buying_power = (base_cash[a.pk] * D(rng.randint(30, 100)) / D(100)).quantize(CENT)
        BrokerAccount.objects.bulk_update(accounts, ["buying_power"])
        return mids

    def snapshot() -> tuple[dict[str, dict], int]:
        """Every symbol's venues now (live quotes in memory) and the time it took to read them."""
        started = time.perf_counter_ns()
        out = {s: {v.account_id: v for _, v, _ in route_venues(user=user, symbol=s)} for s in SYMBOLS}
        return out, (time.perf_counter_ns() - started) // len(SYMBOLS)

    def to_route(spec: Spec, mids: dict[str, D]) -> OrderToRoute:
        side = Side(spec.side)
        limit = None
        if spec.order_type == "LIMIT":
            limit = (mids[spec.symbol] * (1 + side.sign * D(spec.limit_offset_bps) / D(10000))).quantize(CENT)
        return OrderToRoute(
            symbol=spec.symbol,
            asset_class=AssetClass.EQUITY,
            side=side,
            order_type=OrderType(spec.order_type),
            time_in_force=TimeInForce(spec.time_in_force),
            quantity=spec.quantity,
            limit_price=limit,
        )

    def service(order: OrderToRoute):
        try:
            r = route_decide(user=user, order=order)
        except TradeMasterError as exc:
            return exc.code
        return r

    def venues_batched(symbol: str) -> dict:
        """A sketch of a cheaper route_venues for paper accounts: the same venues from four reads
        (the accounts with their venue terms, positions, reject rates, the instrument once) and
        one book per venue, instead of two reads and one book per account."""
        accounts_ = list(BrokerAccount.objects.filter(user=user).select_related("paper_venue").order_by("id"))
        held = dict(
            Position.objects.filter(user=user, symbol=symbol, broker__in=accounts_).values_list(
                "broker_id", "quantity"
            )
        )
        rejects = _reject_rates(accounts_)
        inst = Instrument.objects.get(symbol=symbol)
        spec = instrument_spec(inst)
        books, out = {}, {}
        for account in accounts_:
            book = books.get(account.paper_venue_id)
            if book is None:
                book = books[account.paper_venue_id] = build_book(
                    inst.mid, spec, venue_spec(account.paper_venue)
                )
            quote = Quote(
                symbol=symbol,
                bid=book.best_bid,
                ask=book.best_ask,
                bid_size=book.bid_size,
                ask_size=book.ask_size,
                last=inst.mid,
                at=inst.updated_at,
                bids=tuple((level.price, level.size) for level in book.bids),
                asks=tuple((level.price, level.size) for level in book.asks),
            )
            long = max(held.get(account.pk, D(0)), D(0))
            capabilities = adapter_for(account).capabilities
            out[account.pk] = _venue(account, capabilities, True, quote, long, rejects.get(account.pk, D(0)))
        return out

    def outline(r) -> str:
        """Winner, candidates' scores, impact and split of a Route or of decide()'s answer."""
        if isinstance(r, str):
            return r
        decision, impact, split = (r.decision, r.impact_bps, r.split) if hasattr(r, "decision") else r
        scores = [(c.account_id, f"{c.score_bps:.4f}") for c in decision.candidates]
        return f"candidates {scores} impact {impact} split {[(a.account_id, a.quantity) for a in split]}"

    def same(r, mine) -> bool:
        decision, impact, split = mine
        if isinstance(r, str):
            return decision.winner is None
        return r.decision.candidates == decision.candidates and r.impact_bps == impact and r.split == split

    # --- measure --------------------------------------------------------------------------------
    specs = order_specs(rng, args.warmup + args.routes)
    clock, cpu = time.perf_counter_ns, time.thread_time_ns  # wall time; this thread's CPU time
    backend = 0  # the PostgreSQL backend serving this process (its CPU is part of each route)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
    live: dict[str, dict] = {}  # this market step's venues per symbol
    runs = {
        "a": service,
        "b": lambda o: decide(live[o.symbol], o),
        "c": lambda o: decide(venues_batched(o.symbol), o),
    }
    wall: dict[str, list[int]] = {k: [] for k in runs}
    used: dict[str, list[int]] = {k: [] for k in runs}
    snaps: list[int] = []
    mismatches, no_route, splits, short = 0, 0, 0, 0
    winners: Counter[int] = Counter()  # orders routed whole, per account
    children: Counter[int] = Counter()  # split children, per account
    shared = 0  # splits giving children to two or more accounts at one venue (one displayed book)
    shared_example = None
    venue_of = {a.pk: a.paper_venue_id for a in accounts}
    steps = 0
    for start in range(0, len(specs), args.step):
        mids = market_step()
        steps += 1
        venues, snap_ns = snapshot()
        live.update(venues)
        if start >= args.warmup:
            snaps.append(snap_ns)
        for i in range(start, min(start + args.step, len(specs))):
            order = to_route(specs[i], mids)
            if i == args.warmup:
                before = (machine_ticks(), time.process_time_ns(), process_ticks(backend))
            out = {}
            for key in ("abc", "bca", "cab")[i % 3]:  # each runs first, second and last in turn
                c0, t0 = cpu(), clock()
                out[key] = runs[key](order)
                t1, c1 = clock(), cpu()
                if i >= args.warmup:
                    wall[key].append(t1 - t0)
                    used[key].append(c1 - c0)
            if i < args.warmup:
                continue
            r = out["a"]
            for key in "bc":
                if not same(r, out[key]):
                    mismatches += 1
                    if mismatches <= 3:
                        print(f"  MISMATCH ({key}) for {order}:")
                        print(f"    (a) {outline(r)}\n    ({key}) {outline(out[key])}")
            if isinstance(r, str):
                no_route += 1
            elif r.split:
                splits += 1
                children.update(child.account_id for child in r.split)
                at_venue = Counter(venue_of[child.account_id] for child in r.split)
                if max(at_venue.values()) > 1:
                    shared += 1
                    shared_example = shared_example or (order, r.split)
            else:
                short += r.decision.reason.endswith(SHORT_OF_POWER)
                winners[r.account.pk] += 1

    (busy0, total0), process0, backend0 = before
    (busy1, total1), process1, backend1 = machine_ticks(), time.process_time_ns(), process_ticks(backend)
    hz = os.sysconf("SC_CLK_TCK")
    own_ns = process1 - process0 + (backend1 - backend0) * 1_000_000_000 // hz
    busy_ns = (busy1 - busy0) * 1_000_000_000 // hz
    total_ns = max((total1 - total0) * 1_000_000_000 // hz, 1)
    db_cpu_per_route = (backend1 - backend0) * 1_000_000_000 // hz // args.routes

    # --- SQL statements of route_decide ---------------------------------------------------------
    counts, sketch_counts, tables = [], [], Counter()
    mids = market_step()
    for spec in specs[: args.queries_sample]:
        with CaptureQueriesContext(connection) as queries:
            service(to_route(spec, mids))
        counts.append(len(queries.captured_queries))
        with CaptureQueriesContext(connection) as sketch_queries:
            venues_batched(spec.symbol)
        sketch_counts.append(len(sketch_queries.captured_queries))
        if len(counts) == 1:
            for q in queries.captured_queries:
                sql = q["sql"]
                table = sql.split(" FROM ", 1)[1].split()[0].strip('"') if " FROM " in sql else sql.split()[0]
                tables[table] += 1

    # --- report ---------------------------------------------------------------------------------
    vendor = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    print(
        f"route determination, 4 brokers x 3 accounts, live quotes, {vendor}: {args.routes} routes "
        f"(+{args.warmup} warm-up), market step every {args.step} routes ({steps} steps)"
    )
    print(f"  {'':58} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows = (
        ("(a) route_decide: reads + 12 live quotes + decision", wall["a"]),
        ("(b) decision alone: route() + impact/split, in memory", wall["b"]),
        ("(c) sketch: the same in 4 reads, 1 book per venue", wall["c"]),
        ("    route_venues alone (one symbol, per market step)", snaps),
        ("    (a), this thread's CPU time only", used["a"]),
        ("    (b), this thread's CPU time only", used["b"]),
        ("    (c), this thread's CPU time only", used["c"]),
    )
    for label, samples in rows:
        cells = " ".join(f"{ms(pct(samples, p)):>8}" for p in (50, 95, 99, 100))
        print(f"  {label:58} {cells}")
    other = max(busy_ns - own_ns, 0) * 100 // total_ns
    print(
        f"  CPU during the run: machine busy {busy_ns * 100 // total_ns}% of {os.cpu_count()}, "
        f"other processes {other}% (a high share: the figures are disturbed)"
    )
    if backend:
        print(
            f"  PostgreSQL backend CPU per route: {ms(db_cpu_per_route)} ms "
            "(for (a) and (c) together, market steps and venue snapshots included)"
        )
    for label, samples in rows[:3]:
        p99 = pct(samples, 99)
        print(
            f"  {label[:3]} p99 / goal 0.5 ms: x{D(p99) / D(GOAL_NS):.2f}   "
            f"p99 / seed bound 10 ms: x{D(p99) / D(SEED_NS):.3f}   "
            f"{'meets' if p99 < GOAL_NS else 'misses'} the goal, "
            f"{'meets' if p99 < SEED_NS else 'misses'} the seed bound"
        )
    print(
        f"  SQL statements per route_decide: {min(counts)}..{max(counts)} over {len(counts)} routes "
        f"({', '.join(f'{t} {n}' for t, n in tables.most_common())}); the sketch (c): "
        f"{min(sketch_counts)}..{max(sketch_counts)}"
    )
    by_label = {a.pk: a.account_id for a in accounts}
    print(
        f"  outcomes: {args.routes - splits - no_route} to one account (of which {short} with no account "
        f"having the buying power), {splits} split, {no_route} no route; decisions (b) and (c) equal to "
        f"(a): {2 * args.routes - mismatches} of {2 * args.routes}"
    )
    print(
        "  orders routed whole per account: "
        + ", ".join(f"{by_label[a.pk]} {winners[a.pk]}" for a in accounts)
    )
    print(
        "  split children per account: " + ", ".join(f"{by_label[a.pk]} {children[a.pk]}" for a in accounts)
    )
    print(
        f"  splits with children at two or more accounts of one venue (one displayed book): "
        f"{shared} of {splits}"
    )
    if shared_example is not None:
        order, split = shared_example
        print(
            f"    e.g. {order.side} {order.quantity} {order.symbol} {order.order_type}: "
            + ", ".join(
                f"{by_label[c.account_id]} {c.quantity:.0f} @ {c.expected_price:.4f}"
                for c in split
                if c.expected_price is not None
            )
        )

    missed = pct(wall["a"], 99) >= SEED_NS or pct(wall["b"], 99) >= GOAL_NS
    if args.profile == "always" or (args.profile == "auto" and missed):
        import cProfile
        import io
        import pstats

        runs = (("(a) route_decide", lambda v, o: service(o)), ("(b) decision alone", decide))
        for label, fn in runs:
            profiler = cProfile.Profile()
            for start in range(0, args.profile_routes, args.step):
                mids = market_step()
                venues, _ = snapshot()
                batch = [to_route(s, mids) for s in specs[start : start + args.step]]
                profiler.enable()
                for order in batch:
                    fn(venues[order.symbol], order)
                profiler.disable()
            out = io.StringIO()
            stats_ = pstats.Stats(profiler, stream=out)
            stats_.sort_stats("cumulative").print_stats(
                r"^(?!.*site-packages).*/(routing|brokers|orders)/", 20
            )
            stats_.sort_stats("tottime").print_stats(15)
            print(f"\n--- profile of {label}, {args.profile_routes} routes ---")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
