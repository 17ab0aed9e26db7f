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
        required=False, allow_null=True, help_text="A broker account of yours; omitted: the service routes."
    )


class OrderModifyInputSerializer(serializers.Serializer):
    quantity = StrictDecimalField(**DEC, required=False, help_text="The new total quantity.")
    price = StrictDecimalField(**DEC, required=False)
    stop_price = StrictDecimalField(**DEC, required=False)
    trail_amount = StrictDecimalField(**DEC, required=False)
    trail_percent = StrictDecimalField(max_digits=10, decimal_places=4, required=False)
    time_in_force = serializers.ChoiceField(choices=TimeInForceChoices.choices, required=False)

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

    class Meta:
        model = Order
        fields = [
            "id",
            "user_id",
            "broker_id",
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
        ]
        read_only_fields = fields


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
