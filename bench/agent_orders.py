"""Concurrent order requests through the trading agent and through its MCP server, on one process.

    .venv/bin/python bench/agent_orders.py [--n 1000 5000] [--via agent|mcp|both] [--users 50]
        [--database-url postgres://postgres@127.0.0.1:5432/tm_h_a3_bench] [--json PATH]

Each (path, N) pair runs in a child process of its own on a fresh PostgreSQL database (dropped and
created, migrated, dropped at the end; its name must contain "bench"):

- ``--via agent``: N ``trading_agent().execute(...)`` coroutines created at once and awaited with
  ``asyncio.gather`` in this process; the agent's own concurrency control does the rest.
- ``--via mcp``: daphne (one process, ``trademaster.asgi:application``) on the same database; one
  official MCP client session (``mcp.Client`` over streamable HTTP, a ``read,trade`` bearer token
  in its headers) per user, and the same N ``executeOrder`` calls fired at once over them;
  ``--mcp-connections`` (4) HTTP connections per session bound the calls in flight at the server.

The book: ``--users`` users (50) with their paper accounts (cash and buying power raised so that
buying power never refuses), fixed mids for five symbols (no market steps, so marks do not move),
and risk limits that bind: ``max_order_notional`` 5,000 (one request in ten asks for more) and a
``max_gross_exposure`` of 60% of what the user's requests within the order cap add up to, so
40-45% of the requests must be refused (N=1,000 and 5,000, 50 users). BUY orders only, half MARKET
and half marketable LIMIT (the mid + 1%, inside the 10% collar), each with its own client_order_id
(no duplicate rule).

Printed: completion time (first request sent to last answer), throughput, per-request latency
p50/p95/p99/max (nearest rank, ms), outcomes (filled / refused by an intended risk rule / errors by
kind: an outcome that is not ok for any other reason, an exception, an MCP error), and from the
database after the run: orders persisted against ok outcomes, orders with an agent actor in the
event log, and limit breaches per user: final gross exposure (positions and open orders from the
sources, ``risk.book.source_legs``, every symbol at its mid) above ``max_gross_exposure`` (at the
book's marks it is printed apart: see ``gross_at_mids``), any accepted order
with a notional above ``max_order_notional``, open orders above ``max_open_orders``, and the stored
risk book out of step with its sources. The requests only buy at fixed mids, so a user's gross
exposure only grows: the final figure is the highest the book ever reached, and a final figure
within the limit means no acceptance breached it. CPU: this process, daphne's, the database's
backends and the machine's busy share (``other``: processes outside the bench; high = disturbed).
No timed asserts: the exit status is 0 when there is no error and no breach.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from decimal import ROUND_UP, Decimal
from pathlib import Path

from benchdb import drop_database, free_port, fresh_database
from order_accept import CLK_TCK, NS, _descendants, _machine_ticks, _proc_cpu_ticks

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tm_h_a3_bench"
D = Decimal
MIDS = {
    "AAPL": D("200.00"),
    "MSFT": D("400.00"),
    "NVDA": D("150.00"),
    "AMZN": D("200.00"),
    "GOOGL": D("170.00"),
}
ORDER_CAP = D("5000")  # max_order_notional
GROSS_SHARE = D("0.6")  # max_gross_exposure = this share of the user's in-cap requested notional
OVERSIZED_EVERY = 10  # one request in ten is above the order cap
CASH = D("100000000")
INTENDED = ("MAX_GROSS_EXPOSURE", "MAX_ORDER_NOTIONAL")
STARTUP_S = 90


def pct(sorted_ns: list[int], p: int) -> int:
    """Nearest rank: the value at rank ceil(p * N / 100) of the sorted samples."""
    return sorted_ns[max(0, -(-p * len(sorted_ns) // 100) - 1)] if sorted_ns else 0


def ms(ns: int) -> str:
    return f"{D(ns) / D(1_000_000):.1f}"


# --- the plan: who orders what ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Planned:
    index: int
    user: int  # index of the user
    symbol: str
    order_type: str  # MARKET | LIMIT
    quantity: D
    price: D | None
    client_order_id: str
    oversized: bool


def plan(n: int, users: int, seed: int, tag: str) -> list[Planned]:
    rng = random.Random(seed)
    symbols = list(MIDS)
    out = []
    for i in range(n):
        symbol = symbols[rng.randrange(len(symbols))]
        mid = MIDS[symbol]
        oversized = i % OVERSIZED_EVERY == OVERSIZED_EVERY - 1
        if oversized:  # clearly above the cap: 1.2x .. 2x
            quantity = D(int((ORDER_CAP * D(rng.randint(12, 20)) / D(10) / mid).to_integral_value(ROUND_UP)))
        else:  # clearly within it, whatever the spread: at most 80% of the cap at the mid
            quantity = D(rng.randint(1, max(1, int(ORDER_CAP * D("0.8") / mid))))
        market = i % 2 == 0
        price = None if market else (mid * D("1.01")).quantize(D("0.01"), ROUND_UP)
        out.append(
            Planned(
                i, i % users, symbol, "MARKET" if market else "LIMIT", quantity, price, f"{tag}{i}", oversized
            )
        )
    return out


def gross_limits(requests: list[Planned], users: int) -> list[D]:
    """Per user: GROSS_SHARE of the notional (at the mid) its in-cap requests add up to."""
    total = [D(0)] * users
    for r in requests:
        if not r.oversized:
            total[r.user] += r.quantity * MIDS[r.symbol]
    return [(t * GROSS_SHARE).quantize(D("0.01")) for t in total]


# --- results ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    latency_ns: int
    kind: str  # "filled" | "accepted:<STATUS>" | "refused" | "error"
    detail: str  # the rule codes of a refusal, the error's kind
    agent_ns: int | None = None  # the agent's own elapsed_ms of the request (from its deadline's start)


RULE_CODE = re.compile(r"\(([A-Z][A-Z_]{3,})\)")  # "... exceeds the limit of 5,000.00 (MAX_ORDER_NOTIONAL)."
STEP = re.compile(r"failed at (\w+)")


def _refusal(step: str | None, reasons: list[str]) -> str | None:
    """The intended rule codes when every reason is a refusal by an intended risk rule, else None.

    The step is "risk" (the agent's pre-check refused) or "execute" (the pre-check passed, and
    ``order_place``'s own check under the user's risk lock refused: the order is REJECTED with
    the rule's message); the detail says which.
    """
    codes = {c for r in reasons for c in RULE_CODE.findall(r)}
    if step not in ("risk", "execute") or not codes or not codes <= set(INTENDED):
        return None
    if any(not RULE_CODE.search(r) for r in reasons):  # a reason that names no rule
        return None
    return f"{step}: {'+'.join(sorted(codes))}"


def classify(outcome: dict | None, error: str | None) -> tuple[str, str]:
    """An outcome (as_dict) or an error text (an MCP tool error, an exception) -> (kind, detail)."""
    if error is not None:
        step = STEP.search(error)
        tail = error.split(": ", 2)[-1] if step else error
        codes = _refusal(step.group(1) if step else None, [r for r in tail.split("; ") if r])
        return ("refused", codes) if codes else ("error", error[:160])
    assert outcome is not None
    if outcome.get("ok"):
        status = outcome.get("status") or "?"
        return ("filled", status) if status == "FILLED" else (f"accepted:{status}", status)
    reasons = [str(r) for r in outcome.get("reasons") or ()]
    step = outcome.get("failed_step")
    codes = _refusal(step, reasons)
    if codes:
        return "refused", codes
    return "error", f"{step} [order {outcome.get('status') or 'none'}]: {reasons[0][:140] if reasons else ''}"


# --- CPU --------------------------------------------------------------------------------------


class Cpu:
    """CPU ticks of some processes, the bench database's backends and the machine."""

    def __init__(self, pids: dict[str, int], db_backends) -> None:
        self.pids, self.db_backends = pids, db_backends

    def snap(self) -> dict:
        busy, total = _machine_ticks()
        parties = {
            name: {p: _proc_cpu_ticks(p) for p in _descendants(pid)} for name, pid in self.pids.items()
        }
        parties["database"] = {p: _proc_cpu_ticks(p) for p in self.db_backends()}
        return {"parties": parties, "busy": busy, "total": total}

    @staticmethod
    def spent(a: dict, b: dict) -> dict[str, int]:
        out = {}
        for name, after in b["parties"].items():
            before = a["parties"].get(name, {})
            out[name] = sum(t - before.get(p, 0) for p, t in after.items()) * NS // CLK_TCK
        busy = (b["busy"] - a["busy"]) * NS // CLK_TCK
        total = (b["total"] - a["total"]) * NS // CLK_TCK
        out["busy_permille"] = busy * 1000 // total if total else 0
        out["other_permille"] = (
            max(busy - sum(v for k, v in out.items() if "permille" not in k), 0) * 1000 // (total or 1)
        )
        return out


# --- the two paths ----------------------------------------------------------------------------


def order_request(r: Planned):
    from orders.domain.enums import OrderType, Side, TimeInForce
    from orders.domain.validation import OrderRequest

    return OrderRequest(
        symbol=r.symbol,
        side=Side.BUY,
        order_type=OrderType(r.order_type),
        quantity=r.quantity,
        time_in_force=TimeInForce.DAY,
        price=r.price,
        client_order_id=r.client_order_id,
    )


async def fire_agent(requests: list[Planned], identities: list) -> tuple[list[Result], int, dict]:
    from agentos.agent import AgentOrder, trading_agent

    agent = trading_agent()
    orders = [AgentOrder(request=order_request(r)) for r in requests]
    latency = [0] * len(requests)
    clock = time.perf_counter_ns

    async def one(i: int):
        start = clock()
        try:
            return await agent.execute(orders[i], agent=identities[requests[i].user])
        finally:
            latency[i] = clock() - start

    started = clock()
    outs = await asyncio.gather(*(one(i) for i in range(len(requests))), return_exceptions=True)
    wall = clock() - started
    results = []
    for i, out in enumerate(outs):
        if isinstance(out, BaseException):
            kind, detail = classify(None, f"{type(out).__name__}: {out}")
            results.append(Result(latency[i], kind, detail))
        else:
            kind, detail = classify(out.as_dict(), None)
            results.append(Result(latency[i], kind, detail, int(out.elapsed_ms * 1_000_000)))
    return results, wall, agent.health()


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def mcp_arguments(schema: dict, r: Planned, user_id: int) -> dict:
    """Fill executeOrder's input schema (whatever its spelling) from the planned request."""
    values = {
        "symbol": r.symbol,
        "side": "BUY",
        "ordertype": r.order_type,
        "type": r.order_type,
        "quantity": str(r.quantity),
        "qty": str(r.quantity),
        "price": None if r.price is None else str(r.price),
        "limitprice": None if r.price is None else str(r.price),
        "timeinforce": "DAY",
        "tif": "DAY",
        "clientorderid": r.client_order_id,
        "userid": user_id,
        "preview": False,
    }

    def fill(props: dict) -> dict:
        out = {}
        for name, spec in props.items():
            if isinstance(spec, dict) and spec.get("type") == "object" and "properties" in spec:
                out[name] = fill(spec["properties"])
            elif values.get(_norm(name)) is not None:
                out[name] = values[_norm(name)]
        return out

    return fill(schema.get("properties", {}))


def _outcome_of(result) -> tuple[dict | None, str | None]:
    """(outcome dict, error text) from a CallToolResult."""
    text = " ".join(getattr(c, "text", "") for c in result.content or ())
    data = result.structured_content
    if isinstance(data, dict) and "ok" not in data and isinstance(data.get("result"), dict):
        data = data["result"]
    if isinstance(data, dict) and "ok" in data:
        return data, None
    if not result.is_error and text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "ok" in parsed:
            return parsed, None
    return None, ("MCP tool error: " if result.is_error else "MCP unexpected result: ") + text[:300]


async def fire_mcp(
    requests: list[Planned], url: str, tokens: list[str], user_ids: list[int], connections: int
) -> tuple[list[Result], int, dict]:
    import contextlib

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for token in tokens:
            http = httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"},
                timeout=httpx2.Timeout(30, read=300, pool=None),
                limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
            )
            await stack.enter_async_context(http)
            clients.append(
                await stack.enter_async_context(Client(streamable_http_client(url, http_client=http)))
            )
        tools = {t.name: t for t in (await clients[0].list_tools()).tools}
        if "executeOrder" not in tools:
            raise SystemExit(f"no executeOrder tool; tools: {sorted(tools)}")
        schema = tools["executeOrder"].input_schema
        args = [mcp_arguments(schema, r, user_ids[r.user]) for r in requests]
        latency = [0] * len(requests)
        agent_ns: list[int | None] = [None] * len(requests)
        clock = time.perf_counter_ns

        async def one(i: int):
            start = clock()
            try:
                return await clients[requests[i].user].call_tool("executeOrder", args[i])
            finally:
                latency[i] = clock() - start

        started = clock()
        outs = await asyncio.gather(*(one(i) for i in range(len(requests))), return_exceptions=True)
        wall = clock() - started
        results = []
        for i, out in enumerate(outs):
            if isinstance(out, BaseException):
                kind, detail = classify(None, f"{type(out).__name__}: {out}")
            else:
                outcome, error = _outcome_of(out)
                kind, detail = classify(outcome, error)
                elapsed = (outcome or {}).get("elapsed_ms")
                agent_ns[i] = int(D(elapsed) * 1_000_000) if elapsed is not None else None
            results.append(Result(latency[i], kind, detail, agent_ns[i]))
        health: dict = {}
        if "getAgentHealth" in tools:
            got = await clients[0].call_tool("getAgentHealth", {})
            health = got.structured_content if isinstance(got.structured_content, dict) else {}
        return results, wall, {"schema_args": args[0], "tools": sorted(tools), **health}


