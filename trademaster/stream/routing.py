"""WebSocket routes, mounted by ``trademaster.asgi`` behind the origin check and authentication."""

from django.urls import path

from trademaster.stream.consumers import StreamConsumer

websocket_urlpatterns = [path("trading/stream", StreamConsumer.as_asgi())]
