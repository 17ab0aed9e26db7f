"""Liveness and readiness probes.

* ``/healthz`` (liveness): the process answers. It touches nothing else, so a database outage
  does not get every web process restarted at once.
* ``/readyz`` (readiness): this process can do its work: the database answers ``SELECT 1``, the
  channel layer carries a message round trip, and Kafka (only when ``KAFKA_BOOTSTRAP_SERVERS``
  is set) answers a bootstrap metadata request. 200 when all pass, 503 otherwise; the body names
  each check's result. A failure's details go to the log, only its exception class to the body.

Each check has a short timeout (``READINESS_TIMEOUT_SECONDS``, default 2), and the checks run
concurrently, so a probe answers within about that time even when a dependency hangs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from functools import lru_cache

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)


def _timeout() -> float:
    return float(getattr(settings, "READINESS_TIMEOUT_SECONDS", 2))


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 as long as the process serves requests."""
    return JsonResponse({"status": "ok"})


def _database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone()[0] != 1:
            raise RuntimeError("SELECT 1 did not return 1")


async def _channel_layer_check() -> None:
    """Send a message to a new channel and receive it back, on a fresh layer instance.

    A fresh instance (closed afterwards) tests the configured backend and its server without
    touching the process's own layer: flushing that one would drop live groups.
    """
    from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    try:
        channel = await layer.new_channel("readyz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "readyz.ping", "token": token})
        message = await layer.receive(channel)
        if message.get("token") != token:
            raise RuntimeError("the channel layer returned another message")
    finally:
        await layer.flush()


def _kafka_check() -> None:
    """Bootstrap against KAFKA_BOOTSTRAP_SERVERS (connect, ApiVersions, metadata) and close."""
    from trademaster.kafka import client_config  # the same servers and security as every client

    timeout_ms = int(_timeout() * 800)  # inside the check's own timeout: the client closes itself
    config = {**client_config(), "bootstrap_timeout_ms": timeout_ms, "request_timeout_ms": timeout_ms}
    _probe_admin_client_class()(**config).close()


@lru_cache(maxsize=1)
def _probe_admin_client_class():
    """Built on first use: kafka-python is imported only where Kafka is configured."""
    from kafka.admin import KafkaAdminClient

    class ProbeAdminClient(KafkaAdminClient):
        """KafkaAdminClient that stops its IO thread when bootstrapping fails.

        kafka-python 3 starts the thread before bootstrapping in ``__init__`` and leaves it
        running if that raises: one leaked thread per failed probe otherwise.
        """

        def __init__(self, **configs) -> None:
            try:
                super().__init__(**configs)
            except BaseException:
                if hasattr(self, "_net"):
                    self._closed = False
                    self.close()
                raise

    return ProbeAdminClient


async def _run(name: str, check) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check(), _timeout())
    except TimeoutError:
        logger.warning("readiness check %s timed out after %ss", name, _timeout())
        return name, "fail: timeout"
    except Exception as exc:  # any failure of a dependency means "not ready"; logged in full
        logger.warning("readiness check %s failed", name, exc_info=True)
        return name, f"fail: {type(exc).__name__}"
    return name, "ok"


def _checks() -> dict:
    checks = {
        "database": sync_to_async(_database_check),
        "channel_layer": _channel_layer_check,
    }
    if getattr(settings, "KAFKA_BOOTSTRAP_SERVERS", ""):
        checks["kafka"] = sync_to_async(_kafka_check, thread_sensitive=False)
    return checks


@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every dependency answers, else 503 naming the ones that did not."""
    results = dict(await asyncio.gather(*(_run(name, check) for name, check in _checks().items())))
    failed = sorted(name for name, result in results.items() if result != "ok")
    body = {"status": "fail" if failed else "ok", "checks": results}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)
