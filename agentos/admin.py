from django.contrib import admin

from agentos.models import AgentProfile


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ("application", "notional_cap", "is_active", "created_at")
    list_filter = ("is_active",)
    raw_id_fields = ("application",)
