"""Count the SQL queries behind one order accept and one floor request.

Run against an already migrated database (``order_accept.py`` runs it on its bench database
before dropping it), or by hand::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/somedb TRADEMASTER_BENCH_FLOOR=1 \\
        .venv/bin/python bench/count_queries.py --user bench-q

It goes through the whole Django stack (middleware, DRF, OAuth bearer authentication) with
``django.test.Client``, so the counts are those of a real request, without the network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _shape(sql: str) -> str:
    """A query's shape: its verb and first table, e.g. ``INSERT orders``."""
    sql = sql.strip()
    verb = sql.split(None, 1)[0].upper() if sql else "?"
    if verb in {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"}:
        return verb
    match = re.search(r'(?:FROM|INTO|UPDATE)\s+"?([A-Za-z0-9_]+)"?', sql, re.IGNORECASE)
    return f"{verb} {match.group(1) if match else '?'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--user", default=f"bench-q-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--orders", type=int, default=5, help="orders of each kind to place")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trademaster.settings")
    os.environ.setdefault("TRADEMASTER_BENCH_FLOOR", "1")
    os.environ.setdefault("ORDER_ENTRY_RATE", "1000000/min")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from trademaster.management.commands.issue_token import token_issue

    user = get_user_model().objects.create_user(args.user, password=None)
    token = token_issue(user=user, scopes=["read", "trade"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def limit(n: int) -> dict[str, str]:
        return {
            "symbol": "AAPL",
            "side": "BUY",
            "order_type": "LIMIT",
            "quantity": "1",
            "price": "1.00",
            "time_in_force": "GTC",
            "client_order_id": f"q-limit-{n}",
        }

    def market(n: int) -> dict[str, str]:
        return {
            "symbol": "AAPL",
            "side": "BUY" if n % 2 == 0 else "SELL",
            "order_type": "MARKET",
            "quantity": "1",
            "time_in_force": "DAY",
            "client_order_id": f"q-market-{n}",
        }

    def measure(path: str, body: dict[str, str] | None) -> tuple[int, Counter[str]]:
        with CaptureQueriesContext(connection) as ctx:
            response = client.post(path, data=json.dumps(body or {}), content_type="application/json")
        if response.status_code != 201:
            raise SystemExit(f"{path}: HTTP {response.status_code}: {response.content[:300]!r}")
        return len(ctx.captured_queries), Counter(_shape(q["sql"]) for q in ctx.captured_queries)

    # the first request of a process loads caches (content types, routes): not counted
    measure("/api/v1/bench/floor/", None)
    measure("/api/v1/orders/", limit(-1))
    measure("/api/v1/orders/", market(-2))

    results: dict[str, dict[str, object]] = {}
    for name, path, make in (
        ("floor", "/api/v1/bench/floor/", lambda n: None),
        ("order LIMIT (rests)", "/api/v1/orders/", limit),
        ("order MARKET (fills)", "/api/v1/orders/", market),
    ):
        counts, shapes = [], Counter()
        for n in range(args.orders):
            count, shape = measure(path, make(n))
            counts.append(count)
            shapes += shape
        results[name] = {
            "queries_per_request": sorted(set(counts)),
            "shapes_per_request": {k: v / args.orders for k, v in sorted(shapes.items())},
        }

    if args.json:
        print(json.dumps(results))
        return 0
    for name, result in results.items():
        print(f"{name}: {result['queries_per_request']} queries per request")
        for shape, count in result["shapes_per_request"].items():  # type: ignore[union-attr]
            print(f"    {count:5.1f}  {shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
