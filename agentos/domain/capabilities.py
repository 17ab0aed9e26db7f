"""The trading agent's capability registry: live health per capability. Plain Python, no clock.

Each capability keeps a bounded sliding window of outcomes ``(ok, latency_ms, at)``: at most
``max_samples`` (200) and none older than ``max_age`` (300 s) before the ``now`` the caller passes
(monotonic seconds, e.g. ``time.perf_counter_ns()`` / 10**9 as Decimal).

Health of one capability, in [0, 1]::

    health = success_rate * latency_factor(p95)

- ``success_rate``: ok outcomes / outcomes in the window (1 with no outcomes: no evidence of
  failure);
- ``p95``: the 95th percentile latency (nearest rank) of the window's outcomes;
- ``latency_factor``: 1 at or below the capability's target latency, falling linearly to 0 at
  ``ZERO_AT`` (10) times the target, 0 above that.

The overall score is the minimum over the capabilities (the agent is only as healthy as its
weakest step); the status is HEALTHY at or above ``ALERT_BELOW`` (0.9), DEGRADED below.

Alerting: :meth:`Registry.record` returns an :class:`Alert` exactly when a capability crosses the
threshold: once when its health falls below ``ALERT_BELOW`` (``DEGRADED``) and once when it comes
back to or above it (``RECOVERED``); nothing while it stays on one side.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

ALERT_BELOW = Decimal("0.9")
ZERO_AT = Decimal(10)  # the latency factor reaches 0 at this multiple of the target latency
MAX_SAMPLES = 200
MAX_AGE = Decimal(300)  # seconds
Q4 = Decimal("0.0001")
Q3 = Decimal("0.001")
ONE = Decimal(1)
ZERO = Decimal(0)


class Capability(StrEnum):
    ORDER_EXECUTION = "ORDER_EXECUTION"
    RISK_MANAGEMENT = "RISK_MANAGEMENT"
    BROKER_ROUTING = "BROKER_ROUTING"


class Proficiency(StrEnum):
    NOVICE = "NOVICE"
    INTERMEDIATE = "INTERMEDIATE"
    ADVANCED = "ADVANCED"
    EXPERT = "EXPERT"


class Status(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"


class AlertKind(StrEnum):
    DEGRADED = "DEGRADED"
    RECOVERED = "RECOVERED"


@dataclass(frozen=True, slots=True)
class CapabilitySpec:
    capability: Capability
    proficiency: Proficiency
    target_ms: Decimal  # latency at or below which the latency factor is 1


# the proficiencies; targets are generous (the steps include thread-pool queueing)
DEFAULT_SPECS: tuple[CapabilitySpec, ...] = (
    CapabilitySpec(Capability.ORDER_EXECUTION, Proficiency.EXPERT, Decimal(2000)),
    CapabilitySpec(Capability.RISK_MANAGEMENT, Proficiency.ADVANCED, Decimal(500)),
    CapabilitySpec(Capability.BROKER_ROUTING, Proficiency.EXPERT, Decimal(500)),
)


@dataclass(frozen=True, slots=True)
class Sample:
    ok: bool
    latency_ms: Decimal
    at: Decimal  # monotonic seconds


@dataclass(frozen=True, slots=True)
class CapabilityHealth:
    capability: Capability
    proficiency: Proficiency
    health: Decimal  # 0..1, 4 places
    success_rate: Decimal  # 0..1, 4 places
    p95_ms: Decimal | None  # None without samples
    samples: int
    target_ms: Decimal

    def as_dict(self) -> dict[str, object]:
        return {
            "capability": self.capability.value,
            "proficiency": self.proficiency.value,
            "health": str(self.health),
            "success_rate": str(self.success_rate),
            "p95_ms": None if self.p95_ms is None else str(self.p95_ms),
            "samples": self.samples,
            "target_ms": str(self.target_ms),
        }


@dataclass(frozen=True, slots=True)
class Alert:
    capability: Capability
    kind: AlertKind
    health: Decimal


def latency_factor(latency_ms: Decimal, target_ms: Decimal) -> Decimal:
    """1 at or below ``target_ms``, linearly down to 0 at ``ZERO_AT`` x target, 0 beyond."""
    if latency_ms <= target_ms:
        return ONE
    zero_at = target_ms * ZERO_AT
    if latency_ms >= zero_at:
        return ZERO
    return (zero_at - latency_ms) / (zero_at - target_ms)


def percentile(values: list[Decimal], pct: int) -> Decimal:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100)
    return ordered[rank - 1]


def window_health(samples: list[Sample], target_ms: Decimal) -> tuple[Decimal, Decimal, Decimal | None]:
    """(health, success_rate, p95_ms) of a window."""
    if not samples:
        return ONE, ONE, None
    rate = Decimal(sum(1 for s in samples if s.ok)) / Decimal(len(samples))
    p95 = percentile([s.latency_ms for s in samples], 95)
    return rate * latency_factor(p95, target_ms), rate, p95


def overall_score(healths: list[Decimal]) -> Decimal:
    """The weakest capability's health (1 for none)."""
    return min(healths, default=ONE)


