from __future__ import annotations

from rest_framework import serializers

from orders.models import (
    Fill,
    Order,
    OrderEvent,
    OrderStatusChoices,
    OrderTypeChoices,
    Position,
    SideChoices,
    TimeInForceChoices,
)

DEC = {"max_digits": 18, "decimal_places": 8}


class StrictDecimalField(serializers.DecimalField):
    """A decimal given as a JSON string or number; booleans are refused, not read as 0/1."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class OrderCreateInputSerializer(serializers.Serializer):
    symbol = serializers.CharField(
        max_length=20, help_text="Equity ticker (AAPL, BRK.B) or crypto pair (BTC/USD)."
    )
    side = serializers.ChoiceField(choices=SideChoices.choices)
    order_type = serializers.ChoiceField(choices=OrderTypeChoices.choices)
    quantity = StrictDecimalField(**DEC)
    price = StrictDecimalField(**DEC, required=False, allow_null=True, help_text="Limit price.")
    stop_price = StrictDecimalField(**DEC, required=False, allow_null=True)
    trail_amount = StrictDecimalField(**DEC, required=False, allow_null=True)
    trail_percent = StrictDecimalField(max_digits=10, decimal_places=4, required=False, allow_null=True)
    time_in_force = serializers.ChoiceField(choices=TimeInForceChoices.choices, default="DAY")
    client_order_id = serializers.CharField(
        max_length=64,
        required=False,
        allow_null=True,
        help_text="Your id for the order; resubmitting the same id returns the same order.",
    )
    broker_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="A broker account of yours (bypasses scoring, not eligibility or risk); omitted: the "
        "service routes by best execution and may split a large order across venues.",
    )
    algo = serializers.ChoiceField(
        choices=[("TWAP", "TWAP"), ("VWAP", "VWAP")],
        required=False,
        allow_null=True,
        help_text="Work the order over a window: TWAP (equal slices) or VWAP (following the intraday "
        "volume curve). MARKET or LIMIT (price caps every child); needs end_time or duration_seconds.",
    )
    start_time = serializers.DateTimeField(required=False, allow_null=True, help_text="Default: now.")
    end_time = serializers.DateTimeField(required=False, allow_null=True)
    duration_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_participation = StrictDecimalField(
        max_digits=10,
        decimal_places=4,
        required=False,
        allow_null=True,
        help_text="At most this fraction of the expected market volume per slice, e.g. 0.1.",
    )
    randomize = StrictDecimalField(
        max_digits=10,
        decimal_places=4,
        required=False,
        allow_null=True,
        help_text="TWAP only: vary each slice by up to this fraction (0 to 0.5).",
    )
    slices = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Default: one a minute."
    )

    ALGO_FIELDS = ("start_time", "end_time", "duration_seconds", "max_participation", "randomize", "slices")

    def validate(self, attrs):
        if not attrs.get("algo"):
            given = [f for f in self.ALGO_FIELDS if attrs.get(f) is not None]
            if given:
                raise serializers.ValidationError({f: ["Only for an algo order (set algo)."] for f in given})
        return attrs


class OrderModifyInputSerializer(serializers.Serializer):
    quantity = StrictDecimalField(**DEC, required=False, help_text="The new total quantity.")
    price = StrictDecimalField(**DEC, required=False)
    stop_price = StrictDecimalField(**DEC, required=False)
    trail_amount = StrictDecimalField(**DEC, required=False)
    trail_percent = StrictDecimalField(max_digits=10, decimal_places=4, required=False)
    time_in_force = serializers.ChoiceField(choices=TimeInForceChoices.choices, required=False)
    end_time = serializers.DateTimeField(required=False, help_text="Algo orders: the new end of the window.")

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(
                {k: ["This field cannot be modified."] for k in sorted(unknown)}
            )
        if not attrs:
            raise serializers.ValidationError("Give at least one field to change.")
        return attrs


class OrderOutputSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    broker_id = serializers.IntegerField(read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=OrderStatusChoices.choices, read_only=True)
    remaining_quantity = serializers.DecimalField(**DEC, read_only=True)
    parent_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "user_id",
            "broker_id",
            "parent_id",
            "algo",
            "client_order_id",
            "symbol",
            "asset_class",
            "order_type",
            "side",
            "quantity",
            "price",
            "stop_price",
            "trail_amount",
            "trail_percent",
            "time_in_force",
            "status",
            "status_reason",
            "broker_order_id",
            "filled_quantity",
            "remaining_quantity",
            "average_fill_price",
            "commission",
            "created_at",
            "updated_at",
            "submitted_at",
            "filled_at",
            "cancelled_at",
            "resend_at",
            "send_attempts",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "resend_at": {"help_text": "a placement the broker refused for now is sent again at this time"},
            "send_attempts": {"help_text": "how many times the broker refused this placement for now"},
        }


class OrderEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderEvent
        fields = [
            "id",
            "event_type",
            "from_status",
            "to_status",
            "actor_type",
            "actor_label",
            "data",
            "created_at",
        ]
        read_only_fields = fields


class FillOutputSerializer(serializers.ModelSerializer):
    order_id = serializers.IntegerField(read_only=True)
    broker_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Fill
        fields = [
            "id",
            "order_id",
            "broker_id",
            "broker_fill_id",
            "symbol",
            "side",
            "quantity",
            "price",
            "fee",
            "liquidity",
            "executed_at",
        ]
        read_only_fields = fields


class PositionOutputSerializer(serializers.ModelSerializer):
    broker_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Position
        fields = [
            "id",
            "broker_id",
            "symbol",
            "asset_class",
            "quantity",
            "average_cost",
            "market_price",
            "market_value",
            "unrealized_pnl",
            "realized_pnl",
            "total_fees",
            "updated_at",
        ]
        read_only_fields = fields


class BrokerLegSerializer(serializers.Serializer):
    broker_id = serializers.IntegerField()
    quantity = serializers.DecimalField(**DEC)
    average_cost = serializers.DecimalField(**DEC)
    market_value = serializers.DecimalField(**DEC)
    unrealized_pnl = serializers.DecimalField(**DEC)
    realized_pnl = serializers.DecimalField(**DEC)


class AggregatePositionOutputSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    quantity = serializers.DecimalField(**DEC)
    average_cost = serializers.DecimalField(**DEC)
    market_value = serializers.DecimalField(**DEC)
    unrealized_pnl = serializers.DecimalField(**DEC)
    realized_pnl = serializers.DecimalField(**DEC)
    legs = BrokerLegSerializer(many=True)
