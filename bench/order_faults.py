"""Order success rate with faults injected in the brokers, and the adapter overhead per order.

    .venv/bin/python bench/order_faults.py [--orders 10000] [--fault-percent 1] [--overhead-orders 1000]
        [--seed 6] [--db sqlite|postgres] [--database-url postgres://postgres@127.0.0.1:5432/tm_bench_faults]

One user with four equity paper accounts (the default PAPER-EQ-A and PAPER-EQ-B, plus PAPER-EQ-C
at a third venue created here and PAPER-EQ-D, a second account at venue A), 1,000,000 of cash each
and risk limits opened so that only the brokers can refuse an order. The paper adapter is
replaced (``settings.BROKER_ADAPTERS["paper"]``) by ``FaultyPaper``, which, for each call to
``place()``, with seeded probabilities (``--fault-percent`` each) injects

- outage: ``BrokerRetryable`` "unreachable", nothing placed;
- 429: ``BrokerRetryable`` "too many requests", nothing placed;
- lost: ``BrokerUnknownOutcome`` (timeout before the order arrived), nothing placed;
- late: the order is placed at the venue, then ``BrokerUnknownOutcome`` (the answer was lost);
- business reject: ``BrokerRejected`` (an order a healthy broker would not accept either);

and, for a stretch of the run (orders 40 % to 50 %), PAPER-EQ-B is down: every place() there
raises "unreachable". Then ``--orders`` small MARKET orders (1..5 shares; buy AAPL, sell AAPL,
buy MSFT, sell MSFT, ...) go through ``orders.services.order_place`` without naming a broker
(routing picks; a refused order fails over), the market moving one step every 100 orders, and
``orders.reconcile.reconcile_all()`` runs once at the end (it fills the orders a lost answer left
ACCEPTED).

Counted: orders FILLED (executed), REJECTED by an injected business reject, REJECTED otherwise
(by reason), other states; duplicates: client_order_ids with more than one ``PaperOrder`` row
(must be 0), and orders whose broker is not the account holding their venue order. The success
rate is executed / (orders not business-rejected), against the 99.9 % goal; the bench exits 1
when the goal is missed or a duplicate exists.

Adapter overhead: ``--overhead-orders`` more orders with no fault injected, each timed twice in
the same call: the paper adapter's ``place()`` alone (timed inside the adapter) and the whole
``order_place``; the difference is what the service adds around the broker call (validation,
persistence, risk check, routing, applying the updates). Percentiles are nearest-rank over
``time.perf_counter_ns`` samples.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal as D
from pathlib import Path

from benchdb import drop_database, fresh_database

ROOT = Path(__file__).resolve().parent.parent
GOAL_PERCENT = D("99.9")
SYMBOLS = ("AAPL", "MSFT")
CASH = D("1000000")
BUSINESS_REJECT = "injected business reject: account not permitted to trade this product"
FAULT_KINDS = ("outage", "429", "lost", "late", "reject")
DOWN_ACCOUNT = "PAPER-EQ-B"
DOWN_FROM, DOWN_TO = D("0.40"), D("0.50")  # share of the run during which DOWN_ACCOUNT is down
EXTRA_VENUE = ("paper-equities-c", D("4"), 4, D("1.5"), D("0.5"), D("0"), D("0.50"))
EXTRA_ACCOUNTS = (("PAPER-EQ-C", "paper-equities-c"), ("PAPER-EQ-D", "paper-equities-a"))

FaultyPaper = None  # the fault-injecting adapter class, defined once Django is set up (make_adapter)


def pct(samples: list[int], p: int) -> int:
    """Nearest rank: the value at rank ceil(p * N / 100) of the sorted samples."""
    ranked = sorted(samples)
    return ranked[max(0, -(-p * len(ranked) // 100) - 1)]


def ms(ns: int) -> str:
    return f"{D(ns) / D(1_000_000):.3f}"


def percent(part: int, whole: int) -> str:
    return "n/a" if whole == 0 else f"{D(part) * 100 / D(whole):.3f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--orders", type=int, default=10000, help="orders placed with faults injected")
    parser.add_argument("--fault-percent", default="1", help="probability of each fault kind per place()")
    parser.add_argument("--overhead-orders", type=int, default=1000, help="fault-free orders timed")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tm_bench_faults")
    args = parser.parse_args()
    if args.orders < 1 or args.overhead_orders < 1:
        parser.error("--orders and --overhead-orders must be positive")
    args.fault_percent = D(args.fault_percent)
    if not D(0) <= args.fault_percent * len(FAULT_KINDS) <= D(100):
        parser.error("--fault-percent times the five fault kinds must be within 0..100")

    return in_throwaway_database(args, run, prefix="tm-bench-faults-")


def in_throwaway_database(
    args: argparse.Namespace, run, *, prefix: str, env: dict[str, str] | None = None
) -> int:
    """``run(args)`` with Django on a fresh database (``args.db``: a SQLite file in a temporary
    folder, or ``args.database_url`` created and dropped) and ``env`` set; everything removed after."""
    var_dir = tempfile.mkdtemp(prefix=prefix)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="trademaster.settings", TRADEMASTER_VAR_DIR=var_dir, **(env or {})
    )
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


def make_adapter(seed: int):
    """The paper adapter with faults injected on place(); its knobs and counters are class state."""
    from brokers.adapters.paper import PaperAdapter
    from brokers.domain.adapter import BrokerRejected, BrokerRetryable, BrokerUnknownOutcome

    class Faulty(PaperAdapter):
        rng = random.Random(seed)
        fault_percent = D(0)  # per kind
        down: set[str] = set()  # account_ids that are unreachable for now
        injected: Counter = Counter()  # fault kind -> count
        rejected_ids: set[str] = set()  # client_order_ids given an injected business reject
        place_ns: list[int] = []  # the paper place() alone, when it ran to completion

        def __init__(self, account) -> None:
            super().__init__(account)
            self.label = account.account_id

        def _venue_place(self, request):
            started = time.perf_counter_ns()
            updates = super().place(request)
            Faulty.place_ns.append(time.perf_counter_ns() - started)
            return updates

        def place(self, request):
            cls = Faulty
            if self.label in cls.down:
                cls.injected["down"] += 1
                raise BrokerRetryable(f"{self.label} unreachable (connection refused)", retry_after=5.0)
            draw = D(cls.rng.randrange(1_000_000)) / D(10_000)  # 0.0000 .. 99.9999 percent
            kind = None
            for k, name in enumerate(FAULT_KINDS):
                if draw < cls.fault_percent * (k + 1):
                    kind = name
                    break
            if kind is None:
                return self._venue_place(request)
            cls.injected[kind] += 1
            if kind == "outage":
                raise BrokerRetryable("unreachable: connection reset by peer", retry_after=1.0)
            if kind == "429":
                raise BrokerRetryable("429 too many requests", retry_after=2.0)
            if kind == "lost":
                raise BrokerUnknownOutcome("connect timed out before the request was sent")
            if kind == "late":
                super().place(request)  # the venue took it (in its own transaction); the answer is lost
                raise BrokerUnknownOutcome("read timed out")
            cls.rejected_ids.add(request.client_order_id)
            raise BrokerRejected(BUSINESS_REJECT, code="INJECTED_REJECT")

    return Faulty


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db.models import Count

    call_command("migrate", verbosity=0)
    logging.disable(logging.WARNING)  # the service logs every unknown outcome; the counts say it all

    from brokers.models import BrokerAccount, BrokerName, PaperBalance, PaperOrder, PaperVenue
    from brokers.services import adapters_reset, broker_accounts_provision_paper, market_advance
    from orders.domain.enums import OrderType, Side, TimeInForce
    from orders.domain.validation import OrderRequest
    from orders.models import Order, OrderEvent
    from orders.reconcile import reconcile_all
    from orders.services import Actor, order_place
    from risk.models import RiskProfile

    global FaultyPaper
    FaultyPaper = make_adapter(args.seed)
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "paper": f"{__name__}.FaultyPaper"}
    adapters_reset()

    # --- the user: four equity accounts at three venues ------------------------------------------
    name, spread, depth, size, bps, per_unit, minimum = EXTRA_VENUE
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
    user = get_user_model().objects.create_user("faults-bench", password=None)
    broker_accounts_provision_paper(user=user)
    for account_id, venue_name in EXTRA_ACCOUNTS:
        account, created = BrokerAccount.objects.get_or_create(
            user=user,
            broker_name=BrokerName.PAPER,
            account_id=account_id,
            defaults={
                "label": f"{venue_name} (bench)",
                "paper_venue": PaperVenue.objects.get(name=venue_name),
                "sandbox_mode": True,
            },
        )
        if created:
            PaperBalance.objects.create(account=account, cash=CASH)
    equity = BrokerAccount.objects.filter(user=user).exclude(account_id="PAPER-CRYPTO")
    PaperBalance.objects.filter(account__in=equity).update(cash=CASH)
    equity.update(buying_power=CASH, cash=CASH, total_value=CASH, day_trading_policy="off")
    labels = dict(equity.values_list("pk", "account_id"))
    if len(labels) < 3:
        raise SystemExit(f"expected at least 3 equity accounts, got {sorted(labels.values())}")
    RiskProfile.objects.update_or_create(
        user=user,
        defaults={
            "max_position_notional": None,
            "max_gross_exposure": None,
            "max_open_orders": None,
            "max_orders_per_minute": None,
            "daily_loss_limit": None,
            "duplicate_window_seconds": 0,
            "pdt_enforcement": False,
            "max_concentration_percent": None,
        },
    )
    adapters_reset()
    actor = Actor.for_user(user)
    rng = random.Random(args.seed)

    def request(i: int) -> OrderRequest:
        return OrderRequest(
            symbol=SYMBOLS[(i // 2) % 2],
            side=Side.BUY if i % 2 == 0 else Side.SELL,
            order_type=OrderType.MARKET,
            quantity=D(rng.randint(1, 5)),
            time_in_force=TimeInForce.DAY,
        )

    # --- the faulty run ------------------------------------------------------------------------
    n = args.orders
    down_from, down_to = int(DOWN_FROM * n), int(DOWN_TO * n)
    FaultyPaper.fault_percent = args.fault_percent
    ids: list[int] = []
    started = time.perf_counter_ns()
    for i in range(n):
        if i % 100 == 0:
            market_advance()
        FaultyPaper.down = {DOWN_ACCOUNT} if down_from <= i < down_to else set()
        ids.append(order_place(user=user, request=request(i), actor=actor).order.pk)
    placing_ns = time.perf_counter_ns() - started
    FaultyPaper.down, FaultyPaper.fault_percent = set(), D(0)
    before_reconcile = Counter(Order.objects.filter(pk__in=ids).values_list("status", flat=True))
    started = time.perf_counter_ns()
    reports = reconcile_all()
    reconcile_ns = time.perf_counter_ns() - started

    orders = list(
        Order.objects.filter(pk__in=ids)
        .order_by("pk")
        .values_list("client_order_id", "status", "status_reason", "broker_id")
    )
    states = Counter(status for _, status, _, _ in orders)
    business = [c for c, status, _, _ in orders if status == "REJECTED" and c in FaultyPaper.rejected_ids]
    other_rejects = Counter(
        (reason or "")[:90] for c, status, reason, _ in orders if status == "REJECTED" and c not in business
    )
    executed = states["FILLED"]
    missed = [
        pk
        for pk, (c, status, _, _) in zip(ids, orders, strict=True)
        if status != "FILLED" and c not in FaultyPaper.rejected_ids
    ]
    eligible = len(orders) - len(business)
    duplicates = PaperOrder.objects.values("client_order_id").annotate(n=Count("id")).filter(n__gt=1).count()
    where = dict(PaperOrder.objects.values_list("client_order_id", "account_id"))
    misplaced = sum(1 for c, status, _, broker in orders if c in where and where[c] != broker)
    no_venue_order = sum(1 for c, status, _, _ in orders if status == "FILLED" and c not in where)
    by_account = Counter(
        labels.get(broker, str(broker)) for _, status, _, broker in orders if status == "FILLED"
    )
    injected = dict(FaultyPaper.injected)

    # --- adapter overhead: fault-free orders, adapter place() alone vs the whole order_place ------
    FaultyPaper.place_ns.clear()
    total_ns: list[int] = []
    for i in range(args.overhead_orders):
        req = request(i)
        t0 = time.perf_counter_ns()
        placed = order_place(user=user, request=req, actor=actor).order
        total_ns.append(time.perf_counter_ns() - t0)
        if placed.status != "FILLED" or len(FaultyPaper.place_ns) != i + 1:
            raise SystemExit(f"fault-free order {placed.pk} ended {placed.status}: {placed.status_reason}")
    adapter_ns = list(FaultyPaper.place_ns)
    service_ns = [t - a for t, a in zip(total_ns, adapter_ns, strict=True)]

    # --- the summary ---------------------------------------------------------------------------
    rate = D(executed) * 100 / D(eligible) if eligible else D(0)
    ok = rate >= GOAL_PERCENT and duplicates == 0 and misplaced == 0 and no_venue_order == 0
    print(f"order_faults on {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, seed {args.seed}")
    print(
        f"accounts: {', '.join(sorted(labels.values()))}; {DOWN_ACCOUNT} down for orders "
        f"{down_from}..{down_to - 1}; each fault kind {args.fault_percent}% per place()"
    )
    print(f"orders placed: {n} in {ms(placing_ns)} ms ({ms(placing_ns // n)} ms/order)")
    print(
        "faults injected (per place() call): "
        + ", ".join(f"{k} {injected.get(k, 0)}" for k in (*FAULT_KINDS, "down"))
        + f"; total {sum(injected.values())}"
    )
    print(f"states before reconciliation: {dict(sorted(before_reconcile.items()))}")
    print(
        f"reconcile_all: {len(reports)} account(s) in {ms(reconcile_ns)} ms; "
        f"states after: {dict(sorted(states.items()))}"
    )
    print(f"executed (FILLED): {executed} of {len(orders)}; by account {dict(sorted(by_account.items()))}")
    print(f"rejected, injected business reject: {len(business)} (a healthy broker would refuse them too)")
    print(f"rejected, anything else: {sum(other_rejects.values())}")
    for reason, count in other_rejects.most_common(10):
        print(f"    {count:6d}  {reason}")
    for pk in missed[:5]:  # the path of a few orders a healthy broker would have executed
        path = OrderEvent.objects.filter(order_id=pk).order_by("id").values_list("event_type", "data")
        print(f"    order {pk}: " + " -> ".join(f"{kind} {data}" if data else kind for kind, data in path))
    others = {s: c for s, c in states.items() if s not in ("FILLED", "REJECTED")}
    print(f"other states: {others or 'none'}")
    print(
        f"success rate: {executed} / {eligible} orders a healthy broker would accept = {rate:.3f}% "
        f"(goal >= {GOAL_PERCENT}%: {'MET' if rate >= GOAL_PERCENT else 'MISSED'}); "
        f"not executed {eligible - executed} ({percent(eligible - executed, eligible)})"
    )
    print(
        f"duplicates: {duplicates} client_order_id(s) with more than one venue order (goal 0); "
        f"orders at another broker than their venue order: {misplaced}; FILLED without a venue order: "
        f"{no_venue_order}"
    )
    print(f"adapter overhead over {args.overhead_orders} fault-free orders (ms):")
    print(f"    {'':34s} {'p50':>9s} {'p99':>9s} {'max':>9s}")
    for label, samples in (
        ("paper adapter place() alone", adapter_ns),
        ("whole order_place", total_ns),
        ("order_place minus place()", service_ns),
    ):
        print(f"    {label:34s} {ms(pct(samples, 50)):>9s} {ms(pct(samples, 99)):>9s} {ms(max(samples)):>9s}")
    p50_ratio = D(pct(total_ns, 50)) / D(max(pct(adapter_ns, 50), 1))
    share = D(sum(adapter_ns)) * 100 / D(sum(total_ns))
    print(
        f"    order_place / place() at p50: {p50_ratio:.2f}x; the broker call is {share:.1f}% of the "
        f"order's time, the service around it {D(100) - share:.1f}%"
    )
    print("RESULT: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
