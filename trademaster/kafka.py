"""Kafka: the topics, the outbox sink, and the two consumers (trading signals in, risk events).

Everything here is off unless ``settings.KAFKA_BOOTSTRAP_SERVERS`` is set (ARCHITECTURE.md §5).

Topics (:data:`TOPICS`, created by ``manage.py kafka_topics``; ``KAFKA_TOPIC_PREFIX`` goes in front
of every name so that environments can share a cluster):

* ``trading.orders.created`` (12 partitions, 7 days), ``trading.orders.filled`` (8, 30 days),
  ``trading.positions.updated`` (6, 30 days), ``trading.risk.alerts`` (3, 30 days): the outbox;
* ``trading.signals`` (6, 7 days): orders coming in; ``trading.signals.dlq`` (3, 30 days): the
  signals that could not become an order, with the reasons.

Publishing (:class:`KafkaSink`, a :class:`trademaster.relay.Sink`): only four outbox types go to
Kafka (:data:`OUTBOX_TOPICS`): ORDER_CREATED, ORDER_FILLED, POSITION_UPDATED and RISK_ALERT. The
others (ORDER_UPDATED, TRADING_STATE_CHANGED, BROKER_ANOMALY, ...) have no topic in the
specification and travel on the live stream only. The value is the relay's JSON envelope; the key is
the account id (the user id for events without an account: risk alerts), so one account's events
stay in order in one partition. Delivery is at-least-once: consumers de-duplicate on ``event_id``.

Consuming (``manage.py consume_signals`` / ``consume_risk_events``): offsets are committed by hand
after a polled batch is processed (at-least-once); a redelivered message must therefore be
harmless, which :func:`signal_handle` (idempotent on the signal id) and
:func:`risk_events_handle` (event ids remembered, evaluation idempotent) both ensure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal as os_signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaError

from trademaster.relay import envelope

if TYPE_CHECKING:
    from kafka.consumer.fetcher import ConsumerRecord

    from orders.models import Order
    from trademaster.models import OutboxEvent

logger = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000

ORDERS_CREATED = "trading.orders.created"
ORDERS_FILLED = "trading.orders.filled"
POSITIONS_UPDATED = "trading.positions.updated"
RISK_ALERTS = "trading.risk.alerts"
SIGNALS = "trading.signals"
SIGNALS_DLQ = "trading.signals.dlq"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str  # without KAFKA_TOPIC_PREFIX
    partitions: int
    retention_days: int

    @property
    def retention_ms(self) -> int:
        return self.retention_days * DAY_MS


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(ORDERS_CREATED, 12, 7),
    TopicSpec(ORDERS_FILLED, 8, 30),
    TopicSpec(POSITIONS_UPDATED, 6, 30),
    TopicSpec(RISK_ALERTS, 3, 30),
    TopicSpec(SIGNALS, 6, 7),
    TopicSpec(SIGNALS_DLQ, 3, 30),
)

# Outbox types published to Kafka; every other type is stream-only (see the module docstring).
OUTBOX_TOPICS: dict[str, str] = {
    "ORDER_CREATED": ORDERS_CREATED,
    "ORDER_FILLED": ORDERS_FILLED,
    "POSITION_UPDATED": POSITIONS_UPDATED,
    "RISK_ALERT": RISK_ALERTS,
}


class KafkaPublishFailed(RuntimeError):
    """Some messages were not acknowledged: the caller must not treat the batch as delivered."""


def topic_name(base: str) -> str:
    """The topic's name on the cluster: ``KAFKA_TOPIC_PREFIX`` + the specified name."""
    return settings.KAFKA_TOPIC_PREFIX + base


# --- clients ------------------------------------------------------------------------------------


def client_config() -> dict[str, Any]:
    """What every client (admin, producer, consumer) shares: servers, client id, security."""
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.KAFKA_BOOTSTRAP_SERVERS.split(",") if s.strip()],
        "client_id": settings.KAFKA_CLIENT_ID,
        "security_protocol": settings.KAFKA_SECURITY_PROTOCOL,
    }
    if settings.KAFKA_SASL_MECHANISM:
        config.update(
            sasl_mechanism=settings.KAFKA_SASL_MECHANISM,
            sasl_plain_username=settings.KAFKA_SASL_USERNAME,
            sasl_plain_password=settings.KAFKA_SASL_PASSWORD,
        )
    return config


