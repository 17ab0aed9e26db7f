"""Route scoring time: ``routing.domain.scoring.route`` over 4 brokers x 3 accounts.

    .venv/bin/python bench/route_score.py [--routes 20000]

The scoring alone, in process, on quotes already in memory (5 displayed levels a side): what the
router adds on top of fetching quotes. Half the orders are small (filled at the touch), half walk
the book; buys and sells alternate. Prints p50/p95/p99 per route() call.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal as D
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from routing.domain.scoring import Fees, OrderToRoute, Venue, route


def venues() -> list[Venue]:
    out = []
    for broker in range(4):
        spread = D("0.01") * (broker + 1)
        bid, ask = D("228.50") - spread, D("228.50") + spread
        for account in range(3):
            out.append(
                Venue(
                    account_id=broker * 10 + account,
                    label=f"broker{broker}-{account}",
                    asset_classes=frozenset({AssetClass.EQUITY}),
                    buying_power=D(100000 * (account + 1)),
                    bid=bid,
                    ask=ask,
                    bids=tuple((bid - D("0.01") * i, D(200 * (i + 1))) for i in range(5)),
                    asks=tuple((ask + D("0.01") * i, D(200 * (i + 1))) for i in range(5)),
                    fees=Fees(per_unit=D("0.005") * broker, minimum=D(broker)),
                    latency_ms=20 * broker,
                )
            )
    return out


def pct(samples: list[int], p: int) -> str:
    ranked = sorted(samples)
    return f"{D(ranked[max(0, -(-p * len(ranked) // 100) - 1)]) / D(1000):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=20000)
    args = parser.parse_args()
    book = venues()
    orders = [
        OrderToRoute(
            symbol="AAPL",
            asset_class=AssetClass.EQUITY,
            side=Side.BUY if i % 2 else Side.SELL,
            order_type=OrderType.MARKET,
            time_in_force=TimeInForce.DAY,
            quantity=D(100) if i % 4 < 2 else D(1500),
        )
        for i in range(4)
    ]
    for i in range(500):  # warm-up
        route(book, orders[i % 4])
    samples = []
    for i in range(args.routes):
        started = time.perf_counter_ns()
        route(book, orders[i % 4])
        samples.append(time.perf_counter_ns() - started)
    print(f"route scoring, 4 brokers x 3 accounts, 5 levels a side, {args.routes} routes, in process")
    print(f"  p50 {pct(samples, 50)} us   p95 {pct(samples, 95)} us   p99 {pct(samples, 99)} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
