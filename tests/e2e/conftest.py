"""Browser tests of the trader pages: a live server and Playwright driving Debian's chromium.

The server is the real thing, started as subprocesses like ``scripts/run.sh`` does: ``migrate``,
``collectstatic``, a small seed, then ``daphne`` (pages, static files by whitenoise, the stream)
and ``manage.py run_market`` (the paper market matching resting orders). It runs on the pass's own
backend: a fresh PostgreSQL database of its own when DATABASE_URL is PostgreSQL (dropped at the
end), else a SQLite file in a temporary folder (the embedded default). No REDIS_URL: the
in-process channel layer, daphne tails the outbox itself. One server per test module and xdist
worker (free port, own database), shared by both viewports; each viewport logs in as its own
trader, so the runs never see each other's orders.

The test moves the market by writing an instrument's mid straight into that database; the seed
stops the random walk of the symbols the tests trade, so nothing fills by chance.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
DAPHNE = str(ROOT / ".venv" / "bin" / "daphne")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS") or ROOT / "var" / "e2e-artifacts")
STARTUP = 60  # seconds for daphne to answer and the market to tick
TIMEOUT_MS = 15_000  # Playwright actions and expect()
PASSWORD = "pw-for-e2e-1"

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1366, "height": 900}},
    "phone": {
        "viewport": {"width": 375, "height": 812},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}
TRADERS = {"desktop": "desk", "phone": "phone"}  # one trader per viewport

# the two traders (each gets the three default paper accounts), the quotes, a risk limit low
# enough for a deliberate rejection (an order of 100,000) yet above the confirmation threshold of
# the order form (ORDER_CONFIRM_NOTIONAL, 50,000), and no random walk for the traded symbols
SEED = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from brokers.models import Instrument
from brokers.services import market_set_mid
from risk.models import RiskProfile
for name in {sorted(TRADERS.values())!r}:
    user = get_user_model().objects.create_user(name, password={PASSWORD!r})
    RiskProfile.objects.update_or_create(user=user, defaults={{"max_order_notional": Decimal("75000")}})
market_set_mid(symbol="AAPL", mid=Decimal("100.00"))
market_set_mid(symbol="MSFT", mid=Decimal("300.00"))
market_set_mid(symbol="NVDA", mid=Decimal("150.00"))
assert Instrument.objects.filter(symbol__in=["AAPL", "MSFT", "NVDA"]).update(volatility_ticks=0) == 3
print("seeded")
"""

