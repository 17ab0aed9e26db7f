"""Live portfolio monitoring: evaluate the portfolio rules on the marked-to-market book and keep
one open RiskAlert per (user, rule, symbol).

Each run also records an equity sample for the dashboard chart (``risk.equity``, throttled).

Called by the periodic Celery task (every user with positions) and by the order pipeline after a
fill and after positions are re-marked. Each run for a user takes the user's RiskProfile row lock
(the first lock the pre-trade check takes), so two runs for one user never race on the same alert
and the day's equity marks are updated under the same lock as the pre-trade check updates them.

De-duplication: while a breach lasts, its open alert is updated (last_seen_at, occurrences, value,
message, severity) instead of repeated. A RISK_ALERT outbox event is written only when an alert
is created or its severity escalates, never on every run. An acknowledged alert is closed: the
next run that still sees the breach opens a new one.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from brokers.models import BrokerAccount
from risk.book import risk_book_verify
from risk.domain.monitoring import SEVERITY_RANK, Breach, PortfolioSnapshot, Severity, evaluate
from risk.equity import equity_sample_record
from risk.models import RiskAlert, RiskBook, RiskProfile
from risk.services import _equity_marks, _limits, risk_profile_get
from trademaster.errors import Conflict
from trademaster.outbox import outbox_record

logger = logging.getLogger(__name__)


def portfolio_snapshot(
    *, user, profile: RiskProfile, now: dt.datetime, save_marks: bool
) -> PortfolioSnapshot:
    """The user's book as the database has it: positions at their last marks, equity over brokers."""
    from orders.models import Position

    positions: dict[str, Decimal] = {}
    for symbol, value in (
        Position.objects.filter(user=user)
        .exclude(quantity=0)
        .values("symbol")
        .annotate(v=Sum("market_value"))
        .values_list("symbol", "v")
    ):
        positions[symbol] = value
    equity = BrokerAccount.objects.filter(user=user).aggregate(v=Sum("total_value"))["v"] or Decimal(0)
    daily_pnl, drawdown = _equity_marks(profile, user, now, save=save_marks)
    return PortfolioSnapshot(equity=equity, daily_pnl=daily_pnl, drawdown=drawdown, positions=positions)


def alert_payload(alert: RiskAlert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "rule": alert.rule,
        "severity": alert.severity,
        "message": alert.message,
        "limit": alert.limit,
        "value": alert.value,
        "symbol": alert.symbol,
        "occurrences": alert.occurrences,
        "created_at": alert.created_at,
    }


def _publish(alert: RiskAlert, *, escalated_from: str = "") -> None:
    payload = alert_payload(alert)
    if escalated_from:
        payload["escalated_from"] = escalated_from
    outbox_record(type="RISK_ALERT", user_id=alert.user_id, payload=payload, occurred_at=alert.last_seen_at)


def _upsert(user, breach: Breach, open_alert: RiskAlert | None, now: dt.datetime) -> RiskAlert:
    if open_alert is None:
        alert = RiskAlert.objects.create(
            user=user,
            rule=breach.rule.value,
            severity=breach.severity.value,
            message=breach.message,
            limit=breach.limit,
            value=breach.value,
            symbol=breach.symbol,
            created_at=now,
            last_seen_at=now,
        )
        _publish(alert)
        return alert
    before = open_alert.severity
    escalated = SEVERITY_RANK[breach.severity] > SEVERITY_RANK[Severity(before)]
    open_alert.last_seen_at = now
    open_alert.occurrences += 1
    open_alert.limit, open_alert.value = breach.limit, breach.value
    if escalated:  # severity only goes up on an open alert; the message follows it
        open_alert.severity, open_alert.message = breach.severity.value, breach.message
    open_alert.save(update_fields=["last_seen_at", "occurrences", "limit", "value", "severity", "message"])
    if escalated:
        _publish(open_alert, escalated_from=before)
    return open_alert


def risk_monitor_user(*, user, now: dt.datetime | None = None) -> list[RiskAlert]:
    """Evaluate the live rules for ``user`` now; return the open alerts this run created or updated."""
    now = now or timezone.now()
    risk_profile_get(user=user)  # make sure the row exists before locking it
    with transaction.atomic():
        profile = RiskProfile.objects.select_for_update().get(user_id=user.pk)
        snapshot = portfolio_snapshot(user=user, profile=profile, now=now, save_marks=True)
        # the dashboard's chart of the day: equity as the daily P&L sees it (start + P&L)
        equity_sample_record(
            user=user,
            equity=profile.day_start_equity + snapshot.daily_pnl,
            daily_pnl=snapshot.daily_pnl,
            now=now,
        )
        breaches = evaluate(
            _limits(profile), snapshot, concentration_limit_percent=profile.max_concentration_percent
        )
        if not breaches:
            return []
        open_alerts = {
            (a.rule, a.symbol): a for a in RiskAlert.objects.filter(user=user, acknowledged_at__isnull=True)
        }
        return [_upsert(user, b, open_alerts.get((b.rule.value, b.symbol)), now) for b in breaches]


def risk_monitor_all(*, now: dt.datetime | None = None) -> int:
    """Run the monitor for every user holding a position; the number of users checked.

    Each user's risk book is first compared with its positions and orders (and repaired if a
    write went around the services). One user's failure is logged and does not stop the others.
    """
    from django.contrib.auth import get_user_model

    from orders.models import Position

    now = now or timezone.now()
    user_ids = set(Position.objects.exclude(quantity=0).values_list("user_id", flat=True).distinct())
    user_ids |= set(RiskBook.objects.values_list("user_id", flat=True))
    users = get_user_model().objects.filter(pk__in=list(user_ids)).order_by("pk")
    count = 0
    for user in users:
        try:
            risk_book_verify(user_id=user.pk)
            risk_monitor_user(user=user, now=now)
        except Exception:
            logger.exception("risk monitoring failed for user %s", user.pk)
            continue
        count += 1
    return count


def risk_alert_acknowledge(*, alert: RiskAlert, user) -> RiskAlert:
    """Close an open alert: whoever acknowledges it has seen it. Acknowledging twice is a 409."""
    with transaction.atomic():
        alert = RiskAlert.objects.select_for_update().get(pk=alert.pk)
        if alert.acknowledged_at is not None:
            raise Conflict("alert_already_acknowledged", f"Alert {alert.pk} is already acknowledged.")
        alert.acknowledged_at = timezone.now()
        alert.acknowledged_by = user
        alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return alert
