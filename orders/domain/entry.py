"""Order entry rules for the trader's form. Plain Python: no Django, no I/O.

The pre-trade check (``risk.domain.rules``) decides whether an order passes. The form shows the
trader more than pass/fail, and these rules say how:

* **Level** of the dry run (:func:`evaluate`):

  - ``RED`` ("Blocked"): the check refuses the order; the reasons are the failed rules' messages.
  - ``YELLOW`` ("Caution"): the check passes, but something deserves a look. Each caution is a
    reason of its own:

    * a projected figure reaches :data:`NEAR_LIMIT` (80 %) of a limit that applies: the order's
      notional and quantity, the position's value in the symbol, gross and net exposure;
    * the order takes :data:`NEAR_LIMIT` or more of the buying power the account has left;
    * the route goes to a broker whose connection is DEGRADED;
    * the order is large enough to need a confirmation (below).
  - ``GREEN`` ("OK"): the check passes and nothing above applies.
  - ``NONE`` ("Incomplete"): the form does not describe an order yet; nothing was checked.

* **Confirmation** (:func:`confirmation_reason`): an order is large, and is placed only once the
  trader confirms it, when its estimated notional is at least the confirmation threshold
  (setting ``ORDER_CONFIRM_NOTIONAL``, default 50,000) or at least :data:`EQUITY_SHARE` (25 %)
  of the trader's total equity across brokers. A confirmation holds for the parameters it was
  given for (:func:`confirmation_key`): change the order and it must be confirmed again.

* **Fields per order type** (:data:`SHOWN_FOR`): the form shows the limit price for LIMIT and
  STOP_LIMIT, the stop price for STOP and STOP_LIMIT, the trail (amount or percent) for
  TRAILING_STOP, and the algo parameters for TWAP and VWAP (max participation for VWAP only).
  A value in a field that is not shown is ignored, so a form posted without JavaScript is read
  as the trader saw it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from brokers.domain.adapter import Quote
from risk.domain.assessment import RiskAssessment

NEAR_LIMIT = Decimal("0.8")
EQUITY_SHARE = Decimal("0.25")
HUNDRED = Decimal(100)
CENT = Decimal("0.01")

ORDER_TYPES = ("MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP")
ALGOS = ("TWAP", "VWAP")

# field -> (the control it depends on, the values for which it is shown)
SHOWN_FOR: dict[str, tuple[str, tuple[str, ...]]] = {
    "price": ("order_type", ("LIMIT", "STOP_LIMIT")),
    "stop_price": ("order_type", ("STOP", "STOP_LIMIT")),
    "trail_amount": ("order_type", ("TRAILING_STOP",)),
    "trail_percent": ("order_type", ("TRAILING_STOP",)),
    "duration_minutes": ("algo", ALGOS),
    "slices": ("algo", ALGOS),
    "max_participation": ("algo", ("VWAP",)),
}

# where an error the service reports about one of its fields is shown on the form
FORM_FIELD_FOR = {
    "broker_id": "broker",
    "duration_seconds": "duration_minutes",
    "end_time": "duration_minutes",
    "start_time": "duration_minutes",
}
# the service speaks of fractions and seconds; the form of percent and minutes
FORM_MESSAGE_FOR = {
    "max_participation": "Give a percentage above 0 and at most 100.",
    "duration_seconds": "Give a positive number of minutes.",
}

# the service's field names inside its messages, as the form names those fields
FORM_WORDS = {
    "trail_amount or trail_percent": "a trail amount or a trail %",
    "duration_seconds": "the duration",
}


class RiskLevel(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    NONE = "none"

    @property
    def badge(self) -> str:
        return {"green": "OK", "yellow": "Caution", "red": "Blocked", "none": "Incomplete"}[self.value]


@dataclass(frozen=True, slots=True)
class Limits:
    """The risk profile's limits the form watches (None: no limit)."""

    order_notional: Decimal | None = None
    order_quantity: Decimal | None = None
    position_notional: Decimal | None = None
    gross_exposure: Decimal | None = None
    net_exposure: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    level: RiskLevel
    reasons: tuple[str, ...] = ()
    confirm: str | None = None  # why the order needs a confirmation; None: it does not

    @property
    def needs_confirmation(self) -> bool:
        return self.confirm is not None


def shown(field: str, values: Mapping[str, Any]) -> bool:
    """Whether ``field`` is shown (and read) for the form's current ``values``."""
    if field not in SHOWN_FOR:
        return True
    control, allowed = SHOWN_FOR[field]
    return str(values.get(control) or "") in allowed


def show_when(field: str) -> str:
    """The ``data-show-when`` attribute value for a field shown only for some values."""
    control, allowed = SHOWN_FOR[field]
    return f"{control}={','.join(allowed)}"


def money(value: Decimal) -> str:
    """12,500.00"""
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):,}"


def _share(value: Decimal, of: Decimal) -> str:
    return f"{(value / of * HUNDRED).quantize(Decimal(1), rounding=ROUND_HALF_UP)}%"


