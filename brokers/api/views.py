from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from brokers import selectors
from brokers.credentials import broker_account_create, broker_account_test_connection, broker_account_update
from brokers.domain.credentials import MAX_LENGTH, CredentialChange
from brokers.models import BrokerAccount, BrokerName, ConnectionStatus

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
            "error_rate",
            "asset_classes",
            "has_credentials",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_credentials(self, obj: BrokerAccount) -> bool:
        return obj.has_credentials


ERROR = inline_serializer(
    "BrokerError",
    {
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False
        ),
    },
)
E400 = OpenApiResponse(ERROR, description="Invalid input: `fields` maps each field to its messages.")
E403 = OpenApiResponse(ERROR, description="Not allowed (the token lacks the trade scope).")
E404 = OpenApiResponse(ERROR, description="No such broker account of yours.")


def _secret(help_text: str, **extra) -> serializers.CharField:
    return serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=MAX_LENGTH,
        style={"input_type": "password"},
        help_text=help_text,
        **extra,
    )


class CredentialsInputSerializer(serializers.Serializer):
    """Write-only credentials; which ones a broker takes is checked per broker."""

    api_key = _secret("alpaca: API key ID; binance: API key; schwab: app key.")
    api_secret = _secret("alpaca: API secret key; binance: API secret (HMAC); schwab: app secret.")
    refresh_token = _secret("schwab only, optional: a refresh token (the OAuth login sets it otherwise).")
    connection = serializers.JSONField(
        write_only=True,
        required=False,
        help_text='ibkr only, optional: the TWS / IB Gateway address {"host", "port", "client_id"}.',
    )

    def credentials(self, *, clear: bool = False) -> CredentialChange:
        data = self.validated_data
        return CredentialChange(
            api_key=data.get("api_key"),
            api_secret=data.get("api_secret"),
            refresh_token=data.get("refresh_token"),
            connection=data.get("connection"),
            clear=clear,
        )


class BrokerAccountCreateInputSerializer(CredentialsInputSerializer):
    broker_name = serializers.ChoiceField(
        choices=BrokerName.choices,
        help_text="alpaca, binance, schwab or ibkr (paper accounts come with every user)",
    )
    account_id = serializers.CharField(max_length=64)
    label = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    sandbox_mode = serializers.BooleanField(
        required=False, default=True, help_text="Paper / testnet (true) or live (false) trading."
    )


class BrokerAccountUpdateInputSerializer(CredentialsInputSerializer):
    label = serializers.CharField(max_length=80, required=False, allow_blank=True)
    sandbox_mode = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)
    clear_credentials = serializers.BooleanField(
        required=False, default=False, help_text="Remove the stored credentials."
    )

    def validate(self, attrs: dict) -> dict:
        fixed = sorted({"broker_name", "account_id"} & set(self.initial_data))
        if fixed:
            raise serializers.ValidationError(
                {name: ["Cannot be changed: add another account instead."] for name in fixed}
            )
        return attrs


class ConnectionTestOutputSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="CONNECTED, DEGRADED or DOWN, as connection_status")
    latency_ms = serializers.IntegerField(allow_null=True, help_text="the health check's round trip")
    message = serializers.CharField(help_text="what the broker said")
    checked_at = serializers.DateTimeField()
    account = BrokerAccountOutputSerializer()


def _valid(serializer_class, data) -> CredentialsInputSerializer:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)  # 400 with the field messages
    return serializer


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

    @extend_schema(
        operation_id="brokers_create",
        description=(
            "Add an Alpaca, Binance, Schwab or Interactive Brokers account of yours. Credentials are "
            "stored encrypted and never returned (`has_credentials` says whether they are set). "
            "Paper accounts come with every user."
        ),
        request=BrokerAccountCreateInputSerializer,
        responses={201: BrokerAccountOutputSerializer, 400: E400, 403: E403},
    )
    def post(self, request: Request) -> Response:
        data = _valid(BrokerAccountCreateInputSerializer, request.data)
        account = broker_account_create(
            user=request.user,
            broker_name=data.validated_data["broker_name"],
            account_id=data.validated_data["account_id"],
            label=data.validated_data["label"],
            sandbox_mode=data.validated_data["sandbox_mode"],
            credentials=data.credentials(),
        )
        return Response(BrokerAccountOutputSerializer(account).data, status=status.HTTP_201_CREATED)


class BrokerAccountDetailApi(APIView):
    @extend_schema(
        operation_id="brokers_retrieve",
        responses={200: BrokerAccountOutputSerializer, 404: E404},
    )
    def get(self, request: Request, account_id: int) -> Response:
        account = selectors.broker_account_get(user=request.user, account_id=account_id)
        return Response(BrokerAccountOutputSerializer(account).data)

    @extend_schema(
        operation_id="brokers_update",
        description=(
            "Change the label, the sandbox / live mode, whether the account is active, or rotate its "
            "credentials: omitted credentials are kept, `clear_credentials` removes them."
        ),
        request=BrokerAccountUpdateInputSerializer,
        responses={200: BrokerAccountOutputSerializer, 400: E400, 403: E403, 404: E404},
    )
    def patch(self, request: Request, account_id: int) -> Response:
        account = selectors.broker_account_get(user=request.user, account_id=account_id)
        data = _valid(BrokerAccountUpdateInputSerializer, request.data)
        account = broker_account_update(
            account=account,
            credentials=data.credentials(clear=data.validated_data["clear_credentials"]),
            label=data.validated_data.get("label"),
            sandbox_mode=data.validated_data.get("sandbox_mode"),
            is_active=data.validated_data.get("is_active"),
        )
        return Response(BrokerAccountOutputSerializer(account).data)


class BrokerAccountTestConnectionApi(APIView):
    @extend_schema(
        operation_id="brokers_test_connection",
        description=(
            "Ask the broker now (a health check, then an account sync) and record the outcome. "
            "The answer is 200 whatever the broker says: see `status` and `message`."
        ),
        request=None,
        responses={200: ConnectionTestOutputSerializer, 403: E403, 404: E404},
    )
    def post(self, request: Request, account_id: int) -> Response:
        account = selectors.broker_account_get(user=request.user, account_id=account_id)
        result = broker_account_test_connection(account=account)
        return Response(
            ConnectionTestOutputSerializer(
                {
                    "status": result.status.value,
                    "latency_ms": result.latency_ms,
                    "message": result.message,
                    "checked_at": result.checked_at,
                    "account": result.account,
                }
            ).data
        )


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
