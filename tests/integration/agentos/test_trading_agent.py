"""The trading agent against the real pipeline: paper venues, the fake Alpaca server on loopback,
the real database (worker threads use their own connections: transactional tests)."""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal as D

import pytest
from oauth2_provider.models import Application
from prometheus_client import REGISTRY

import agentos.agent
from agentos.agent import AgentOrder, TradingAgent, agent_identity, trading_agent
from agentos.domain.capabilities import Capability
from agentos.models import AgentProfile
from brokers.models import BrokerAccount
from brokers.services import broker_account_sync
from orders.models import Order, OrderEvent
from risk.models import RiskProfile
from risk.services import risk_profile_get
from tests.builders import order_request
from tests.conftest import bearer_client
from tests.fakes.alpaca import FakeAlpaca

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def fresh_agent(monkeypatch):
    """The process's agent with an empty capability registry for each test."""
    agent = TradingAgent()
    monkeypatch.setattr(agentos.agent, "_agent", agent)
    return agent


@pytest.fixture
def market(set_mid):
    set_mid("AAPL", "100.00")
    set_mid("MSFT", "400.00")


def run(coro):
    return asyncio.run(coro)


def test_execute_market_order_fills_with_the_agent_as_actor(trader, accounts, market, fresh_agent):
    identity = agent_identity(user=trader)
    outcome = run(
        fresh_agent.execute(
            AgentOrder(order_request(quantity="10"), broker_id=accounts["PAPER-EQ-A"].pk), agent=identity
        )
    )
    assert outcome.ok, outcome
    assert (outcome.status, outcome.approved, outcome.failed_step, outcome.preview) == (
        "FILLED",
        True,
        None,
        False,
    )
    assert outcome.broker_id == accounts["PAPER-EQ-A"].pk
    order = Order.objects.get(pk=outcome.order_id)
    assert (order.status, order.filled_quantity, order.user_id) == ("FILLED", D("10"), trader.pk)
    events = list(
        OrderEvent.objects.filter(order=order).values_list("event_type", "actor_type", "actor_label")
    )
    assert events[:2] == [
        ("CREATED", "AGENT", "trademaster-agent (agent)"),
        ("SUBMIT", "AGENT", "trademaster-agent (agent)"),
    ]
    assert OrderEvent.objects.filter(order=order, actor_type="AGENT", actor_id=trader.pk).count() == 2
    data = outcome.as_dict()
    assert data["ok"] is True
    assert isinstance(data["elapsed_ms"], str)
    samples = {c["capability"]: c["samples"] for c in fresh_agent.capabilities()}
    assert samples == {"ORDER_EXECUTION": 1, "RISK_MANAGEMENT": 1, "BROKER_ROUTING": 1}


def test_preview_places_nothing(trader, accounts, market, fresh_agent):
    outcome = run(
        fresh_agent.execute(
            AgentOrder(order_request(quantity="10")), agent=agent_identity(user=trader), preview=True
        )
    )
    assert outcome.ok, outcome
    assert (outcome.preview, outcome.order_id, outcome.status, outcome.approved) == (True, None, None, True)
    assert outcome.broker_id in {a.pk for a in accounts.values()}
    assert outcome.broker
    assert not Order.objects.exists()
    assert not OrderEvent.objects.exists()


def _restrict_msft(trader) -> None:
    RiskProfile.objects.filter(pk=risk_profile_get(user=trader).pk).update(restricted_symbols=["MSFT"])


def test_risk_refusal_leaves_no_order(trader, accounts, market, fresh_agent):
    _restrict_msft(trader)
    outcome = run(
        fresh_agent.execute(AgentOrder(order_request(symbol="MSFT")), agent=agent_identity(user=trader))
    )
    assert (outcome.ok, outcome.failed_step, outcome.approved, outcome.order_id) == (
        False,
        "risk",
        False,
        None,
    )
    assert any("MSFT" in r for r in outcome.reasons), outcome.reasons
    assert not Order.objects.exists()


class SlowRouteAgent(TradingAgent):
    """The real agent whose broker selection takes long: the risk sibling's refusal must cancel it."""

    def __init__(self) -> None:
        super().__init__()
        self.route_cancelled = False

    async def _route(self, order, agent, run_):
        try:
            await asyncio.sleep(20)
        except asyncio.CancelledError:
            self.route_cancelled = True
            raise


