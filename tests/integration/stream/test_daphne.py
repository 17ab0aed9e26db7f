"""The live stream over real sockets: daphne and ``manage.py relay_outbox`` as subprocesses, a
PostgreSQL database of this test's own, Redis, and the ``websockets`` client.

It needs no Django test database, so it runs (the same way) in the SQLite and the PostgreSQL runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .redis_support import REDIS_URL, redis_forget

ROOT = Path(__file__).resolve().parents[3]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
DAPHNE = str(ROOT / ".venv" / "bin" / "daphne")
STARTUP = 60  # seconds for daphne to answer HTTP
WAIT = 20  # seconds for any frame that must come

SEED = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from brokers.services import market_set_mid
from trademaster.management.commands.issue_token import token_issue
user = get_user_model().objects.create_user("streamer", password="pw-for-tests-1")
market_set_mid(symbol="AAPL", mid=Decimal("100.00"))
print(token_issue(user=user, scopes=["read", "trade"]))
"""


def postgres_server() -> str:
    """The server of DATABASE_URL when it is PostgreSQL, else the local default."""
    url = os.environ.get("DATABASE_URL", "")
    return url.rsplit("/", 1)[0] if url.startswith("postgres") else "postgres://postgres@127.0.0.1:5432"


@pytest.fixture
def e2e_database():
    """A fresh PostgreSQL database, dropped afterwards (even while daphne still holds connections)."""
    server, name = postgres_server(), f"tm_stream_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def server_env(e2e_database, tmp_path):
    prefix = f"tmstream-e2e-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DATABASE_URL": e2e_database,
        "REDIS_URL": REDIS_URL,
        "TRADEMASTER_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tests.integration.stream.daphne_settings",
        "TM_STREAM_CHANNEL_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
    }
    manage(env, "migrate", "--no-input", "-v", "0")
    yield env
    redis_forget(prefix)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def start(tmp_path):
    """Start a subprocess (output to a log file); every one is stopped at the end of the test."""
    started: list[subprocess.Popen] = []

    def start_(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("w")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(process)
        return process

    yield start_
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until_serving(process: subprocess.Popen, port: int, log: Path) -> None:
    """Poll daphne over HTTP until it answers; waiting on the process doubles as the poll interval."""
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/orders/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # 401 without a token: daphne is up
        except OSError:
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"daphne exited with {process.returncode}:\n{log.read_text()}")
    pytest.fail(f"daphne did not answer on port {port} within {STARTUP}s:\n{log.read_text()}")


def place_order(port: int, token: str) -> dict:
    body = json.dumps({"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "5"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/orders/",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert response.status == 201
        return json.loads(response.read())


async def frames_until_filled(ws) -> list[dict]:
    frames: list[dict] = []

    def filled() -> bool:
        types = {f["type"] for f in frames}
        orders = [f["data"]["order"]["status"] for f in frames if f["type"] == "ORDER_UPDATE"]
        return "FILL_NOTIFICATION" in types and "FILLED" in orders

    async def collect() -> None:
        while not filled():
            frames.append(json.loads(await ws.recv()))

    await asyncio.wait_for(collect(), WAIT)
    return frames


async def refused_anonymously(url: str, origin: str) -> tuple[dict, int | None]:
    async with connect(url, origin=origin, open_timeout=WAIT) as ws:
        error = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
        return error, closed.value.rcvd.code if closed.value.rcvd else None


def test_daphne_streams_an_api_order_to_token_clients_and_refuses_anonymous_ones(server_env, start, tmp_path):
    token = manage(server_env, "shell", "-c", SEED).strip().splitlines()[-1]
    port = free_port()
    daphne_cmd = [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "trademaster.asgi:application"]
    daphne = start("daphne", daphne_cmd, server_env)
    start("relay", [PYTHON, "manage.py", "relay_outbox", "--idle-ms", "20"], server_env)
    wait_until_serving(daphne, port, tmp_path / "daphne.log")
    url, origin = f"ws://127.0.0.1:{port}/trading/stream", f"http://127.0.0.1:{port}"

    async def scenario():
        anonymous = await refused_anonymously(url, origin)
        async with (
            connect(url, origin=origin, additional_headers={"Authorization": f"Bearer {token}"}) as by_header,
            connect(f"{url}?access_token={token}", origin=origin) as by_query,
        ):
            for ws in (by_header, by_query):
                await ws.send(json.dumps({"action": "subscribe", "topics": ["orders", "fills"]}))
                assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "SUBSCRIBED"
            order = await asyncio.to_thread(place_order, port, token)
            return anonymous, order, await frames_until_filled(by_header), await frames_until_filled(by_query)

    (error, code), order, by_header, by_query = asyncio.run(scenario())
    assert error["error"]["code"] == "unauthorized"
    assert code == 4401
    assert order["status"] == "FILLED"
    for frames in (by_header, by_query):
        fill = next(f for f in frames if f["type"] == "FILL_NOTIFICATION")
        assert fill["data"]["order"]["id"] == order["id"]
        assert fill["data"]["fill"]["quantity"] == "5.00000000"
    assert [f["event_id"] for f in by_header] == [f["event_id"] for f in by_query]
