"""Pre-trade check time with 1,000 open positions and 1,000 open orders for the user.

    .venv/bin/python bench/risk_check.py [--checks 2000] [--positions 1000] [--open-orders 1000]
        [--database-url postgres://postgres@127.0.0.1:5432/trademaster_bench_risk]

Creates a fresh PostgreSQL database (its name must contain "bench": it is dropped), migrates it,
gives one user the positions and resting orders (and builds the user's risk book once, as the
risk monitor would for rows written around the services), places one order for real (today's
equity marks are set once a day), then times ``risk_check_order`` exactly as the placing
transaction runs it for a new LIMIT order: the check (``risk_decide``: both row locks, the reads,
the rules) and then the reservation and book update (``risk_hold``). Each in a transaction that
is rolled back so the book stays the same. The floor in the same run is the two row locks taken
with the ORM. Prints p50/p95/p99, the ratios and the SQL statements of one check; drops the
database at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path

from benchdb import drop_database, fresh_database

ROOT = Path(__file__).resolve().parent.parent


def pct(samples: list[int], p: int) -> str:
    ranked = sorted(samples)
    ns = ranked[max(0, -(-p * len(ranked) // 100) - 1)]
    return f"{D(ns) / D(1_000_000):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--open-orders", type=int, default=1000)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/trademaster_bench_risk")
    args = parser.parse_args()

    server, name = fresh_database(args.database_url)
    os.environ.update(
        DATABASE_URL=args.database_url,
        DJANGO_SETTINGS_MODULE="trademaster.settings",
        TRADEMASTER_VAR_DIR=tempfile.mkdtemp(prefix="tm-bench-risk-"),
    )
    sys.path.insert(0, str(ROOT))
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(server, name)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    from brokers.models import BrokerAccount
    from orders.models import Order, Position
    from risk.book import risk_book_rebuild
    from risk.domain.context import Quote
    from risk.models import Reservation, RiskProfile
    from risk.services import risk_check_order, risk_decide, risk_hold

    user = get_user_model().objects.create_user("risk-bench", password=None)
    account = BrokerAccount.objects.get(user=user, account_id="PAPER-EQ-A")
    BrokerAccount.objects.filter(pk=account.pk).update(
        buying_power=D("100000000"), total_value=D("100000000")
    )
    RiskProfile.objects.update_or_create(
        user=user,
        defaults={"max_open_orders": None, "max_orders_per_minute": None, "max_gross_exposure": None},
    )
    Position.objects.bulk_create(
        Position(
            user=user,
            broker=account,
            symbol=f"S{i:04d}",
            asset_class="EQUITY",
            quantity=D(10),
            average_cost=D(50),
            market_price=D(50),
            market_value=D(500),
        )
        for i in range(args.positions)
    )
    orders = Order.objects.bulk_create(
        Order(
            user=user,
            broker=account,
            client_order_id=f"open-{i}",
            symbol=f"S{i % 500:04d}",
            asset_class="EQUITY",
            order_type="LIMIT",
            side="BUY",
            quantity=D(1),
            price=D(1),
            time_in_force="GTC",
            status="ACCEPTED",
        )
        for i in range(args.open_orders)
    )
    Reservation.objects.bulk_create(Reservation(order=o, account=account, amount=D(1)) for o in orders)
    # the resting book was built earlier in the day, not in the last minute (that is the rate window)
    from django.utils import timezone

    Order.objects.filter(user=user).update(created_at=timezone.now() - dt.timedelta(hours=1))
    # rows written around the services: build the user's risk book once, as the monitor would
    risk_book_rebuild(user_id=user.pk)
    quote = Quote(bid=D("99.99"), ask=D("100.01"), last=D("100.00"))

    class Rollback(Exception):
        pass

    def new_order(n: int | str) -> Order:
        return Order.objects.create(
            user=user,
            broker=account,
            client_order_id=f"new-{n}",
            symbol="AAPL",
            asset_class="EQUITY",
            order_type="LIMIT",
            side="BUY",
            quantity=D(1),
            price=D("99.00"),
            status="PENDING",
        )

    # one order placed for real first: today's equity marks are set once a day, not per check
    with transaction.atomic():
        risk_check_order(order=new_order("first"), quote=quote, client_order_id_given=True)

    def one_check(n: int) -> tuple[int, int, int]:
        try:
            with transaction.atomic():
                order = new_order(n)
                started = time.perf_counter_ns()
                decision = risk_decide(order=order, quote=quote, client_order_id_given=True)
                decided = time.perf_counter_ns()
                if not decision.assessment.approved:
                    raise SystemExit(f"unexpected rejection: {decision.assessment.reasons}")
                risk_hold(order=order, decision=decision)
                held = time.perf_counter_ns()
                RiskProfile.objects.select_for_update().get(user_id=user.pk)
                BrokerAccount.objects.select_for_update().get(pk=account.pk)
                floor = time.perf_counter_ns()
                with connection.cursor() as cursor:
                    cursor.execute("SELECT id FROM risk_profiles WHERE user_id = %s FOR UPDATE", [user.pk])
                    cursor.fetchone()
                    cursor.execute("SELECT id FROM broker_accounts WHERE id = %s FOR UPDATE", [account.pk])
                    cursor.fetchone()
                raw = time.perf_counter_ns()
                raise Rollback
        except Rollback:
            return decided - started, held - started, floor - held, raw - floor

    for n in range(int(os.environ.get("WARMUP", "50"))):  # warm-up
        one_check(-n - 1)
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        one_check(-1000)
    statements = [q["sql"] for q in queries.captured_queries]
    # not the check: BEGIN, the order's INSERT before it, the floors' four locks and the ROLLBACK
    in_check = len(statements) - 7
    if os.environ.get("SHOW_SQL"):
        print("\n".join(s[:160] for s in statements))
    decisions, checks, floors, raw_floors = [], [], [], []
    profiler = None
    if os.environ.get("PROFILE"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    for n in range(args.checks):
        decision, check, floor, raw_floor = one_check(n)
        raw_floors.append(raw_floor)
        decisions.append(decision)
        checks.append(check)
        floors.append(floor)
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(os.environ.get("PROFILE"), 40)
    print(
        f"pre-trade check, {args.positions} open positions and {args.open_orders} open orders, "
        f"{args.checks} checks, PostgreSQL"
    )
    print(f"  {'':32} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}")
    rows = (
        ("the check: locks, reads, rules", decisions),
        ("+ reservation and book update", checks),
        ("floor: the two row locks (ORM)", floors),
        ("floor: the two row locks (SQL)", raw_floors),
    )
    for label, samples in rows:
        print(f"  {label:32} {pct(samples, 50):>9} {pct(samples, 95):>9} {pct(samples, 99):>9}")
    for label, samples in rows[:2]:
        ratio50 = D(sorted(samples)[len(samples) // 2]) / D(max(1, sorted(floors)[len(floors) // 2]))
        print(f"  ratio {label.split(':')[0]} / floor (p50): x{ratio50:.1f}")
    print(f"  SQL statements in one check: {in_check}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