def test_a_risk_refusal_cancels_the_route_sibling(trader, accounts, market):
    _restrict_msft(trader)
    agent = SlowRouteAgent()
    started = time.monotonic()
    outcome = run(agent.execute(AgentOrder(order_request(symbol="MSFT")), agent=agent_identity(user=trader)))
    assert (outcome.failed_step, outcome.approved) == ("risk", False)
    assert agent.route_cancelled
    assert time.monotonic() - started < 10
    assert not Order.objects.exists()


def test_no_route_fails_at_route_and_leaves_no_order(trader, accounts, market, fresh_agent):
    BrokerAccount.objects.filter(user=trader).update(is_active=False)
    outcome = run(fresh_agent.execute(AgentOrder(order_request()), agent=agent_identity(user=trader)))
    assert (outcome.ok, outcome.failed_step, outcome.order_id) == (False, "route", None)
    assert not Order.objects.exists()


def test_invalid_request_fails_at_validate(trader, accounts, market, fresh_agent):
    outcome = run(
        fresh_agent.execute(AgentOrder(order_request(quantity="-1")), agent=agent_identity(user=trader))
    )
    assert (outcome.ok, outcome.failed_step, outcome.order_id) == (False, "validate", None)
    assert any(r.startswith("quantity:") for r in outcome.reasons)
    assert not Order.objects.exists()


def test_per_agent_notional_cap_refuses_with_a_clear_reason(trader, accounts, market, fresh_agent):
    app = Application.objects.create(
        name="strategy-bot",
        user=trader,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    AgentProfile.objects.create(application=app, notional_cap=D("500"))
    identity = agent_identity(user=trader, application=app)
    assert (identity.name, identity.notional_cap) == ("strategy-bot (agent)", D("500"))
    venue = accounts["PAPER-EQ-A"].pk
    # 10 AAPL at venue A's ask (100.01) is about 1,000: over the cap
    outcome = run(
        fresh_agent.execute(AgentOrder(order_request(quantity="10"), broker_id=venue), agent=identity)
    )
    assert (outcome.ok, outcome.failed_step, outcome.approved, outcome.order_id) == (
        False,
        "risk",
        False,
        None,
    )
    assert outcome.reasons == (
        "Order notional 1,000.10 exceeds the agent's notional cap of 500.00 (AGENT_CAP).",
    )
    assert not Order.objects.exists()
    # 4 of them (about 400) pass
    ok = run(fresh_agent.execute(AgentOrder(order_request(quantity="4"), broker_id=venue), agent=identity))
    assert (ok.ok, ok.status) == (True, "FILLED")
    assert OrderEvent.objects.filter(order_id=ok.order_id, actor_label="strategy-bot (agent)").exists()


def test_disabled_agent_may_not_trade(trader, accounts, market, fresh_agent):
    app = Application.objects.create(
        name="off-bot",
        user=trader,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    AgentProfile.objects.create(application=app, is_active=False)
    outcome = run(
        fresh_agent.execute(AgentOrder(order_request()), agent=agent_identity(user=trader, application=app))
    )
    assert (outcome.ok, outcome.failed_step) == (False, "validate")
    assert not Order.objects.exists()


def test_agent_requests_share_the_users_order_entry_rate_limit(
    trader, accounts, market, fresh_agent, monkeypatch
):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    from agentos.throttle import order_entry_allow

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"order_entry": "2/min"})
    cache.delete(f"throttle_order_entry_{trader.pk}")
    assert order_entry_allow(user=trader) is None  # e.g. one REST order: the same budget
    identity = agent_identity(user=trader)
    first = run(fresh_agent.execute(AgentOrder(order_request(quantity="1")), agent=identity))
    second = run(fresh_agent.execute(AgentOrder(order_request(quantity="2")), agent=identity))
    preview = run(fresh_agent.execute(AgentOrder(order_request(quantity="3")), agent=identity, preview=True))
    cache.delete(f"throttle_order_entry_{trader.pk}")
    assert first.ok
    assert (second.ok, second.failed_step, second.order_id) == (False, "validate", None)
    assert "rate limit" in second.reasons[0]
    assert preview.ok  # a dry run is not order entry
    assert Order.objects.count() == 1


# --- the deadline, against a slow broker ------------------------------------------------------------


