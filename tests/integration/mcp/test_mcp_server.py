"""The MCP server over real loopback HTTP: daphne as a subprocess, the official MCP client.

One server per module, on a database of its own: a throwaway PostgreSQL database when DATABASE_URL
is PostgreSQL, else a SQLite file. It needs no Django test database, so it runs the same way in the
SQLite and the PostgreSQL runs (and under xdist: free ports, unique database names).
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
from decimal import Decimal
from pathlib import Path

import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from psycopg import sql

ROOT = Path(__file__).resolve().parents[3]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
DAPHNE = str(ROOT / ".venv" / "bin" / "daphne")
STARTUP = 60  # seconds for daphne to answer HTTP
PATH = "/mcp/trading"

SEED = """
import json
from decimal import Decimal
from django.contrib.auth import get_user_model
from brokers.services import market_set_mid
from trademaster.management.commands.issue_token import token_issue
User = get_user_model()
a = User.objects.create_user("agent-user-a", password="pw-for-tests-1")
b = User.objects.create_user("agent-user-b", password="pw-for-tests-1")
market_set_mid(symbol="AAPL", mid=Decimal("100.00"))
market_set_mid(symbol="MSFT", mid=Decimal("200.00"))
print(json.dumps({
    "a": a.pk,
    "b": b.pk,
    "b_broker": b.broker_accounts.order_by("id").first().pk,
    "trade": token_issue(user=a, scopes=["read", "trade"], application_name="strategy-bot"),
    "read": token_issue(user=a, scopes=["read"], application_name="strategy-bot"),
    "trade_b": token_issue(user=b, scopes=["read", "trade"], application_name="other-bot"),
}))
"""


def postgres_server() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url.rsplit("/", 1)[0] if url.startswith("postgres") else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_until_serving(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer: daphne is up
        except OSError:
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"daphne exited with {process.returncode}:\n{log.read_text()}")
    pytest.fail(f"daphne did not answer on port {port} within {STARTUP}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """daphne on a free port with a seeded database: (url, seed dict)."""
    tmp = tmp_path_factory.mktemp("mcp")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH"}}
    env.update(
        TRADEMASTER_VAR_DIR=str(tmp),
        DJANGO_SETTINGS_MODULE="trademaster.settings",
        PYTHONPATH=str(ROOT),
    )
    pg, name = postgres_server(), f"tm_mcp_e2e_{uuid.uuid4().hex[:10]}"
    if pg:
        with psycopg.connect(f"{pg}/postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        env["DATABASE_URL"] = f"{pg}/{name}"
    else:
        env["SQLITE_PATH"] = str(tmp / "mcp.sqlite3")
    daphne = None
    try:
        manage(env, "migrate", "--no-input", "-v", "0")
        seed = json.loads(manage(env, "shell", "-c", SEED).strip().splitlines()[-1])
        port = free_port()
        log_path = tmp / "daphne.log"
        with log_path.open("w") as log:
            daphne = subprocess.Popen(
                [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "trademaster.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_serving(daphne, port, log_path)
        yield f"http://127.0.0.1:{port}{PATH}", seed
    finally:
        if daphne is not None:
            daphne.terminate()
            try:
                daphne.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daphne.kill()
                daphne.wait(timeout=10)
        if pg:
            with psycopg.connect(f"{pg}/postgres", autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run(scenario):
    return asyncio.run(asyncio.wait_for(scenario, 60))


def client(url: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60))
    return Client(streamable_http_client(url, http_client=http))


async def call(url: str, token: str, tool: str, args: dict | None = None):
    async with client(url, token) as c:
        return await c.call_tool(tool, args or {})


def ok(result) -> dict:
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    return " ".join(getattr(c, "text", "") for c in result.content)


# --- the tests ---------------------------------------------------------------------------------


def test_lists_tools_with_schemas_and_annotations(server):
    url, seed = server

    async def scenario():
        async with client(url, seed["read"]) as c:
            return (await c.list_tools()).tools, (await c.list_resource_templates()).resource_templates

    tools, templates = run(scenario())
    by_name = {t.name: t for t in tools}
    assert {
        "executeOrder",
        "cancelOrder",
        "modifyOrder",
        "getOrder",
        "getPositions",
        "performRiskCheck",
        "getCapabilities",
        "getAgentHealth",
        "getOpenOrders",
        "getAccountSummary",
    } <= set(by_name)
    execute = by_name["executeOrder"].input_schema
    assert {"symbol", "side", "orderType", "quantity"} <= set(execute["required"])
    assert execute["properties"]["quantity"]["type"] == "string"  # decimals as strings
    assert execute["properties"]["preview"]["default"] is False
    assert by_name["getPositions"].input_schema["required"] == ["userId"]
    for name in ("getOrder", "getPositions", "performRiskCheck", "getCapabilities", "getAgentHealth"):
        assert by_name[name].annotations.read_only_hint is True, name
    assert by_name["executeOrder"].annotations.read_only_hint is False
    assert by_name["executeOrder"].annotations.idempotent_hint is False
    assert by_name["cancelOrder"].annotations.destructive_hint is True
    assert by_name["cancelOrder"].annotations.idempotent_hint is True
    assert all(t.description for t in tools)
    assert {t.uri_template for t in templates} == {
        "trading://users/{userId}/orders/open",
        "trading://users/{userId}/account/summary",
    }


def test_market_order_fills_with_the_agent_as_actor_and_shows_in_positions(server):
    url, seed = server

    async def scenario():
        async with client(url, seed["trade"]) as c:
            placed = await c.call_tool(
                "executeOrder", {"symbol": "AAPL", "side": "BUY", "orderType": "MARKET", "quantity": "5"}
            )
            order_id = ok(placed)["order_id"]
            order = await c.call_tool("getOrder", {"orderId": order_id})
            positions = await c.call_tool("getPositions", {"userId": seed["a"]})
            summary = await c.call_tool("getAccountSummary", {})
            return ok(placed), ok(order), ok(positions), ok(summary)

    placed, order, positions, summary = run(scenario())
    assert placed["ok"] is True and placed["status"] == "FILLED"
    assert order["status"] == "FILLED"
    assert order["filled_quantity"] == "5.00000000"
    actors = {(e["actor_type"], e["actor_label"]) for e in order["events"]}
    assert ("AGENT", "strategy-bot (agent)") in actors
    assert not any(kind == "USER" for kind, _ in actors)
    aapl = [p for p in positions["positions"] if p["symbol"] == "AAPL"]
    assert sum(Decimal(p["quantity"]) for p in aapl) == Decimal(5)
    assert summary["userId"] == seed["a"] and summary["accounts"]


def test_preview_places_nothing_and_returns_assessment_and_route(server):
    url, seed = server
    args = {
        "symbol": "MSFT",
        "side": "BUY",
        "orderType": "LIMIT",
        "quantity": "3",
        "price": "150",
        "preview": True,
    }

    async def scenario():
        async with client(url, seed["read"]) as c:  # preview needs no trade scope
            before = ok(await c.call_tool("getAccountSummary", {}))["openOrders"]
            preview = ok(await c.call_tool("executeOrder", args))
            after = ok(await c.call_tool("getOpenOrders", {}))
            return before, preview, after

    before, preview, after = run(scenario())
    assert preview["preview"] is True
    assert preview["order_id"] is None
    assert preview["approved"] is True
    assert preview["broker_id"] and preview["broker"]
    assert len(after["orders"]) == before
    assert not [o for o in after["orders"] if o["symbol"] == "MSFT"]


def test_risk_check_refuses_an_over_limit_order_with_the_rule_message(server):
    url, seed = server
    args = {"symbol": "AAPL", "side": "BUY", "orderType": "MARKET", "quantity": "5000"}  # 500,000 notional

    result = ok(run(call(url, seed["read"], "performRiskCheck", args)))
    assert result["approved"] is False
    rules = {r["rule"]: r["message"] for r in result["reasons"]}
    assert rules.get("MAX_ORDER_NOTIONAL")
    assert result["broker_id"]


def test_cancel_and_modify_a_resting_limit_order(server):
    url, seed = server
    limit = {"symbol": "AAPL", "side": "BUY", "orderType": "LIMIT", "quantity": "2", "price": "50"}

    async def scenario():
        async with client(url, seed["trade"]) as c:
            placed = ok(await c.call_tool("executeOrder", limit))
            modified = await c.call_tool("modifyOrder", {"orderId": placed["order_id"], "price": "55"})
            cancelled = await c.call_tool("cancelOrder", {"orderId": placed["order_id"]})
            order = ok(await c.call_tool("getOrder", {"orderId": placed["order_id"]}))
            return placed, ok(modified), ok(cancelled), order

    placed, modified, cancelled, order = run(scenario())
    assert placed["status"] not in {"FILLED", "REJECTED", "CANCELLED"}
    assert modified["price"] == "55.00000000"
    assert cancelled["status"] in {"CANCELLED", "PENDING_CANCEL"}
    assert order["status"] == "CANCELLED"
    labels = {e["actor_label"] for e in order["events"] if e["actor_type"] == "AGENT"}
    assert labels == {"strategy-bot (agent)"}
    assert not any(e["actor_type"] == "USER" for e in order["events"])


def test_no_token_or_a_bad_token_is_refused_with_401(server):
    url, _ = server
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        request = urllib.request.Request(
            url,
            data=b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}',
            headers={
                **headers,
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")

    async def scenario():
        async with client(url, None) as c:
            await c.list_tools()

    with pytest.raises(Exception):  # noqa: B017 - the client raises its own transport error on 401
        run(scenario())


def test_read_only_token_cannot_trade(server):
    url, seed = server

    async def scenario():
        async with client(url, seed["read"]) as c:
            before = ok(await c.call_tool("getOpenOrders", {}))["orders"]
            refused = await c.call_tool(
                "executeOrder",
                {"symbol": "AAPL", "side": "BUY", "orderType": "LIMIT", "quantity": "1", "price": "40"},
            )
            cancel = await c.call_tool("cancelOrder", {"orderId": 1})
            after = ok(await c.call_tool("getOpenOrders", {}))["orders"]
            return before, refused, cancel, after

    before, refused, cancel, after = run(scenario())
    assert "this token lacks the trade scope" in error_text(refused)
    assert "this token lacks the trade scope" in error_text(cancel)
    assert [o["id"] for o in after] == [o["id"] for o in before]


def test_a_token_reads_only_its_own_users_positions_and_orders(server):
    url, seed = server

    async def scenario():
        async with client(url, seed["trade"]) as a:
            other_user = await a.call_tool("getPositions", {"userId": seed["b"]})
            other_broker = await a.call_tool(
                "getPositions", {"userId": seed["a"], "brokerId": seed["b_broker"]}
            )
            routed_to_b = await a.call_tool(
                "executeOrder",
                {
                    "symbol": "AAPL",
                    "side": "BUY",
                    "orderType": "MARKET",
                    "quantity": "1",
                    "brokerId": seed["b_broker"],
                },
            )
        async with client(url, seed["trade_b"]) as b:
            b_order = ok(
                await b.call_tool(
                    "executeOrder",
                    {"symbol": "AAPL", "side": "BUY", "orderType": "LIMIT", "quantity": "1", "price": "30"},
                )
            )
        async with client(url, seed["trade"]) as a:
            read_b = await a.call_tool("getOrder", {"orderId": b_order["order_id"]})
            cancel_b = await a.call_tool("cancelOrder", {"orderId": b_order["order_id"]})
        return other_user, other_broker, routed_to_b, read_b, cancel_b

    other_user, other_broker, routed_to_b, read_b, cancel_b = run(scenario())
    assert "not your account" in error_text(other_user)
    assert other_user.structured_content is None
    assert "does not exist" in error_text(other_broker)
    assert error_text(routed_to_b)
    assert "does not exist" in error_text(read_b)
    assert "does not exist" in error_text(cancel_b)


def test_unknown_order_is_a_clear_tool_error(server):
    url, seed = server
    result = run(call(url, seed["trade"], "getOrder", {"orderId": 987654321}))
    assert "Order 987654321 does not exist" in error_text(result)
    result = run(call(url, seed["trade"], "cancelOrder", {"orderId": 987654321}))
    assert "Order 987654321 does not exist" in error_text(result)


def test_capabilities_and_health(server):
    url, seed = server

    async def scenario():
        async with client(url, seed["read"]) as c:
            return ok(await c.call_tool("getCapabilities", {})), ok(await c.call_tool("getAgentHealth", {}))

    capabilities, health = run(scenario())
    names = {c["capability"] for c in capabilities["capabilities"]}
    assert names == {"ORDER_EXECUTION", "RISK_MANAGEMENT", "BROKER_ROUTING"}
    assert "score" in health and health["status"] in {"HEALTHY", "DEGRADED"}


def test_resources_are_the_callers_own(server):
    url, seed = server

    async def scenario():
        async with client(url, seed["read"]) as c:
            own = await c.read_resource(f"trading://users/{seed['a']}/account/summary")
            try:
                await c.read_resource(f"trading://users/{seed['b']}/account/summary")
            except Exception as exc:  # the SDK raises the resource error as an MCP error
                return own, str(exc)
            return own, None

    own, other = run(scenario())
    assert json.loads(own.contents[0].text)["userId"] == seed["a"]
    assert other is not None and "not your account" in other


def test_a_foreign_host_header_is_refused(server):
    url, seed = server
    request = urllib.request.Request(
        url,
        data=b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}',
        headers={
            "Authorization": f"Bearer {seed['read']}",
            "Host": "evil.example:80",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 421  # DNS-rebinding protection: only ALLOWED_HOSTS (and loopback)


def test_concurrent_clients(server):
    url, seed = server

    async def one(i: int) -> dict:
        async with client(url, seed["trade"]) as c:
            return ok(
                await c.call_tool(
                    "executeOrder",
                    {
                        "symbol": "AAPL",
                        "side": "BUY",
                        "orderType": "LIMIT",
                        "quantity": "1",
                        "price": str(20 + i),
                    },
                )
            )

    async def scenario():
        return await asyncio.gather(*(one(i) for i in range(8)))

    placed = run(scenario())
    assert len({p["order_id"] for p in placed}) == 8
    assert all(p["ok"] for p in placed)
