"""The result of a pre-trade check. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class RuleFailure:
    rule: str  # e.g. MAX_ORDER_NOTIONAL
    reason: str  # human-readable, with the numbers
    limit: Decimal | None = None
    value: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    failures: tuple[RuleFailure, ...] = field(default_factory=tuple)

    @property
    def approved(self) -> bool:
        return not self.failures

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.failures]
