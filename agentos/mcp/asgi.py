"""The MCP server as an ASGI app mounted at ``/mcp/trading`` (streamable HTTP), behind the bearer check.

daphne sends no ASGI lifespan events, so the session manager (``session_manager.run()``) is started
lazily by the first request, once per process: an ``asyncio.Lock`` makes concurrent first requests
wait for the one start. It runs in a task for the rest of the process. The same lazy start serves
servers that do send lifespan events (uvicorn): the MCP app never sees a lifespan scope.
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from mcp.server.transport_security import TransportSecuritySettings

from agentos.mcp.auth import BearerAuth
from agentos.mcp.server import mcp

MOUNT = "/mcp/trading"
LOOPBACK = ["127.0.0.1", "localhost", "[::1]"]


def transport_security() -> TransportSecuritySettings:
    """DNS-rebinding protection with the hosts Django accepts (and loopback), any port."""
    hosts: list[str] = []
    for host in [*settings.ALLOWED_HOSTS, *LOOPBACK]:
        if host == "*":
            return TransportSecuritySettings(enable_dns_rebinding_protection=False)
        host = host.lstrip(".")  # Django's ".example.com" (subdomains) is matched exactly here
        hosts += [host, f"{host}:*"]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


mcp_http = mcp.streamable_http_app(streamable_http_path=MOUNT, transport_security=transport_security())

_lock: asyncio.Lock | None = None
_started: asyncio.Event | None = None
_runner: asyncio.Task | None = None


async def ensure_session_manager() -> None:
    """Start ``session_manager.run()`` once in this process's event loop, and wait until it runs."""
    global _lock, _started, _runner
    if _started is not None and _started.is_set():
        return
    if _lock is None:  # no await between the check and the assignment: one lock per process
        _lock = asyncio.Lock()
    async with _lock:
        if _started is not None and _started.is_set():
            return
        started = asyncio.Event()

        async def run() -> None:
            async with mcp.session_manager.run():
                started.set()
                await asyncio.Event().wait()  # until the process ends

        _runner = asyncio.get_running_loop().create_task(run(), name="mcp-session-manager")
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait({waiter, _runner}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            _runner.result()  # the start failed: raise its error
        _started = started


async def _started_app(scope, receive, send):
    await ensure_session_manager()
    await mcp_http(scope, receive, send)


authenticated = BearerAuth(_started_app)


async def application(scope, receive, send):
    """The ``/mcp/trading`` endpoint (HTTP only): bearer token first, then the MCP transport."""
    return await authenticated(scope, receive, send)


def is_mcp_path(path: str) -> bool:
    return path == MOUNT or path.startswith(MOUNT + "/")