def producer_new() -> KafkaProducer:
    """acks=all: a message counts as sent only once every in-sync replica has it. Idempotence
    keeps retries from writing a message twice or out of order within a partition."""
    return KafkaProducer(
        **client_config(),
        acks="all",
        enable_idempotence=settings.KAFKA_ENABLE_IDEMPOTENCE,
        linger_ms=5,
    )


def consumer_new(group_id: str) -> KafkaConsumer:
    """A group member that commits by hand. A new group starts at the earliest offset: a signal
    or a fill sent before the group first joined is processed, not silently skipped. Values and
    keys stay bytes (the handlers parse them; a bad message must not break the poll loop)."""
    return KafkaConsumer(
        **client_config(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=settings.KAFKA_HEARTBEAT_INTERVAL_MS,
    )


def admin_new() -> KafkaAdminClient:
    return KafkaAdminClient(**client_config())


# --- topics -------------------------------------------------------------------------------------

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicResult:
    name: str
    created: bool
    partitions: int
    note: str = ""


def topics_ensure(specs: Sequence[TopicSpec] = TOPICS) -> list[TopicResult]:
    """Create the topics that do not exist; leave existing ones as they are (idempotent).

    An existing topic with another partition count is reported, not changed: adding partitions
    would move keys to other partitions and break the per-account order.
    """
    admin = admin_new()
    try:
        response = admin.create_topics(
            {
                topic_name(s.name): {
                    "num_partitions": s.partitions,
                    "replication_factor": settings.KAFKA_REPLICATION_FACTOR,
                    "configs": {"retention.ms": str(s.retention_ms)},
                }
                for s in specs
            },
            raise_errors=False,
        )
        errors = {t["name"]: t for t in response["topics"]}
        failed = [t for t in errors.values() if t["error_code"] not in (0, TOPIC_ALREADY_EXISTS)]
        if failed:
            raise KafkaError(
                "; ".join(f"{t['name']}: {t['error_message'] or t['error_code']}" for t in failed)
            )
        partitions = _partition_counts(admin, [topic_name(s.name) for s in specs])
    finally:
        admin.close()
    return [_topic_result(s, errors[topic_name(s.name)]["error_code"] == 0, partitions) for s in specs]


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}


def _topic_result(spec: TopicSpec, created: bool, partitions: dict[str, int]) -> TopicResult:
    name = topic_name(spec.name)
    count = partitions.get(name, 0)
    note = "" if count == spec.partitions else f"has {count} partitions, specified {spec.partitions}"
    return TopicResult(name, created, count, note)


# --- publishing the outbox ----------------------------------------------------------------------


def event_key(event: OutboxEvent) -> bytes:
    """The partition key: the account (its events stay in order), else the user (risk alerts)."""
    return str(event.account_id if event.account_id is not None else event.user_id).encode()


def event_value(event: OutboxEvent) -> bytes:
    """The relay's envelope as compact JSON; amounts are already strings in the payload."""
    return json.dumps(envelope(event), separators=(",", ":")).encode()


class KafkaSink:
    """Publishes the outbox events that have a topic (:data:`OUTBOX_TOPICS`) and returns only once
    the broker acknowledged every one of them; otherwise it raises and the relay stamps nothing."""

    name = "kafka"

    def __init__(self, producer: KafkaProducer | None = None) -> None:
        self._producer = producer
        self.timeout = settings.KAFKA_PRODUCE_TIMEOUT_SECONDS

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = producer_new()
        return self._producer

    def publish(self, events: Sequence[OutboxEvent]) -> None:
        sends = [
            (event, self._send(topic_name(OUTBOX_TOPICS[event.type]), event))
            for event in events
            if event.type in OUTBOX_TOPICS
        ]
        if not sends:
            return
        try:
            self.producer.flush(timeout=self.timeout)
        except KafkaError:
            self._reset()
            raise
        failed = [(event, future) for event, future in sends if not future.succeeded()]
        if failed:
            self._reset()
            event, future = failed[0]
            raise KafkaPublishFailed(
                f"{len(failed)} of {len(sends)} events were not acknowledged by Kafka; "
                f"first: {event.type} {event.event_id}: {future.exception!r}"
            )

    def _send(self, topic: str, event: OutboxEvent):
        headers = [("type", event.type.encode()), ("schema_version", str(event.schema_version).encode())]
        return self.producer.send(topic, key=event_key(event), value=event_value(event), headers=headers)

    def _reset(self) -> None:
        """After a failure the producer may hold a fenced idempotence state: start afresh."""
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

    def close(self) -> None:
        self._reset()


