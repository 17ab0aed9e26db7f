from __future__ import annotations

from django import forms

from brokers.models import BrokerAccount
from orders.models import OrderTypeChoices, SideChoices, TimeInForceChoices

DEC = {"max_digits": 18, "decimal_places": 8}


class OrderForm(forms.Form):
    symbol = forms.CharField(max_length=20, help_text="AAPL, BRK.B or BTC/USD")
    side = forms.ChoiceField(choices=SideChoices.choices)
    order_type = forms.ChoiceField(choices=OrderTypeChoices.choices)
    quantity = forms.DecimalField(**DEC, min_value=0)
    price = forms.DecimalField(**DEC, required=False, label="Limit price")
    stop_price = forms.DecimalField(**DEC, required=False)
    trail_amount = forms.DecimalField(**DEC, required=False)
    trail_percent = forms.DecimalField(max_digits=10, decimal_places=4, required=False)
    time_in_force = forms.ChoiceField(choices=TimeInForceChoices.choices, initial="DAY")
    broker = forms.ModelChoiceField(
        queryset=BrokerAccount.objects.none(), required=False, empty_label="Auto-route"
    )

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["broker"].queryset = BrokerAccount.objects.filter(user=user, is_active=True)
