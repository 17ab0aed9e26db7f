"""Prometheus metrics: request latency, order pipeline stages, and state read from the database.

What ``/metrics`` shows:

* ``tm_http_request_duration_seconds{method,route,status}``: every request, timed by
  :class:`RequestMetricsMiddleware`. ``route`` is the URL pattern's name (``orders``,
  ``admin:index``), never the raw path, so ids in URLs cannot explode the label set.
* ``tm_order_stage_duration_seconds{stage}``: the order pipeline, timed around its stages in
  ``orders.services`` with :func:`order_stage` (``validate``, ``risk_check``, ``broker_submit``,
  ``apply_updates``).
* ``tm_orders{status}``, ``tm_outbox_unpublished``, ``tm_outbox_lag_seconds`` and
  ``tm_broker_connection_status{account_id,broker,status}``: read from the database when
  scraped (:class:`DatabaseCollector`), so every process reports the same truth and nothing is
  counted twice. One ``GROUP BY status`` over ``orders`` per scrape.
* ``tm_stream_connections``: open WebSockets, moved by :func:`stream_connected` /
  :func:`stream_disconnected` from the stream consumer.

Several processes (daphne, gunicorn workers, the Celery worker, the market runner): each keeps
its own counters in memory and ``/metrics`` shows only the serving process's, unless
``PROMETHEUS_MULTIPROC_DIR`` names an empty directory shared by all of them, set before they
start (``scripts/run.sh`` does this). prometheus_client then keeps the values in files there and
``/metrics`` adds them up across processes. The directory must be emptied at each start. Under
gunicorn also call ``prometheus_client.multiprocess.mark_process_dead(worker.pid)`` in its
``child_exit`` hook, so a dead worker's open WebSockets stop counting.

Who may scrape: ``METRICS_ALLOWED_IPS`` (setting or environment; comma-separated addresses or
networks; ``*`` for anyone). The default is loopback and the private ranges, where a Prometheus
server normally runs. The client address is ``REMOTE_ADDR``: behind a proxy that rewrites it,
restrict at the proxy instead. ``METRICS_TOKEN``, when set, also admits any client sending
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterator
from functools import lru_cache

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# the order-accept budget is 3 ms p50 / 15 ms p99: resolve well below a millisecond
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

HTTP_REQUEST_SECONDS = Histogram(
    "tm_http_request_duration_seconds",
    "HTTP request latency, from the first middleware in to the response out.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
ORDER_STAGE_SECONDS = Histogram(
    "tm_order_stage_duration_seconds",
    "Latency of each stage of the order pipeline.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
ORDER_STAGES = ("validate", "route", "risk_check", "broker_submit", "apply_updates")
_stage_children = {stage: ORDER_STAGE_SECONDS.labels(stage=stage) for stage in ORDER_STAGES}

stream_connections = Gauge(
    "tm_stream_connections",
    "Open WebSocket connections of the live stream.",
    multiprocess_mode="livesum",  # a dead process's sockets are gone: do not count them
)


def order_stage(stage: str):
    """Time one stage of the order pipeline: ``with order_stage("validate"): ...``, or as a
    decorator. A stage that raises is timed too: a slow failure is still slow."""
    return _stage_children[stage].time()


def stream_connected() -> None:
    """Called by the stream consumer when a WebSocket is accepted."""
    stream_connections.inc()


def stream_disconnected() -> None:
    """Called by the stream consumer when an accepted WebSocket closes."""
    stream_connections.dec()


# --- request latency --------------------------------------------------------------------------


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return match.view_name or match.route or "<unnamed>"


class RequestMetricsMiddleware:
    """Times every request into ``tm_http_request_duration_seconds``. Put it first in MIDDLEWARE.

    Sync and async capable, so under daphne it adds no thread switch of its own.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, started)
        return response

    async def _acall(self, request: HttpRequest):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, started)
        return response

    @staticmethod
    def _observe(request: HttpRequest, response: HttpResponse, started: float) -> None:
        HTTP_REQUEST_SECONDS.labels(
            method=request.method, route=_route(request), status=str(response.status_code)
        ).observe(time.perf_counter() - started)


