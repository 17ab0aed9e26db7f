"""ASGI entry point (daphne): HTTP, and the live stream at ``/trading/stream`` (ADR 0007)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trademaster.settings")
django_asgi = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from trademaster.stream.auth import CookieOriginValidator, StreamAuthMiddlewareStack  # noqa: E402
from trademaster.stream.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        # the Origin is checked for cookie (session) sockets; a bearer token is its own proof
        "websocket": CookieOriginValidator(StreamAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
