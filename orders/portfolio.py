"""The trader's portfolio as the dashboard and the positions page show it (selectors), and the
position actions those pages offer (services): close, reduce, close every leg of a symbol, and
acknowledging a risk alert. Pages call these; the arithmetic lives in ``orders.domain`` and
``risk.services`` (the day's equity marks), never here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from brokers.models import BrokerAccount
from orders.domain.chart import LineChart, line_chart, percent_change
from orders.domain.closing import ClosingError, closing_order
from orders.domain.enums import OrderType, TimeInForce
from orders.domain.positions import AggregatePosition
from orders.domain.validation import OrderRequest
from orders.models import Order, Position
from orders.selectors import position_aggregate
from orders.services import Actor, order_place
from risk.book import risk_book_totals
from risk.equity import day_start, equity_samples_today
from risk.models import RiskAlert
from risk.monitoring import risk_alert_acknowledge
from risk.services import _equity_marks, risk_profile_get
from trademaster.errors import NotFound, ValidationFailed

ZERO = Decimal(0)


# --- selectors ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortfolioFigures:
    total_value: Decimal  # sum of the broker accounts' total value
    equity: Decimal  # cash plus positions at their latest marks (what the daily P&L is taken on)
    day_start_equity: Decimal
    daily_pnl: Decimal
    daily_pnl_percent: Decimal | None  # None while the day's start equity is not positive
    unrealized_pnl: Decimal  # open positions
    realized_pnl: Decimal  # every position, closed ones included
    trading_state: str  # ACTIVE / REDUCING / HALTED
    restricted_by: str  # "", "self", "staff", "system"
    open_orders: int


@dataclass(frozen=True, slots=True)
class PortfolioSummary:
    figures: PortfolioFigures
    accounts: list[BrokerAccount]
    alerts: list[RiskAlert]
    positions: list[AggregatePosition]
    curve: LineChart


def portfolio_figures(*, user, now: dt.datetime | None = None) -> PortfolioFigures:
    """The headline numbers: value, today's P&L (the risk profile's marks, read-only here),
    unrealized and realized P&L, trading state and the number of open orders."""
    now = now or timezone.now()
    profile = risk_profile_get(user=user)
    totals = risk_book_totals(user_id=user.pk)
    sums = BrokerAccount.objects.filter(user=user).aggregate(cash=Sum("cash"), value=Sum("total_value"))
    cash = sums["cash"] or ZERO
    daily_pnl, _ = _equity_marks(profile, user, now, save=False, totals=totals, cash=cash)
    equity = cash + totals.market_value
    start = equity - daily_pnl
    pnl = Position.objects.filter(user=user).aggregate(
        unrealized=Sum("unrealized_pnl", default=ZERO), realized=Sum("realized_pnl", default=ZERO)
    )
    return PortfolioFigures(
        total_value=sums["value"] or ZERO,
        equity=equity,
        day_start_equity=start,
        daily_pnl=daily_pnl,
        daily_pnl_percent=percent_change(daily_pnl, start),
        unrealized_pnl=pnl["unrealized"],
        realized_pnl=pnl["realized"],
        trading_state=profile.trading_state,
        restricted_by=profile.restricted_by,
        open_orders=Order.objects.filter(user=user).open().count(),
    )


def equity_curve(*, user, figures: PortfolioFigures, now: dt.datetime | None = None) -> LineChart:
    """Today's equity samples plus the live equity as the last point, against the day's start."""
    now = now or timezone.now()
    day = day_start(now)

    def seconds(at: dt.datetime) -> Decimal:
        return Decimal(int((at - day).total_seconds()))

    series = [(seconds(s.at), s.equity) for s in equity_samples_today(user=user, now=now)]
    series.append((seconds(now), figures.equity))
    return line_chart(series, baseline=figures.day_start_equity)


def broker_account_status_list(*, user) -> list[BrokerAccount]:
    """The user's own broker accounts with their connection status (staff see only theirs here)."""
    return list(BrokerAccount.objects.filter(user=user).select_related("paper_venue").order_by("pk"))