# --- consuming ----------------------------------------------------------------------------------


def consume(
    *,
    topic: str,
    group_id: str,
    handle: Callable[[list[ConsumerRecord]], None],
    max_messages: int | None = None,
    timeout: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Poll ``topic`` and hand each batch to ``handle``, then commit (at-least-once).

    Stops after ``max_messages`` messages, after ``timeout`` seconds, or when ``should_stop()``.
    Polls never take more than the messages still wanted, so nothing beyond them is committed.
    If ``handle`` raises, nothing of that batch is committed: it comes again after a restart.
    Returns the number of messages handled.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    consumer = consumer_new(group_id)
    consumer.subscribe([topic_name(topic)])
    handled = 0
    try:
        while not should_stop() and (max_messages is None or handled < max_messages):
            wait_ms = 500 if deadline is None else int(min(0.5, deadline - time.monotonic()) * 1000)
            if wait_ms <= 0:
                break
            wanted = None if max_messages is None else max_messages - handled
            polled = consumer.poll(timeout_ms=wait_ms, max_records=wanted)
            records = [record for batch in polled.values() for record in batch]
            if not records:
                continue
            connections_refresh()
            handle(records)
            handled += len(records)
            try:
                consumer.commit()
            except CommitFailedError:
                # the group rebalanced meanwhile: the new owner of these partitions gets the batch
                # again, which is harmless (the handlers are idempotent)
                logger.warning("offsets not committed (group rebalanced); the batch will come again")
    finally:
        consumer.close(autocommit=False)
    return handled


def connections_refresh() -> None:
    """What Django does between requests, for a long-running loop: drop connections that broke or
    outlived CONN_MAX_AGE. Not inside a transaction (a test's): that connection must stay."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGTERM / SIGINT ask the loop to stop after the current batch (its offsets get committed);
    the previous handlers come back afterwards (call_command inside a test runner, for one)."""
    stop = {"now": False}

    def ask(signum, frame) -> None:
        stop["now"] = True

    previous = {sig: os_signal.signal(sig, ask) for sig in (os_signal.SIGTERM, os_signal.SIGINT)}
    try:
        yield lambda: stop["now"]
    finally:
        for sig, handler in previous.items():
            os_signal.signal(sig, handler)


# --- trading signals in -------------------------------------------------------------------------

SIGNAL_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,60}$")
SIGNAL_ORDER_PREFIX = "sig:"  # client_order_id = "sig:" + signal_id: 64 characters at most


def signal_client_order_id(signal_id: str) -> str:
    """The order's client_order_id: one signal id, one order, however often it is delivered."""
    return SIGNAL_ORDER_PREFIX + signal_id