# variables of the caller's shell that must not reach the server
UNSET = (
    "DATABASE_URL",
    "SQLITE_PATH",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "PROMETHEUS_MULTIPROC_DIR",
    "TRADEMASTER_CLOCK_FILE",
    "TRADEMASTER_DEMO_BROKERS",
    "TRADEMASTER_PRODUCTION",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("postgres") else None


@dataclass
class LiveServer:
    url: str
    folder: Path
    database_url: str | None  # PostgreSQL, else the SQLite file below
    sqlite_path: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    # --- the market and the database, from the test's side -------------------------------------
    def _execute(self, query: str, params: tuple) -> list[tuple]:
        if self.database_url:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                cursor = conn.execute(query.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        with sqlite3.connect(self.sqlite_path, timeout=20) as conn:
            rows = conn.execute(query, params).fetchall()
        conn.close()
        return rows

    def set_mid(self, symbol: str, mid: str) -> None:
        """Move one instrument; the market runner matches resting paper orders on its next tick."""
        self._execute("UPDATE brokers_instrument SET mid = ? WHERE symbol = ?", (str(Decimal(mid)), symbol))
        assert self.mid(symbol) == Decimal(mid)

    def mid(self, symbol: str) -> Decimal:
        (value,) = self._execute("SELECT mid FROM brokers_instrument WHERE symbol = ?", (symbol,))[0]
        return Decimal(str(value))

    def order(self, pk: int) -> dict:
        query = "SELECT status, price, filled_quantity, average_fill_price FROM orders WHERE id = ?"
        status, price, filled, average = self._execute(query, (pk,))[0]
        return {
            "status": status,
            "price": None if price is None else Decimal(str(price)),
            "filled_quantity": Decimal(str(filled)),
            "average_fill_price": None if average is None else Decimal(str(average)),
        }

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.folder / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- processes --------------------------------------------------------------------------------
    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        with (self.folder / f"{name}.log").open("w") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def await_ready(self) -> None:
        """Until daphne answers over HTTP and the market runner has started; waiting on a process
        doubles as the poll interval, and a process that exits fails at once with its log."""
        deadline = time.monotonic() + STARTUP
        serving = ticking = False
        while time.monotonic() < deadline:
            if not serving:
                try:
                    with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                        serving = True
                except urllib.error.HTTPError:
                    serving = True
                except OSError:
                    pass
            ticking = ticking or "paper market running" in (self.folder / "market.log").read_text()
            if serving and ticking:
                return
            for name, process in self.processes.items():
                try:
                    process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.log_tail(name, 80)}")
        pytest.fail(
            f"the live server was not ready within {STARTUP}s (daphne serving: {serving}, "
            f"market running: {ticking}):\n{self.log_tail('daphne')}\n{self.log_tail('market')}"
        )


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def e2e_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e-server")
    server_pg = postgres_url()
    database_url = None
    if server_pg:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"tm_e2e_{worker}_{uuid.uuid4().hex[:10]}"
        server_root = server_pg.rsplit("/", 1)[0]
        with psycopg.connect(f"{server_root}/postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        database_url = f"{server_root}/{name}"
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    env.update(
        {
            "TRADEMASTER_VAR_DIR": str(folder / "var"),
            "TM_E2E_STATIC_ROOT": str(folder / "static"),
            "DJANGO_SETTINGS_MODULE": "tests.e2e.e2e_settings",
            "PYTHONPATH": str(ROOT),
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    port = free_port()
    server = LiveServer(
        url=f"http://127.0.0.1:{port}",
        folder=folder,
        database_url=database_url,
        sqlite_path=folder / "var" / "trademaster.sqlite3",
    )
    try:
        manage(env, "migrate", "--no-input", "-v", "0")
        manage(env, "collectstatic", "--no-input", "-v", "0")
        assert "seeded" in manage(env, "shell", "-c", SEED)
        server.start(
            "daphne", [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "trademaster.asgi:application"], env
        )
        server.start("market", [PYTHON, "manage.py", "run_market", "--interval-ms", "200"], env)
        server.await_ready()
        yield server
    finally:
        server.stop()
        if database_url:
            server_root, name = database_url.rsplit("/", 1)
            with psycopg.connect(f"{server_root}/postgres", autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request) -> str:
    return request.param


WIDE_ELEMENTS = """(inner) => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > inner + 1 && !e.closest('.table-wrap'))
    .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
      + (typeof e.className === 'string' && e.className.trim()
         ? '.' + e.className.trim().split(/\\s+/).join('.') : ''))"""


SMALL_TARGETS = """() => [...document.querySelectorAll(
      'a[href], button, input:not([type=hidden]), select, textarea, summary')]
    .filter(e => e.offsetParent !== null && !e.closest('.toasts'))
    .map(e => [e, e.getBoundingClientRect()])
    .filter(([e, r]) => r.width > 0 && r.right > 0 && r.bottom + window.scrollY > 0)
    .filter(([e, r]) => r.height < 44 || r.width < 44)
    .map(([e, r]) => `${Math.round(r.width)}x${Math.round(r.height)} ${e.tagName.toLowerCase()}`
      + (e.id ? '#' + e.id : '') + ' "' + (e.getAttribute('aria-label') || e.textContent || e.name || '')
        .trim().replace(/\\s+/g, ' ').slice(0, 40) + '"')"""


@dataclass
class Browsing:
    """One viewport's browser tab, its trader, and what went wrong in the page's scripts."""

    page: Page
    viewport: str
    username: str
    server: LiveServer
    page_errors: list[str]
    shots: list[Path] = field(default_factory=list)
    too_wide: list[str] = field(default_factory=list)

    def check_width(self) -> None:
        """The page must never scroll sideways (tables scroll inside their ``.table-wrap``);
        collected, and reported when the test ends, so one wide page does not hide later steps."""
        width, inner = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if width > inner:
            wide = self.page.evaluate(WIDE_ELEMENTS, inner)
            self.too_wide.append(f"{self.page.url}: scrollWidth {width} > {inner} ({', '.join(wide)})")

    def shot(self, number: int, name: str) -> Path:
        """A full-page PNG as ``$E2E_ARTIFACTS/<viewport>/<NN>-<name>.png``, and next to it
        ``<NN>-<name>.targets.txt`` (touch viewports) listing the visible controls smaller than a
        44 px touch target (a note for a human, not an assertion: inline links are exempt)."""
        path = ARTIFACTS / self.viewport / f"{number:02d}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        small = self.page.evaluate(SMALL_TARGETS) if VIEWPORTS[self.viewport].get("has_touch") else []
        notes = path.with_suffix(".targets.txt")
        if small:
            notes.write_text("\n".join(small) + "\n")
        else:
            notes.unlink(missing_ok=True)
        self.shots.append(path)
        return path


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def browsing(request, browser: Browser, e2e_server: LiveServer, viewport: str):
    context = browser.new_context(base_url=e2e_server.url, **VIEWPORTS[viewport])
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())  # a confirm() on cancel, if a page asks one
    browsing = Browsing(page, viewport, TRADERS[viewport], e2e_server, errors)
    try:
        yield browsing
        if request.node.stash.get(FAILED, False):  # what the page showed when the test failed
            name = re.sub(r"\W+", "-", request.node.originalname)
            path = ARTIFACTS / viewport / f"failed-{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path), full_page=True)
    finally:
        context.close()
    # checked on every page the test visited, even when a later step failed
    problems = [f"uncaught script error: {e}" for e in errors] + browsing.too_wide
    if problems:
        pytest.fail("\n".join(problems))


# --- artifacts and diagnostics --------------------------------------------------------------------
def pytest_sessionstart(session):
    """Fresh screenshots each run: cleared by the controlling process (not by xdist workers)."""
    if not hasattr(session.config, "workerinput") and ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workerinput"):
        return
    pngs = sorted(ARTIFACTS.glob("*/*.png")) if ARTIFACTS.exists() else []
    if pngs:
        terminalreporter.write_sep("-", "e2e screenshots")
        terminalreporter.write_line(f"{len(pngs)} screenshots in {ARTIFACTS}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed e2e test carries the tails of the server's logs."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    server = item.funcargs.get("e2e_server") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(server, LiveServer):
        for name in ("daphne", "market"):
            report.sections.append((f"{name} log (tail)", server.log_tail(name)))
    return report


NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def number_in(text: str) -> Decimal:
    """The first number of a formatted text ("$1,234.50", "10 @ 85.02")."""
    found = NUMBER.search(text.replace("\u2212", "-"))
    assert found, f"no number in {text!r}"
    return Decimal(found.group().replace(",", ""))
