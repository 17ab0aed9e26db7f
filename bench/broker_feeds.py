"""Latency from a fill at the broker to the order FILLED in the database, through the order-update
feed worker (orders/feeds.py): over the brokers' streams, and over REST polling alone.

    .venv/bin/python bench/broker_feeds.py [--fills 200] [--spacing-ms 50]
        [--database-url postgres://postgres@127.0.0.1:5432/tm_h_feeds_bench]

Creates a fresh PostgreSQL database (its name must contain "bench": it is dropped), migrates it,
and gives one user an Alpaca and a Binance account pointed at the loopback fakes of tests/fakes
(real HTTP and WebSocket). Per mode (stream, then REST only: the stream URLs point at a closed
port) and broker, it rests ``--fills`` one-lot limit orders at the fake (placed through the real
adapter, the orders stored as ACCEPTED), runs the feed worker (BrokerFeeds) in a thread with the
production cadence (``BROKER_FEED_POLL_SECONDS[_BY_BROKER]``), then fills the orders one at a
time at random moments (exponential spacing, mean ``--spacing-ms``, so fills fall at random
phases of the REST polls). A sample is the time from just before the fake fills an order to the
feed's ``on_applied`` callback for the batch that carried the fill: the transaction that made the
order FILLED has committed (the account refresh after fills, one loopback REST call, is included).
Prints p50/p95/max per mode and broker; percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from decimal import Decimal as D
from pathlib import Path

from benchdb import drop_database, fresh_database

ROOT = Path(__file__).resolve().parent.parent
KEY, SECRET = "bench-key", "bench-secret"


def pct(samples: list[int], p: int) -> str:
    ranked = sorted(samples)
    ns = ranked[max(0, -(-p * len(ranked) // 100) - 1)]
    return f"{D(ns) / D(1_000_000):.1f}"


class Collector:
    """The feed's ``on_applied``: when each fill's batch was stored."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.filled_at: dict[str, int] = {}
        self.done = threading.Event()
        self._lock = threading.Lock()

    def on_applied(self, account, updates) -> None:
        now = time.perf_counter_ns()
        with self._lock:
            for u in updates:
                if u.fill is not None:
                    self.filled_at.setdefault(u.client_order_id, now)
            if len(self.filled_at) >= self.expected:
                self.done.set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fills", type=int, default=200)
    parser.add_argument("--spacing-ms", type=int, default=50)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tm_h_feeds_bench")
    args = parser.parse_args()

    server, name = fresh_database(args.database_url)
    os.environ.update(
        DATABASE_URL=args.database_url,
        DJANGO_SETTINGS_MODULE="trademaster.settings",
        TRADEMASTER_VAR_DIR=tempfile.mkdtemp(prefix="tm-bench-feeds-"),
    )
    sys.path.insert(0, str(ROOT))
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(server, name)


