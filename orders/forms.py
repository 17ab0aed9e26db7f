"""The trader's order form (``/trade/``): parsing and presentation only.

Which fields apply to which order type, and every rule an order must follow, live elsewhere: the
fields shown per type in ``orders.domain.entry``, the order rules in
``orders.domain.validation`` and the algo rules in ``routing.algos`` (both reached through
``orders.services``). Errors those report are put back on the form's fields with
:meth:`OrderForm.add_service_error`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from brokers.models import BrokerAccount, Instrument
from brokers.selectors import broker_account_list
from orders.domain import entry
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest
from orders.models import OrderTypeChoices, SideChoices, TimeInForceChoices
from routing.algos import AlgoParams
from trademaster.errors import TradeMasterError

DEC = {"max_digits": 18, "decimal_places": 8}
HUNDRED = Decimal(100)
ALGO_FIELDS = ("duration_minutes", "slices", "max_participation")
TYPE_LABELS = {
    "MARKET": "Market",
    "LIMIT": "Limit",
    "STOP": "Stop",
    "STOP_LIMIT": "Stop limit",
    "TRAILING_STOP": "Trailing stop",
}
TIF_LABELS = {
    "DAY": "DAY: until the close",
    "GTC": "GTC: until cancelled",
    "IOC": "IOC: now, rest cancelled",
    "FOK": "FOK: all now or nothing",
}


def _decimal_input(**attrs: str) -> forms.TextInput:
    return forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", **attrs})


def _integer_input(**attrs: str) -> forms.TextInput:
    return forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", **attrs})


class BrokerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: BrokerAccount) -> str:
        return f"{obj} · {obj.get_broker_name_display()} · {obj.connection_status}"


class OrderForm(forms.Form):
    symbol = forms.CharField(
        label="Symbol",
        max_length=20,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "list": "symbol-list",
                "placeholder": "AAPL",
            }
        ),
    )
    side = forms.ChoiceField(label="Side", choices=SideChoices.choices, initial="BUY")
    order_type = forms.ChoiceField(
        label="Order type",
        choices=[(c, TYPE_LABELS.get(c, c)) for c, _ in OrderTypeChoices.choices],
        initial="LIMIT",
    )
    quantity = forms.DecimalField(label="Quantity", **DEC, widget=_decimal_input(placeholder="0"))
    price = forms.DecimalField(label="Limit price", **DEC, required=False, widget=_decimal_input())
    stop_price = forms.DecimalField(label="Stop price", **DEC, required=False, widget=_decimal_input())
    trail_amount = forms.DecimalField(label="Trail amount", **DEC, required=False, widget=_decimal_input())
    trail_percent = forms.DecimalField(
        label="Trail %", max_digits=10, decimal_places=4, required=False, widget=_decimal_input()
    )
    time_in_force = forms.ChoiceField(
        label="Time in force",
        choices=[(c, TIF_LABELS.get(c, c)) for c, _ in TimeInForceChoices.choices],
        initial="DAY",
    )
    broker = BrokerChoiceField(
        label="Broker", queryset=BrokerAccount.objects.none(), required=False, empty_label="Auto-route"
    )
    algo = forms.ChoiceField(
        label="Algo", choices=[("", "None"), ("TWAP", "TWAP"), ("VWAP", "VWAP")], required=False
    )
    duration_minutes = forms.IntegerField(
        label="Duration (minutes)", required=False, widget=_integer_input(placeholder="30")
    )
    slices = forms.IntegerField(
        label="Slices", required=False, widget=_integer_input(placeholder="1 a minute")
    )
    max_participation = forms.DecimalField(
        label="Max participation %",
        max_digits=10,
        decimal_places=4,
        required=False,
        widget=_decimal_input(placeholder="10"),
    )

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["broker"].queryset = broker_account_list(user=user).filter(is_active=True)
        for name, field in self.fields.items():
            if name in entry.SHOWN_FOR:
                field.show_when = entry.show_when(name)

    def add_error(self, field, error) -> None:
        super().add_error(field, error)
        # the error list under each field is ``#error-<name>``: screen readers announce it
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["aria-describedby"] = f"error-{name}"
        # the first field in error takes the focus when the form comes back
        first = next((n for n in self.fields if n in self.errors), None)
        for name, field in self.fields.items():
            if name == first:
                field.widget.attrs["autofocus"] = True
            else:
                field.widget.attrs.pop("autofocus", None)

    # --- presentation ----------------------------------------------------------------------------

    def known_symbols(self) -> list[str]:
        """The simulated market's symbols in the asset classes the user's accounts trade."""
        classes = {c for account in self.fields["broker"].queryset for c in account.asset_classes}
        return list(Instrument.objects.filter(asset_class__in=classes).values_list("symbol", flat=True))

    def current(self, name: str) -> Any:
        """The field's value as the form shows it (bound or initial)."""
        return self[name].value()

    def ready(self) -> bool:
        """Whether the form names an order at all (a symbol and a quantity), bound or not."""
        return bool(str(self.current("symbol") or "").strip() and str(self.current("quantity") or "").strip())

    def missing(self) -> list[str]:
        """What the trader still has to give or fix, phrased gently (the form was not submitted)."""
        out = []
        for name, errors in self.errors.items():
            if name == "__all__":
                out.extend(errors)
                continue
            label = self.fields[name].label
            for error in errors.as_data():
                out.append(
                    f"{label}: enter a value."
                    if error.code == "required"
                    else f"{label}: {error.messages[0]}"
                )
        return out

    # --- parsing ---------------------------------------------------------------------------------

    def clean_symbol(self) -> str:
        return self.cleaned_data["symbol"].strip().upper()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # a value in a field the order type (or algo) does not show is not read
        for name in entry.SHOWN_FOR:
            if name in data and not entry.shown(name, data):
                data[name] = None
        if (
            data.get("algo")
            and data.get("duration_minutes") is None
            and "duration_minutes" not in self.errors
        ):
            self.add_error(
                "duration_minutes", forms.ValidationError("Required for an algo order.", code="required")
            )
        return data

    def order_request(self) -> OrderRequest:
        d = self.cleaned_data
        return OrderRequest(
            symbol=d["symbol"],
            side=Side(d["side"]),
            order_type=OrderType(d["order_type"]),
            quantity=d["quantity"],
            time_in_force=TimeInForce(d["time_in_force"]),
            price=d.get("price"),
            stop_price=d.get("stop_price"),
            trail_amount=d.get("trail_amount"),
            trail_percent=d.get("trail_percent"),
        )

    def broker_id(self) -> int | None:
        broker = self.cleaned_data.get("broker")
        return broker.pk if broker else None

    def algo_params(self) -> AlgoParams | None:
        """TWAP/VWAP parameters as ``orders.services.order_place`` takes them (minutes to seconds,
        percent to a fraction); the service validates them."""
        d = self.cleaned_data
        if not d.get("algo"):
            return None
        minutes, pct = d.get("duration_minutes"), d.get("max_participation")
        return AlgoParams(
            kind=d["algo"],
            duration_seconds=None if minutes is None else minutes * 60,
            slices=d.get("slices"),
            max_participation=None if pct is None else pct / HUNDRED,
        )

    def order_values(self) -> dict[str, Any]:
        """The cleaned values that make the order (for a confirmation's fingerprint)."""
        d = self.cleaned_data
        names = ("symbol", "side", "order_type", "quantity", "time_in_force", "algo", *entry.SHOWN_FOR)
        values = {n: d.get(n) for n in names}
        values["broker"] = self.broker_id()
        return values

    def add_service_error(self, exc: TradeMasterError) -> None:
        """Put a service error on the fields it names, or on the form."""
        fields = exc.extra.get("fields")
        if not fields:
            self.add_error(None, exc.message)
            for candidate in exc.extra.get("candidates", []):  # no_eligible_broker: each account's reason
                self.add_error(None, candidate)
            return
        for name, messages in fields.items():
            for message in messages:
                target, text = entry.form_error(name, str(message), self.fields)
                self.add_error(target, text)
