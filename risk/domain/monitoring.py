"""Live portfolio rules: what is breached right now, given the marked-to-market book. Plain Python.

``risk.monitoring`` builds a :class:`PortfolioSnapshot` from the database; :func:`evaluate`
compares it with the user's limits. A value at or beyond its limit is CRITICAL; at or beyond
``WARNING_RATIO`` (80 %) of it is a WARNING. Limits of None (or a concentration of None) are off.
All amounts are Decimal, in the account currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from risk.domain.context import RiskLimits
from risk.domain.rules import _money

ZERO = Decimal(0)
HUNDRED = Decimal(100)
WARNING_RATIO = Decimal("0.8")


class Severity(StrEnum):
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


SEVERITY_RANK = {Severity.WARNING: 1, Severity.CRITICAL: 2}


class Rule(StrEnum):
    DAILY_LOSS = "DAILY_LOSS"
    DRAWDOWN = "DRAWDOWN"
    GROSS_EXPOSURE = "GROSS_EXPOSURE"
    NET_EXPOSURE = "NET_EXPOSURE"
    POSITION_NOTIONAL = "POSITION_NOTIONAL"
    CONCENTRATION = "CONCENTRATION"


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    equity: Decimal  # total value over every broker account
    daily_pnl: Decimal  # today's P&L (negative is a loss)
    drawdown: Decimal  # today's peak equity minus current equity (>= 0)
    positions: dict[str, Decimal] = field(default_factory=dict)  # symbol -> signed net notional

    @property
    def gross_exposure(self) -> Decimal:
        return sum((abs(v) for v in self.positions.values()), ZERO)

    @property
    def net_exposure(self) -> Decimal:
        return sum(self.positions.values(), ZERO)


@dataclass(frozen=True, slots=True)
class Breach:
    rule: Rule
    severity: Severity
    message: str
    limit: Decimal | None
    value: Decimal
    symbol: str = ""


def _severity(value: Decimal, limit: Decimal) -> Severity | None:
    if value >= limit:
        return Severity.CRITICAL
    if value >= limit * WARNING_RATIO:
        return Severity.WARNING
    return None


def _against(rule: Rule, what: str, value: Decimal, limit: Decimal | None, symbol: str = "") -> Breach | None:
    """``value`` (a magnitude, >= 0) against a positive ``limit``."""
    if limit is None or limit <= 0:
        return None
    severity = _severity(value, limit)
    if severity is None:
        return None
    ratio = (value / limit * HUNDRED).quantize(Decimal("0.1"))
    verb = "has reached" if severity is Severity.CRITICAL else "is near"
    message = f"{what} {_money(value)} {verb} the limit of {_money(limit)} ({ratio}%, {rule})."
    return Breach(rule, severity, message, limit, value, symbol)


def evaluate(
    limits: RiskLimits, snapshot: PortfolioSnapshot, *, concentration_limit_percent: Decimal | None = None
) -> list[Breach]:
    """Every rule breached (or nearly breached) by ``snapshot``, most severe first."""
    loss = max(-snapshot.daily_pnl, ZERO)
    candidates = [
        _against(Rule.DAILY_LOSS, "Today's loss", loss, limits.daily_loss_limit),
        _against(Rule.DRAWDOWN, "Drawdown from today's peak", snapshot.drawdown, limits.max_drawdown),
        _against(Rule.GROSS_EXPOSURE, "Gross exposure", snapshot.gross_exposure, limits.max_gross_exposure),
        _against(Rule.NET_EXPOSURE, "Net exposure", abs(snapshot.net_exposure), limits.max_net_exposure),
    ]
    for symbol, notional in sorted(snapshot.positions.items()):
        candidates.append(
            _against(
                Rule.POSITION_NOTIONAL,
                f"Position in {symbol} worth",
                abs(notional),
                limits.max_position_notional,
                symbol,
            )
        )
    candidates.extend(_concentration(snapshot, concentration_limit_percent))
    breaches = [b for b in candidates if b is not None]
    return sorted(breaches, key=lambda b: -SEVERITY_RANK[b.severity])


def _concentration(snapshot: PortfolioSnapshot, limit_percent: Decimal | None) -> list[Breach]:
    """One symbol's |notional| above N% of gross exposure. A single position is not "concentrated":
    with one symbol it is always 100 %, so the rule needs at least two symbols."""
    gross = snapshot.gross_exposure
    held = [s for s, v in snapshot.positions.items() if v != 0]
    if limit_percent is None or gross <= 0 or len(held) < 2:
        return []
    breaches = []
    for symbol in sorted(held):
        share = abs(snapshot.positions[symbol]) / gross * HUNDRED
        if share > limit_percent:
            shown = share.quantize(Decimal("0.1"))
            breaches.append(
                Breach(
                    Rule.CONCENTRATION,
                    Severity.WARNING,
                    f"{symbol} is {shown}% of gross exposure {_money(gross)}, above the limit of "
                    f"{limit_percent.normalize():f}% (CONCENTRATION).",
                    limit_percent,
                    share.quantize(Decimal("0.00000001")),
                    symbol,
                )
            )
    return breaches
