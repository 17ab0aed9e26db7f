from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from brokers.credentials import broker_account_test_connection, credentials_stored
from brokers.domain.credentials import KEEP, CredentialChange, credentials_merge
from brokers.models import (
    BrokerAccount,
    ConnectionStatus,
    Instrument,
    PaperBalance,
    PaperHolding,
    PaperOrder,
    PaperVenue,
)
from brokers.services import adapter_forget, adapters_reset


def _password(help_text: str) -> forms.CharField:
    return forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False), help_text=help_text
    )


class BrokerAccountForm(forms.ModelForm):
    """Credentials are write-only: the form never shows them, blank keeps what is stored.

    What each broker takes is checked by ``brokers.domain.credentials`` (as in the API).
    """

    api_key = _password("Alpaca: API key ID; Binance: API key; Schwab: app key. Blank keeps the stored one.")
    api_secret = _password(
        "Alpaca: API secret key; Binance: API secret (HMAC); Schwab: app secret. Blank keeps the stored one."
    )
    refresh_token = _password("Schwab only, optional: a refresh token (the OAuth login sets it otherwise).")
    connection = forms.JSONField(
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text='Interactive Brokers only: {"host": "127.0.0.1", "port": 4002, "client_id": 7}. '
        "Blank keeps the stored one.",
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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sandbox_mode"].help_text = "Paper / testnet (checked) or live trading (unchecked)."
        self.fields["connection"].initial = None  # write-only like the secrets
        self._merged = None

    def clean(self) -> dict:
        data = super().clean()
        broker_name = data.get("broker_name") or self.instance.broker_name
        change = CredentialChange(
            api_key=data.get("api_key") or None,
            api_secret=data.get("api_secret") or None,
            refresh_token=data.get("refresh_token") or None,
            connection=data.get("connection") or None,
            clear=bool(data.get("clear_credentials")),
        )
        if broker_name == "paper" and self.instance.pk is None and not change.given():
            return data  # staff may add paper accounts (the API may not); they hold no credentials
        merged = credentials_merge(
            broker_name=broker_name,
            change=change,
            stored=credentials_stored(self.instance),
            creating=self.instance.pk is None,
        )
        for name, messages_ in merged.errors.items():
            target = name if name in self.fields else None
            for message in messages_:
                self.add_error(target, message)
        self._merged = merged
        return data

    def save(self, commit: bool = True) -> BrokerAccount:
        account = super().save(commit=False)
        merged = self._merged
        if merged is not None and merged.api_key is not KEEP:
            account.api_key_encrypted = merged.api_key
        if merged is not None and merged.api_secret is not KEEP:
            account.api_secret_encrypted = merged.api_secret
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
        "error_rate",
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
            result = broker_account_test_connection(account=account)
            level = messages.SUCCESS if result.status == ConnectionStatus.CONNECTED else messages.WARNING
            latency = "no answer" if result.latency_ms is None else f"{result.latency_ms} ms"
            self.message_user(request, f"{account}: {result.status} ({latency}): {result.message}", level)

    @admin.display(boolean=True)
    def credentials(self, obj: BrokerAccount) -> bool:
        return obj.has_credentials

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        adapter_forget(obj.pk)  # the next call builds it with what was saved


# --- Schwab OAuth: a "Connect to Schwab" link on the change page (brokers.views.schwab_connect) ---
@admin.display(description="Schwab login")
def schwab_connect_link(obj: BrokerAccount | None) -> str:
    from django.urls import reverse  # kept local: this block is the only Schwab OAuth piece here
    from django.utils.html import format_html

    if obj is None or obj.pk is None or obj.broker_name != "schwab":
        return "only for saved Schwab accounts"
    return format_html(
        '<a class="button" href="{}">Connect to Schwab</a> '
        "(log in at Schwab; needs the app key and secret; the login lasts 7 days)",
        reverse("brokers:schwab-connect", args=[obj.pk]),
    )


BrokerAccountAdmin.readonly_fields = [*BrokerAccountAdmin.readonly_fields, schwab_connect_link]


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
