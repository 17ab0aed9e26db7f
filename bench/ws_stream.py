"""WebSocket stream capacity and fill-to-client latency on one daphne process.

    .venv/bin/python bench/ws_stream.py [--connections 10000] [--users 100] [--orders 300]
        [--database-url postgres://postgres@127.0.0.1:5432/trademaster_bench_ws]
        [--redis-url redis://127.0.0.1:6379/5]

Production wiring on loopback: PostgreSQL (a fresh database whose name must contain "bench"; it
is dropped at the end), the Redis channel layer, one daphne process and one ``relay_outbox``
process. The bench opens ``--connections`` WebSockets to ``/trading/stream`` (bearer token in
the query string, spread evenly over ``--users`` users, each subscribed to orders, fills and
positions) in steps of 250, and stops opening at the first step that fails. It reports how many
it held and daphne's resident memory per connection (RSS growth / connections held).

Then, with every connection open, it places ``--orders`` MARKET orders (through the service
layer, for users in turn) at ``--rate`` per second. Each fill fans out to every socket of its
user. Fill-to-client latency is the time from the fill's outbox event (``occurred_at``, written
in the fill's transaction) to the FILL_NOTIFICATION frame read by a client: p50/p99 over the
first socket per event and over all sockets (the broadcast).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path

from benchdb import drop_database, free_port, fresh_database

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
STEP = 250


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(samples: list[int], p: int) -> str:
    if not samples:
        return "-"
    ranked = sorted(samples)
    return f"{D(ranked[max(0, -(-p * len(ranked) // 100) - 1)]) / D(1_000_000):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--rate", type=int, default=2, help="orders per second while broadcasting")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/trademaster_bench_ws")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    args = parser.parse_args()
    server, name = fresh_database(args.database_url)
    var = tempfile.mkdtemp(prefix="tm-bench-ws-")
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DJANGO_SETTINGS_MODULE": "trademaster.settings",
        "TRADEMASTER_VAR_DIR": var,
        "MARKET_TICK_MS": "0",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        tokens = setup_users(args.users)
        port = free_port()
        daphne = start(
            processes,
            [
                str(ROOT / ".venv/bin/daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "trademaster.asgi:application",
            ],
            env,
        )
        start(processes, [PY, "manage.py", "relay_outbox", "--idle-ms", "5"], env)
        wait_port(port)
        return asyncio.run(measure(args, port, daphne.pid, tokens))
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)
        from django.db import connections

        connections.close_all()
        drop_database(server, name)


def start(processes: list, argv: list[str], env: dict) -> subprocess.Popen:
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    processes.append(process)
    return process


def wait_port(port: int, timeout_s: int = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # poll interval while the server starts


def setup_users(n: int) -> list[tuple[int, str]]:
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from risk.models import RiskProfile
    from trademaster.management.commands.issue_token import token_issue

    users = []
    for i in range(n):
        user = get_user_model().objects.create_user(f"ws{i}", password=None)
        RiskProfile.objects.update_or_create(user=user, defaults={"max_orders_per_minute": None})
        users.append((user.pk, token_issue(user=user, scopes=["read"])))
    return users


async def open_socket(port: int, token: str, user_id: int):
    import websockets

    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/trading/stream?access_token={token}",
        open_timeout=30,
        ping_interval=None,
        max_queue=None,
        origin=f"http://127.0.0.1:{port}",
    )
    await ws.send(
        json.dumps(
            {"action": "subscribe", "topics": ["orders", "fills", "positions"], "userId": str(user_id)}
        )
    )
    while json.loads(await ws.recv()).get("type") != "SUBSCRIBED":
        pass
    return ws


async def measure(args: argparse.Namespace, port: int, daphne_pid: int, tokens) -> int:
    base_rss = rss_kb(daphne_pid)
    sockets: list[tuple[int, object]] = []
    failure = ""
    while len(sockets) < args.connections:
        step = min(STEP, args.connections - len(sockets))
        owners = [tokens[(len(sockets) + i) % len(tokens)] for i in range(step)]
        results = await asyncio.gather(*(open_socket(port, t, u) for u, t in owners), return_exceptions=True)
        opened = [
            (u, r) for (u, _), r in zip(owners, results, strict=True) if not isinstance(r, BaseException)
        ]
        sockets += opened
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            failure = f"{len(errors)} of a step of {step} failed: {errors[0]!r}"
            break
    held_rss = rss_kb(daphne_pid)
    per_conn = D(held_rss - base_rss) / D(max(1, len(sockets)))
    print(f"WebSocket stream on one daphne process (Redis channel layer, relay_outbox), {args.users} users")
    print(f"  connections held: {len(sockets)} of {args.connections}" + (f" ({failure})" if failure else ""))
    print(
        f"  daphne RSS: {base_rss / 1024:.0f} MB idle, {held_rss / 1024:.0f} MB with them open: "
        f"{per_conn:.1f} KB per connection"
    )
    first, every = await broadcast(args, sockets)
    print(
        f"  {args.orders} MARKET orders at ~{args.rate}/s, each fill fanned out to "
        f"~{len(sockets) // args.users} sockets of its user"
    )
    print(
        f"  fill-to-client, first socket per fill: p50 {pct(first, 50)} ms, p99 {pct(first, 99)} ms "
        f"({len(first)} fills)"
    )
    print(
        f"  fill-to-client, every socket:          p50 {pct(every, 50)} ms, p99 {pct(every, 99)} ms "
        f"({len(every)} frames)"
    )
    for _, ws in sockets:
        await ws.close()
    expected = args.orders * (len(sockets) // args.users)
    return 0 if len(first) == args.orders and len(every) >= expected else 1


async def broadcast(args: argparse.Namespace, sockets) -> tuple[list[int], list[int]]:
    from asgiref.sync import sync_to_async

    first: dict[str, int] = {}
    every: list[int] = []

    async def reader(ws) -> None:
        async for raw in ws:
            received = time.time_ns()
            frame = json.loads(raw)
            if frame.get("type") != "FILL_NOTIFICATION":
                continue
            occurred = dt.datetime.fromisoformat(frame["occurred_at"])
            latency = received - int(occurred.timestamp() * 1_000_000) * 1000
            every.append(latency)
            first[frame["event_id"]] = min(latency, first.get(frame["event_id"], latency))

    readers = [asyncio.create_task(reader(ws)) for _, ws in sockets]
    place = sync_to_async(place_order, thread_sensitive=False)
    users = sorted({u for u, _ in sockets})
    for i in range(args.orders):
        await place(users[i % len(users)])
        await asyncio.sleep(1 / args.rate)  # pacing the load, not waiting for work
    deadline = time.monotonic() + 30
    expected = args.orders * (len(sockets) // len(users))
    while len(every) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling the counters until every frame has arrived
    for task in readers:
        task.cancel()
    return list(first.values()), every


def place_order(user_id: int) -> None:
    """A MARKET buy of 1 AAPL: it fills at once (fill, position and order events)."""
    from django.contrib.auth import get_user_model

    from orders.domain.enums import OrderType, Side
    from orders.domain.validation import OrderRequest
    from orders.services import Actor, order_place

    user = get_user_model().objects.get(pk=user_id)
    request = OrderRequest(
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D(1),
    )
    order_place(user=user, request=request, actor=Actor.for_user(user))


if __name__ == "__main__":
    raise SystemExit(main())
