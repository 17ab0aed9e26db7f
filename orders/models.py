from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from brokers.models import BrokerAccount
from orders.domain.enums import OPEN_STATUSES, OrderStatus, OrderType, Side, TimeInForce

MONEY = {"max_digits": 18, "decimal_places": 8}


class SideChoices(models.TextChoices):
    BUY = Side.BUY.value
    SELL = Side.SELL.value


class OrderTypeChoices(models.TextChoices):
    MARKET = OrderType.MARKET.value
    LIMIT = OrderType.LIMIT.value
    STOP = OrderType.STOP.value
    STOP_LIMIT = OrderType.STOP_LIMIT.value
    TRAILING_STOP = OrderType.TRAILING_STOP.value


class TimeInForceChoices(models.TextChoices):
    DAY = TimeInForce.DAY.value
    GTC = TimeInForce.GTC.value
    IOC = TimeInForce.IOC.value
    FOK = TimeInForce.FOK.value


class OrderStatusChoices(models.TextChoices):
    PENDING = OrderStatus.PENDING.value
    SUBMITTED = OrderStatus.SUBMITTED.value
    ACCEPTED = OrderStatus.ACCEPTED.value
    TRIGGERED = OrderStatus.TRIGGERED.value
    PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED.value
    PENDING_CANCEL = OrderStatus.PENDING_CANCEL.value
    PENDING_REPLACE = OrderStatus.PENDING_REPLACE.value
    FILLED = OrderStatus.FILLED.value
    CANCELLED = OrderStatus.CANCELLED.value
    REJECTED = OrderStatus.REJECTED.value
    EXPIRED = OrderStatus.EXPIRED.value


class AlgoChoices(models.TextChoices):
    """How a parent order is worked: its children carry the executions."""

    TWAP = "TWAP", "TWAP: equal slices over a window"
    VWAP = "VWAP", "VWAP: slices following the intraday volume curve"
    SPLIT = "SPLIT", "Split across venues by displayed depth"


class ActorType(models.TextChoices):
    USER = "USER"
    AGENT = "AGENT"
    SYSTEM = "SYSTEM"
    BROKER = "BROKER"


class OrderQuerySet(models.QuerySet["Order"]):
    def for_owner(self, user) -> OrderQuerySet:
        if user.is_staff:
            return self
        return self.filter(user=user)

    def open(self) -> OrderQuerySet:
        return self.filter(status__in=[s.value for s in OPEN_STATUSES])


class Order(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    broker = models.ForeignKey(
        BrokerAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    client_order_id = models.CharField(max_length=64)
    # a parent order (algo set, no broker) is worked through child orders (parent set)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    algo = models.CharField(max_length=5, choices=AlgoChoices.choices, blank=True, default="", db_default="")
    symbol = models.CharField(max_length=20)
    asset_class = models.CharField(max_length=10)
    order_type = models.CharField(max_length=16, choices=OrderTypeChoices.choices)
    side = models.CharField(max_length=4, choices=SideChoices.choices)
    quantity = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY, null=True, blank=True)
    stop_price = models.DecimalField(**MONEY, null=True, blank=True)
    trail_amount = models.DecimalField(**MONEY, null=True, blank=True)
    trail_percent = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    time_in_force = models.CharField(
        max_length=3, choices=TimeInForceChoices.choices, default=TimeInForceChoices.DAY, db_default="DAY"
    )
    status = models.CharField(
        max_length=16,
        choices=OrderStatusChoices.choices,
        default=OrderStatusChoices.PENDING,
        db_default="PENDING",
    )
    broker_order_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (NULL: not yet known)
    filled_quantity = models.DecimalField(**MONEY, default=Decimal(0))
    average_fill_price = models.DecimalField(**MONEY, null=True, blank=True)
    commission = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    triggered = models.BooleanField(default=False)
    status_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # a placement the broker refused for now (429, rate limit): when to send it again, and how
    # many sends it refused so far (orders.services._defer)
    resend_at = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)

    objects = OrderQuerySet.as_manager()

    class Meta:
        db_table = "orders"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "client_order_id"], name="uniq_client_order_id"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=models.F("quantity")),
                name="order_filled_within_quantity",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-id"], name="orders_owner_recent"),
            models.Index(fields=["user", "status"], name="orders_owner_status"),
            models.Index(fields=["user", "symbol"], name="orders_owner_symbol"),
            # the pre-trade check's order rate and duplicate lookups (risk.queries.recent_orders)
            models.Index(fields=["user", "created_at"], name="orders_owner_created"),
            models.Index(fields=["broker", "broker_order_id"], name="orders_broker_order"),
            # routing's recent reject rate per account (routing.services._reject_rates)
            models.Index(fields=["broker", "submitted_at"], name="orders_broker_submitted"),
            # deferred placements coming due (orders.services.orders_resend_due)
            models.Index(
                fields=["resend_at"], name="orders_resend_due", condition=Q(resend_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.quantity} {self.symbol} {self.order_type} [{self.status}]"

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_parent(self) -> bool:
        return bool(self.algo)


class Fill(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="fills")
    broker = models.ForeignKey(BrokerAccount, on_delete=models.PROTECT, related_name="fills")
    broker_fill_id = models.CharField(max_length=80)
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=SideChoices.choices)
    quantity = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY)
    fee = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    liquidity = models.CharField(max_length=5, default="TAKER")
    executed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "fills"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["broker", "broker_fill_id"], name="uniq_broker_fill"),
        ]
        indexes = [models.Index(fields=["user", "executed_at"], name="fills_owner_time")]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price}"


class Position(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="positions")
    broker = models.ForeignKey(BrokerAccount, on_delete=models.PROTECT, related_name="positions")
    symbol = models.CharField(max_length=20)
    asset_class = models.CharField(max_length=10)
    quantity = models.DecimalField(**MONEY, default=Decimal(0))
    average_cost = models.DecimalField(**MONEY, default=Decimal(0))
    market_price = models.DecimalField(**MONEY, null=True, blank=True)
    market_value = models.DecimalField(**MONEY, default=Decimal(0))
    unrealized_pnl = models.DecimalField(**MONEY, default=Decimal(0))
    realized_pnl = models.DecimalField(**MONEY, default=Decimal(0))
    total_fees = models.DecimalField(**MONEY, default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "positions"
        ordering = ["symbol", "broker_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "broker", "symbol"], name="uniq_position"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.quantity} @ {self.average_cost}"


class OrderEvent(models.Model):
    """The append-only audit trail: one row per order action and state change."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    event_type = models.CharField(max_length=24)
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16, blank=True, default="")
    actor_type = models.CharField(max_length=8, choices=ActorType.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=80, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "order_events"
        ordering = ["id"]
        indexes = [models.Index(fields=["order", "id"], name="order_events_by_order")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.from_status}->{self.to_status}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("order events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("order events are append-only")