@pytest.fixture
def slow_alpaca(settings, trader):
    data, trading = FakeAlpaca().start(), FakeAlpaca().start()
    settings.ALPACA_DATA_URL = data.url
    settings.ALPACA_TRADING_URL = trading.url
    settings.ALPACA_TIMEOUT_SECONDS = 10
    data.set_quote("AAPL", D("187.00"), D("187.02"))
    BrokerAccount.objects.filter(user=trader, broker_name="paper").update(is_active=False)
    account = BrokerAccount.objects.create(
        user=trader,
        broker_name="alpaca",
        account_id="PA3TEST0001",
        api_key_encrypted=trading.key,
        api_secret_encrypted=trading.secret,
    )
    broker_account_sync(account=BrokerAccount.objects.get(pk=account.pk))
    yield trading, BrokerAccount.objects.get(pk=account.pk)
    for fake in (data, trading):
        fake.stop()


def test_deadline_while_the_broker_call_runs_cancels_the_order_with_the_reason(
    settings, trader, slow_alpaca, fresh_agent
):
    trading, account = slow_alpaca
    settings.AGENT_DEADLINE_SECONDS = 1
    trading.delay_next(2.5)  # the venue takes the order at once but answers after the deadline
    outcome = run(
        fresh_agent.execute(
            AgentOrder(order_request(order_type="LIMIT", price="187.00", quantity="5"), broker_id=account.pk),
            agent=agent_identity(user=trader),
        )
    )
    assert (outcome.ok, outcome.failed_step) == (False, "deadline")
    assert outcome.reasons[0] == "The 1 s deadline passed during the execute step."
    assert outcome.order_id is not None
    assert outcome.status == "CANCELLED"
    order = Order.objects.get(pk=outcome.order_id)
    assert order.status == "CANCELLED"
    [venue_order] = trading.orders.values()
    assert venue_order["status"] == "canceled"
    cancel = OrderEvent.objects.filter(order=order, event_type="REQUEST_CANCEL").get()
    assert cancel.actor_type == "AGENT"
    assert cancel.actor_label == "trademaster-agent (agent)"
    why = "cancelled by the agent: deadline: The 1 s deadline passed during the execute step."
    assert cancel.data["reason"] == why  # the broker's confirmation then says "canceled"
    execution = {c["capability"]: c for c in fresh_agent.capabilities()}["ORDER_EXECUTION"]
    assert (execution["samples"], execution["success_rate"]) == (1, "0.0000")


# --- many requests at once --------------------------------------------------------------------------


def test_fifty_concurrent_orders_all_fill_and_the_loop_stays_responsive(
    trader, accounts, market, fresh_agent
):
    identity = agent_identity(user=trader)

    async def main():
        gaps: list[float] = []
        stop = asyncio.Event()

        async def heartbeat():
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        beat = asyncio.create_task(heartbeat())
        outcomes = await asyncio.gather(
            *(
                # marketable limits, one share each; distinct prices, so none is a duplicate
                fresh_agent.execute(
                    AgentOrder(
                        order_request(order_type="LIMIT", quantity="1", price=str(D(101) + D(q) / 100))
                    ),
                    agent=identity,
                )
                for q in range(1, 51)
            )
        )
        stop.set()
        await beat
        return outcomes, max(gaps)

    outcomes, max_gap = run(main())
    assert [(o.failed_step, o.reasons) for o in outcomes if not o.ok] == []
    assert {o.status for o in outcomes} == {"FILLED"}
    assert Order.objects.filter(user=trader, status="FILLED").count() == 50
    assert max_gap < 0.5, max_gap


def test_a_burst_beyond_the_admission_limit_queues_and_the_deadline_counts_from_admission(
    trader, accounts, market, fresh_agent, settings
):
    # one unit at a time, and a deadline shorter than the whole burst takes
    settings.AGENT_CONCURRENCY = 1
    settings.AGENT_DEADLINE_SECONDS = D("2")
    identity = agent_identity(user=trader)

    async def main():
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(
                fresh_agent.execute(
                    AgentOrder(
                        order_request(order_type="LIMIT", quantity="1", price=str(D(101) + D(q) / 100))
                    ),
                    agent=identity,
                )
                for q in range(1, 13)
            )
        )
        return outcomes, time.perf_counter() - started

    outcomes, _ = run(main())
    assert [(o.failed_step, o.reasons) for o in outcomes if not o.ok] == []
    queued = sorted(o.queued_ms for o in outcomes)
    # one ran at once: each waited for all the units before it
    assert queued[0] < 50
    assert all(later > earlier for earlier, later in itertools.pairwise(queued))
    units = sorted(o.elapsed_ms for o in outcomes)
    assert queued[-1] >= sum(units[:-1]) * D("0.9")


# --- health -----------------------------------------------------------------------------------------


def _alerts(kind: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "tm_agent_capability_alerts_total", {"capability": "ORDER_EXECUTION", "kind": kind}
        )
        or 0.0
    )


