from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from trademaster.crypto import EncryptedTextField

MONEY = {"max_digits": 18, "decimal_places": 8}


class BrokerName(models.TextChoices):
    PAPER = "paper", "Paper venue (simulated)"
    ALPACA = "alpaca", "Alpaca"
    BINANCE = "binance", "Binance"
    SCHWAB = "schwab", "Charles Schwab (successor of TD Ameritrade)"
    IBKR = "ibkr", "Interactive Brokers"


class ConnectionStatus(models.TextChoices):
    CONNECTED = "CONNECTED"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


class DayTradingPolicyChoices(models.TextChoices):
    LEGACY_PDT = "legacy_pdt", "Legacy pattern-day-trader rule (4 in 5 business days under $25,000)"
    INTRADAY_MARGIN = "intraday_margin", "Intraday margin standard (SR-FINRA-2025-017)"
    BROKER_ENFORCED = "broker_enforced", "Mirror the broker's own flags"
    OFF = "off", "Off (cash and crypto accounts)"


class AssetClassChoices(models.TextChoices):
    EQUITY = AssetClass.EQUITY.value
    CRYPTO = AssetClass.CRYPTO.value


class PaperVenue(models.Model):
    """A simulated venue's terms: its spread, depth and fees. Several give routing real choices."""

    name = models.CharField(max_length=40, unique=True)
    asset_classes = models.JSONField(default=list, help_text='e.g. ["EQUITY"] or ["CRYPTO"]')
    spread_bps = models.DecimalField(max_digits=10, decimal_places=4)
    depth_levels = models.PositiveSmallIntegerField(default=3)
    size_factor = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(1))
    commission_bps = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    commission_per_unit = models.DecimalField(max_digits=10, decimal_places=6, default=Decimal(0))
    min_commission = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    # fault injection for failover tests: reject every new order with this reason
    reject_new_orders_reason = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return self.name


class BrokerAccountQuerySet(models.QuerySet["BrokerAccount"]):
    def for_owner(self, user) -> BrokerAccountQuerySet:
        if user.is_staff:
            return self
        return self.filter(user=user)

    def active(self) -> BrokerAccountQuerySet:
        return self.filter(is_active=True)


class BrokerAccount(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="broker_accounts"
    )
    broker_name = models.CharField(max_length=20, choices=BrokerName.choices)
    account_id = models.CharField(max_length=64)
    label = models.CharField(max_length=80, blank=True, default="")
    paper_venue = models.ForeignKey(PaperVenue, null=True, blank=True, on_delete=models.PROTECT)
    api_key_encrypted = EncryptedTextField(null=True, blank=True)
    api_secret_encrypted = EncryptedTextField(null=True, blank=True)
    sandbox_mode = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    margin_account = models.BooleanField(default=True)
    day_trading_policy = models.CharField(
        max_length=16, choices=DayTradingPolicyChoices.choices, default=DayTradingPolicyChoices.LEGACY_PDT
    )
    buying_power = models.DecimalField(**MONEY, default=Decimal(0))
    cash = models.DecimalField(**MONEY, default=Decimal(0))
    total_value = models.DecimalField(**MONEY, default=Decimal(0))
    connection_status = models.CharField(
        max_length=10, choices=ConnectionStatus.choices, default=ConnectionStatus.CONNECTED
    )
    latency_ms = models.PositiveIntegerField(default=0, help_text="recent median round trip to the broker")
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last successful health check")
    health_detail = models.CharField(
        max_length=200, blank=True, default="", help_text="what the last check said"
    )
    error_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal(0),
        db_default=Decimal(0),
        help_text="failed broker calls, percent of the calls in the last statistics window",
    )
    calls_checked = models.PositiveIntegerField(
        default=0, db_default=0, help_text="broker calls in the window the error rate was taken over"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BrokerAccountQuerySet.as_manager()

    class Meta:
        db_table = "broker_accounts"
        constraints = [
            models.UniqueConstraint(fields=["user", "broker_name", "account_id"], name="uniq_broker_account"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return self.label or f"{self.broker_name}:{self.account_id}"

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def asset_classes(self) -> list[str]:
        if self.paper_venue_id:
            return list(self.paper_venue.asset_classes)
        return {
            BrokerName.ALPACA: [AssetClass.EQUITY.value, AssetClass.CRYPTO.value],
            BrokerName.BINANCE: [AssetClass.CRYPTO.value],
        }.get(self.broker_name, [AssetClass.EQUITY.value])


class Instrument(models.Model):
    """One symbol of the simulated market: its terms and its current mid (the random walk)."""

    symbol = models.CharField(max_length=20, unique=True)
    asset_class = models.CharField(max_length=10, choices=AssetClassChoices.choices)
    tick_size = models.DecimalField(**MONEY)
    lot_size = models.DecimalField(**MONEY)
    base_size = models.DecimalField(**MONEY)
    volatility_ticks = models.PositiveIntegerField(default=3)
    # market statistics for impact estimates and volume-following algorithms
    average_daily_volume = models.DecimalField(**MONEY, default=Decimal(1000000))
    daily_volatility_bps = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(150))
    mid = models.DecimalField(**MONEY)
    step = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol


class PaperOrderStatus(models.TextChoices):
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class PaperOrder(models.Model):
    """The paper venue's own order book entry: what a real broker holds on its side."""

    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="paper_orders")
    venue_order_id = models.CharField(max_length=40, unique=True)
    client_order_id = models.CharField(max_length=64)
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=[(s.value, s.value) for s in Side])
    order_type = models.CharField(max_length=16, choices=[(t.value, t.value) for t in OrderType])
    time_in_force = models.CharField(max_length=3, choices=[(t.value, t.value) for t in TimeInForce])
    quantity = models.DecimalField(**MONEY)
    filled_quantity = models.DecimalField(**MONEY, default=Decimal(0))
    price = models.DecimalField(**MONEY, null=True, blank=True)
    stop_price = models.DecimalField(**MONEY, null=True, blank=True)
    trail_amount = models.DecimalField(**MONEY, null=True, blank=True)
    trail_percent = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    triggered = models.BooleanField(default=False)
    watermark = models.DecimalField(**MONEY, null=True, blank=True)
    status = models.CharField(max_length=10, choices=PaperOrderStatus.choices, default=PaperOrderStatus.OPEN)
    fill_notional = models.DecimalField(**MONEY, default=Decimal(0))  # sum of quantity x price filled
    session_date = models.DateField()
    fill_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "client_order_id"], name="uniq_paper_client_order"),
        ]
        indexes = [models.Index(fields=["status", "symbol"], name="paper_open_by_symbol")]

    def __str__(self) -> str:
        return self.venue_order_id


class PaperBalance(models.Model):
    """The paper venue's cash for one account (a real broker keeps this on its side)."""

    account = models.OneToOneField(BrokerAccount, on_delete=models.CASCADE, related_name="paper_balance")
    cash = models.DecimalField(**MONEY)

    def __str__(self) -> str:
        return f"{self.account}: {self.cash}"


class PaperHolding(models.Model):
    """The paper venue's position book for one account, used for reconciliation and valuation."""

    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="paper_holdings")
    symbol = models.CharField(max_length=20)
    quantity = models.DecimalField(**MONEY, default=Decimal(0))
    average_cost = models.DecimalField(**MONEY, default=Decimal(0))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "symbol"], name="uniq_paper_holding")]

    def __str__(self) -> str:
        return f"{self.account}: {self.quantity} {self.symbol}"
