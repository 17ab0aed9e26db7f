from __future__ import annotations

from rest_framework import serializers

from orders.api.serializers import DEC, StrictDecimalField
from orders.models import OrderTypeChoices, SideChoices, TimeInForceChoices
from routing.models import AlgoSlice, RoutingDecision


class RoutingQuoteInputSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=20)
    side = serializers.ChoiceField(choices=SideChoices.choices)
    quantity = StrictDecimalField(**DEC)
    order_type = serializers.ChoiceField(choices=OrderTypeChoices.choices, default="MARKET")
    price = StrictDecimalField(**DEC, required=False, allow_null=True)
    time_in_force = serializers.ChoiceField(choices=TimeInForceChoices.choices, default="DAY")
    broker_id = serializers.IntegerField(required=False, allow_null=True)


class CandidateSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    label = serializers.CharField()
    score_bps = serializers.CharField(help_text="Lower is better: the sum of the terms below.")
    all_in_price = serializers.CharField(
        help_text="Expected price per unit over the displayed depth, fees in."
    )
    price_bps = serializers.CharField()
    liquidity_bps = serializers.CharField()
    latency_bps = serializers.CharField()
    reject_bps = serializers.CharField()
    health_bps = serializers.CharField()
    buying_power_after = serializers.CharField()


class SkippedSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    label = serializers.CharField()
    reason = serializers.CharField()


class SplitSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    label = serializers.CharField()
    quantity = serializers.CharField()
    expected_price = serializers.CharField(allow_null=True)


class RoutingDecisionSerializer(serializers.Serializer):
    explicit = serializers.BooleanField()
    winner = serializers.IntegerField(allow_null=True, help_text="The account chosen (null: split or none).")
    reason = serializers.CharField()
    impact_bps = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    candidates = CandidateSerializer(many=True, help_text="Eligible accounts, best first.")
    skipped = SkippedSerializer(many=True)
    split = SplitSerializer(many=True)


class StoredDecisionSerializer(serializers.ModelSerializer):
    order_id = serializers.IntegerField(read_only=True)
    winner = serializers.IntegerField(source="winner_id", allow_null=True, read_only=True)
    candidates = CandidateSerializer(many=True, read_only=True)
    skipped = SkippedSerializer(many=True, read_only=True)
    split = SplitSerializer(many=True, read_only=True)

    class Meta:
        model = RoutingDecision
        fields = [
            "order_id",
            "explicit",
            "winner",
            "reason",
            "impact_bps",
            "candidates",
            "skipped",
            "split",
            "created_at",
        ]
        read_only_fields = fields


class AlgoSliceSerializer(serializers.ModelSerializer):
    child_id = serializers.IntegerField(allow_null=True, read_only=True)
    broker_id = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = AlgoSlice
        fields = [
            "seq",
            "due_at",
            "quantity",
            "state",
            "released_quantity",
            "released_at",
            "child_id",
            "broker_id",
            "note",
        ]
        read_only_fields = fields


class AlgoProgressSerializer(serializers.Serializer):
    order_id = serializers.IntegerField()
    algo = serializers.CharField()
    state = serializers.CharField(help_text="RUNNING, PAUSED, DONE (all released) or CANCELLED.")
    status = serializers.CharField(help_text="The parent order's status.")
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField()
    limit_price = serializers.DecimalField(**DEC, allow_null=True)
    max_participation = serializers.DecimalField(max_digits=10, decimal_places=4, allow_null=True)
    quantity = serializers.DecimalField(**DEC)
    filled_quantity = serializers.DecimalField(**DEC)
    average_fill_price = serializers.DecimalField(**DEC, allow_null=True)
    scheduled_quantity = serializers.DecimalField(**DEC, help_text="What the schedule has released by now.")
    percent_filled = serializers.DecimalField(max_digits=7, decimal_places=2)
    percent_scheduled = serializers.DecimalField(max_digits=7, decimal_places=2)
    ahead_of_schedule = serializers.DecimalField(
        **DEC, help_text="Filled minus scheduled (negative: behind)."
    )
    slices_total = serializers.IntegerField()
    slices_released = serializers.IntegerField()
    next_slice_at = serializers.DateTimeField(allow_null=True)
    children = serializers.ListField(child=serializers.IntegerField())


class AlgoDetailSerializer(AlgoProgressSerializer):
    slices = AlgoSliceSerializer(many=True)