# --- state read at scrape time ----------------------------------------------------------------


class DatabaseCollector(Collector):
    """Gauges computed from the database at each scrape (a few indexed queries).

    A database failure is logged and reported as ``tm_metrics_database_up 0`` instead of failing
    the scrape: the request and pipeline metrics are most needed exactly then.
    """

    def describe(self) -> list[Metric]:
        return []  # nothing at registration: no query before the first scrape

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "tm_metrics_database_up", "1 when the scrape's database queries succeeded, else 0."
        )
        try:
            families = [_orders_by_status(), *_outbox_families(), _broker_status()]
        except DatabaseError:
            logger.exception("metrics: reading the database failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _orders_by_status() -> GaugeMetricFamily:
    from orders.domain.enums import OrderStatus
    from orders.models import Order

    counts = dict.fromkeys((s.value for s in OrderStatus), 0)
    for row in Order.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    family = GaugeMetricFamily("tm_orders", "Orders stored, by status.", labels=["status"])
    for status, n in sorted(counts.items()):
        family.add_metric([status], n)
    return family


def _outbox_families() -> list[GaugeMetricFamily]:
    """How far the outbox relay is behind: unpublished rows and the age of the oldest one."""
    from trademaster.models import OutboxEvent

    pending = OutboxEvent.objects.filter(published_at__isnull=True)
    count = pending.count()
    oldest = pending.order_by("id").values_list("occurred_at", flat=True).first()
    lag = 0.0 if oldest is None else max((timezone.now() - oldest).total_seconds(), 0.0)
    unpublished = GaugeMetricFamily("tm_outbox_unpublished", "Outbox events not yet relayed.")
    unpublished.add_metric([], count)
    lag_family = GaugeMetricFamily(
        "tm_outbox_lag_seconds", "Age of the oldest unrelayed outbox event (0 when none is waiting)."
    )
    lag_family.add_metric([], lag)
    return [unpublished, lag_family]


def _broker_status() -> GaugeMetricFamily:
    """One series per active account and state, 1 for the current state (the enum pattern)."""
    from brokers.models import BrokerAccount, ConnectionStatus

    family = GaugeMetricFamily(
        "tm_broker_connection_status",
        "Broker account connection status: 1 for the account's current state, 0 for the others.",
        labels=["account_id", "broker", "status"],
    )
    rows = BrokerAccount.objects.active().order_by("id").values_list("id", "broker_name", "connection_status")
    for account_id, broker, current in rows:
        for state in ConnectionStatus.values:
            family.add_metric([str(account_id), broker, state], 1 if state == current else 0)
    return family


# --- exposition ---------------------------------------------------------------------------------


class _ThisProcess(Collector):
    """The default registry's metrics (this process only), for a per-scrape registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """What one scrape shows: every process's metrics in multiprocess mode, else this process's;
    plus the database gauges, read once whatever the number of processes."""
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    return registry


@lru_cache(maxsize=8)
def _networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """Parsed ``METRICS_ALLOWED_IPS``; None means anyone."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if "*" in items:
        return None
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


DEFAULT_ALLOWED = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"


def _allowed(request: HttpRequest) -> bool:
    token = getattr(settings, "METRICS_TOKEN", None) or os.environ.get("METRICS_TOKEN", "")
    if token and hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return True
    spec = getattr(settings, "METRICS_ALLOWED_IPS", None) or os.environ.get("METRICS_ALLOWED_IPS", "")
    networks = _networks(spec or DEFAULT_ALLOWED)
    if networks is None:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:  # ::ffff:127.0.0.1 from a dual-stack socket
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus text format, for allowed clients only."""
    if not _allowed(request):
        return HttpResponseForbidden("metrics are not available to this address\n", content_type="text/plain")
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
