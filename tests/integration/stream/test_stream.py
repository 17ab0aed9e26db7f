"""The live stream end to end in-process: REST API -> outbox -> real relay -> Redis -> socket.

``transactional_db`` (with the migrations' reference data restored): the relay and the consumer
read committed rows; every socket runs through
the full ASGI application (origin check, session/bearer auth, routing).
"""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from tests.conftest import bearer_client
from trademaster.management.commands.issue_token import token_issue
from trademaster.models import OutboxEvent
from trademaster.stream.frames import TOPICS

from .support import (
    QUIET,
    WAIT,
    frames_until,
    has_fill_and_filled_order,
    place_market_order,
    relay,
    replay_done,
    stream,
    subscribe,
)

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("redis_layer"),
]


@pytest.fixture
def market(set_mid, accounts):
    set_mid("AAPL", "100.00")


def token_of(user, scopes=("read",)) -> str:
    return token_issue(user=user, scopes=list(scopes))


def outbox_ids(user) -> list[str]:
    return [str(e) for e in OutboxEvent.objects.filter(user_id=user.pk).values_list("event_id", flat=True)]


def test_an_order_placed_through_the_api_reaches_the_subscribed_socket(trader, api, accounts, market):
    token = token_of(trader)

    async def scenario():
        async with stream(token=token) as client:
            assert await subscribe(client, ["orders", "fills"], userId=trader.pk) == {
                "type": "SUBSCRIBED",
                "topics": ["fills", "orders"],
            }
            order = await place_market_order(api, broker_id=accounts["PAPER-EQ-A"].pk)
            await relay()
            frames = await frames_until(client, has_fill_and_filled_order)
            assert await client.receive_nothing(timeout=QUIET)
            return order, frames

    order, frames = async_to_sync(scenario)()
    # created, submitted, accepted, then filled: the fill produces both frames
    assert [(f["type"], f["data"]["order"]["status"]) for f in frames] == [
        ("ORDER_UPDATE", "PENDING"),
        ("ORDER_UPDATE", "SUBMITTED"),
        ("ORDER_UPDATE", "ACCEPTED"),
        ("FILL_NOTIFICATION", "FILLED"),
        ("ORDER_UPDATE", "FILLED"),
    ]
    fill = frames[3]
    assert fill["data"]["order"]["id"] == order["id"]
    assert fill["data"]["fill"]["quantity"] == "10.00000000"
    assert fill["data"]["fill"]["price"] == "100.01000000"  # venue A's ask; money stays a string
    assert frames[4]["event_id"] == fill["event_id"]  # one outbox event, two topics
    assert frames[4]["data"]["event"] == "FILL"
    assert set(frames[0]) == {"type", "event_id", "occurred_at", "data"}
    assert [f["event_id"] for f in frames if f["type"] != "FILL_NOTIFICATION"] == outbox_ids(trader)[:4]


def test_positions_topic_gets_the_position_after_a_fill(trader, api, market):
    token = token_of(trader)

    async def scenario():
        async with stream(query_token=token) as client:
            await subscribe(client, ["positions"])
            await place_market_order(api, quantity="7")
            await relay()
            frames = await frames_until(client, lambda fs: len(fs) == 1)
            assert await client.receive_nothing(timeout=QUIET)
            return frames

    (frame,) = async_to_sync(scenario)()
    assert frame["type"] == "POSITION_UPDATE"
    assert frame["data"]["position"]["symbol"] == "AAPL"
    assert frame["data"]["position"]["quantity"] == "7.00000000"


def test_another_user_never_receives_my_events(trader, other_trader, api, market):
    mine, theirs = token_of(trader), token_of(other_trader)

    async def scenario():
        async with stream(token=mine) as me, stream(token=theirs) as them:
            assert (await subscribe(them, list(TOPICS), userId=str(other_trader.pk)))["type"] == "SUBSCRIBED"
            await subscribe(me, list(TOPICS))
            await place_market_order(api)
            await relay()
            await frames_until(me, has_fill_and_filled_order)  # delivered: the relay has run
            assert await them.receive_nothing(timeout=QUIET)

    async_to_sync(scenario)()


def test_asking_for_another_users_stream_is_refused_and_subscribes_nothing(trader, other_trader, api, market):
    token = token_of(other_trader)

    async def scenario():
        async with stream(token=token) as them:
            answer = await subscribe(them, ["orders", "fills"], userId=trader.pk)
            await place_market_order(api)
            await relay()
            assert await them.receive_nothing(timeout=QUIET)
            return answer

    answer = async_to_sync(scenario)()
    assert answer["type"] == "ERROR"
    assert answer["error"]["code"] == "user_mismatch"
    assert answer["error"]["message"]


def test_bad_messages_get_an_error_frame_and_the_socket_keeps_working(trader):
    token = token_of(trader)

    async def error_code(client, text: str) -> dict:
        await client.send_to(text_data=text)
        answer = await client.receive_json_from(timeout=WAIT)
        assert answer["type"] == "ERROR", answer
        return answer["error"]

    async def scenario():
        async with stream(token=token) as client:
            errors = [
                await error_code(client, "{not json"),
                await error_code(client, "[1, 2]"),
                await error_code(client, '{"action": "dance"}'),
                await error_code(client, '{"action": "subscribe", "topics": ["orders", "gossip"]}'),
                await error_code(client, '{"action": "subscribe", "topics": "orders"}'),
                await error_code(client, '{"action": "subscribe", "topics": ["risk"], "since": "yesterday"}'),
            ]
            return errors, await subscribe(client, ["risk"])

    errors, answer = async_to_sync(scenario)()
    assert [e["code"] for e in errors] == [
        "invalid_json",
        "invalid_message",
        "unknown_action",
        "unknown_topic",
        "invalid_topics",
        "invalid_since",
    ]
    assert errors[3]["unknown"] == ["gossip"]
    assert errors[3]["allowed"] == ["orders", "positions", "fills", "risk", "brokers"]
    assert answer == {"type": "SUBSCRIBED", "topics": ["risk"]}  # the failed subscribes added nothing


