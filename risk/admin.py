from __future__ import annotations

from django.contrib import admin, messages

from orders import services as order_services
from risk.book import risk_book_verify
from risk.domain.context import TradingState
from risk.models import EquitySample, Reservation, RiskAlert, RiskBook, RiskProfile
from risk.monitoring import risk_alert_acknowledge
from risk.services import Authority, trading_state_set


@admin.register(RiskProfile)
class RiskProfileAdmin(admin.ModelAdmin):
    list_display = [
        "user",
        "trading_state",
        "max_order_notional",
        "max_position_notional",
        "max_gross_exposure",
        "max_open_orders",
        "max_orders_per_minute",
        "daily_loss_limit",
        "allow_short_selling",
        "updated_at",
    ]
    list_filter = ["trading_state", "allow_short_selling", "pdt_enforcement"]
    search_fields = ["user__username"]
    readonly_fields = ["restricted_by", "day", "day_start_equity", "day_peak_equity", "updated_at"]
    actions = ["kill_switch_halt", "kill_switch_liquidate"]
    fieldsets = [
        (None, {"fields": ["user", "trading_state", "restricted_by"]}),
        (
            "Orders",
            {
                "fields": [
                    "max_order_quantity",
                    "max_order_notional",
                    "max_open_orders",
                    "max_orders_per_minute",
                    "duplicate_window_seconds",
                    "price_collar_percent",
                ]
            },
        ),
        (
            "Positions and exposure",
            {
                "fields": [
                    "max_position_quantity",
                    "max_position_notional",
                    "max_gross_exposure",
                    "max_net_exposure",
                    "max_equity_exposure",
                    "max_crypto_exposure",
                    "max_concentration_percent",
                    "max_broker_exposure",
                ]
            },
        ),
        (
            "Losses",
            {
                "fields": [
                    "daily_loss_limit",
                    "max_drawdown",
                    "emergency_loss_limit",
                    "day",
                    "day_start_equity",
                    "day_peak_equity",
                ]
            },
        ),
        ("Compliance", {"fields": ["restricted_symbols", "allow_short_selling", "pdt_enforcement"]}),
        (None, {"fields": ["updated_at"]}),
    ]

    def save_model(self, request, obj, form, change) -> None:
        """A trading state set here is staff's: recorded, and only staff can lift it."""
        state = obj.trading_state
        if change and "trading_state" in form.changed_data:
            obj.trading_state = form.initial["trading_state"]
        super().save_model(request, obj, form, change)
        if change and "trading_state" in form.changed_data:
            profile = trading_state_set(
                user=obj.user,
                state=TradingState(state),
                actor_label=f"{request.user.get_username()} (admin)",
                authority=Authority.STAFF,
                by_staff=True,
            )
            obj.trading_state, obj.restricted_by = profile.trading_state, profile.restricted_by

    @admin.action(description="Kill switch: halt and cancel all open orders")
    def kill_switch_halt(self, request, queryset) -> None:
        self._kill_switch(request, queryset, liquidate=False)

    @admin.action(description="Kill switch: halt, cancel and liquidate")
    def kill_switch_liquidate(self, request, queryset) -> None:
        self._kill_switch(request, queryset, liquidate=True)

    def _kill_switch(self, request, queryset, *, liquidate: bool) -> None:
        actor = order_services.Actor.for_user(request.user, f"{request.user.get_username()} (admin)")
        results = [
            order_services.kill_switch_engage(user=profile.user, actor=actor, liquidate=liquidate)
            for profile in queryset.select_related("user").order_by("pk")
        ]
        summary = (
            f"Kill switch engaged for {len(results)} user(s): halted, "
            f"{sum(len(r.cancelled) for r in results)} order(s) cancelled"
        )
        if liquidate:
            summary += f", {sum(len(r.liquidated) for r in results)} liquidation order(s) placed"
        self.message_user(request, summary + ".", messages.SUCCESS)
        for r in results:
            for order_id, reason in r.cancel_failed:
                self.message_user(
                    request, f"User {r.user_id}: order {order_id} not cancelled: {reason}", messages.ERROR
                )
            for symbol, broker_id, reason in r.liquidation_failed:
                self.message_user(
                    request,
                    f"User {r.user_id}: {symbol} at broker {broker_id} not liquidated: {reason}",
                    messages.ERROR,
                )


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["order", "account", "amount", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RiskAlert)
class RiskAlertAdmin(admin.ModelAdmin):
    """Live risk alerts. Read-only but for the Acknowledge action."""

    list_display = [
        "user",
        "rule",
        "severity",
        "symbol",
        "value",
        "limit",
        "occurrences",
        "last_seen_at",
        "acknowledged",
    ]
    list_filter = ["severity", "rule", ("acknowledged_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "symbol", "message"]
    date_hierarchy = "last_seen_at"
    list_select_related = ["user"]
    actions = ["acknowledge"]

    @admin.display(boolean=True, ordering="acknowledged_at")
    def acknowledged(self, obj: RiskAlert) -> bool:
        return obj.acknowledged_at is not None

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request, queryset) -> None:
        count = 0
        for alert in queryset.filter(acknowledged_at__isnull=True):
            risk_alert_acknowledge(alert=alert, user=request.user)
            count += 1
        self.message_user(request, f"{count} alert(s) acknowledged.", messages.SUCCESS)

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        # alerts are written by the monitor; a person only acknowledges them (the action)
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RiskBook)
class RiskBookAdmin(admin.ModelAdmin):
    """The cached exposure totals: read-only; the action checks them against the book and repairs."""

    list_display = ["user", "gross", "long_value", "short_value", "market_value", "open_orders", "updated_at"]
    search_fields = ["user__username"]
    actions = ["verify"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Check against positions and orders (rebuild if out of step)")
    def verify(self, request, queryset) -> None:
        wrong = [book.user for book in queryset if not risk_book_verify(user_id=book.user_id)]
        if wrong:
            names = ", ".join(str(u) for u in wrong)
            self.message_user(request, f"Rebuilt out-of-step books of: {names}.", messages.WARNING)
        else:
            self.message_user(request, f"{queryset.count()} book(s) in step with positions and orders.")


@admin.register(EquitySample)
class EquitySampleAdmin(admin.ModelAdmin):
    """The equity samples behind the dashboard chart: written by the risk monitor, read-only."""

    list_display = ["user", "at", "equity", "daily_pnl"]
    list_filter = [("at", admin.DateFieldListFilter)]
    search_fields = ["user__username"]
    date_hierarchy = "at"
    list_select_related = ["user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
