"""manage.py kafka_topics: the six topics with their partition counts and retention, idempotently."""

from __future__ import annotations

import io

from django.core.management import call_command
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from trademaster.kafka import TOPICS

DAY_MS = 24 * 3600 * 1000
SPECIFIED = {
    "trading.orders.created": (12, 7 * DAY_MS),
    "trading.orders.filled": (8, 30 * DAY_MS),
    "trading.positions.updated": (6, 30 * DAY_MS),
    "trading.risk.alerts": (3, 30 * DAY_MS),
    "trading.signals": (6, 7 * DAY_MS),
    "trading.signals.dlq": (3, 30 * DAY_MS),
}


def run_topics() -> str:
    out = io.StringIO()
    call_command("kafka_topics", stdout=out)
    return out.getvalue()


def test_kafka_topics_creates_the_six_topics_once(settings, kafka_broker):
    # given a broker without this test's topics
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_broker
    settings.KAFKA_TOPIC_PREFIX = prefix = "topics-test."
    assert {t.name: (t.partitions, t.retention_ms) for t in TOPICS} == SPECIFIED
    # when the command runs
    first = run_topics()
    # then it created the six topics, with the specified partitions and retention
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
    try:
        names = [prefix + name for name in SPECIFIED]
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        assert described == {prefix + name: parts for name, (parts, _) in SPECIFIED.items()}
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, configs=None) for name in names],
            config_filter="all",
        )["topic"]
    finally:
        admin.close()
    # tansu reports retention.ms with config_filter="all" (nothing with the default "modified")
    assert {name: int(configs[prefix + name]["retention.ms"]["value"]) for name in SPECIFIED} == {
        name: retention for name, (_, retention) in SPECIFIED.items()
    }
    assert "6 topic(s) created, 0 already there" in first
    assert f"created {prefix}trading.orders.created (12 partitions)" in first
    # and running it again changes nothing and says so
    second = run_topics()
    assert "0 topic(s) created, 6 already there" in second
    assert f"exists  {prefix}trading.risk.alerts (3 partitions)" in second
