from django.contrib import admin

from orders.admin import ReadOnlyAdmin
from trademaster.models import BenchPing, OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "user_id", "account_id", "occurred_at", "published_at"]
    list_filter = ["type"]
    search_fields = ["event_id"]


@admin.register(BenchPing)
class BenchPingAdmin(ReadOnlyAdmin):
    list_display = ["id", "user_id", "created_at"]