def confirmation_reason(*, notional: Decimal, equity: Decimal, threshold: Decimal) -> str | None:
    """Why an order of ``notional`` needs the trader's confirmation, or None when it does not."""
    if notional <= 0:
        return None
    if notional >= threshold:
        return (
            f"Large order: {money(notional)} notional is at or above the "
            f"{money(threshold)} confirmation threshold."
        )
    if equity > 0 and notional >= equity * EQUITY_SHARE:
        return (
            f"Large order: {money(notional)} notional is {_share(notional, equity)} of your "
            f"{money(equity)} equity (confirmation from {_share(EQUITY_SHARE, Decimal(1))})."
        )
    return None


def _near(label: str, value: Decimal, limit: Decimal | None) -> str | None:
    if limit is None or limit <= 0 or value < limit * NEAR_LIMIT:
        return None
    return f"{label} {money(value)} is {_share(value, limit)} of its {money(limit)} limit."


def cautions(
    *,
    assessment: RiskAssessment,
    quantity: Decimal,
    limits: Limits,
    route_status: str = "CONNECTED",
    route_label: str = "",
) -> list[str]:
    """What is notable about an order the check approves (see the module docstring)."""
    p = assessment.projected
    found = [
        _near("Order notional", p.order_notional, limits.order_notional),
        _near("Position value", p.position_notional, limits.position_notional),
        _near("Gross exposure", p.gross_exposure, limits.gross_exposure),
        _near("Net exposure", p.net_exposure, limits.net_exposure),
    ]
    if (
        limits.order_quantity is not None
        and limits.order_quantity > 0
        and quantity >= limits.order_quantity * NEAR_LIMIT
    ):
        found.append(
            f"Quantity {quantity.normalize():f} is {_share(quantity, limits.order_quantity)} of its "
            f"{limits.order_quantity.normalize():f} limit."
        )
    left = p.buying_power_after + assessment.reserve  # what the account had before this order
    if assessment.reserve > 0 and left > 0 and assessment.reserve >= left * NEAR_LIMIT:
        found.append(
            f"Uses {_share(assessment.reserve, left)} of the buying power left"
            f"{f' at {route_label}' if route_label else ''} ({money(p.buying_power_after)} after)."
        )
    if route_status == "DEGRADED":
        found.append(f"The route {route_label or 'account'} is DEGRADED: its broker connection is impaired.")
    return [c for c in found if c]


def evaluate(
    *,
    assessment: RiskAssessment,
    quantity: Decimal,
    limits: Limits,
    equity: Decimal,
    confirm_threshold: Decimal,
    route_status: str = "CONNECTED",
    route_label: str = "",
) -> Verdict:
    """The dry run as the form shows it: level, reasons, and whether to ask for a confirmation."""
    confirm = confirmation_reason(
        notional=assessment.projected.order_notional, equity=equity, threshold=confirm_threshold
    )
    if not assessment.approved:  # refused whatever the trader confirms: nothing to confirm
        return Verdict(RiskLevel.RED, tuple(assessment.reasons), None)
    found = cautions(
        assessment=assessment,
        quantity=quantity,
        limits=limits,
        route_status=route_status,
        route_label=route_label,
    )
    if confirm:
        found.append(confirm)
    return Verdict(RiskLevel.YELLOW if found else RiskLevel.GREEN, tuple(found), confirm)


def confirmation_key(values: Mapping[str, Any]) -> str:
    """A short fingerprint of the order's parameters: a confirmation given for one order does not
    carry over to another one."""
    canonical = "|".join(f"{k}={'' if values[k] is None else values[k]}" for k in sorted(values))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def rejection_reasons(status_reason: str, events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why an order was rejected: each failed risk rule's message from the REJECTED event's data
    (``{"risk": [{"reason": ...}, ...]}``), else the order's status reason."""
    for data in events:
        risk = data.get("risk") or []
        reasons = [str(f["reason"]) for f in risk if isinstance(f, Mapping) and f.get("reason")]
        if reasons:
            return reasons
    return [status_reason] if status_reason else ["The order was rejected."]


def form_error(field: str, message: str, form_fields: Iterable[str]) -> tuple[str | None, str]:
    """Where (None: the whole form) and how the form shows an error the service reported."""
    target = FORM_FIELD_FOR.get(field, field)
    message = FORM_MESSAGE_FOR.get(field, message)
    for word, said in FORM_WORDS.items():
        message = message.replace(word, said)
    return (target if target in set(form_fields) else None), message


@dataclass(frozen=True, slots=True)
class TopOfBook:
    """The symbol's quote across the trader's venues: the best bid and ask, the latest trade."""

    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    at: dt.datetime
    venues: int

    @property
    def spread(self) -> Decimal:
        return self.ask - self.bid


def top_of_book(symbol: str, quotes: Sequence[Quote]) -> TopOfBook | None:
    """The best bid (highest) and ask (lowest) over ``quotes``, and the last price of the newest."""
    if not quotes:
        return None
    newest = max(quotes, key=lambda q: q.at)
    return TopOfBook(
        symbol=symbol,
        bid=max(q.bid for q in quotes),
        ask=min(q.ask for q in quotes),
        last=newest.last,
        at=newest.at,
        venues=len(quotes),
    )
