"""ASGI entry point (daphne): HTTP, the live stream at ``/trading/stream`` (ADR 0007), and the MCP
server at ``/mcp/trading`` (streamable HTTP, ``agentos.mcp``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trademaster.settings")
django_asgi = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agentos.mcp.asgi import application as mcp_asgi  # noqa: E402
from agentos.mcp.asgi import is_mcp_path  # noqa: E402
from trademaster.stream.auth import CookieOriginValidator, StreamAuthMiddlewareStack  # noqa: E402
from trademaster.stream.routing import websocket_urlpatterns  # noqa: E402


async def http(scope, receive, send):
    """``/mcp/trading`` to the MCP server, everything else to Django."""
    if is_mcp_path(scope["path"]):
        return await mcp_asgi(scope, receive, send)
    return await django_asgi(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http,
        # the Origin is checked for cookie (session) sockets; a bearer token is its own proof
        "websocket": CookieOriginValidator(StreamAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
