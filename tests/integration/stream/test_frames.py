"""The outbox-to-frame mapping and the client-protocol checks (plain Python, no database)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from trademaster.stream.frames import (
    TOPICS,
    ProtocolError,
    SentLog,
    check_user,
    frames_for,
    parse_since,
    parse_topics,
)

ORDER = {"id": 7, "status": "FILLED"}


def envelope(type_: str, payload: dict | None = None) -> dict:
    return {
        "event_id": "e-1",
        "type": type_,
        "occurred_at": "2026-01-02T03:04:05+00:00",
        "user_id": 1,
        "account_id": 2,
        "payload": payload if payload is not None else {"x": "1"},
        "schema_version": 1,
    }


@pytest.mark.parametrize(
    ("outbox_type", "expected"),
    [
        ("ORDER_CREATED", [("orders", "ORDER_UPDATE")]),
        ("ORDER_UPDATED", [("orders", "ORDER_UPDATE")]),
        ("ORDER_FILLED", [("fills", "FILL_NOTIFICATION"), ("orders", "ORDER_UPDATE")]),
        ("POSITION_UPDATED", [("positions", "POSITION_UPDATE")]),
        ("POSITIONS_MARKED", [("positions", "POSITIONS_MARKED")]),
        ("RISK_ALERT", [("risk", "RISK_ALERT")]),
        ("TRADING_STATE_CHANGED", [("risk", "RISK_ALERT")]),
        ("BROKER_STATUS", [("brokers", "BROKER_STATUS")]),
        ("BROKER_ANOMALY", [("brokers", "BROKER_STATUS")]),
        ("SOMETHING_NEW", []),
    ],
)
def test_each_outbox_type_maps_to_its_topics_and_frame_types(outbox_type, expected):
    frames = frames_for(envelope(outbox_type, {"order": ORDER, "fill": {"q": "1"}}), TOPICS)
    assert [(topic, frame["type"]) for topic, frame in frames] == expected


def test_a_frame_carries_the_event_id_time_and_payload():
    ((_, frame),) = frames_for(envelope("POSITION_UPDATED", {"position": {"qty": "3"}}), ["positions"])
    assert frame == {
        "type": "POSITION_UPDATE",
        "event_id": "e-1",
        "occurred_at": "2026-01-02T03:04:05+00:00",
        "data": {"position": {"qty": "3"}},
    }


def test_a_fill_also_updates_the_order_topic_with_the_order():
    frames = dict(frames_for(envelope("ORDER_FILLED", {"order": ORDER, "fill": {"q": "1"}}), TOPICS))
    assert frames["fills"]["data"] == {"order": ORDER, "fill": {"q": "1"}}
    assert frames["orders"]["data"] == {"order": ORDER, "event": "FILL"}


def test_only_the_requested_topics_get_frames():
    fill = envelope("ORDER_FILLED", {"order": ORDER, "fill": {}})
    assert [t for t, _ in frames_for(fill, ["orders"])] == ["orders"]
    assert frames_for(fill, ["risk", "brokers"]) == []


@pytest.mark.parametrize(
    ("topics", "code"),
    [
        (None, "invalid_topics"),
        ([], "invalid_topics"),
        ("orders", "invalid_topics"),
        ([1], "invalid_topics"),
        (["orders", "news"], "unknown_topic"),
    ],
)
def test_bad_topic_lists_are_refused_with_the_allowed_list(topics, code):
    with pytest.raises(ProtocolError) as error:
        parse_topics(topics)
    frame = error.value.frame()
    assert frame["type"] == "ERROR"
    assert frame["error"]["code"] == code
    assert frame["error"]["allowed"] == list(TOPICS)


def test_user_id_may_be_absent_or_the_same_user_as_int_or_string():
    check_user(None, 5)
    check_user(5, 5)
    check_user("5", 5)
    with pytest.raises(ProtocolError, match="userId"):
        check_user("6", 5)


def test_since_is_an_event_id_or_an_iso_timestamp():
    event_id = uuid.uuid4()
    assert parse_since(str(event_id)) == event_id
    assert parse_since("2026-01-02T03:04:05Z") == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert parse_since("2026-01-02T03:04:05") == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert parse_since(None) is None
    for bad in ("yesterday", 12, ["x"]):
        with pytest.raises(ProtocolError):
            parse_since(bad)


def test_the_sent_log_lets_each_id_and_topic_through_once():
    log = SentLog()
    assert log.first_time(3, "orders")
    assert log.first_time(3, "fills")  # the same event on another topic
    assert not log.first_time(3, "orders")
    assert log.first_time(1, "orders")  # a late commit with a lower id still goes out


def test_the_sent_log_stays_bounded_and_treats_forgotten_ids_as_sent():
    log = SentLog(capacity=3)
    for outbox_id in (1, 2, 3, 4):
        assert log.first_time(outbox_id, "orders")
    assert len(log.keys) == 3
    assert not log.first_time(1, "orders")
    assert not log.first_time(1, "fills")
    assert log.first_time(5, "orders")