def status_of(score: Decimal) -> Status:
    return Status.HEALTHY if score >= ALERT_BELOW else Status.DEGRADED


class _Window:
    def __init__(self, spec: CapabilitySpec, max_samples: int) -> None:
        self.spec = spec
        self.samples: deque[Sample] = deque(maxlen=max_samples)
        self.alerting = False


class Registry:
    """The capabilities of one agent and their windows. Thread-safe (one lock)."""

    def __init__(
        self,
        specs: tuple[CapabilitySpec, ...] = DEFAULT_SPECS,
        *,
        max_samples: int = MAX_SAMPLES,
        max_age: Decimal = MAX_AGE,
    ) -> None:
        self._windows = {spec.capability: _Window(spec, max_samples) for spec in specs}
        self._max_age = max_age
        self._lock = threading.Lock()

    def _live(self, window: _Window, now: Decimal) -> list[Sample]:
        cutoff = now - self._max_age
        while window.samples and window.samples[0].at < cutoff:
            window.samples.popleft()
        return list(window.samples)

    def _health(self, window: _Window, now: Decimal) -> CapabilityHealth:
        live = self._live(window, now)
        health, rate, p95 = window_health(live, window.spec.target_ms)
        return CapabilityHealth(
            capability=window.spec.capability,
            proficiency=window.spec.proficiency,
            health=health.quantize(Q4, ROUND_HALF_EVEN),
            success_rate=rate.quantize(Q4, ROUND_HALF_EVEN),
            p95_ms=None if p95 is None else p95.quantize(Q3, ROUND_HALF_EVEN),
            samples=len(live),
            target_ms=window.spec.target_ms,
        )

    def record(self, capability: Capability, *, ok: bool, latency_ms: Decimal, now: Decimal) -> Alert | None:
        """Add one outcome; return the alert when this outcome moved the capability across
        ``ALERT_BELOW`` (either way), else None."""
        with self._lock:
            window = self._windows[capability]
            window.samples.append(Sample(ok, latency_ms, now))
            health = self._health(window, now).health
            below = health < ALERT_BELOW
            if below == window.alerting:
                return None
            window.alerting = below
            return Alert(capability, AlertKind.DEGRADED if below else AlertKind.RECOVERED, health)

    def capabilities(self, *, now: Decimal) -> list[CapabilityHealth]:
        with self._lock:
            return [self._health(window, now) for window in self._windows.values()]

    def health(self, *, now: Decimal) -> dict[str, object]:
        caps = self.capabilities(now=now)
        score = overall_score([c.health for c in caps])
        return {
            "score": str(score),
            "status": status_of(score).value,
            "alert_below": str(ALERT_BELOW),
            "capabilities": [c.as_dict() for c in caps],
        }
