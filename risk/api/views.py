"""POST /api/v1/risk/check/: the pre-trade verdict for an order, without placing it.

POST /api/v1/risk/kill-switch/ and /api/v1/risk/kill-switch/release/: halt, cancel, liquidate; release.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import services
from orders.api.serializers import OrderCreateInputSerializer
from orders.api.views import E400, E403, E404, _actor_label, order_request_from
from risk.domain.assessment import RiskAssessment
from trademaster.errors import PermissionDenied

DEC = {"max_digits": 18, "decimal_places": 8}


class RuleFailureSerializer(serializers.Serializer):
    rule = serializers.CharField()
    message = serializers.CharField(source="reason")
    limit = serializers.DecimalField(**DEC, allow_null=True, coerce_to_string=True)
    value = serializers.DecimalField(**DEC, allow_null=True, coerce_to_string=True)


class ProjectedExposureSerializer(serializers.Serializer):
    order_notional = serializers.DecimalField(**DEC)
    position_quantity = serializers.DecimalField(**DEC)
    position_notional = serializers.DecimalField(**DEC)
    gross_exposure = serializers.DecimalField(**DEC)
    net_exposure = serializers.DecimalField(**DEC)
    buying_power_after = serializers.DecimalField(**DEC)


class RiskCheckOutputSerializer(serializers.Serializer):
    approved = serializers.BooleanField()
    broker_id = serializers.IntegerField()
    broker = serializers.CharField()
    reasons = RuleFailureSerializer(many=True)
    projected = ProjectedExposureSerializer()
    reserve = serializers.DecimalField(**DEC)


def assessment_data(assessment: RiskAssessment, account) -> dict:
    return {
        "approved": assessment.approved,
        "broker_id": account.pk,
        "broker": str(account),
        "reasons": list(assessment.failures),
        "projected": assessment.projected,
        "reserve": assessment.reserve,
    }


class RiskCheckApi(APIView):
    required_scope = "read"  # a dry run places nothing

    @extend_schema(
        operation_id="risk_check",
        description="The pre-trade risk verdict and the route for an order, without placing it.",
        request=OrderCreateInputSerializer,
        responses={200: RiskCheckOutputSerializer, 400: E400, 404: E404},
    )
    def post(self, request: Request) -> Response:
        serializer = OrderCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        preview = services.order_preview(
            user=request.user, request=order_request_from(data), broker_id=data.get("broker_id")
        )
        return Response(RiskCheckOutputSerializer(assessment_data(preview.assessment, preview.account)).data)


# --- kill switch: POST /api/v1/risk/kill-switch/ and /api/v1/risk/kill-switch/release/ ----------


class KillSwitchInputSerializer(serializers.Serializer):
    liquidate = serializers.BooleanField(default=False, help_text="Also close every position at market.")
    all_users = serializers.BooleanField(default=False, help_text="Staff only: every user (global switch).")


class CancelFailureSerializer(serializers.Serializer):
    order_id = serializers.IntegerField()
    reason = serializers.CharField()


class LiquidationFailureSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    broker_id = serializers.IntegerField()
    reason = serializers.CharField()


class KillSwitchResultSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    cancelled = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids of the cancelled orders."
    )
    cancel_failed = CancelFailureSerializer(many=True)
    liquidated = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids of the liquidation orders placed."
    )
    liquidation_failed = LiquidationFailureSerializer(many=True)


class KillSwitchOutputSerializer(serializers.Serializer):
    results = KillSwitchResultSerializer(many=True, help_text="One per user: yourself, or every user.")


class TradingStateOutputSerializer(serializers.Serializer):
    trading_state = serializers.CharField()


def kill_switch_data(result: services.KillSwitchResult) -> dict:
    return {
        "user_id": result.user_id,
        "cancelled": result.cancelled,
        "cancel_failed": [{"order_id": i, "reason": r} for i, r in result.cancel_failed],
        "liquidated": result.liquidated,
        "liquidation_failed": [
            {"symbol": s, "broker_id": b, "reason": r} for s, b, r in result.liquidation_failed
        ],
    }


class KillSwitchApi(APIView):
    required_scope = "trade"

    @extend_schema(
        operation_id="risk_kill_switch",
        description=(
            "Halt trading, cancel every open order at every broker and, with `liquidate`, close every "
            "position with market orders. Staff may pass `all_users`: every user is halted, and those "
            "with open orders or positions get a result each. Failures are listed, never hidden."
        ),
        request=KillSwitchInputSerializer,
        responses={200: KillSwitchOutputSerializer, 400: E400, 403: E403},
    )
    def post(self, request: Request) -> Response:
        serializer = KillSwitchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        actor = services.Actor.for_user(request.user, _actor_label(request))
        if data["all_users"]:
            if not request.user.is_staff:
                raise PermissionDenied("staff_only", "Only staff may engage the kill switch for all users.")
            results = services.kill_switch_engage_all(actor=actor, liquidate=data["liquidate"])
        else:
            results = [
                services.kill_switch_engage(user=request.user, actor=actor, liquidate=data["liquidate"])
            ]
        return Response(KillSwitchOutputSerializer({"results": [kill_switch_data(r) for r in results]}).data)


class KillSwitchReleaseApi(APIView):
    required_scope = "trade"

    @extend_schema(
        operation_id="risk_kill_switch_release",
        description="Release the kill switch: your trading state goes back to ACTIVE.",
        request=None,
        responses={200: TradingStateOutputSerializer, 403: E403},
    )
    def post(self, request: Request) -> Response:
        profile = services.kill_switch_release(
            user=request.user, actor=services.Actor.for_user(request.user, _actor_label(request))
        )
        return Response(TradingStateOutputSerializer(profile).data)