def risk_alert_list_active(*, user, limit: int = 20) -> list[RiskAlert]:
    """Open (unacknowledged) alerts, critical first, then the most recently seen."""
    alerts = RiskAlert.objects.filter(user=user, acknowledged_at__isnull=True).order_by("-last_seen_at")
    return sorted(alerts[:limit], key=lambda a: a.severity != "CRITICAL")


def portfolio_summary(*, user, now: dt.datetime | None = None) -> PortfolioSummary:
    """Everything the dashboard shows, as of ``now``."""
    now = now or timezone.now()
    figures = portfolio_figures(user=user, now=now)
    return PortfolioSummary(
        figures=figures,
        accounts=broker_account_status_list(user=user),
        alerts=risk_alert_list_active(user=user),
        positions=position_aggregate(user=user),
        curve=equity_curve(user=user, figures=figures, now=now),
    )


@dataclass(frozen=True, slots=True)
class PositionBook:
    by_symbol: list[AggregatePosition]
    by_broker: list[Position]  # broker preloaded


def position_book(*, user) -> PositionBook:
    """Open positions netted per symbol and per broker account (the user's own)."""
    return PositionBook(
        by_symbol=position_aggregate(user=user),
        by_broker=list(
            Position.objects.filter(user=user)
            .exclude(quantity=0)
            .select_related("broker")
            .order_by("symbol", "broker_id")
        ),
    )


def position_get(*, user, broker_id: int, symbol: str) -> Position:
    """The user's open position in ``symbol`` at one broker account (NotFound when flat/absent)."""
    return _open_position(user, broker_id, symbol)


def position_symbol_get(*, user, symbol: str) -> AggregatePosition:
    """The user's open ``symbol`` position netted across brokers (NotFound when none)."""
    for position in position_aggregate(user=user):
        if position.symbol == symbol:
            return position
    raise NotFound("position_not_found", f"There is no open {symbol} position.")


# --- services -----------------------------------------------------------------------------------


def _open_position(user, broker_id: int, symbol: str) -> Position:
    position = (
        Position.objects.filter(user=user, broker_id=broker_id, symbol=symbol)
        .exclude(quantity=0)
        .select_related("broker")
        .first()
    )
    if position is None:
        raise NotFound("position_not_found", f"There is no open {symbol} position at that account.")
    return position


def position_close(
    *, user, broker_id: int, symbol: str, actor: Actor, reduce_by: Decimal | None = None
) -> Order:
    """Place the MARKET order that closes the position at ``broker_id`` (or reduces it by
    ``reduce_by``) at that account. Returns the order as placed: a risk refusal is a REJECTED
    order with its reason. Raises ValidationFailed ({"quantity": ...}) for a bad ``reduce_by``
    and NotFound when there is no such open position."""
    position = _open_position(user, broker_id, symbol)
    try:
        closing = closing_order(position.quantity, reduce_by)
    except ClosingError as exc:
        raise ValidationFailed({"quantity": [str(exc)]}) from None
    request = OrderRequest(
        symbol=position.symbol,
        side=closing.side,
        order_type=OrderType.MARKET,
        quantity=closing.quantity,
        time_in_force=TimeInForce.DAY,
    )
    return order_place(user=user, request=request, actor=actor, broker_id=broker_id).order


def position_close_all(*, user, symbol: str, actor: Actor) -> list[Order]:
    """Close every leg of ``symbol`` (one MARKET order per broker account holding it)."""
    legs = list(
        Position.objects.filter(user=user, symbol=symbol)
        .exclude(quantity=0)
        .order_by("broker_id")
        .values_list("broker_id", flat=True)
    )
    if not legs:
        raise NotFound("position_not_found", f"There is no open {symbol} position.")
    return [position_close(user=user, broker_id=b, symbol=symbol, actor=actor) for b in legs]


def alert_acknowledge(*, user, alert_id: int) -> RiskAlert:
    """Acknowledge one of the user's own open alerts (risk.monitoring.risk_alert_acknowledge)."""
    alert = RiskAlert.objects.filter(user=user, pk=alert_id).first()
    if alert is None:
        raise NotFound("alert_not_found", f"Alert {alert_id} does not exist.")
    return risk_alert_acknowledge(alert=alert, user=user)