def test_unsubscribe_stops_that_topics_frames(trader, api, market):
    token = token_of(trader)

    async def scenario():
        async with stream(token=token) as client:
            await subscribe(client, ["orders", "fills"])
            await client.send_json_to({"action": "unsubscribe", "topics": ["orders"]})
            left = await client.receive_json_from(timeout=WAIT)
            await place_market_order(api)
            await relay()
            (fill,) = await frames_until(client, lambda fs: len(fs) == 1)
            assert await client.receive_nothing(timeout=QUIET)
            await client.send_json_to({"action": "unsubscribe", "topics": ["fills"]})
            none_left = await client.receive_json_from(timeout=WAIT)
            await place_market_order(api)
            await relay()
            assert await client.receive_nothing(timeout=QUIET)
            return left, fill, none_left

    left, fill, none_left = async_to_sync(scenario)()
    assert left == {"type": "UNSUBSCRIBED", "topics": ["fills"]}
    assert fill["type"] == "FILL_NOTIFICATION"
    assert none_left == {"type": "UNSUBSCRIBED", "topics": []}


def test_an_event_relayed_twice_is_sent_once(trader, api, market):
    token = token_of(trader)

    async def scenario():
        async with stream(token=token) as client:
            await subscribe(client, ["fills"])
            await place_market_order(api)
            await relay()
            first = await frames_until(client, lambda fs: len(fs) == 1)
            # at-least-once: a relay that died before stamping publishes the batch again
            await database_sync_to_async(OutboxEvent.objects.update)(published_at=None)
            assert await relay() == 5
            assert await client.receive_nothing(timeout=QUIET)
            return first

    (fill,) = async_to_sync(scenario)()
    assert fill["type"] == "FILL_NOTIFICATION"


# --- replay --------------------------------------------------------------------------------------


def test_replay_since_an_event_id_sends_exactly_the_missed_events_then_live_ones_once(trader, api, market):
    token = token_of(trader)

    async def first_session() -> str:
        async with stream(token=token) as client:
            await subscribe(client, ["orders", "fills", "positions"])
            await place_market_order(api)
            await relay()
            frames = await frames_until(client, lambda fs: len(fs) == 6)
            return frames[-1]["event_id"]

    async def missed_then_back(last_seen: str):
        await place_market_order(api, quantity="3")  # while away; not relayed yet
        async with stream(token=token) as client:
            answer = await subscribe(client, ["orders", "fills", "positions"], since=last_seen)
            replayed = await frames_until(client, replay_done)
            await relay()  # the same events now arrive live: none is sent again
            assert await client.receive_nothing(timeout=QUIET)
            await place_market_order(api, quantity="1")
            await relay()
            live = await frames_until(client, lambda fs: len(fs) == 6)
            return answer, replayed, live

    last_seen = async_to_sync(first_session)()
    answer, replayed, live = async_to_sync(missed_then_back)(last_seen)
    assert answer == {"type": "SUBSCRIBED", "topics": ["fills", "orders", "positions"]}
    done = replayed.pop()
    assert done == {"type": "REPLAY_DONE", "count": 6, "truncated": False}
    ids = outbox_ids(trader)
    missed = ids[ids.index(last_seen) + 1 : ids.index(last_seen) + 6]
    assert list(dict.fromkeys(f["event_id"] for f in replayed)) == missed
    assert [f["data"]["order"]["quantity"] for f in replayed if "order" in f["data"]] == ["3.00000000"] * 5
    assert list(dict.fromkeys(f["event_id"] for f in live)) == ids[-5:]


def test_replay_since_a_timestamp_and_only_for_the_subscribed_topics(trader, api, market):
    token = token_of(trader)

    async def scenario():
        await place_market_order(api)
        cut = dt.datetime.now(dt.UTC)
        await place_market_order(api, quantity="2")
        async with stream(token=token) as client:
            await subscribe(client, ["fills"], since=cut.isoformat())
            return await frames_until(client, replay_done)

    fill, done = async_to_sync(scenario)()
    assert fill["type"] == "FILL_NOTIFICATION"
    assert fill["data"]["fill"]["quantity"] == "2.00000000"
    assert done == {"type": "REPLAY_DONE", "count": 1, "truncated": False}


def test_replay_from_an_unknown_or_someone_elses_event_is_an_error(trader, other_trader, api, market):
    token = token_of(other_trader)

    async def scenario():
        await place_market_order(api)
        (traders_event,) = await database_sync_to_async(lambda: outbox_ids(trader)[:1])()
        async with stream(token=token) as them:
            answers = [
                await subscribe(them, ["orders"], since=traders_event),
                await subscribe(them, ["orders"], since="00000000-0000-4000-8000-000000000000"),
            ]
            assert await them.receive_nothing(timeout=QUIET)
            return answers

    for answer in async_to_sync(scenario)():
        assert answer["type"] == "ERROR"
        assert answer["error"]["code"] == "unknown_event"


def test_a_session_login_and_a_token_of_the_same_user_see_the_same_stream(client, trader, market):
    client.force_login(trader)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    api = bearer_client(trader)

    async def scenario():
        async with stream(cookie=cookie) as browser:
            await subscribe(browser, ["fills"], userId=trader.pk)
            await place_market_order(api)
            await relay()
            return await frames_until(browser, lambda fs: len(fs) == 1)

    (fill,) = async_to_sync(scenario)()
    assert fill["type"] == "FILL_NOTIFICATION"
