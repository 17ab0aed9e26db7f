"""The relay killed mid-batch (SIGKILL) and restarted: every event reaches Kafka, and after
de-duplication by event_id exactly once; duplicates are only ever of the batch in flight.

The relay runs as ``manage.py relay_outbox`` subprocesses on a PostgreSQL database of this test's
own (``tm_kafka_*``), whichever database the rest of the suite uses: the subprocess must see the
rows, and the relay's SKIP LOCKED claim is the production path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.integration.kafka.support import envelope_of, read_rest, read_until, reader
from trademaster.kafka import OUTBOX_TOPICS

BASE_DIR = Path(__file__).resolve().parents[3]
PG_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
EVENTS = 3000
BATCH = 500
TYPES = ["ORDER_CREATED", "ORDER_UPDATED", "ORDER_FILLED", "POSITION_UPDATED", "RISK_ALERT"]

SEED = f"""
from decimal import Decimal
from django.core.management import call_command
from django.db import transaction
from trademaster.outbox import outbox_record
call_command("migrate", "trademaster", verbosity=0)
types = {TYPES!r}
with transaction.atomic():
    for i in range({EVENTS}):
        kind = types[i % len(types)]
        account = None if kind == "RISK_ALERT" else 100 + i % 7
        payload = {{"n": i, "px": Decimal("1.10")}}
        outbox_record(type=kind, user_id=1 + i % 3, account_id=account, payload=payload)
"""


def server_url() -> str:
    """The PostgreSQL server the suite uses when it runs on PostgreSQL, else the local default."""
    for name in ("TEST_DATABASE_URL", "DATABASE_URL"):
        url = os.environ.get(name, "")
        if url.startswith(("postgres://", "postgresql://")):
            return url
    return PG_SERVER


def database_url(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


@pytest.fixture
def outbox_database() -> Iterator[str]:
    """A fresh PostgreSQL database; dropped afterwards (forcing out any session left behind)."""
    name = f"tm_kafka_{uuid.uuid4().hex[:12]}"
    admin_url = database_url(server_url(), "postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(server_url(), name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def command_env(db_url: str, bootstrap: str, prefix: str, var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_", "REDIS_URL"))}
    env.update(
        DATABASE_URL=db_url,
        DATABASE_POOL="false",
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_TOPIC_PREFIX=prefix,
        TRADEMASTER_VAR_DIR=str(var_dir),
    )
    return env


def manage(*args: str) -> list[str]:
    return [sys.executable, str(BASE_DIR / "manage.py"), *args]


def unstamped(db_url: str, limit: int | None = None) -> list[str]:
    """Event ids not yet stamped, in id order (the first ``limit``)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT event_id::text FROM outbox_events WHERE published_at IS NULL ORDER BY id LIMIT %s",
            [limit],
        ).fetchall()
    return [r[0] for r in rows]


def wait_sessions_gone(db_url: str, timeout: float = 10) -> None:
    """Until PostgreSQL has ended the killed relay's session (and released its row locks), a new
    relay's SKIP LOCKED would pass over that batch and publish later events first."""
    name = urlsplit(db_url).path.lstrip("/")
    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [name]
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed relay's session is still there"


def relay_killed(env: dict[str, str], log, consumer, done) -> list:
    """Start a relay and SIGKILL it as soon as ``done(records read)``; the records read."""
    relay = subprocess.Popen(
        manage("relay_outbox", "--batch", str(BATCH)), cwd=BASE_DIR, env=env, stdout=log, stderr=log
    )
    try:
        return read_until(consumer, done, timeout=60)
    finally:
        relay.kill()
        relay.wait()


def later_than(batch: set[str], records: list) -> bool:
    return any(envelope_of(r)["event_id"] not in batch for r in records)


def relay_killed_before_stamping(env: dict[str, str], log, consumer, db_url: str, batch: set[str]) -> list:
    """The worst moment: a whole batch published, not yet stamped. The test holds a SHARE lock on
    the outbox table, which lets the relay claim its rows (FOR UPDATE) but holds back its stamping
    UPDATE; the relay is killed once every message of ``batch`` is on Kafka."""
    with psycopg.connect(db_url) as blocker:
        blocker.execute("LOCK TABLE outbox_events IN SHARE MODE")
        records = relay_killed(
            env, log, consumer, lambda rs: batch <= {envelope_of(r)["event_id"] for r in rs}
        )
        blocker.rollback()
    return records


