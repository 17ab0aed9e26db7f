"""The trading agent over REST.

GET /api/v1/agent/capabilities/ and /api/v1/agent/health/: its live health (scope ``read``).
POST /api/v1/agent/orders/: run one order through the agent (scope ``trade``; with
``?preview=true`` it only validates, checks risk and routes). The agent applies the user's
order-entry rate limit itself (the REST budget, :mod:`agentos.throttle`), so this view has no DRF
throttle of its own.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentos.agent import STEPS, AgentOrder, agent_identity, trading_agent
from agentos.domain.capabilities import Capability, Proficiency, Status
from orders.api.serializers import OrderCreateInputSerializer
from orders.api.views import E400, E403, algo_params_from, order_request_from

HEALTH = {"max_digits": 5, "decimal_places": 4, "coerce_to_string": True}


class CapabilityOutputSerializer(serializers.Serializer):
    capability = serializers.ChoiceField(choices=[c.value for c in Capability])
    proficiency = serializers.ChoiceField(choices=[p.value for p in Proficiency])
    health = serializers.DecimalField(**HEALTH, help_text="0..1: success rate x latency factor.")
    success_rate = serializers.DecimalField(**HEALTH)
    p95_ms = serializers.DecimalField(
        max_digits=18, decimal_places=3, allow_null=True, coerce_to_string=True, help_text="null: no samples."
    )
    samples = serializers.IntegerField(help_text="Outcomes in the window (last 200, at most 5 minutes old).")
    target_ms = serializers.DecimalField(
        max_digits=18,
        decimal_places=3,
        coerce_to_string=True,
        help_text="Latency at full health.",
    )


class HealthOutputSerializer(serializers.Serializer):
    score = serializers.DecimalField(**HEALTH, help_text="The weakest capability's health.")
    status = serializers.ChoiceField(choices=[s.value for s in Status])
    alert_below = serializers.DecimalField(**HEALTH)
    capabilities = CapabilityOutputSerializer(many=True)


class AgentCapabilitiesApi(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="agent_capabilities",
        description="The trading agent's capabilities with their proficiency and live health.",
        responses={200: CapabilityOutputSerializer(many=True), 403: E403},
    )
    def get(self, request: Request) -> Response:
        return Response(trading_agent().capabilities())


class AgentHealthApi(APIView):
    required_scope = "read"

    @extend_schema(
        operation_id="agent_health",
        description="The trading agent's overall health: HEALTHY at or above 0.9, DEGRADED below.",
        responses={200: HealthOutputSerializer, 403: E403},
    )
    def get(self, request: Request) -> Response:
        return Response(trading_agent().health())


class AgentOutcomeOutputSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="False: refused or failed (see failed_step and reasons).")
    preview = serializers.BooleanField()
    order_id = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(allow_null=True, help_text="The order's status at the end.")
    approved = serializers.BooleanField(allow_null=True, help_text="The pre-trade risk verdict.")
    reasons = serializers.ListField(child=serializers.CharField())
    broker_id = serializers.IntegerField(allow_null=True)
    broker = serializers.CharField()
    failed_step = serializers.ChoiceField(choices=list(STEPS), allow_null=True)
    elapsed_ms = serializers.DecimalField(max_digits=18, decimal_places=3, coerce_to_string=True)


def _preview(request: Request) -> bool:
    return request.query_params.get("preview", "").lower() in {"1", "true", "yes"}


class AgentOrderCreateApi(APIView):
    @property
    def required_scope(self) -> str:
        """A preview places nothing: ``read``, as the REST risk check; placing needs ``trade``."""
        return "read" if _preview(self.request) else "trade"

    @extend_schema(
        operation_id="agent_orders_create",
        description="Run an order through the trading agent: validate, risk check and broker selection "
        "in parallel, execution and tracking under the agent's deadline. Refusals and failures are "
        "outcomes (200 with ok false); 201 when an order was placed.",
        parameters=[
            OpenApiParameter(
                "preview",
                OpenApiTypes.BOOL,
                description="Only validate, check risk and route: nothing is placed.",
            )
        ],
        request=OrderCreateInputSerializer,
        responses={
            201: AgentOutcomeOutputSerializer,
            200: OpenApiResponse(AgentOutcomeOutputSerializer, description="A preview, or nothing placed."),
            400: E400,
            403: E403,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = OrderCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        preview = _preview(request)
        identity = agent_identity(user=request.user, application=getattr(request.auth, "application", None))
        order = AgentOrder(
            request=order_request_from(data), broker_id=data.get("broker_id"), algo=algo_params_from(data)
        )
        outcome = async_to_sync(trading_agent().execute)(order, agent=identity, preview=preview)
        return Response(outcome.as_dict(), status=201 if outcome.order_id is not None else 200)
