"""Pre-trade risk: the single gate every order passes before it reaches a broker.

This is the one place the OMS asks. The full rule set (limits, collars, PDT, trading state,
reservation of buying power under a per-account lock) is built on this entry point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from risk.domain.assessment import RiskAssessment

if TYPE_CHECKING:
    from orders.models import Order


def risk_check_order(*, order: Order) -> RiskAssessment:
    """Assess ``order`` (persisted, PENDING, routed). Approved unless a rule fails."""
    return RiskAssessment()