def test_health_falls_below_the_threshold_after_failures_and_alerts_once(trader, caplog, fresh_agent):
    agent = trading_agent()
    assert agent is fresh_agent
    before = _alerts("DEGRADED")
    for _ in range(9):
        agent.record(Capability.ORDER_EXECUTION, ok=True, latency_ms=D("5"))
    with caplog.at_level("WARNING", logger="agentos.agent"):
        for _ in range(5):
            agent.record(Capability.ORDER_EXECUTION, ok=False, latency_ms=D("5"))
    assert _alerts("DEGRADED") - before == 1
    warnings = [r for r in caplog.records if "ORDER_EXECUTION DEGRADED" in r.getMessage()]
    assert len(warnings) == 1
    health = agent.health()
    assert (health["status"], health["score"]) == ("DEGRADED", "0.6429")

    response = bearer_client(trader, scopes=("read",)).get("/api/v1/agent/health/")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["score"], body["alert_below"]) == ("DEGRADED", "0.6429", "0.9")
    assert [c["capability"] for c in body["capabilities"]] == [
        "ORDER_EXECUTION",
        "RISK_MANAGEMENT",
        "BROKER_ROUTING",
    ]


def test_capabilities_endpoint_needs_the_read_scope(trader):
    response = bearer_client(trader, scopes=("read",)).get("/api/v1/agent/capabilities/")
    assert response.status_code == 200
    assert [(c["capability"], c["proficiency"], c["health"]) for c in response.json()] == [
        ("ORDER_EXECUTION", "EXPERT", "1.0000"),
        ("RISK_MANAGEMENT", "ADVANCED", "1.0000"),
        ("BROKER_ROUTING", "EXPERT", "1.0000"),
    ]
    assert bearer_client(trader, scopes=("trade",)).get("/api/v1/agent/capabilities/").status_code == 403
    assert bearer_client(trader, scopes=("trade",)).get("/api/v1/agent/health/").status_code == 403


# --- POST /api/v1/agent/orders/ ---------------------------------------------------------------------


def test_rest_agent_order_fills_with_the_tokens_application_as_the_agent(trader, accounts, market):
    body = {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "3"}
    response = bearer_client(trader).post("/api/v1/agent/orders/", body, format="json")
    assert response.status_code == 201, response.content
    outcome = response.json()
    assert (outcome["ok"], outcome["status"], outcome["failed_step"]) == (True, "FILLED", None)
    labels = set(
        OrderEvent.objects.filter(order_id=outcome["order_id"], actor_type="AGENT").values_list(
            "actor_label", flat=True
        )
    )
    assert len(labels) == 1
    assert labels.pop().endswith(" (agent)")


def test_rest_agent_preview_needs_only_read_and_placing_needs_trade(trader, accounts, market):
    body = {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "3"}
    reader = bearer_client(trader, scopes=("read",))
    preview = reader.post("/api/v1/agent/orders/?preview=true", body, format="json")
    assert preview.status_code == 200, preview.content
    assert (preview.json()["ok"], preview.json()["preview"], preview.json()["order_id"]) == (True, True, None)
    assert reader.post("/api/v1/agent/orders/", body, format="json").status_code == 403
    invalid = bearer_client(trader).post("/api/v1/agent/orders/", {**body, "quantity": "abc"}, format="json")
    assert invalid.status_code == 400
    assert not Order.objects.exists()


class StaleVerdictAgent(TradingAgent):
    """An agent whose own risk step approves everything (a verdict gone stale, or a bug)."""

    async def _risk(self, order, agent, run_):
        run_.approved = True


def test_the_pipelines_own_risk_check_still_applies_to_agent_orders(trader, accounts, market):
    _restrict_msft(trader)
    outcome = run(
        StaleVerdictAgent().execute(
            AgentOrder(order_request(symbol="MSFT")), agent=agent_identity(user=trader)
        )
    )
    # the order pipeline's pre-trade check under the account lock refused it
    assert (outcome.ok, outcome.failed_step, outcome.approved, outcome.status) == (
        False,
        "risk",
        False,
        "REJECTED",
    )
    order = Order.objects.get(pk=outcome.order_id)
    assert order.status == "REJECTED"
    assert "MSFT" in order.status_reason
    assert list(OrderEvent.objects.filter(order=order).values_list("event_type", "actor_type")) == [
        ("CREATED", "AGENT"),
        ("REJECT", "SYSTEM"),
    ]
