"""Admin for routing decisions and algo orders: read-only; algos are controlled via actions."""

from __future__ import annotations

from django.contrib import admin, messages

from orders.admin import ReadOnlyAdmin
from orders.services import Actor
from routing import algos
from routing.models import AlgoOrder, AlgoSlice, AlgoState, RoutingDecision
from trademaster.errors import TradeMasterError


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(ReadOnlyAdmin):
    list_display = ["id", "order", "winner", "explicit", "impact_bps", "reason", "created_at"]
    list_filter = ["explicit"]
    search_fields = ["order__client_order_id", "order__symbol", "reason"]
    list_select_related = ["order", "winner"]
    readonly_fields = [
        "order",
        "explicit",
        "winner",
        "reason",
        "impact_bps",
        "candidates",
        "skipped",
        "split",
    ]


class AlgoSliceInline(admin.TabularInline):
    model = AlgoSlice
    extra = 0
    can_delete = False
    fields = [
        "seq",
        "due_at",
        "quantity",
        "state",
        "released_quantity",
        "released_at",
        "child",
        "broker",
        "note",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _control(modeladmin, request, queryset, action, label: str) -> None:
    actor = Actor.for_user(request.user, f"{request.user.get_username()} (admin)")
    done = 0
    for algo in queryset.select_related("parent__user"):
        try:
            action(user=algo.parent.user, order_id=algo.parent_id, actor=actor)
        except TradeMasterError as exc:
            modeladmin.message_user(request, f"Order {algo.parent_id}: {exc.message}", messages.WARNING)
        else:
            done += 1
    modeladmin.message_user(request, f"{label} {done} algo order(s).")


@admin.action(description="Pause the selected algo orders")
def pause(modeladmin, request, queryset):
    _control(modeladmin, request, queryset, algos.algo_pause, "Paused")


@admin.action(description="Resume the selected algo orders")
def resume(modeladmin, request, queryset):
    _control(modeladmin, request, queryset.filter(state=AlgoState.PAUSED), algos.algo_resume, "Resumed")


@admin.action(description="Cancel the selected algo orders (and their open children)")
def cancel(modeladmin, request, queryset):
    _control(modeladmin, request, queryset, algos.algo_cancel, "Cancelled")


@admin.register(AlgoOrder)
class AlgoOrderAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "parent",
        "kind",
        "state",
        "start_time",
        "end_time",
        "limit_price",
        "max_participation",
    ]
    list_filter = ["kind", "state"]
    search_fields = ["parent__client_order_id", "parent__symbol", "parent__user__username"]
    list_select_related = ["parent"]
    inlines = [AlgoSliceInline]
    actions = [pause, resume, cancel]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None  # the list (and its actions), never the edit form
