"""The result of a pre-trade check. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class RuleFailure:
    rule: str  # e.g. MAX_ORDER_NOTIONAL
    reason: str  # human-readable, with the numbers
    limit: Decimal | None = None
    value: Decimal | None = None  # the would-be value that breaks the limit


@dataclass(frozen=True, slots=True)
class ProjectedExposure:
    """The user's exposure if this order (and every open order on the same side) filled."""

    order_notional: Decimal = Decimal(0)
    position_quantity: Decimal = Decimal(0)  # net, the order's symbol, across brokers
    position_notional: Decimal = Decimal(0)
    gross_exposure: Decimal = Decimal(0)
    net_exposure: Decimal = Decimal(0)
    buying_power_after: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    failures: tuple[RuleFailure, ...] = field(default_factory=tuple)
    projected: ProjectedExposure = field(default_factory=ProjectedExposure)
    reserve: Decimal = Decimal(0)  # buying power this order reserves while open

    @property
    def approved(self) -> bool:
        return not self.failures

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.failures]
