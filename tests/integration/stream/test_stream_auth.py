"""Who may open ``/trading/stream``: a session, or a bearer token with ``read`` (header or query)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone
from oauth2_provider.models import AccessToken

from trademaster.management.commands.issue_token import token_issue
from trademaster.outbox import outbox_record

from .support import WAIT, closed, communicator, relay_all, stream, subscribe

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("redis_layer"),
]


def refused(**credentials) -> tuple[dict, dict]:
    """Connect with these credentials; the ERROR frame and the close message the server sent."""

    async def scenario():
        client = communicator(**credentials)
        ok, _ = await client.connect(timeout=WAIT)
        assert ok  # accepted, so that a browser sees the close code
        error = await client.receive_json_from(timeout=WAIT)
        close = await closed(client)
        await client.disconnect()  # the client's side of the closing handshake
        return error, close

    return async_to_sync(scenario)()


def assert_refused(**credentials) -> None:
    error, close = refused(**credentials)
    assert error["type"] == "ERROR"
    assert error["error"]["code"] == "unauthorized"
    assert close == {"type": "websocket.close", "code": 4401, "reason": "unauthorized"}


def subscribes(**credentials) -> bool:
    async def scenario():
        async with stream(**credentials) as client:
            return (await subscribe(client, ["orders"]))["type"] == "SUBSCRIBED"

    return async_to_sync(scenario)()


def test_a_bearer_token_in_the_authorization_header_is_accepted(trader):
    assert subscribes(token=token_issue(user=trader, scopes=["read"]))


def test_a_bearer_token_in_the_query_string_is_accepted(trader):
    assert subscribes(query_token=token_issue(user=trader, scopes=["read", "trade"]))


def test_a_session_cookie_is_accepted(client, trader):
    client.force_login(trader)
    assert subscribes(cookie=f"sessionid={client.cookies['sessionid'].value}")


def test_an_anonymous_socket_is_closed_with_4401():
    assert_refused()


def test_an_unknown_token_is_refused():
    assert_refused(token="not-a-token")


def test_an_expired_token_is_refused(trader):
    raw = token_issue(user=trader, scopes=["read"])
    AccessToken.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))
    assert_refused(query_token=raw)


def test_a_token_without_the_read_scope_is_refused(trader):
    assert_refused(token=token_issue(user=trader, scopes=["trade"]))


def test_the_token_of_a_deactivated_user_is_refused(trader):
    raw = token_issue(user=trader, scopes=["read"])
    trader.is_active = False
    trader.save(update_fields=["is_active"])
    assert_refused(token=raw)


def test_a_failing_token_is_not_rescued_by_a_session_cookie(client, trader):
    client.force_login(trader)
    assert_refused(token="not-a-token", cookie=f"sessionid={client.cookies['sessionid'].value}")


def test_a_session_socket_from_a_foreign_origin_is_rejected_at_the_handshake(client, trader):
    client.force_login(trader)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def scenario(origin):
        connection = communicator(cookie=cookie, origin=origin)
        ok, _ = await connection.connect(timeout=WAIT)
        if ok:
            await connection.disconnect()
        return ok

    # cross-site WebSocket hijacking rides on cookies: a session socket must come from our pages
    assert not async_to_sync(scenario)((b"origin", b"https://evil.example"))
    assert not async_to_sync(scenario)(None)


def test_a_bearer_socket_needs_no_origin(trader):
    raw = token_issue(user=trader, scopes=["read"])
    assert subscribes(token=raw, origin=None)
    assert subscribes(token=raw, origin=(b"origin", b"https://dashboard.partner.example"))


def test_a_socket_ends_when_its_token_expires(trader):
    """The token is checked when the socket opens; its expiry still ends the stream later."""
    raw = token_issue(user=trader, scopes=["read"])
    expires = timezone.now() + dt.timedelta(seconds=2)
    AccessToken.objects.filter(user=trader).update(expires=expires)

    def an_event() -> None:
        payload = {"order": {"id": 1}, "event": "ACCEPT"}
        outbox_record(type="ORDER_UPDATED", user_id=trader.pk, payload=payload)
        relay_all()

    async def scenario():
        async with stream(token=raw) as client:
            assert (await subscribe(client, ["orders"]))["type"] == "SUBSCRIBED"
            frames = []
            deadline = asyncio.get_running_loop().time() + WAIT
            # events keep coming: frames until the token's time is up, then the end of the stream
            while not frames or frames[-1]["type"] != "ERROR":
                assert asyncio.get_running_loop().time() < deadline, frames
                await database_sync_to_async(an_event)()
                frames.append(await client.receive_json_from(timeout=WAIT))
            return frames, await closed(client)

    frames, close = async_to_sync(scenario)()
    assert {f["type"] for f in frames[:-1]} <= {"ORDER_UPDATE"}
    assert frames[-1]["error"]["code"] == "token_expired"
    assert timezone.now() >= expires
    assert close == {"type": "websocket.close", "code": 4401, "reason": "token expired"}
