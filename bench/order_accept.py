"""Order accept latency through the REST API on loopback, against a floor endpoint in the same run.

    .venv/bin/python bench/order_accept.py [--orders 2000] [--concurrency 50]
        [--server gunicorn|daphne] [--database-url postgres://postgres@127.0.0.1:5432/trademaster_bench]

One run: drop and create a fresh database, migrate it, create one bench user (with a bearer token
and its paper accounts) per client, start the server on a free loopback port with
TRADEMASTER_BENCH_FLOOR=1, wait until it answers, warm up, then measure

- the floor: POST /api/v1/bench/floor/ (an authenticated view that inserts one row),
- order accept: POST /api/v1/orders/, a LIMIT buy far below the market (it rests, ACCEPTED),
- and, unless --no-market, MARKET orders alternating buy and sell (they fill, FILLED),

each sequentially (one keep-alive client, N requests) and with C concurrent keep-alive clients
(N requests in total), and print p50/p95/p99/max latency, throughput, errors, CPU per request of
the server, the database and the load generator, and the ratios order/floor. Then it checks that
the database holds exactly one order per accepted request, counts the SQL queries per request,
stops the server and drops the database, also on Ctrl-C or an error.

Percentiles are nearest-rank over all samples (the smallest sample with at least p% of the
samples at or below it), computed from the sorted integer nanoseconds of ``perf_counter_ns``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/trademaster_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
FLOOR_PATH = "/api/v1/bench/floor/"
ORDERS_PATH = "/api/v1/orders/"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NS = 1_000_000_000


# --- statistics ------------------------------------------------------------------------------------


def percentile(sorted_ns: list[int], p: int) -> int:
    """Nearest-rank percentile of already sorted samples (p in 1..100): exact, no interpolation."""
    rank = -(-p * len(sorted_ns) // 100)  # ceil(p * n / 100) in integers
    return sorted_ns[max(rank, 1) - 1]


def ms(ns: int) -> str:
    return f"{ns / 1_000_000:.2f}"


# --- CPU accounting (Linux /proc): where the time of a phase went ------------------------------------


def _proc_cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime, after the "(comm)" field


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    todo.extend(int(child) for child in fh.read().split())
            except OSError:
                pass
    return found


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclasses.dataclass
class CpuSnapshot:
    server: dict[int, int]
    database: dict[int, int]
    client_ns: int
    machine_busy: int
    machine_total: int


class CpuMeter:
    """CPU seconds of the server's processes, the bench database's backends and this process."""

    def __init__(self, server_pid: int, db_backends: Callable[[], list[int]]) -> None:
        self.server_pid = server_pid
        self.db_backends = db_backends

    def snapshot(self) -> CpuSnapshot:
        busy, total = _machine_ticks()
        return CpuSnapshot(
            server={pid: _proc_cpu_ticks(pid) for pid in _descendants(self.server_pid)},
            database={pid: _proc_cpu_ticks(pid) for pid in self.db_backends()},
            client_ns=time.process_time_ns(),
            machine_busy=busy,
            machine_total=total,
        )

    @staticmethod
    def spent(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, int]:
        """Nanoseconds of CPU per party between two snapshots; machine busy share in per mille."""

        def delta(a: dict[int, int], b: dict[int, int]) -> int:
            return sum(ticks - a.get(pid, 0) for pid, ticks in b.items()) * NS // CLK_TCK

        total = after.machine_total - before.machine_total
        spent = {
            "server": delta(before.server, after.server),
            "database": delta(before.database, after.database),
            "client": after.client_ns - before.client_ns,
        }
        busy_ns = (after.machine_busy - before.machine_busy) * NS // CLK_TCK
        total_ns = total * NS // CLK_TCK
        # CPU the machine spent on anything else (other users' jobs, PostgreSQL's background
        # writers): high values mean the figures of this phase are disturbed
        other_ns = max(busy_ns - sum(spent.values()), 0)
        spent["machine_permille"] = busy_ns * 1000 // total_ns if total_ns else 0
        spent["other_permille"] = other_ns * 1000 // total_ns if total_ns else 0
        return spent


# --- the database ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Database:
    url: str  # what the server gets as DATABASE_URL ("" for SQLite)
    name: str
    sqlite_path: Path | None = None

    @property
    def is_postgres(self) -> bool:
        return self.sqlite_path is None

    def admin_url(self) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))

    def conninfo(self) -> str:
        return urlunsplit(urlsplit(self.url)._replace(scheme="postgresql"))

    def create(self) -> None:
        if not self.is_postgres:
            return
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if not self.is_postgres:
            return
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def query(self, sql: str) -> list[tuple]:
        if self.is_postgres:
            with psycopg.connect(self.conninfo(), autocommit=True) as conn:
                return conn.execute(sql).fetchall()
        with contextlib.closing(sqlite3.connect(self.sqlite_path)) as conn:
            return conn.execute(sql).fetchall()

    def backend_pids(self) -> list[int]:
        if not self.is_postgres:
            return []
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            ).fetchall()
        return [row[0] for row in rows]


def database_for(url: str, var_dir: Path) -> Database:
    if url.startswith("sqlite"):
        return Database(url="", name="sqlite", sqlite_path=var_dir / "bench.sqlite3")
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise SystemExit(f"--database-url must be postgres://... or sqlite, not {url!r}")
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop and create database {name!r}: its name must contain 'bench'")
    return Database(url=urlunsplit(parts._replace(scheme="postgres")), name=name)


# --- the server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def server_command(args: argparse.Namespace, port: int) -> list[str]:
    bindir = Path(PYTHON).parent
    if args.server == "gunicorn":
        return [
            str(bindir / "gunicorn"),
            "trademaster.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            "--worker-class=gthread",
            f"--workers={args.workers}",
            f"--threads={args.threads}",
            "--keep-alive=75",  # seconds: the clients keep their connections across phases
            "--backlog=2048",
            "--no-control-socket",  # gunicorn 27 would otherwise share ~/.gunicorn/gunicorn.ctl
            "--log-level=warning",
        ]
    return [
        str(bindir / "daphne"),
        "--bind=127.0.0.1",
        f"--port={port}",
        "--verbosity=0",
        "trademaster.asgi:application",
    ]


class Server:
    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command, self.env, self.log_path = command, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        # own session: Ctrl-C in the terminal reaches the bench only, which then stops the server
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, base_url: str, timeout_s: int) -> None:
        deadline = time.monotonic() + timeout_s
        assert self.proc is not None
        with httpx.Client(base_url=base_url, timeout=2) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    client.get(FLOOR_PATH)  # any HTTP answer (401/405) means it serves
                    return
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"server not answering after {timeout_s}s:\n{self.tail()}"
                        ) from None
                    time.sleep(0.05)  # poll interval

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group only
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.log.close()


# --- load generation ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    latency_ns: int
    status: int
    body: bytes


@dataclasses.dataclass
class Phase:
    endpoint: str
    mode: str
    samples: list[Sample]
    wall_ns: int
    cpu: dict[str, int]
    expected_status: str | None  # the order status every response must carry, if any

    def errors(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for s in self.samples:
            if s.status != 201:
                found[f"HTTP {s.status}"] += 1
            elif self.expected_status is not None:
                try:
                    status = json.loads(s.body).get("status")
                except ValueError:
                    status = "unparsable body"
                if status != self.expected_status:
                    found[f"order {status}"] += 1
        return found


Request = tuple[str, bytes | None]  # path, JSON body


class LoadGenerator:
    """One keep-alive HTTP/1.1 httpx.Client per simulated client, each for its own bench user."""

    def __init__(self, base_url: str, tokens: list[str]) -> None:
        self.clients = [
            httpx.Client(
                base_url=base_url,
                http1=True,
                http2=False,
                timeout=httpx.Timeout(60),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=300),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            for token in tokens
        ]

    def close(self) -> None:
        for client in self.clients:
            client.close()

    @staticmethod
    def _run(client: httpx.Client, requests: list[Request], out: list[Sample]) -> None:
        post = client.post
        clock = time.perf_counter_ns
        for path, body in requests:
            try:
                start = clock()
                response = post(path, content=body)
                elapsed = clock() - start
                out.append(Sample(elapsed, response.status_code, response.content))
            except httpx.HTTPError as exc:
                out.append(Sample(clock() - start, 0, repr(exc).encode()))

    def run(self, per_client: list[list[Request]]) -> tuple[list[Sample], int]:
        """Send each client's requests in order, all clients at once; return samples and wall time."""
        outs: list[list[Sample]] = [[] for _ in per_client]
        if len(per_client) == 1:
            start = time.perf_counter_ns()
            self._run(self.clients[0], per_client[0], outs[0])
            return outs[0], time.perf_counter_ns() - start
        barrier = threading.Barrier(len(per_client) + 1)

        def worker(index: int) -> None:
            barrier.wait()
            self._run(self.clients[index], per_client[index], outs[index])

        threads = [
            threading.Thread(target=worker, args=(i,), daemon=True, name=f"client-{i}")
            for i in range(len(per_client))
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter_ns()
        for thread in threads:
            while thread.is_alive():  # join with a timeout keeps Ctrl-C responsive
                thread.join(0.5)
        wall = time.perf_counter_ns() - start
        return [s for out in outs for s in out], wall


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def floor_request(_: int, __: str) -> Request:
    return FLOOR_PATH, None


def limit_request(n: int, tag: str) -> Request:
    body = {
        "symbol": "AAPL",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": "1",
        "price": "1.00",  # far below the market (AAPL ~228): it rests, fills nothing, uses no cash
        "time_in_force": "GTC",
        "client_order_id": f"{tag}-{n}",
    }
    return ORDERS_PATH, json.dumps(body).encode()


def market_request(n: int, tag: str) -> Request:
    body = {
        "symbol": "AAPL",
        "side": "BUY" if n % 2 == 0 else "SELL",  # each client alternates: its position stays 0 or 1
        "order_type": "MARKET",
        "quantity": "1",
        "time_in_force": "DAY",
        "client_order_id": f"{tag}-{n}",
    }
    return ORDERS_PATH, json.dumps(body).encode()


@dataclasses.dataclass(frozen=True)
class Endpoint:
    name: str
    make: Callable[[int, str], Request]
    tag: str  # client_order_id prefix, so the database can be checked per endpoint
    expected_status: str | None


ENDPOINTS = {
    "floor": Endpoint("floor", floor_request, "floor", None),
    "limit": Endpoint("order LIMIT", limit_request, "lim", "ACCEPTED"),
    "market": Endpoint("order MARKET", market_request, "mkt", "FILLED"),
}


# --- the run ---------------------------------------------------------------------------------------


PROVISION = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from risk.models import RiskProfile
from trademaster.management.commands.issue_token import token_issue
tokens = []
for i in range(int(sys.argv[1])):
    user = get_user_model().objects.create_user(f"bench{i}", password=None)
    # every rule still runs; the bench user is an algorithm with room for thousands of resting orders
    RiskProfile.objects.update_or_create(
        user=user, defaults={"max_open_orders": None, "max_orders_per_minute": None}
    )
    tokens.append(token_issue(user=user, scopes=["read", "trade"]))
print(json.dumps(tokens))
"""


def run_python(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="requests per measured phase (>= 1)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients in the concurrent phases")
    parser.add_argument("--server", choices=["gunicorn", "daphne"], default="gunicorn")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="PostgreSQL database to drop, create and drop again (its name must contain 'bench'); "
        "'sqlite' for a throwaway SQLite file instead",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="cache for the order-entry throttle, as in production; '' for the in-process cache",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--warmup", type=int, default=0, help="warm-up requests per endpoint (default 10%%)")
    parser.add_argument("--no-market", action="store_true", help="skip the MARKET order phases")
    parser.add_argument("--keep-db", action="store_true", help="leave the database in place afterwards")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1:
        parser.error("--orders and --concurrency must be positive")
    return args


def measure(
    gen: LoadGenerator, meter: CpuMeter, endpoint: Endpoint, mode: str, n: int, clients: int
) -> Phase:
    # numbered per client from 0, so every MARKET client starts with a buy
    per_client = [
        [endpoint.make(i, f"{endpoint.tag}-{mode}-c{c}") for i in range(count)]
        for c, count in enumerate(split(n, clients))
    ]
    before = meter.snapshot()
    samples, wall = gen.run(per_client)
    after = meter.snapshot()
    return Phase(endpoint.name, mode, samples, wall, CpuMeter.spent(before, after), endpoint.expected_status)


def warm_up(gen: LoadGenerator, endpoint: Endpoint, n: int, clients: int) -> None:
    for mode, k in (("wseq", 1), ("wcon", clients)):
        per_client = [
            [endpoint.make(i, f"{endpoint.tag}-{mode}-c{c}") for i in range(count)]
            for c, count in enumerate(split(n, k))
        ]
        samples, _ = gen.run(per_client)
        bad = [s for s in samples if s.status != 201]
        if bad:
            raise RuntimeError(f"warm-up of {endpoint.name}: {len(bad)} failures, first: {bad[0]}")


def summarize(phase: Phase) -> dict[str, object]:
    ns = sorted(s.latency_ns for s in phase.samples)
    n = len(ns)
    cpu = phase.cpu
    return {
        "endpoint": phase.endpoint,
        "mode": phase.mode,
        "requests": n,
        "errors": sum(phase.errors().values()),
        "error_kinds": dict(phase.errors()),
        "p50_ns": percentile(ns, 50),
        "p95_ns": percentile(ns, 95),
        "p99_ns": percentile(ns, 99),
        "max_ns": ns[-1],
        "mean_ns": sum(ns) // n,
        "wall_ns": phase.wall_ns,
        "throughput_rps": n * NS / phase.wall_ns,
        "cpu_server_ns_per_req": cpu["server"] // n,
        "cpu_db_ns_per_req": cpu["database"] // n,
        "cpu_client_ns_per_req": cpu["client"] // n,
        "machine_busy_permille": cpu["machine_permille"],
        "machine_other_permille": cpu["other_permille"],
    }


def print_table(rows: list[dict[str, object]]) -> None:
    header = (
        f"{'endpoint':<13} {'mode':<10} {'n':>5} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'req/s':>7} | {'CPU ms/req: server':>18} {'db':>5} {'client':>6} "
        f"{'busy':>5} {'other':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['endpoint']:<13} {r['mode']:<10} {r['requests']:>5} {r['errors']:>4} "
            f"{ms(r['p50_ns']):>8} {ms(r['p95_ns']):>8} {ms(r['p99_ns']):>8} {ms(r['max_ns']):>8} "
            f"{r['throughput_rps']:>7.0f} | {ms(r['cpu_server_ns_per_req']):>18} "
            f"{ms(r['cpu_db_ns_per_req']):>5} {ms(r['cpu_client_ns_per_req']):>6} "
            f"{r['machine_busy_permille'] / 10:>4.0f}% {r['machine_other_permille'] / 10:>4.0f}%"
        )
        for kind, count in r["error_kinds"].items():  # type: ignore[union-attr]
            print(f"    error: {count} x {kind}")
    print(
        "latency: client-side, request sent to response read, nearest-rank percentiles; CPU ms/req:\n"
        "server processes, the bench database's PostgreSQL backends, this load generator; busy: the\n"
        "machine's CPU in use during the phase; other: of which by processes outside this bench"
    )


def print_ratios(rows: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    by = {(r["endpoint"], r["mode"]): r for r in rows}
    ratios: dict[str, dict[str, float]] = {}
    print("\nratios order / floor (same run):")
    for endpoint in ("order LIMIT", "order MARKET"):
        for mode in ("sequential", "concurrent"):
            order, floor = by.get((endpoint, mode)), by.get(("floor", mode))
            if order is None or floor is None:
                continue
            entry = {
                "p50": order["p50_ns"] / floor["p50_ns"],
                "p99": order["p99_ns"] / floor["p99_ns"],
                "throughput": order["throughput_rps"] / floor["throughput_rps"],
            }
            ratios[f"{endpoint} {mode}"] = entry
            print(
                f"  {endpoint:<13} {mode:<10}  p50 x{entry['p50']:.2f}   p99 x{entry['p99']:.2f}   "
                f"throughput x{entry['throughput']:.2f}"
            )
    return ratios


def verify(db: Database, sent: dict[str, int], floor_ok: int) -> list[str]:
    """Every accepted order request left exactly one order row; every floor call one ping."""
    problems = []
    print("\npersisted vs accepted (201) requests, warm-up included:")
    for tag, ok in sorted(sent.items()):
        (stored,) = db.query(f"SELECT count(*) FROM orders WHERE client_order_id LIKE '{tag}-%'")[0]
        flag = "ok" if stored == ok else "MISMATCH"
        print(f"  orders {tag + '-*':<18} accepted {ok:>6}  in database {stored:>6}  {flag}")
        if stored != ok:
            problems.append(f"orders {tag}: {ok} accepted, {stored} stored")
    (total,) = db.query("SELECT count(*) FROM orders")[0]
    print(f"  orders total               accepted {sum(sent.values()):>6}  in database {total:>6}")
    if total != sum(sent.values()):
        problems.append(f"orders: {sum(sent.values())} accepted, {total} stored")
    (pings,) = db.query("SELECT count(*) FROM trademaster_benchping")[0]
    print(f"  floor pings                accepted {floor_ok:>6}  in database {pings:>6}")
    if pings != floor_ok:
        problems.append(f"floor: {floor_ok} accepted, {pings} stored")
    statuses = db.query("SELECT order_type, status, count(*) FROM orders GROUP BY 1, 2 ORDER BY 1, 2")
    print("  order statuses: " + ", ".join(f"{t} {s} {c}" for t, s, c in statuses))
    return problems


def unwind_on_signals() -> None:
    """SIGINT (even if inherited as ignored), SIGTERM and SIGHUP unwind like Ctrl-C, so the finally
    block stops the server and drops the database."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unwind_on_signals()
    var_dir = Path(tempfile.mkdtemp(prefix="trademaster-bench-"))
    db = database_for(args.database_url, var_dir)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "trademaster.settings",
        "PYTHONPATH": str(ROOT),
        "TRADEMASTER_VAR_DIR": str(var_dir),  # throwaway secret and encryption keys
        "TRADEMASTER_BENCH_FLOOR": "1",
        "ORDER_ENTRY_RATE": "1000000/min",
        "DEBUG": "0",
        "DATABASE_URL": db.url,
    }
    if db.sqlite_path is not None:
        env["SQLITE_PATH"] = str(db.sqlite_path)
    if args.redis_url and redis_reachable(args.redis_url):
        env["REDIS_URL"] = args.redis_url
    else:
        env.pop("REDIS_URL", None)
        if args.redis_url:
            print(f"note: Redis at {args.redis_url} not reachable: in-process cache for the throttle")
    clients = args.concurrency
    warmup = args.warmup or max(args.orders // 10, 4 * clients)
    endpoints = [ENDPOINTS["floor"], ENDPOINTS["limit"]] + ([] if args.no_market else [ENDPOINTS["market"]])

    server: Server | None = None
    gen: LoadGenerator | None = None
    created = False
    problems: list[str] = []
    try:
        t0 = time.monotonic()
        db.create()
        created = True
        run_python(["manage.py", "migrate", "--no-input", "-v0"], env)
        tokens = json.loads(run_python(["-c", PROVISION, str(clients)], env).strip().splitlines()[-1])
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = Server(server_command(args, port), env, var_dir / "server.log")
        server.start()
        server.wait_ready(base_url, timeout_s=60)
        print(
            f"TradeMaster order accept bench: server {args.server}"
            + (
                f" (gthread, {args.workers} workers x {args.threads} threads)"
                if args.server == "gunicorn"
                else ""
            )
            + f", database {'PostgreSQL ' + db.name if db.is_postgres else 'SQLite'}"
            + f", throttle cache {'Redis' if 'REDIS_URL' in env else 'in-process'}"
            + f", {os.cpu_count()} CPUs; {args.orders} requests per phase, {clients} concurrent clients"
            + f"; set-up {time.monotonic() - t0:.1f}s"
        )
        gen = LoadGenerator(base_url, tokens)
        assert server.proc is not None
        meter = CpuMeter(server.proc.pid, db.backend_pids)

        for endpoint in endpoints:
            warm_up(gen, endpoint, warmup, clients)
        phases: list[Phase] = []
        # interleaved, so that drift on a shared machine hits floor and orders alike
        for mode, k in (("sequential", 1), ("concurrent", clients)):
            for endpoint in endpoints:
                phases.append(measure(gen, meter, endpoint, mode, args.orders, k))
                print(f"  measured {endpoint.name} {mode}", file=sys.stderr)
        gen.close()
        gen = None
        server.stop()

        rows = [summarize(p) for p in phases]
        print()
        print_table(rows)
        ratios = print_ratios(rows)

        floor_ok = sum(1 for p in phases if p.endpoint == "floor" for s in p.samples if s.status == 201)
        floor_ok += 2 * warmup
        sent: dict[str, int] = {}
        for endpoint in endpoints[1:]:
            ok = sum(1 for p in phases if p.endpoint == endpoint.name for s in p.samples if s.status == 201)
            sent[endpoint.tag] = ok + 2 * warmup
        problems += verify(db, sent, floor_ok)
        errors = sum(r["errors"] for r in rows)  # type: ignore[misc]
        print(f"\nerrors: {errors}")
        if errors:
            problems.append(f"{errors} failed requests")

        queries = json.loads(run_python(["bench/count_queries.py", "--json"], env).strip().splitlines()[-1])
        print("\nSQL queries per request (django.test.Client, whole stack, same database):")
        for name, result in queries.items():
            print(f"  {name:<22} {result['queries_per_request']}")

        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "server": args.server,
                        "workers": args.workers,
                        "threads": args.threads,
                        "orders": args.orders,
                        "concurrency": clients,
                        "rows": rows,
                        "ratios": ratios,
                        "queries": queries,
                        "problems": problems,
                    },
                    indent=2,
                )
            )
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        if gen is not None:
            gen.close()
        if server is not None:
            server.stop()
        if created and not args.keep_db:
            db.drop()
        shutil.rmtree(var_dir, ignore_errors=True)
    if problems:
        print("FAILED: " + "; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
