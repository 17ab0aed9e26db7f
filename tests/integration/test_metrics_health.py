"""/metrics, /healthz and /readyz, through the real URL configuration and middleware."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Count
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from brokers.models import BrokerAccount, ConnectionStatus
from brokers.services import broker_connection_status_set
from orders.models import Order
from trademaster.metrics import stream_connected, stream_disconnected
from trademaster.models import OutboxEvent
from trademaster.outbox import outbox_record

DEAD_REDIS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
    }
}


def scrape(client: Client | None = None, **extra) -> dict[tuple[str, tuple], float]:
    """GET /metrics and return every sample as {(name, sorted labels): value}."""
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def stage_count(samples, stage: str) -> float:
    return samples.get(("tm_order_stage_duration_seconds_count", (("stage", stage),)), 0)


POST_ORDERS = (
    "tm_http_request_duration_seconds_count",
    (("method", "POST"), ("route", "orders"), ("status", "201")),
)


@pytest.mark.django_db
def test_placing_an_order_shows_in_the_request_and_pipeline_histograms(api, set_mid):
    # given the counters as they stand (they are per process and accumulate across tests)
    set_mid("AAPL", "190.00")
    before = scrape()
    # when one market order is placed through the API
    response = api.post(
        "/api/v1/orders/", {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "1"}
    )
    assert response.status_code == 201, response.content
    after = scrape()
    # then the request was timed under its route name, and each pipeline stage once
    assert after[POST_ORDERS] == before.get(POST_ORDERS, 0) + 1
    for stage in ("validate", "route", "risk_check", "broker_submit", "apply_updates"):
        assert stage_count(after, stage) == stage_count(before, stage) + 1, stage
    # and the histogram has its buckets, the sub-millisecond ones included
    assert ("tm_order_stage_duration_seconds_bucket", (("le", "0.001"), ("stage", "validate"))) in after


@pytest.mark.django_db
def test_orders_by_status_gauge_is_the_database_count(api, set_mid):
    # given orders in several states: one filled, one resting, one rejected by validation of risk
    set_mid("AAPL", "190.00")
    for body in (
        {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "1"},
        {"symbol": "AAPL", "side": "BUY", "order_type": "LIMIT", "quantity": "1", "price": "100.00"},
        {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "100000000"},
    ):
        assert api.post("/api/v1/orders/", body).status_code in (201, 422)
    # when scraped
    samples = scrape()
    # then every status is reported, and each equals the count in the database
    in_db = dict(Order.objects.order_by().values_list("status").annotate(n=Count("id")))
    assert len(in_db) >= 2, in_db
    gauges = {labels[0][1]: value for (name, labels), value in samples.items() if name == "tm_orders"}
    assert set(gauges) >= {"PENDING", "ACCEPTED", "FILLED", "REJECTED", "CANCELLED"}
    assert {status: gauges[status] for status in in_db} == in_db
    assert sum(gauges.values()) == Order.objects.count()
    assert samples[("tm_metrics_database_up", ())] == 1


@pytest.mark.django_db
def test_outbox_lag_is_the_age_of_the_oldest_unpublished_event(trader):
    # given everything relayed
    OutboxEvent.objects.filter(published_at__isnull=True).update(published_at=timezone.now())
    samples = scrape()
    assert samples[("tm_outbox_unpublished", ())] == 0
    assert samples[("tm_outbox_lag_seconds", ())] == 0
    # when two events wait, the older two minutes old
    outbox_record(
        type="TEST", user_id=trader.pk, payload={}, occurred_at=timezone.now() - dt.timedelta(minutes=2)
    )
    outbox_record(type="TEST", user_id=trader.pk, payload={})
    samples = scrape()
    # then both are counted and the lag is the older one's age
    assert samples[("tm_outbox_unpublished", ())] == 2
    assert 120 <= samples[("tm_outbox_lag_seconds", ())] < 180


@pytest.mark.django_db
def test_broker_status_gauge_follows_each_account(accounts):
    account = accounts["PAPER-EQ-B"]
    broker_connection_status_set(account=account, status=ConnectionStatus.DOWN, reason="test")
    samples = scrape()

    def state(acc: BrokerAccount) -> dict[str, float]:
        return {
            dict(labels)["status"]: value
            for (name, labels), value in samples.items()
            if name == "tm_broker_connection_status" and dict(labels)["account_id"] == str(acc.pk)
        }

    assert state(account) == {"CONNECTED": 0, "DEGRADED": 0, "DOWN": 1}
    assert state(accounts["PAPER-EQ-A"]) == {"CONNECTED": 1, "DEGRADED": 0, "DOWN": 0}


@pytest.mark.django_db
def test_stream_connections_gauge_moves_with_the_helpers():
    before = scrape()[("tm_stream_connections", ())]
    stream_connected()
    stream_connected()
    stream_disconnected()
    assert scrape()[("tm_stream_connections", ())] == before + 1
    stream_disconnected()
    assert scrape()[("tm_stream_connections", ())] == before


@pytest.mark.django_db
def test_metrics_are_refused_to_a_public_address_unless_allowed_or_given_the_token(settings):
    public = {"REMOTE_ADDR": "203.0.113.7"}
    # loopback and private ranges are allowed by default; a public address is not
    assert Client().get("/metrics", **public).status_code == 403
    assert Client().get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    # the token admits anyone who sends it
    settings.METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **public).status_code == 403
    scrape(HTTP_AUTHORIZATION="Bearer scrape-secret", **public)
    # and the allowed networks are configurable, "*" for anyone
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = "203.0.113.0/24"
    scrape(**public)
    assert Client().get("/metrics").status_code == 403  # loopback is no longer listed
    settings.METRICS_ALLOWED_IPS = "*"
    scrape(REMOTE_ADDR="198.51.100.1")


def test_healthz_answers_without_the_database():
    # no django_db mark: any query here would fail the test
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_the_database_and_the_channel_layer():
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}


@pytest.mark.django_db
def test_readyz_is_503_naming_a_dead_channel_layer(settings):
    settings.CHANNEL_LAYERS = DEAD_REDIS
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["failed"] == ["channel_layer"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"].startswith("fail: ")


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:(read|open)_text is deprecated:DeprecationWarning")  # kafka-python's own
def test_readyz_checks_kafka_when_configured(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    settings.READINESS_TIMEOUT_SECONDS = 1
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["kafka"]
