from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from risk.domain.context import TradingState
from trademaster.fields import ExactDecimalField

MONEY = {"max_digits": 18, "decimal_places": 8}


class TradingStateChoices(models.TextChoices):
    ACTIVE = TradingState.ACTIVE.value, "Active"
    REDUCING = TradingState.REDUCING.value, "Reducing only"
    HALTED = TradingState.HALTED.value, "Halted"


def _limit(default: str | None, help_text: str) -> models.DecimalField:
    return models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        default=None if default is None else Decimal(default),
        help_text=help_text,
    )


class RiskProfile(models.Model):
    """A user's pre-trade limits and trading state. Empty limit = no limit. Edited in admin."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_profile"
    )
    trading_state = models.CharField(
        max_length=8, choices=TradingStateChoices.choices, default=TradingStateChoices.ACTIVE
    )
    restricted_by = models.CharField(
        max_length=6,
        blank=True,
        default="",
        choices=[("", "-"), ("self", "the user"), ("staff", "staff"), ("system", "the system")],
        help_text="Who set the current HALTED or REDUCING state: only staff can lift one set by staff "
        "or by the system (emergency stop-loss).",
    )
    max_position_quantity = _limit(None, "Largest |net quantity| per symbol across brokers.")
    max_position_notional = _limit("500000", "Largest |net position| value per symbol across brokers.")
    max_gross_exposure = _limit("1000000", "Sum of |position values| over all symbols and brokers.")
    max_net_exposure = _limit(None, "|Sum of signed position values|.")
    max_equity_exposure = _limit(None, "Gross exposure in equities.")
    max_crypto_exposure = _limit(None, "Gross exposure in crypto.")
    max_broker_exposure = _limit(None, "Gross exposure at any one broker account.")
    max_order_notional = _limit("250000", "Largest value of one order.")
    max_order_quantity = _limit("1000000", "Largest quantity of one order.")
    max_open_orders = models.PositiveIntegerField(null=True, blank=True, default=1000)
    max_orders_per_minute = models.PositiveIntegerField(null=True, blank=True, default=600)
    daily_loss_limit = _limit("25000", "New risk is refused once today's P&L reaches minus this amount.")
    max_drawdown = _limit(None, "New risk is refused once equity is this far below today's peak.")
    emergency_loss_limit = _limit(
        None, "Emergency stop-loss: once today's loss reaches this, halt, cancel everything and liquidate."
    )
    price_collar_percent = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        null=True,
        blank=True,
        default=Decimal("10"),
        help_text="Aggressive limit prices and stop prices must be within this % of the quote.",
    )
    restricted_symbols = models.JSONField(default=list, blank=True, help_text='e.g. ["GME", "AMC"]')
    allow_short_selling = models.BooleanField(default=True)
    pdt_enforcement = models.BooleanField(default=True, help_text="Apply each account's day-trading policy.")
    duplicate_window_seconds = models.PositiveIntegerField(default=5)
    max_concentration_percent = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        null=True,
        blank=True,
        default=Decimal("50"),
        help_text="Live alert when one symbol is more than this % of gross exposure. Empty = off.",
    )
    # today's equity marks for the daily loss and drawdown rules (set on the first check of a day)
    day = models.DateField(null=True, blank=True)
    day_start_equity = models.DecimalField(**MONEY, null=True, blank=True)
    day_peak_equity = models.DecimalField(**MONEY, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "risk_profiles"

    def __str__(self) -> str:
        return f"risk profile of {self.user}"


class Reservation(models.Model):
    """Buying power held by an open order at its broker account (released when the order closes)."""

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="reservation")
    account = models.ForeignKey(
        "brokers.BrokerAccount", on_delete=models.CASCADE, related_name="reservations"
    )
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "risk_reservations"
        indexes = [models.Index(fields=["account"], name="reservations_by_account")]

    def __str__(self) -> str:
        return f"{self.amount} for order {self.order_id}"


class AlertSeverity(models.TextChoices):
    WARNING = "WARNING", "Warning"
    CRITICAL = "CRITICAL", "Critical"


class RiskAlert(models.Model):
    """A live portfolio rule breached. One open (unacknowledged) row per (user, rule, symbol):
    while the breach lasts the row is updated (last_seen_at, occurrences) instead of repeated."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_alerts")
    rule = models.CharField(max_length=32)
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices)
    message = models.TextField()
    limit = models.DecimalField(**MONEY, null=True, blank=True)
    value = models.DecimalField(**MONEY, null=True, blank=True)
    symbol = models.CharField(max_length=20, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    occurrences = models.PositiveIntegerField(default=1)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "risk_alerts"
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "rule", "symbol"],
                condition=models.Q(acknowledged_at__isnull=True),
                name="risk_alert_open_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.severity} {self.rule} {self.symbol}".strip()


class RiskBook(models.Model):
    """The running totals of a user's risk book (``risk.domain.book.BookTotals``).

    A cache of the positions and open orders, kept in the same transactions that change them,
    under the user's RiskProfile row lock; ``risk.book`` writes it, the pre-trade check reads it.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_book")
    gross = ExactDecimalField(default=Decimal(0))
    long_value = ExactDecimalField(default=Decimal(0))
    short_value = ExactDecimalField(default=Decimal(0))
    market_value = ExactDecimalField(default=Decimal(0))
    open_orders = models.IntegerField(default=0)
    # {"EQUITY": "123.45", "": "..."} ("" = unknown class)
    # {"<account id>": {"gross": "..", "reserved": ".."}}
    by_asset_class = models.JSONField(default=dict)
    by_broker = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "risk_books"

    def __str__(self) -> str:
        return f"risk book of {self.user}"


class RiskBookLeg(models.Model):
    """One (broker account, symbol) of a user's risk book (``risk.domain.book.BookLeg``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    broker = models.ForeignKey("brokers.BrokerAccount", on_delete=models.CASCADE, related_name="+")
    symbol = models.CharField(max_length=20)
    asset_class = models.CharField(max_length=10, blank=True, default="")
    net = ExactDecimalField(default=Decimal(0))
    open_buy = ExactDecimalField(default=Decimal(0))
    open_sell = ExactDecimalField(default=Decimal(0))
    open_orders = models.IntegerField(default=0)
    mark = ExactDecimalField(null=True)
    order_price = ExactDecimalField(null=True)
    reserved = ExactDecimalField(default=Decimal(0))
    market_value = ExactDecimalField(default=Decimal(0))

    class Meta:
        db_table = "risk_book_legs"
        constraints = [
            models.UniqueConstraint(fields=["user", "symbol", "broker"], name="risk_book_leg_once")
        ]

    def __str__(self) -> str:
        return f"{self.symbol} at account {self.broker_id}"


class EquitySample(models.Model):
    """The user's equity across brokers at one moment, for the dashboard's chart of the day.

    Written by the live risk monitor (``risk.equity.equity_sample_record``): at most one per user
    every ``EQUITY_SAMPLE_SECONDS`` (the first of a day always); rows older than 7 days are pruned.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(db_index=True)
    equity = models.DecimalField(**MONEY)
    daily_pnl = models.DecimalField(**MONEY)

    class Meta:
        db_table = "risk_equity_samples"
        indexes = [models.Index(fields=["user", "at"], name="equity_samples_by_user")]

    def __str__(self) -> str:
        return f"{self.equity} at {self.at:%Y-%m-%d %H:%M:%S}"
