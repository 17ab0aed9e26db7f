from __future__ import annotations

from django.contrib import admin

from orders.models import Fill, Order, OrderEvent, Position


class ReadOnlyAdmin(admin.ModelAdmin):
    """Orders, fills and events change only through the OMS services, never by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "event_type", "from_status", "to_status", "actor_type", "actor_label", "data"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "user",
        "symbol",
        "side",
        "order_type",
        "quantity",
        "filled_quantity",
        "status",
        "broker",
        "algo",
        "parent",
        "created_at",
    ]
    list_filter = ["status", "order_type", "side", "time_in_force", "asset_class", "algo"]
    search_fields = ["client_order_id", "broker_order_id", "symbol", "user__username"]
    date_hierarchy = "created_at"
    inlines = [OrderEventInline]
    list_select_related = ["user", "broker"]


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "order_id",
        "user",
        "symbol",
        "side",
        "quantity",
        "price",
        "fee",
        "broker",
        "executed_at",
    ]
    list_filter = ["side", "liquidity"]
    search_fields = ["symbol", "broker_fill_id"]
    list_select_related = ["user", "broker"]


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = [
        "user",
        "broker",
        "symbol",
        "quantity",
        "average_cost",
        "market_value",
        "unrealized_pnl",
        "realized_pnl",
    ]
    search_fields = ["symbol", "user__username"]
    list_select_related = ["user", "broker"]


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "order_id",
        "event_type",
        "from_status",
        "to_status",
        "actor_type",
        "actor_label",
        "created_at",
    ]
    list_filter = ["event_type", "actor_type"]
