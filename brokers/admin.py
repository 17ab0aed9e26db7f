from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from brokers.models import (
    BrokerAccount,
    ConnectionStatus,
    Instrument,
    PaperBalance,
    PaperHolding,
    PaperOrder,
    PaperVenue,
)
from brokers.services import adapters_reset, broker_account_health_check


class BrokerAccountForm(forms.ModelForm):
    """Credentials are write-only: the form never shows them, blank keeps what is stored."""

    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the stored key.",
    )
    api_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the stored secret.",
    )
    clear_credentials = forms.BooleanField(required=False)

    class Meta:
        model = BrokerAccount
        fields = [
            "user",
            "broker_name",
            "account_id",
            "label",
            "paper_venue",
            "sandbox_mode",
            "is_active",
            "buying_power",
            "cash",
            "total_value",
            "connection_status",
        ]

    def save(self, commit: bool = True) -> BrokerAccount:
        account = super().save(commit=False)
        if self.cleaned_data.get("clear_credentials"):
            account.api_key_encrypted = None
            account.api_secret_encrypted = None
        if self.cleaned_data.get("api_key"):
            account.api_key_encrypted = self.cleaned_data["api_key"]
        if self.cleaned_data.get("api_secret"):
            account.api_secret_encrypted = self.cleaned_data["api_secret"]
        if commit:
            account.save()
        return account


@admin.register(BrokerAccount)
class BrokerAccountAdmin(admin.ModelAdmin):
    form = BrokerAccountForm
    list_display = [
        "id",
        "user",
        "broker_name",
        "account_id",
        "label",
        "is_active",
        "sandbox_mode",
        "connection_status",
        "latency_ms",
        "last_heartbeat_at",
        "buying_power",
        "total_value",
        "credentials",
    ]
    list_filter = ["broker_name", "is_active", "sandbox_mode", "connection_status"]
    search_fields = ["account_id", "label", "user__username"]
    readonly_fields = [
        "connection_status",
        "latency_ms",
        "last_heartbeat_at",
        "health_detail",
        "created_at",
        "updated_at",
    ]
    actions = ["test_connection"]

    @admin.action(description="Test connection (ask each broker how it is, now)")
    def test_connection(self, request, queryset) -> None:
        for account in queryset.select_related("paper_venue"):
            status = broker_account_health_check(account=account)
            level = messages.SUCCESS if status == ConnectionStatus.CONNECTED else messages.WARNING
            detail = f": {account.health_detail}" if account.health_detail else ""
            self.message_user(request, f"{account}: {status} ({account.latency_ms} ms){detail}", level)

    @admin.display(boolean=True)
    def credentials(self, obj: BrokerAccount) -> bool:
        return obj.has_credentials

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        adapters_reset()


@admin.register(PaperVenue)
class PaperVenueAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "asset_classes",
        "spread_bps",
        "depth_levels",
        "commission_bps",
        "commission_per_unit",
        "min_commission",
        "reject_new_orders_reason",
    ]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        adapters_reset()


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = [
        "symbol",
        "asset_class",
        "mid",
        "tick_size",
        "lot_size",
        "base_size",
        "step",
        "updated_at",
    ]
    list_filter = ["asset_class"]


@admin.register(PaperOrder)
class PaperOrderAdmin(admin.ModelAdmin):
    list_display = [
        "venue_order_id",
        "account",
        "symbol",
        "side",
        "order_type",
        "quantity",
        "filled_quantity",
        "status",
        "created_at",
    ]
    list_filter = ["status", "order_type"]
    search_fields = ["venue_order_id", "client_order_id", "symbol"]


admin.site.register(PaperBalance, list_display=["account", "cash"])
admin.site.register(PaperHolding, list_display=["account", "symbol", "quantity", "average_cost"])