class DeadLetter(Exception):
    """A signal that can never become an order: its reasons go to the dead-letter topic."""

    def __init__(
        self,
        code: str,
        message: str,
        fields: dict[str, list[str]] | None = None,
        signal_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.fields, self.signal_id = code, message, fields or {}, signal_id

    def reasons(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "fields": self.fields}


@dataclass(frozen=True, slots=True)
class SignalOutcome:
    """What became of a signal: an order (``created`` False: a redelivery, the same order as
    before), or a dead letter with its reasons."""

    signal_id: str | None
    order: Order | None = None
    created: bool = False
    dead_letter: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    signal_id: str
    user: Any
    order_data: dict[str, Any]  # OrderCreateInputSerializer's validated data


def signal_handle(raw: bytes | None) -> SignalOutcome:
    """Turn one message of ``trading.signals`` into an order, exactly as POST /api/v1/orders would.

    ``{"signal_id": "...", "user": "<username>" | "user_id": n, "broker_id": n (optional),
    "order": {<the order fields of POST /api/v1/orders>}}``. The order's client_order_id is
    ``sig:<signal_id>``, so a redelivered signal returns the order already placed. An order the
    risk check refuses is a normal REJECTED order, not a dead letter. Errors of the database or
    the broker connection are not dead letters either: they propagate, and the message comes again.
    """
    try:
        signal = signal_parse(raw or b"")
        return _signal_place(signal)
    except DeadLetter as bad:
        logger.warning("signal %s dead-lettered: %s %s %s", bad.signal_id, bad.code, bad.message, bad.fields)
        return SignalOutcome(bad.signal_id, dead_letter=bad.reasons())


def signal_parse(raw: bytes) -> Signal:
    """The signal, validated like an API request; :class:`DeadLetter` if it is not one."""
    body = _json_object(raw)
    signal_id = body.get("signal_id")
    if not isinstance(signal_id, str) or not SIGNAL_ID.fullmatch(signal_id):
        raise DeadLetter(
            "validation_error",
            "The signal has no valid signal_id.",
            {"signal_id": ["Required: 1 to 60 characters among A-Z a-z 0-9 . _ : -"]},
        )
    user = _signal_user(body, signal_id)
    return Signal(signal_id, user, _signal_order(body, signal_id))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DeadLetter("bad_json", f"The message is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise DeadLetter("bad_json", "A signal is a JSON object.")
    return body


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _signal_user(body: dict[str, Any], signal_id: str):
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(is_active=True)
    username, user_id = body.get("user"), body.get("user_id")
    if isinstance(username, str) and username:
        user = users.filter(username=username).first()
    elif isinstance(user_id, int) and not isinstance(user_id, bool):
        user = users.filter(pk=user_id).first()
    else:
        raise DeadLetter(
            "validation_error",
            "The signal names no user.",
            {"user": ["Give user (a username) or user_id (a number)."]},
            signal_id,
        )
    if user is None:
        who = username if username else user_id
        raise DeadLetter("unknown_user", f"No active user {who!r}.", {"user": ["No such user."]}, signal_id)
    return user


def _signal_order(body: dict[str, Any], signal_id: str) -> dict[str, Any]:
    """The order fields through the API's own serializer, with the signal's client_order_id and
    broker_id (at the top level of the signal, or inside ``order``, not two different ones)."""
    from orders.api.serializers import OrderCreateInputSerializer

    order = body.get("order")
    if not isinstance(order, dict):
        raise DeadLetter(
            "validation_error",
            "The signal has no order.",
            {"order": ["Required: an object with the fields of POST /api/v1/orders."]},
            signal_id,
        )
    data = dict(order)
    client_order_id = signal_client_order_id(signal_id)
    if data.get("client_order_id") not in (None, client_order_id):
        raise DeadLetter(
            "validation_error",
            "The signal id names the order.",
            {"client_order_id": [f"Leave it out: a signal's order is {client_order_id!r}."]},
            signal_id,
        )
    data["client_order_id"] = client_order_id
    if body.get("broker_id") is not None:
        if data.get("broker_id") not in (None, body["broker_id"]):
            raise DeadLetter(
                "validation_error",
                "Two different broker ids.",
                {"broker_id": ["Give broker_id once (in the signal or in its order)."]},
                signal_id,
            )
        data["broker_id"] = body["broker_id"]
    serializer = OrderCreateInputSerializer(data=data)
    if not serializer.is_valid():
        fields = {name: [str(m) for m in messages] for name, messages in _flat(serializer.errors).items()}
        raise DeadLetter("validation_error", "The order has invalid fields.", fields, signal_id)
    return dict(serializer.validated_data)


def _flat(errors: Any) -> dict[str, list[Any]]:
    return {k: v if isinstance(v, list) else [v] for k, v in dict(errors).items()}


def _signal_place(signal: Signal) -> SignalOutcome:
    from orders.api.views import order_request_from
    from orders.models import ActorType
    from orders.services import Actor, order_place
    from trademaster.errors import TradeMasterError

    actor = Actor(ActorType.AGENT, signal.user.pk, f"signal:{signal.signal_id}")
    try:
        placed = order_place(
            user=signal.user,
            request=order_request_from(signal.order_data),
            actor=actor,
            broker_id=signal.order_data.get("broker_id"),
        )
    except TradeMasterError as exc:
        # what the API answers with a 4xx: invalid for this user (fields, a broker account that
        # is not theirs, a signal id already used for another order); sending it again cannot help
        fields = exc.extra.get("fields") or {}
        raise DeadLetter(exc.code, exc.message, fields, signal.signal_id) from exc
    logger.info(
        "signal %s: order %s %s (%s)",
        signal.signal_id,
        placed.order.pk,
        placed.order.status,
        "placed" if placed.created else "already placed",
    )
    return SignalOutcome(signal.signal_id, placed.order, placed.created)


@dataclass
class SignalTally:
    placed: int = 0
    redelivered: int = 0
    dead_lettered: int = 0


class SignalConsumer:
    """The batch handler of ``consume_signals``: places orders, and sends dead letters to
    ``trading.signals.dlq``, acknowledged before the batch's offsets are committed.

    A dead letter keeps the original key and bytes as they came (so it can be fixed and sent
    again), the original headers, and adds ``dlq.error`` (JSON: code, message, fields),
    ``dlq.signal_id`` (when known) and ``dlq.topic`` / ``dlq.partition`` / ``dlq.offset``.
    """

    def __init__(self, producer: KafkaProducer | None = None) -> None:
        self._producer = producer
        self.tally = SignalTally()

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = producer_new()
        return self._producer

    def handle(self, records: list[ConsumerRecord]) -> None:
        futures = []
        for record in records:
            outcome = signal_handle(record.value)
            if outcome.dead_letter is not None:
                futures.append(self._dead_letter(record, outcome))
                self.tally.dead_lettered += 1
            elif outcome.created:
                self.tally.placed += 1
            else:
                self.tally.redelivered += 1
        if futures:
            self.producer.flush(timeout=settings.KAFKA_PRODUCE_TIMEOUT_SECONDS)
            failed = [f for f in futures if not f.succeeded()]
            if failed:  # do not commit: the batch is handled again (its orders are idempotent)
                raise KafkaPublishFailed(
                    f"{len(failed)} dead letters were not acknowledged: {failed[0].exception!r}"
                )

    def _dead_letter(self, record: ConsumerRecord, outcome: SignalOutcome):
        headers = [
            *(record.headers or []),
            ("dlq.error", json.dumps(outcome.dead_letter).encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
        ]
        if outcome.signal_id:
            headers.append(("dlq.signal_id", outcome.signal_id.encode()))
        return self.producer.send(
            topic_name(SIGNALS_DLQ), key=record.key, value=record.value, headers=headers
        )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None


# --- risk events --------------------------------------------------------------------------------


@dataclass
class RiskTally:
    events: int = 0
    duplicates: int = 0
    users_checked: int = 0
    alerts: list[Any] = field(default_factory=list)


def _seen_key(event_id: str) -> str:
    return f"tm:kafka:risk:seen:{event_id}"


def risk_events_handle(raws: Sequence[bytes | None]) -> RiskTally:
    """Run the live portfolio rules (``risk_monitor_user``) once per user with a new fill.

    De-duplication, two layers: an event id already processed is skipped, remembered in the
    Django cache for ``KAFKA_DEDUPE_TTL_SECONDS`` (Redis in production: shared by the group's
    consumers and across restarts); and the evaluation itself is idempotent, because it reads the
    book as it stands now, not the event, and a breach that lasts updates its open alert instead of
    opening another (risk.monitoring). So an id the cache forgot costs one more evaluation, nothing
    else. Several fills of one user in one batch are one evaluation. Ids are remembered only after
    the evaluation succeeded.
    """
    from django.contrib.auth import get_user_model

    from risk.monitoring import risk_monitor_user

    tally = RiskTally()
    by_user: dict[int, list[str]] = {}
    for raw in raws:
        event = _risk_event(raw)
        if event is None:
            continue
        tally.events += 1
        event_id = event["event_id"]
        if cache.get(_seen_key(event_id)) or event_id in by_user.get(event["user_id"], ()):
            tally.duplicates += 1
            continue
        by_user.setdefault(event["user_id"], []).append(event_id)
    users = get_user_model().objects.in_bulk(list(by_user))
    for user_id, event_ids in by_user.items():
        user = users.get(user_id)
        if user is None:
            logger.warning("risk event for user %s, who no longer exists: skipped", user_id)
        else:
            tally.alerts.extend(risk_monitor_user(user=user))
            tally.users_checked += 1
        cache.set_many(dict.fromkeys(map(_seen_key, event_ids), 1), timeout=settings.KAFKA_DEDUPE_TTL_SECONDS)
    return tally


def _risk_event(raw: bytes | None) -> dict[str, Any] | None:
    """The envelope if it is an ORDER_FILLED event; anything else is logged and skipped (our own
    relay writes this topic: a bad message is a bug to look at, not a reason to stop risk checks)."""
    try:
        event = json.loads((raw or b"").decode("utf-8"))
    except ValueError:
        logger.error("risk consumer: a message that is not JSON was skipped: %r", (raw or b"")[:200])
        return None
    if (
        not isinstance(event, dict)
        or event.get("type") != "ORDER_FILLED"
        or not isinstance(event.get("event_id"), str)
        or not isinstance(event.get("user_id"), int)
    ):
        logger.error("risk consumer: not an ORDER_FILLED envelope, skipped: %r", str(event)[:200])
        return None
    return event
