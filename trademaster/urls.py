from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from agentos import api as agent_api
from brokers.api import views as broker_api
from orders.api import views as order_api
from risk.api import views as risk_api
from routing.api import views as routing_api
from trademaster import health, metrics

api_v1 = [
    path("orders/", order_api.OrderListCreateApi.as_view(), name="orders"),
    path("orders/<int:order_id>/", order_api.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<int:order_id>/cancel/", order_api.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<int:order_id>/events/", order_api.OrderEventListApi.as_view(), name="order-events"),
    path("orders/<int:order_id>/routing/", routing_api.OrderRoutingApi.as_view(), name="order-routing"),
    path("orders/<int:order_id>/algo/", routing_api.OrderAlgoApi.as_view(), name="order-algo"),
    path("orders/<int:order_id>/pause/", routing_api.OrderAlgoPauseApi.as_view(), name="order-pause"),
    path("orders/<int:order_id>/resume/", routing_api.OrderAlgoResumeApi.as_view(), name="order-resume"),
    path("routing/quote/", routing_api.RoutingQuoteApi.as_view(), name="routing-quote"),
    path("fills/", order_api.FillListApi.as_view(), name="fills"),
    path("positions/", order_api.PositionListApi.as_view(), name="positions"),
    path("positions/aggregate/", order_api.PositionAggregateApi.as_view(), name="positions-aggregate"),
    path("brokers/", broker_api.BrokerAccountListApi.as_view(), name="brokers"),
    path("brokers/<int:account_id>/", broker_api.BrokerAccountDetailApi.as_view(), name="broker-detail"),
    path(
        "brokers/<int:account_id>/test-connection/",
        broker_api.BrokerAccountTestConnectionApi.as_view(),
        name="broker-test-connection",
    ),
    path("quotes/", broker_api.QuoteListApi.as_view(), name="quotes"),
    path("risk/check/", risk_api.RiskCheckApi.as_view(), name="risk-check"),
    path("risk/kill-switch/", risk_api.KillSwitchApi.as_view(), name="risk-kill-switch"),
    path(
        "risk/kill-switch/release/", risk_api.KillSwitchReleaseApi.as_view(), name="risk-kill-switch-release"
    ),
    path("agent/capabilities/", agent_api.AgentCapabilitiesApi.as_view(), name="agent-capabilities"),
    path("agent/health/", agent_api.AgentHealthApi.as_view(), name="agent-health"),
    path("agent/orders/", agent_api.AgentOrderCreateApi.as_view(), name="agent-orders"),
]
if settings.BENCH_FLOOR_ENDPOINT:
    from trademaster.bench_floor import BenchFloorApi

    api_v1.append(path("bench/floor/", BenchFloorApi.as_view(), name="bench-floor"))

urlpatterns = [
    path("metrics", metrics.metrics_view, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("brokers/", include("brokers.urls")),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("orders.pages.urls")),
]
