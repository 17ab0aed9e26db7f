"""Who is on the other end of a WebSocket: a session cookie, or an OAuth2 bearer token.

Browsers cannot set headers on a WebSocket, so a token may also come as ``?access_token=``.
Tokens are checked as the REST API checks them (django-oauth-toolkit's ``AccessToken``, looked up
by checksum): not expired, ``read`` scope, active user. A token that was presented and fails makes
the socket anonymous even when a session cookie is also there: explicit credentials fail closed.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser
from oauth2_provider.models import AccessToken

STREAM_SCOPE = "read"


def bearer_token(scope) -> str | None:
    """The token of an ``Authorization: Bearer`` header, else of the ``access_token`` query parameter."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("access_token") or [None]
    return tokens[0] or None


def token_user(raw: str):
    """The active user a valid ``read`` token belongs to and the token's expiry, else
    (AnonymousUser, None)."""
    checksum = hashlib.sha256(raw.encode("utf-8")).hexdigest()
    token = AccessToken.objects.select_related("user").filter(token_checksum=checksum).first()
    if token is None or token.user is None or not token.is_valid([STREAM_SCOPE]) or not token.user.is_active:
        return AnonymousUser(), None
    return token.user, token.expires


class BearerTokenMiddleware(BaseMiddleware):
    """Replaces the session user with the token's user when the socket presents a token; the
    token's expiry goes into the scope (``token_expires``): the stream ends with it."""

    async def __call__(self, scope, receive, send):
        raw = bearer_token(scope)
        if raw is not None:
            user, expires = await database_sync_to_async(token_user)(raw)
            scope = dict(scope, user=user, auth_method="bearer", token_expires=expires)
        return await super().__call__(scope, receive, send)


class CookieOriginValidator:
    """Checks the Origin header (a host in ALLOWED_HOSTS) of sockets without a bearer token.

    Cross-site WebSocket hijacking rides on the browser's cookies, so a socket that would log in
    by session must come from one of our pages. A socket that presents a bearer token proves
    itself with it, so scripts, agents and other servers need not send an Origin at all.
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.checked = AllowedHostsOriginValidator(inner)

    async def __call__(self, scope, receive, send):
        if bearer_token(scope) is not None:
            return await self.inner(scope, receive, send)
        return await self.checked(scope, receive, send)


def StreamAuthMiddlewareStack(inner):
    """Like Channels' ``AuthMiddlewareStack``: the session user first (cookie), then a bearer token,
    if one is presented, takes precedence."""
    return AuthMiddlewareStack(BearerTokenMiddleware(inner))