def relay_to_the_end(env: dict[str, str], log) -> None:
    subprocess.run(
        manage("relay_outbox", "--once", "--batch", str(BATCH)),
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=log,
        check=True,
        timeout=180,
    )


def seed(env: dict[str, str], db_url: str) -> dict[str, tuple[int, str, int | None, int]]:
    """The outbox rows, written by outbox_record in a subprocess: event_id -> (id, type, account, user)."""
    subprocess.run(manage("shell", "-c", SEED), cwd=BASE_DIR, env=env, check=True, timeout=180)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT id, event_id::text, type, account_id, user_id FROM outbox_events"
        ).fetchall()
    return {event_id: (pk, kind, account, user) for pk, event_id, kind, account, user in rows}


def test_a_relay_killed_mid_batch_delivers_every_event_exactly_once_after_dedup(
    kafka, kafka_broker, outbox_database, tmp_path
):
    env = command_env(outbox_database, kafka_broker, kafka, tmp_path)
    # given a few thousand outbox rows of every type
    expected = seed(env, outbox_database)
    assert len(expected) == EVENTS
    for_kafka = {event_id for event_id, (_, kind, _, _) in expected.items() if kind in OUTBOX_TOPICS}
    first_batch = sorted(expected, key=lambda event_id: expected[event_id][0])[:BATCH]
    first_on_kafka = set(first_batch) & for_kafka
    consumer = reader(kafka_broker, *OUTBOX_TOPICS.values(), fetch_max_wait_ms=50)
    try:
        with (tmp_path / "relay.log").open("ab") as log:
            # when a relay is killed (SIGKILL) after publishing its first batch, before stamping it
            records = relay_killed_before_stamping(env, log, consumer, outbox_database, first_on_kafka)
            wait_sessions_gone(outbox_database)
            assert unstamped(outbox_database, BATCH) == first_batch
            # and the next one as soon as messages of a later batch arrive, wherever it is then
            records += relay_killed(env, log, consumer, lambda rs: later_than(first_on_kafka, rs))
            wait_sessions_gone(outbox_database)
            in_flight = set(first_batch) | set(unstamped(outbox_database, BATCH))
            # and a last one relays what is left
            relay_to_the_end(env, log)
        # then the outbox is fully stamped
        assert unstamped(outbox_database) == []
        # and, read back to the end, every event with a topic is there
        records += read_until(
            consumer, lambda rs: for_kafka <= {envelope_of(r)["event_id"] for r in records + rs}
        )
        records += read_rest(consumer)
    finally:
        consumer.close()
    counts = Counter(envelope_of(r)["event_id"] for r in records)
    assert set(counts) == for_kafka  # nothing missing, and no stream-only type on Kafka
    # and duplicates are only of the batches in flight when the relays were killed: all of the
    # first (published, not stamped), perhaps part of the second
    duplicates = {event_id for event_id, n in counts.items() if n > 1}
    assert first_on_kafka <= duplicates <= in_flight
    assert max(counts.values()) == 2
    assert_topics_keys_and_order(records, expected, kafka)
    print(f"{len(records)} messages, {len(duplicates)} events duplicated, {len(in_flight)} ids in flight")


def assert_topics_keys_and_order(records: list, expected: dict, prefix: str) -> None:
    """Each event on its type's topic, keyed by its account (or user); one partition per key, and
    per key the events first arrive in outbox order."""
    first_seen: dict[tuple[str, bytes], list[int]] = defaultdict(list)
    partitions: dict[tuple[str, bytes], set[int]] = defaultdict(set)
    seen: set[str] = set()
    for record in records:
        body = envelope_of(record)
        pk, kind, account, user = expected[body["event_id"]]
        assert record.topic.removeprefix(prefix) == OUTBOX_TOPICS[kind]
        assert record.key == str(account if account is not None else user).encode()
        assert (body["type"], body["account_id"], body["user_id"]) == (kind, account, user)
        partitions[(record.topic, record.key)].add(record.partition)
        if body["event_id"] not in seen:
            seen.add(body["event_id"])
            first_seen[(record.topic, record.key)].append(pk)
    assert all(len(p) == 1 for p in partitions.values())
    assert all(ids == sorted(ids) for ids in first_seen.values())
