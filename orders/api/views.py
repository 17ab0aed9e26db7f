"""REST endpoints for orders, fills and positions: parse, call one service or selector, render."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from brokers.domain.adapter import OrderChange
from orders import selectors, services
from orders.api import serializers as s
from orders.api.filters import FillFilter, OrderFilter, PositionFilter
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest
from orders.models import Fill, Order, Position
from routing.algos import AlgoParams, algo_modify
from trademaster.errors import ValidationFailed

ERROR = inline_serializer(
    "Error",
    {
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False
        ),
        "extra": serializers.DictField(required=False),
    },
)
E400 = OpenApiResponse(ERROR, description="Invalid input: `fields` maps each field to its messages.")
E403 = OpenApiResponse(ERROR, description="Not allowed (missing token scope).")
E404 = OpenApiResponse(ERROR, description="No such order of yours.")
E409 = OpenApiResponse(ERROR, description="Conflicts with the order's state or an earlier client_order_id.")
E503 = OpenApiResponse(
    ERROR,
    description="The broker asked to wait (rate limit) and did not receive the request; the order is "
    "unchanged. Ask again after the `Retry-After` header's seconds.",
)


class OrderListCreateApi(generics.ListAPIView):
    serializer_class = s.OrderOutputSerializer
    filterset_class = OrderFilter
    throttle_scope = "order_entry"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Order.objects.none()
        return selectors.order_list(user=self.request.user)

    def get_throttles(self):
        if self.request.method == "POST":
            from rest_framework.throttling import ScopedRateThrottle

            return [ScopedRateThrottle()]
        return []

    @extend_schema(operation_id="orders_list", responses={200: s.OrderOutputSerializer(many=True)})
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="orders_create",
        request=s.OrderCreateInputSerializer,
        responses={
            201: s.OrderOutputSerializer,
            200: OpenApiResponse(
                s.OrderOutputSerializer, description="client_order_id already used: that order"
            ),
            400: E400,
            403: E403,
            404: E404,
            409: E409,
        },
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.OrderCreateInputSerializer, request.data)
        placed = services.order_place(
            user=request.user,
            request=order_request_from(data),
            broker_id=data.get("broker_id"),
            algo=algo_params_from(data),
            actor=services.Actor.for_user(request.user, _actor_label(request)),
        )
        return Response(
            s.OrderOutputSerializer(placed.order).data,
            status=status.HTTP_201_CREATED if placed.created else status.HTTP_200_OK,
        )


class OrderDetailApi(APIView):
    throttle_scope = "order_entry"

    def get_throttles(self):
        if self.request.method == "PATCH":
            from rest_framework.throttling import ScopedRateThrottle

            return [ScopedRateThrottle()]
        return []

    @extend_schema(operation_id="orders_retrieve", responses={200: s.OrderOutputSerializer, 404: E404})
    def get(self, request: Request, order_id: int) -> Response:
        order = selectors.order_get(user=request.user, order_id=order_id)
        return Response(s.OrderOutputSerializer(order).data)

    @extend_schema(
        operation_id="orders_modify",
        description="Cancel-replace the quantity, prices, trail or time in force of a working order.",
        request=s.OrderModifyInputSerializer,
        responses={200: s.OrderOutputSerializer, 400: E400, 403: E403, 404: E404, 409: E409, 503: E503},
    )
    def patch(self, request: Request, order_id: int) -> Response:
        data = _valid(s.OrderModifyInputSerializer, request.data)
        actor = services.Actor.for_user(request.user, _actor_label(request))
        if selectors.order_get(user=request.user, order_id=order_id).algo:
            others = sorted(set(data) - {"quantity", "end_time"})
            if others:
                raise ValidationFailed(
                    {f: ["An algo order changes only quantity and end_time."] for f in others}
                )
            order = algo_modify(
                user=request.user,
                order_id=order_id,
                quantity=data.get("quantity"),
                end_time=data.get("end_time"),
                actor=actor,
            )
            return Response(s.OrderOutputSerializer(order).data)
        if "end_time" in data:
            raise ValidationFailed({"end_time": ["Only an algo order has an end_time."]})
        if "time_in_force" in data:
            data["time_in_force"] = TimeInForce(data["time_in_force"])
        order = services.order_replace(
            user=request.user,
            order_id=order_id,
            change=OrderChange(**data),
            actor=actor,
        )
        return Response(s.OrderOutputSerializer(order).data)


class OrderCancelApi(APIView):
    throttle_scope = "order_entry"

    @extend_schema(
        operation_id="orders_cancel",
        request=None,
        responses={200: s.OrderOutputSerializer, 403: E403, 404: E404, 409: E409, 503: E503},
    )
    def post(self, request: Request, order_id: int) -> Response:
        order = services.order_cancel(
            user=request.user,
            order_id=order_id,
            actor=services.Actor.for_user(request.user, _actor_label(request)),
        )
        return Response(s.OrderOutputSerializer(order).data)


class OrderEventListApi(APIView):
    @extend_schema(
        operation_id="orders_events",
        description="The order's audit trail: every action and state change, oldest first.",
        responses={200: s.OrderEventOutputSerializer(many=True), 404: E404},
    )
    def get(self, request: Request, order_id: int) -> Response:
        events = selectors.order_event_list(user=request.user, order_id=order_id)
        return Response(s.OrderEventOutputSerializer(events, many=True).data)


class FillListApi(generics.ListAPIView):
    serializer_class = s.FillOutputSerializer
    filterset_class = FillFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Fill.objects.none()
        return selectors.fill_list(user=self.request.user)

    @extend_schema(operation_id="fills_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


INCLUDE_FLAT = OpenApiParameter(
    "include_flat", OpenApiTypes.BOOL, description="Also list closed (zero) positions."
)


class PositionListApi(generics.ListAPIView):
    serializer_class = s.PositionOutputSerializer
    filterset_class = PositionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Position.objects.none()
        return selectors.position_list(
            user=self.request.user, include_flat=_flag(self.request, "include_flat")
        )

    @extend_schema(
        operation_id="positions_list", parameters=[INCLUDE_FLAT], description="Positions per broker account."
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class PositionAggregateApi(APIView):
    @extend_schema(
        operation_id="positions_aggregate",
        parameters=[INCLUDE_FLAT],
        description="Positions netted per symbol across all your broker accounts, with the per-broker legs.",
        responses={200: s.AggregatePositionOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        rows = selectors.position_aggregate(user=request.user, include_flat=_flag(request, "include_flat"))
        return Response(s.AggregatePositionOutputSerializer(rows, many=True).data)


def order_request_from(data: dict) -> OrderRequest:
    """The domain request from OrderCreateInputSerializer's validated data."""
    return OrderRequest(
        symbol=data["symbol"],
        side=Side(data["side"]),
        order_type=OrderType(data["order_type"]),
        quantity=data["quantity"],
        time_in_force=TimeInForce(data["time_in_force"]),
        price=data.get("price"),
        stop_price=data.get("stop_price"),
        trail_amount=data.get("trail_amount"),
        trail_percent=data.get("trail_percent"),
        client_order_id=data.get("client_order_id"),
    )


def algo_params_from(data: dict) -> AlgoParams | None:
    """The algo part of OrderCreateInputSerializer's validated data (None: a plain order)."""
    if not data.get("algo"):
        return None
    return AlgoParams(
        kind=data["algo"],
        start_time=data.get("start_time"),
        end_time=data.get("end_time"),
        duration_seconds=data.get("duration_seconds"),
        max_participation=data.get("max_participation"),
        randomize=data.get("randomize") or Decimal(0),
        slices=data.get("slices"),
    )


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in {"1", "true", "yes"}


def _actor_label(request: Request) -> str:
    token = request.auth
    application = getattr(token, "application", None)
    if application is not None:
        return f"{request.user.get_username()} via {application.name}"
    return request.user.get_username()
