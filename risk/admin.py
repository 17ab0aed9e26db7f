from __future__ import annotations

from django.contrib import admin

from risk.models import Reservation, RiskProfile


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
    readonly_fields = ["day", "day_start_equity", "day_peak_equity", "updated_at"]
    fieldsets = [
        (None, {"fields": ["user", "trading_state"]}),
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
                    "max_broker_exposure",
                ]
            },
        ),
        (
            "Losses",
            {"fields": ["daily_loss_limit", "max_drawdown", "day", "day_start_equity", "day_peak_equity"]},
        ),
        ("Compliance", {"fields": ["restricted_symbols", "allow_short_selling", "pdt_enforcement"]}),
        (None, {"fields": ["updated_at"]}),
    ]


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["order", "account", "amount", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
