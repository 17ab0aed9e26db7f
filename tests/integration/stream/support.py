"""Driving ``/trading/stream`` in-process: WebSocket communicators, the relay, bounded waits.

Tests are plain functions that run one async scenario with ``async_to_sync``; ORM work inside
a scenario goes through ``database_sync_to_async`` (it then runs on the test's own thread and
database connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from trademaster.asgi import application
from trademaster.relay import ChannelLayerSink, relay_batch

PATH = "/trading/stream"
ORIGIN = (b"origin", b"http://127.0.0.1")
ORDERS = "/api/v1/orders/"
WAIT = 10  # seconds: the upper bound of every wait for a frame that must come
QUIET = 0.5  # seconds: how long "nothing arrives" is watched

Frame = dict[str, Any]


def communicator(
    *, token: str | None = None, query_token: str | None = None, cookie: str | None = None, origin=ORIGIN
) -> WebsocketCommunicator:
    """A client of the full ASGI application (origin check, auth, routing) with these credentials."""
    headers = [origin] if origin else []
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    path = f"{PATH}?access_token={query_token}" if query_token else PATH
    return WebsocketCommunicator(application, path, headers=headers)


@contextlib.asynccontextmanager
async def stream(**credentials: Any) -> AsyncIterator[WebsocketCommunicator]:
    """A connected client, disconnected (and its consumer finished) at the end of the block."""
    client = communicator(**credentials)
    ok, _ = await client.connect(timeout=WAIT)
    assert ok
    try:
        yield client
    finally:
        await client.disconnect()


async def subscribe(client: WebsocketCommunicator, topics: list[str], **extra: Any) -> Frame:
    """Send a subscribe and return the server's answer (SUBSCRIBED or ERROR)."""
    await client.send_json_to({"action": "subscribe", "topics": topics, **extra})
    return await client.receive_json_from(timeout=WAIT)


def relay_all() -> int:
    """Run the real relay to the channel layer until the outbox has nothing unpublished."""
    total = 0
    while count := relay_batch(sinks=[ChannelLayerSink()]):
        total += count
    return total


relay = database_sync_to_async(relay_all)


async def place_market_order(
    api, symbol: str = "AAPL", quantity: str = "10", broker_id: int | None = None
) -> Frame:
    """POST a MARKET buy through the REST API (it fills within the request); the order body.

    Without ``broker_id`` the service routes it (best execution)."""
    body = {"symbol": symbol, "side": "BUY", "order_type": "MARKET", "quantity": quantity}
    if broker_id is not None:
        body["broker_id"] = broker_id

    def post() -> Frame:
        response = api.post(ORDERS, body, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    return await database_sync_to_async(post)()


async def frames_until(client: WebsocketCommunicator, done: Callable[[list[Frame]], bool]) -> list[Frame]:
    """Receive frames until ``done(frames)``, failing after :data:`WAIT` seconds."""
    frames: list[Frame] = []

    async def collect() -> None:
        while not done(frames):
            frames.append(await client.receive_json_from(timeout=WAIT))

    await asyncio.wait_for(collect(), WAIT)
    return frames


def replay_done(frames: list[Frame]) -> bool:
    return bool(frames) and frames[-1]["type"] == "REPLAY_DONE"


def has_fill_and_filled_order(frames: list[Frame]) -> bool:
    types = {f["type"] for f in frames}
    filled = any(f["type"] == "ORDER_UPDATE" and f["data"]["order"]["status"] == "FILLED" for f in frames)
    return "FILL_NOTIFICATION" in types and filled


async def closed(client: WebsocketCommunicator) -> Frame:
    """The close message the server sent (after any frames, which are returned first if present)."""
    return await client.receive_output(timeout=WAIT)