def run(args: argparse.Namespace) -> int:
    import logging

    import django

    django.setup()
    logging.disable(logging.WARNING)  # httpx and websockets log every request
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from brokers.domain.adapter import BrokerOrderRequest, BrokerRetryable
    from brokers.models import BrokerAccount
    from brokers.services import adapter_for, adapters_reset
    from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
    from orders.feeds import BrokerFeeds, FeedSettings
    from orders.models import Order
    from tests.fakes.alpaca import FakeAlpaca
    from tests.fakes.binance import FakeBinance

    user = get_user_model().objects.create_user("feeds-bench", password=None)
    rng = random.Random(20261206)
    rows: list[tuple[str, str, float, list[int]]] = []

    for mode in ("stream", "rest"):
        alpaca_fake = FakeAlpaca(key=KEY, secret=SECRET).start()
        alpaca_fake.fill_on_place = alpaca_fake.fill_on_read = False
        alpaca_stream = alpaca_fake.stream_start()
        binance_fake = FakeBinance(KEY, SECRET)
        binance_url = binance_fake.start()
        settings.ALPACA_TRADING_URL = alpaca_fake.url
        settings.BINANCE_REST_URL = binance_url
        dead = "ws://127.0.0.1:1"  # nothing listens: REST polling only
        settings.ALPACA_STREAM_URL = alpaca_stream if mode == "stream" else f"{dead}/stream"
        settings.BINANCE_WS_API_URL = binance_fake.ws_url if mode == "stream" else f"{dead}/ws-api/v3"
        adapters_reset()
        BrokerAccount.objects.filter(user=user).exclude(broker_name="paper").update(is_active=False)
        accounts = {
            broker: BrokerAccount.objects.create(
                user=user,
                broker_name=broker,
                account_id=f"{broker}-{mode}",
                api_key_encrypted=KEY,
                api_secret_encrypted=SECRET,
                sandbox_mode=True,
            )
            for broker in ("alpaca", "binance")
        }
        specs = {
            "alpaca": ("MSFT", AssetClass.EQUITY, TimeInForce.DAY, D(1), D("400")),
            "binance": ("BTC/USD", AssetClass.CRYPTO, TimeInForce.GTC, D("0.001"), D("90000")),
        }
        resting: list[tuple[str, str]] = []  # (broker, client order id)
        for broker, (symbol, asset_class, tif, qty, price) in specs.items():
            account = BrokerAccount.objects.get(pk=accounts[broker].pk)
            adapter = adapter_for(account)
            for n in range(args.fills):
                cid = f"{mode[0]}{broker[0]}{n:05d}"
                Order.objects.create(
                    user=user, broker=account, client_order_id=cid, symbol=symbol,
                    asset_class=asset_class.value, order_type="LIMIT", side="BUY", quantity=qty,
                    price=price, time_in_force=tif.value, status="ACCEPTED",
                )  # fmt: skip
                request = BrokerOrderRequest(
                    cid, symbol, asset_class, Side.BUY, OrderType.LIMIT, qty, tif, price=price
                )
                while True:
                    try:
                        adapter.place(request)
                        break
                    except BrokerRetryable as exc:  # the local order-rate limit (adapter_for's wrapper)
                        threading.Event().wait(int(exc.retry_after * 1000) / 1000)
                resting.append((broker, cid))
        alpaca_fake.fills["MSFT"] = [(D(1), D("400"))] * args.fills

        collected = Collector(len(resting))
        filled_at = collected.filled_at

        defaults = FeedSettings.from_settings()
        feeds = BrokerFeeds(config=defaults, on_applied=collected.on_applied)
        stop = threading.Event()
        worker = threading.Thread(target=feeds.run, args=(stop,), daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        if mode == "stream":  # both streams up before the first fill
            while not (alpaca_fake.subscribers() and binance_fake.subscriptions):
                if time.monotonic() > deadline:
                    raise SystemExit("the streams did not come up")
                stop.wait(0.01)
        else:  # the first REST polls (which start tracking the orders) are done
            stop.wait(max(defaults.poll_for("alpaca"), defaults.poll_for("binance")) + 0.5)

        sent_at: dict[str, int] = {}
        rng.shuffle(resting)
        for broker, cid in resting:
            stop.wait(rng.expovariate(1000 / args.spacing_ms))
            sent_at[cid] = time.perf_counter_ns()
            if broker == "alpaca":
                alpaca_fake.execute(cid)
            else:
                binance_fake.fill(binance_fake.order_by_client_id(cid)["orderId"], "0.001", "90000")
        if not collected.done.wait(60):
            print(f"{mode}: only {len(filled_at)} of {len(resting)} fills arrived", file=sys.stderr)
        stats = {feed.account.broker_name: feed.stats for feed in feeds.feeds.values()}
        stop.set()
        worker.join(30)
        alpaca_fake.stop()
        binance_fake.stop()
        filled = Order.objects.filter(user=user, client_order_id__in=list(sent_at), status="FILLED").count()
        if filled != len(sent_at):
            print(f"{mode}: {filled} of {len(sent_at)} orders FILLED", file=sys.stderr)
            return 1
        for broker in ("alpaca", "binance"):
            samples = [filled_at[c] - sent_at[c] for b, c in resting if b == broker and c in filled_at]
            rows.append((mode, broker, defaults.poll_for(broker), samples, stats[broker]))

    print(f"fill at the fake -> order FILLED (committed), {args.fills} fills per broker and mode, ms")
    print(
        f"{'path':<8}{'broker':<9}{'REST every':>11}{'fills':>7}{'p50':>9}{'p95':>9}{'max':>9}"
        f"{'polls':>7}{'errors':>7}{'limited':>8}"
    )
    for mode, broker, interval, samples, st in rows:
        print(
            f"{mode:<8}{broker:<9}{interval:>10}s{len(samples):>7}"
            f"{pct(samples, 50):>9}{pct(samples, 95):>9}{pct(samples, 100):>9}"
            f"{st.polls:>7}{st.errors:>7}{st.rate_limited:>8}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