# --- the server (MCP path) ----------------------------------------------------------------------


class Daphne:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log_path = log
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(Path(PYTHON).parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "--verbosity=0",
             "trademaster.asgi:application"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/orders/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # 401 without a token: it serves
            except OSError:
                try:
                    self.proc.wait(timeout=0.1)  # doubles as the poll interval
                except subprocess.TimeoutExpired:
                    continue
                raise SystemExit(f"daphne exited with {self.proc.returncode}:\n{self.tail()}") from None
        raise SystemExit(f"daphne not answering after {STARTUP_S}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own process group only
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# --- one run (child process) --------------------------------------------------------------------


def setup_book(users: int, requests: list[Planned], tag: str) -> list:
    from django.contrib.auth import get_user_model

    from brokers.models import BrokerAccount, PaperBalance
    from brokers.services import broker_accounts_provision_paper, market_set_mid
    from risk.models import RiskProfile

    for symbol, mid in MIDS.items():
        market_set_mid(symbol=symbol, mid=mid)
    limits = gross_limits(requests, users)
    made = []
    for u in range(users):
        user = get_user_model().objects.create_user(f"{tag}-user{u}", password=None)
        broker_accounts_provision_paper(user=user)
        accounts = BrokerAccount.objects.filter(user=user)
        PaperBalance.objects.filter(account__in=accounts).update(cash=CASH)
        accounts.update(buying_power=CASH, cash=CASH, total_value=CASH)
        RiskProfile.objects.update_or_create(
            user=user, defaults={"max_gross_exposure": limits[u], "max_order_notional": ORDER_CAP}
        )
        made.append(user)
    return made


def gross_at_mids(legs) -> D:
    """Gross exposure with every symbol at its (fixed) mid: max(|net + open buys|, |net - open
    sells|) per symbol, as ``risk.domain.book`` works it out, at the fair price instead of the marks."""
    by_symbol: dict[str, list] = {}
    for leg in legs:
        by_symbol.setdefault(leg.symbol, []).append(leg)
    total = D(0)
    for symbol, group in by_symbol.items():
        net = sum((g.net for g in group), D(0))
        long_case = net + sum((g.open_buy for g in group), D(0))
        short_case = net - sum((g.open_sell for g in group), D(0))
        total += max(abs(long_case), abs(short_case)) * MIDS[symbol]
    return total


def verify(users: list, tag: str) -> dict:
    """From the database: orders of the run, agent actors, limit breaches per user."""
    from orders.domain.enums import OPEN_STATUSES
    from orders.models import Order, OrderEvent
    from risk.book import risk_book_verify, source_legs
    from risk.domain.book import totals_of
    from risk.models import RiskProfile

    orders = Order.objects.filter(client_order_id__startswith=tag)
    statuses = Counter(orders.values_list("status", flat=True))
    rejected_by = Counter(
        "+".join(sorted(set(RULE_CODE.findall(reason or "")))) or (reason or "")[:80]
        for reason in orders.filter(status="REJECTED").values_list("status_reason", flat=True)
    )
    agent_actor = (
        OrderEvent.objects.filter(order__in=orders, actor_type="AGENT").values("order_id").distinct().count()
    )
    accepted = orders.exclude(status__in=["REJECTED", "PENDING_NEW", "NEW"])
    breaches: Counter[str] = Counter()
    worst: list[str] = []
    over_at_marks: list[D] = []
    open_values = [s.value for s in OPEN_STATUSES]
    for user in users:
        profile = RiskProfile.objects.get(user=user)
        legs = source_legs(user.pk)
        limit = profile.max_gross_exposure
        at_mid = gross_at_mids(legs)
        if limit is not None and at_mid > limit:
            breaches["MAX_GROSS_EXPOSURE"] += 1
            worst.append(f"{user.username}: gross at the mids {at_mid} > {limit}")
        at_marks = totals_of(legs).gross
        if limit is not None and at_marks > limit:
            over_at_marks.append(at_marks - limit)
        for o in accepted.filter(user=user).values("quantity", "price", "average_fill_price", "symbol"):
            reference = o["price"] or o["average_fill_price"] or MIDS[o["symbol"]]
            if (
                profile.max_order_notional is not None
                and o["quantity"] * reference > profile.max_order_notional
            ):
                breaches["MAX_ORDER_NOTIONAL"] += 1
        open_count = Order.objects.filter(user=user, status__in=open_values).count()
        if profile.max_open_orders is not None and open_count > profile.max_open_orders:
            breaches["MAX_OPEN_ORDERS"] += 1
        if not risk_book_verify(user_id=user.pk):
            breaches["risk book out of step"] += 1
    return {
        "orders": orders.count(),
        "statuses": dict(statuses),
        "rejected_by": dict(rejected_by.most_common(8)),
        "with_agent_actor": agent_actor,
        "breaches": dict(breaches),
        "breach_examples": worst[:5],
        "over_at_marks": [len(over_at_marks), str(max(over_at_marks, default=D(0)).quantize(D("0.01")))],
    }


def run_one(args: argparse.Namespace) -> dict:
    via, n = args.via, args.n[0]
    var_dir = tempfile.mkdtemp(prefix=f"tm-bench-agent-{via}-")
    url = args.database_url
    server, name = fresh_database(url)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="trademaster.settings", TRADEMASTER_VAR_DIR=var_dir, DATABASE_URL=url
    )
    sys.path.insert(0, str(ROOT))
    daphne = None
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection, connections

        call_command("migrate", verbosity=0)
        tag = f"AB{via[0].upper()}{n}-"
        requests = plan(n, args.users, args.seed, tag)
        users = setup_book(args.users, requests, tag.lower().rstrip("-"))
        pool = {
            "db_pool_max": settings.DATABASES["default"].get("OPTIONS", {}).get("pool", {}).get("max_size"),
            "AGENT_THREADS": settings.AGENT_THREADS,
            "AGENT_DEADLINE_SECONDS": str(settings.AGENT_DEADLINE_SECONDS),
        }

        def backends() -> list[int]:
            import psycopg

            with psycopg.connect(f"{server}", autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
                ).fetchall()
            return [r[0] for r in rows]

        pids = {"bench": os.getpid()}
        if via == "agent":
            from agentos.agent import agent_identity

            identities = [agent_identity(user=u) for u in users]
            connections.close_all()
            cpu = Cpu(pids, backends)
            before = cpu.snap()
            results, wall, health = asyncio.run(fire_agent(requests, identities))
            after = cpu.snap()
        else:
            from trademaster.management.commands.issue_token import token_issue

            tokens = [token_issue(user=u, scopes=["read", "trade"]) for u in users]
            connections.close_all()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            daphne = Daphne(env, Path(var_dir) / "daphne.log")
            daphne.wait_ready()
            pids["daphne"] = daphne.proc.pid
            cpu = Cpu(pids, backends)
            endpoint = f"http://127.0.0.1:{daphne.port}{args.mcp_path}"
            before = cpu.snap()
            results, wall, health = asyncio.run(
                fire_mcp(requests, endpoint, tokens, [u.pk for u in users], args.mcp_connections)
            )
            after = cpu.snap()
            daphne.stop()
            daphne = None
        connection.close()
        checked = verify(users, tag)
        spent = Cpu.spent(before, after)
        lat = sorted(r.latency_ns for r in results)
        inside = sorted(r.agent_ns for r in results if r.agent_ns is not None)
        kinds = Counter(r.kind for r in results)
        refused = Counter(r.detail for r in results if r.kind == "refused")
        errors = Counter(r.detail for r in results if r.kind == "error")
        ok = sum(c for k, c in kinds.items() if k == "filled" or k.startswith("accepted"))
        return {
            "via": via,
            "n": n,
            "users": args.users,
            "pool": pool,
            "wall_ns": wall,
            "throughput": n * NS / wall if wall else 0,
            "p50_ns": pct(lat, 50),
            "p95_ns": pct(lat, 95),
            "p99_ns": pct(lat, 99),
            "max_ns": lat[-1] if lat else 0,
            "agent_ms": [len(inside), *(ms(pct(inside, p)) for p in (50, 95, 99))],
            "ok": ok,
            "kinds": dict(kinds),
            "refused": dict(refused),
            "errors": dict(errors.most_common(12)),
            "error_count": sum(errors.values()),
            "cpu": spent,
            "db": checked,
            "health": health,
        }
    finally:
        if daphne is not None:
            print(daphne.tail(), file=sys.stderr)
            daphne.stop()
        from django.db import connections as conns

        conns.close_all()
        if not args.keep_db:
            drop_database(server, name)
        shutil.rmtree(var_dir, ignore_errors=True)


# --- the report ---------------------------------------------------------------------------------


def report(r: dict) -> None:
    db = r["db"]
    cpu = r["cpu"]
    breaches = sum(db["breaches"].values())
    cpu_text = ", ".join(
        f"{k} {D(v) / D(1_000_000) / D(r['n']):.1f}" for k, v in cpu.items() if "permille" not in k
    )
    print(f"\n== via {r['via']}: {r['n']} concurrent order requests, {r['users']} users; {r['pool']}")
    print(f"  completion {D(r['wall_ns']) / D(NS):.2f} s, throughput {r['throughput']:.1f} requests/s")
    print(
        f"  latency per request ms: p50 {ms(r['p50_ns'])}  p95 {ms(r['p95_ns'])}  p99 {ms(r['p99_ns'])}"
        f"  max {ms(r['max_ns'])}"
    )
    n_in, *agent_p = r["agent_ms"]
    print(
        f"  the agent's own elapsed_ms (its 30 s deadline's clock) over {n_in} outcomes: "
        f"p50 {agent_p[0]}  p95 {agent_p[1]}  p99 {agent_p[2]}"
    )
    print(f"  outcomes: {r['kinds']}")
    print(f"  refused by an intended risk rule: {sum(r['refused'].values())} {r['refused']}")
    print(f"  errors: {r['error_count']}")
    for detail, count in r["errors"].items():
        print(f"    {count:6d}  {detail}")
    print(
        f"  database: {db['orders']} orders of the run {db['statuses']}; ok outcomes {r['ok']}; "
        f"orders with an AGENT actor in the event log {db['with_agent_actor']}"
    )
    print(f"  REJECTED orders in the database by reason: {db['rejected_by']}")
    print(f"  limit breaches: {breaches} {db['breaches'] or ''}")
    over, most = db["over_at_marks"]
    print(
        f"  gross valued at the book's marks (highest fill price per symbol) above the limit: {over} user(s),"
        f" by at most {most}"
    )
    for line in db["breach_examples"]:
        print(f"    {line}")
    print(
        f"  CPU ms per request: {cpu_text}; machine busy {cpu['busy_permille'] / 10:.0f}% of 2, "
        f"other {cpu['other_permille'] / 10:.0f}%"
    )
    if r["health"]:
        print(f"  agent health after the run: {json.dumps(r['health'], default=str)[:400]}")


def table(rows: list[dict]) -> None:
    print(
        "\n  via     N      done s   req/s   p50 ms   p95 ms   p99 ms   max ms"
        "   filled refused errors breaches"
    )
    for r in rows:
        print(
            f"  {r['via']:6s} {r['n']:5d} {D(r['wall_ns']) / D(NS):9.2f} {r['throughput']:7.1f}"
            f" {ms(r['p50_ns']):>8s}"
            f" {ms(r['p95_ns']):>8s} {ms(r['p99_ns']):>8s} {ms(r['max_ns']):>8s} {r['ok']:8d}"
            f" {sum(r['refused'].values()):7d} {r['error_count']:6d} {sum(r['db']['breaches'].values()):8d}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000], help="concurrent requests per run")
    parser.add_argument("--via", choices=("agent", "mcp", "both"), default="both")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--mcp-path", default="/mcp/trading")
    parser.add_argument("--mcp-connections", type=int, default=4, help="HTTP connections per MCP client")
    parser.add_argument("--keep-db", action="store_true", help="keep the database (one run only)")
    parser.add_argument("--json", help="write every run's figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args), default=str))
        return 0
    vias = ["agent", "mcp"] if args.via == "both" else [args.via]
    rows = []
    for n in args.n:
        for via in vias:
            cmd = [PYTHON, __file__, "--child", "--n", str(n), "--via", via, "--users", str(args.users),
                   "--seed", str(args.seed), "--database-url", args.database_url, "--mcp-path", args.mcp_path,
                   "--mcp-connections", str(args.mcp_connections)]  # fmt: skip
            cmd += ["--keep-db"] if args.keep_db else []
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"\n== via {via}, N={n}: FAILED (exit {done.returncode})\n{done.stderr[-4000:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            report(row)
            rows.append(row)
    if rows:
        table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    bad = any(r["error_count"] or sum(r["db"]["breaches"].values()) for r in rows) or len(rows) < len(
        args.n
    ) * len(vias)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
