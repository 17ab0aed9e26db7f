"""POST /api/v1/risk/check/: the pre-trade verdict for an order, without placing it."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import services
from orders.api.serializers import OrderCreateInputSerializer
from orders.api.views import E400, E404, order_request_from
from risk.domain.assessment import RiskAssessment

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
