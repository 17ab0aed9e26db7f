from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from brokers import selectors
from brokers.models import BrokerAccount, ConnectionStatus

DEC = {"max_digits": 18, "decimal_places": 8}


class BrokerAccountOutputSerializer(serializers.ModelSerializer):
    """Credentials are never returned: only whether they are set."""

    has_credentials = serializers.SerializerMethodField()
    asset_classes = serializers.ListField(child=serializers.CharField(), read_only=True)
    connection_status = serializers.ChoiceField(choices=ConnectionStatus.choices, read_only=True)

    class Meta:
        model = BrokerAccount
        fields = [
            "id",
            "broker_name",
            "account_id",
            "label",
            "sandbox_mode",
            "is_active",
            "buying_power",
            "cash",
            "total_value",
            "connection_status",
            "latency_ms",
            "last_heartbeat_at",
            "health_detail",
            "asset_classes",
            "has_credentials",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_credentials(self, obj: BrokerAccount) -> bool:
        return obj.has_credentials


class QuoteOutputSerializer(serializers.Serializer):
    broker_id = serializers.IntegerField()
    broker = serializers.CharField()
    symbol = serializers.CharField()
    bid = serializers.DecimalField(**DEC)
    ask = serializers.DecimalField(**DEC)
    bid_size = serializers.DecimalField(**DEC)
    ask_size = serializers.DecimalField(**DEC)
    last = serializers.DecimalField(**DEC)
    at = serializers.DateTimeField()


class BrokerAccountListApi(generics.ListAPIView):
    serializer_class = BrokerAccountOutputSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return BrokerAccount.objects.none()
        return selectors.broker_account_list(user=self.request.user)

    @extend_schema(operation_id="brokers_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class BrokerAccountDetailApi(APIView):
    @extend_schema(
        operation_id="brokers_retrieve",
        responses={200: BrokerAccountOutputSerializer, 404: OpenApiResponse(description="Not yours.")},
    )
    def get(self, request: Request, account_id: int) -> Response:
        account = selectors.broker_account_get(user=request.user, account_id=account_id)
        return Response(BrokerAccountOutputSerializer(account).data)


class QuoteListApi(APIView):
    @extend_schema(
        operation_id="quotes_list",
        parameters=[OpenApiParameter("symbol", OpenApiTypes.STR, required=True)],
        description="The symbol's top of book at each of your accounts that trade it.",
        responses={200: QuoteOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        symbol = request.query_params.get("symbol", "")
        rows = selectors.quote_list(user=request.user, symbol=symbol)
        data = [
            {
                "broker_id": a.pk,
                "broker": str(a),
                "symbol": q.symbol,
                "bid": q.bid,
                "ask": q.ask,
                "bid_size": q.bid_size,
                "ask_size": q.ask_size,
                "last": q.last,
                "at": q.at,
            }
            for a, q in rows
        ]
        return Response(QuoteOutputSerializer(data, many=True).data)
