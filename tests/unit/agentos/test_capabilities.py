"""The capability registry's arithmetic and alert transitions (plain Python, no database)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from agentos.domain.capabilities import (
    ALERT_BELOW,
    DEFAULT_SPECS,
    AlertKind,
    Capability,
    CapabilitySpec,
    Proficiency,
    Registry,
    Sample,
    latency_factor,
    overall_score,
    percentile,
    status_of,
    window_health,
)

EXEC = Capability.ORDER_EXECUTION
FAST = D("10")


def registry(**kw) -> Registry:
    return Registry(
        (
            CapabilitySpec(EXEC, Proficiency.EXPERT, D("100")),
            CapabilitySpec(Capability.RISK_MANAGEMENT, Proficiency.ADVANCED, D("100")),
        ),
        **kw,
    )


def test_the_issue_s_capabilities_and_proficiencies():
    assert {(s.capability, s.proficiency) for s in DEFAULT_SPECS} == {
        (Capability.ORDER_EXECUTION, Proficiency.EXPERT),
        (Capability.RISK_MANAGEMENT, Proficiency.ADVANCED),
        (Capability.BROKER_ROUTING, Proficiency.EXPERT),
    }
    assert D("0.9") == ALERT_BELOW


@pytest.mark.parametrize(
    ("latency", "factor"),
    [
        ("0", "1"),
        ("100", "1"),  # at the target
        ("550", "0.5"),  # halfway between 1x and 10x
        ("1000", "0"),  # 10x the target
        ("5000", "0"),
        ("190", "0.9"),
    ],
)
def test_latency_factor_falls_linearly_from_the_target_to_ten_times_it(latency, factor):
    assert latency_factor(D(latency), D("100")) == D(factor)


def test_percentile_is_nearest_rank():
    values = [D(v) for v in range(1, 101)]
    assert percentile(values, 95) == D(95)
    assert percentile([D(7)], 95) == D(7)
    assert percentile([D(1), D(2)], 95) == D(2)


def test_window_health_is_success_rate_times_latency_factor():
    samples = [Sample(True, FAST, D(0))] * 8 + [Sample(False, FAST, D(0))] * 2
    assert window_health(samples, D(100)) == (D("0.8"), D("0.8"), FAST)
    slow = [Sample(True, D(550), D(0))] * 10
    assert window_health(slow, D(100))[0] == D("0.5")
    assert window_health([], D(100)) == (D(1), D(1), None)


def test_overall_is_the_weakest_and_status_follows_the_threshold():
    assert overall_score([D("0.95"), D("0.5"), D(1)]) == D("0.5")
    assert status_of(D("0.9")).value == "HEALTHY"
    assert status_of(D("0.8999")).value == "DEGRADED"


def test_window_keeps_the_last_max_samples():
    reg = registry(max_samples=10)
    for _ in range(10):
        reg.record(EXEC, ok=False, latency_ms=FAST, now=D(0))
    for _ in range(10):
        reg.record(EXEC, ok=True, latency_ms=FAST, now=D(1))
    [cap, _] = reg.capabilities(now=D(1))
    assert (cap.samples, cap.success_rate, cap.health) == (10, D(1), D(1))


def test_window_forgets_outcomes_older_than_max_age():
    reg = registry(max_age=D(300))
    reg.record(EXEC, ok=False, latency_ms=FAST, now=D(0))
    assert reg.capabilities(now=D(300))[0].samples == 1
    assert reg.capabilities(now=D("300.001"))[0].samples == 0
    assert reg.capabilities(now=D(301))[0].health == D(1)


def test_alert_fires_once_on_the_way_down_and_once_on_the_way_up():
    reg = registry()
    alerts = [reg.record(EXEC, ok=True, latency_ms=FAST, now=D(0)) for _ in range(9)]
    assert alerts == [None] * 9
    # 9 ok + 1 failure = 0.9: still healthy
    assert reg.record(EXEC, ok=False, latency_ms=FAST, now=D(0)) is None
    # 9/11 < 0.9: DEGRADED, once
    down = reg.record(EXEC, ok=False, latency_ms=FAST, now=D(0))
    assert down is not None
    assert (down.capability, down.kind, down.health) == (EXEC, AlertKind.DEGRADED, D("0.8182"))
    assert [reg.record(EXEC, ok=False, latency_ms=FAST, now=D(0)) for _ in range(5)] == [None] * 5
    # successes until 9/10 of the window is ok again: RECOVERED, once
    ups = [reg.record(EXEC, ok=True, latency_ms=FAST, now=D(0)) for _ in range(80)]
    fired = [a for a in ups if a is not None]
    assert [(a.kind, a.capability) for a in fired] == [(AlertKind.RECOVERED, EXEC)]
    assert fired[0].health >= ALERT_BELOW


def test_slowness_alone_degrades_a_capability():
    reg = registry()
    alert = reg.record(EXEC, ok=True, latency_ms=D(1000), now=D(0))
    assert alert is not None
    assert (alert.kind, alert.health) == (AlertKind.DEGRADED, D(0))


def test_health_document():
    reg = registry()
    reg.record(EXEC, ok=False, latency_ms=D("12.5"), now=D(0))
    health = reg.health(now=D(0))
    assert health["score"] == "0.0000"
    assert health["status"] == "DEGRADED"
    assert health["alert_below"] == "0.9"
    assert health["capabilities"] == [
        {
            "capability": "ORDER_EXECUTION",
            "proficiency": "EXPERT",
            "health": "0.0000",
            "success_rate": "0.0000",
            "p95_ms": "12.500",
            "samples": 1,
            "target_ms": "100",
        },
        {
            "capability": "RISK_MANAGEMENT",
            "proficiency": "ADVANCED",
            "health": "1.0000",
            "success_rate": "1.0000",
            "p95_ms": None,
            "samples": 0,
            "target_ms": "100",
        },
    ]
