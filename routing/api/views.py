"""REST endpoints for routing and execution algorithms: parse, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import selectors
from orders.api.views import E400, E403, E404, E409, _actor_label, _valid
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest, asset_class_of, validate_order_request
from orders.services import Actor
from routing import algos
from routing.api import serializers as s
from routing.domain.scoring import order_to_route
from routing.models import RoutingDecision
from routing.services import route_quote
from trademaster.errors import NotFound, ValidationFailed


class RoutingQuoteApi(APIView):
    @extend_schema(
        operation_id="routing_quote",
        description="Where the service would route a hypothetical order now, and why: every broker "
        "account with its score (lower is better) or the reason it is skipped, the impact estimate "
        "and, for a large order, the split across venues. Places nothing.",
        parameters=[s.RoutingQuoteInputSerializer],
        responses={200: s.RoutingDecisionSerializer, 400: E400, 404: E404},
    )
    def get(self, request: Request) -> Response:
        data = _valid(s.RoutingQuoteInputSerializer, request.query_params)
        order_request = OrderRequest(
            symbol=data["symbol"],
            side=Side(data["side"]),
            order_type=OrderType(data["order_type"]),
            quantity=data["quantity"],
            time_in_force=TimeInForce(data["time_in_force"]),
            price=data.get("price"),
        )
        errors = {k: v for k, v in validate_order_request(order_request).items() if k not in ("stop_price",)}
        if errors:
            raise ValidationFailed(errors)
        asset_class = asset_class_of(order_request.symbol)
        assert asset_class is not None
        payload = route_quote(
            user=request.user,
            order=order_to_route(order_request, asset_class),
            broker_id=data.get("broker_id"),
        )
        return Response(s.RoutingDecisionSerializer(payload).data)


class OrderRoutingApi(APIView):
    @extend_schema(
        operation_id="orders_routing",
        description="The routing decision stored when the order was placed: candidates with their "
        "scores, skipped accounts with reasons, the winner's reason, impact and split.",
        responses={200: s.StoredDecisionSerializer, 404: E404},
    )
    def get(self, request: Request, order_id: int) -> Response:
        order = selectors.order_get(user=request.user, order_id=order_id)
        decision = RoutingDecision.objects.filter(order=order).first()
        if decision is None:
            raise NotFound(
                "routing_not_found", f"Order {order_id} has no routing decision (an algo parent?)."
            )
        return Response(s.StoredDecisionSerializer(decision).data)


class OrderAlgoApi(APIView):
    @extend_schema(
        operation_id="orders_algo",
        description="An algo order's progress (filled against schedule) and its slices.",
        responses={200: s.AlgoDetailSerializer, 404: E404},
    )
    def get(self, request: Request, order_id: int) -> Response:
        algo = algos._algo_of(request.user, order_id)
        payload = {**algos.algo_progress(algo), "slices": list(algo.slices.order_by("seq"))}
        return Response(s.AlgoDetailSerializer(payload).data)


def _actor(request: Request) -> Actor:
    return Actor.for_user(request.user, _actor_label(request))


class OrderAlgoPauseApi(APIView):
    throttle_scope = "order_entry"

    @extend_schema(
        operation_id="orders_algo_pause",
        request=None,
        description="Stop releasing slices; open children keep working.",
        responses={200: s.AlgoProgressSerializer, 403: E403, 404: E404, 409: E409},
    )
    def post(self, request: Request, order_id: int) -> Response:
        algo = algos.algo_pause(user=request.user, order_id=order_id, actor=_actor(request))
        return Response(s.AlgoProgressSerializer(algos.algo_progress(algo)).data)


class OrderAlgoResumeApi(APIView):
    throttle_scope = "order_entry"

    @extend_schema(
        operation_id="orders_algo_resume",
        request=None,
        description="Resume a paused algo: what is left is replanned over the rest of its window.",
        responses={200: s.AlgoProgressSerializer, 400: E400, 403: E403, 404: E404, 409: E409},
    )
    def post(self, request: Request, order_id: int) -> Response:
        algo = algos.algo_resume(user=request.user, order_id=order_id, actor=_actor(request))
        return Response(s.AlgoProgressSerializer(algos.algo_progress(algo)).data)
