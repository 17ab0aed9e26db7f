"""What routing decided and what the execution algorithms plan: stored, so that it can be shown
and so that a restarted worker carries on where the last one stopped."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from brokers.models import BrokerAccount
from orders.models import MONEY, Order


class RoutingDecision(models.Model):
    """Why an order went where it went: every candidate with its score, the skipped accounts with
    their reasons, the impact estimate and, for a fragmented order, the split."""

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="routing_decision")
    explicit = models.BooleanField(default=False, help_text="the client named the broker account")
    winner = models.ForeignKey(
        BrokerAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    candidates = models.JSONField(default=list, blank=True)
    skipped = models.JSONField(default=list, blank=True)
    impact_bps = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    split = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "routing_decisions"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.reason}"


class AlgoState(models.TextChoices):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    DONE = "DONE"  # every slice released
    CANCELLED = "CANCELLED"


class AlgoOrder(models.Model):
    """How a parent order is worked: TWAP/VWAP over a window, or SPLIT across venues at once."""

    parent = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="algo_order")
    kind = models.CharField(max_length=5)  # orders.models.AlgoChoices
    state = models.CharField(max_length=9, choices=AlgoState.choices, default=AlgoState.RUNNING)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    limit_price = models.DecimalField(**MONEY, null=True, blank=True)
    max_participation = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    randomize = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    # the client named a broker account: every child goes there (still checked for eligibility)
    broker = models.ForeignKey(
        BrokerAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lot_size = models.DecimalField(**MONEY, default=Decimal(1))
    seed = models.BigIntegerField(default=0)
    # the current plan: slices from plan_first_seq on, made when plan_base was already filled or
    # working (0 and 0 at the start; a resume or a modify replans what is left)
    plan_first_seq = models.PositiveIntegerField(default=0)
    plan_base = models.DecimalField(**MONEY, default=Decimal(0))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "algo_orders"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} for order {self.parent_id} [{self.state}]"


class SliceState(models.TextChoices):
    PLANNED = "PLANNED"
    RELEASING = "RELEASING"  # quantity and client_order_id fixed; the child may or may not exist yet
    RELEASED = "RELEASED"
    SKIPPED = "SKIPPED"  # merged into a later slice, nothing left to send, or replanned away


class AlgoSlice(models.Model):
    """One scheduled child of an algo order. A slice is released at most once: its state moves
    PLANNED -> RELEASING (under the algo's lock) -> RELEASED, and the child's client_order_id is
    fixed before the child is placed, so a retry after a crash finds the same child."""

    algo = models.ForeignKey(AlgoOrder, on_delete=models.CASCADE, related_name="slices")
    seq = models.PositiveIntegerField()
    due_at = models.DateTimeField()
    quantity = models.DecimalField(**MONEY)  # planned
    broker = models.ForeignKey(
        BrokerAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(max_length=9, choices=SliceState.choices, default=SliceState.PLANNED)
    released_quantity = models.DecimalField(**MONEY, null=True, blank=True)
    client_order_id = models.CharField(max_length=64, blank=True, default="")
    child = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        db_table = "algo_slices"
        ordering = ["algo_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["algo", "seq"], name="uniq_algo_slice")]
        indexes = [models.Index(fields=["state", "due_at"], name="algo_slices_due")]

    def __str__(self) -> str:
        return f"slice {self.seq} of algo {self.algo_id}: {self.quantity} [{self.state}]"
