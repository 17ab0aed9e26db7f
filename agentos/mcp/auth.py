"""Who is calling the MCP server: the OAuth2 bearer token of every HTTP request.

Tokens are checked as the REST API checks them (django-oauth-toolkit's ``AccessToken``, looked up
by checksum): not expired, at least the ``read`` scope, an active user. ``BearerAuth`` is an ASGI
wrapper in front of the MCP app: a request without a valid token is answered ``401`` with
``WWW-Authenticate: Bearer`` and never reaches the MCP transport, so no session starts
unauthenticated. A valid token's ``Principal`` goes into the ASGI scope (``PRINCIPAL_KEY``); tools
read it from the request of their ``Context`` (every POST is authenticated again, so a session id
alone is worth nothing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from oauth2_provider.models import AccessToken

from trademaster.stream.auth import bearer_token

PRINCIPAL_KEY = "trademaster.mcp.principal"
READ = "read"
TRADE = "trade"


@dataclass(frozen=True)
class Principal:
    """The token's user, its scopes and the OAuth2 application it was issued to."""

    user: Any
    scopes: frozenset[str]
    application: Any  # oauth2_provider Application, or None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def principal_for_token(raw: str) -> Principal | None:
    """The principal of a valid token with the ``read`` scope and an active user, else None."""
    checksum = hashlib.sha256(raw.encode("utf-8")).hexdigest()
    token = AccessToken.objects.select_related("user", "application").filter(token_checksum=checksum).first()
    if token is None or token.user is None or not token.is_valid([READ]) or not token.user.is_active:
        return None
    return Principal(user=token.user, scopes=frozenset(token.scope.split()), application=token.application)


def _header_token(scope) -> str | None:
    """Only the ``Authorization`` header counts here (no ``?access_token=``: URLs end up in logs)."""
    headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
    return bearer_token({"headers": headers})


async def _unauthorized(send, description: str) -> None:
    body = json.dumps({"error": "invalid_token", "error_description": description}).encode()
    challenge = f'Bearer realm="trademaster-mcp", error="invalid_token", error_description="{description}"'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BearerAuth:
    """ASGI wrapper: a valid bearer token or a 401; the principal goes into the scope."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        raw = _header_token(scope)
        if raw is None:
            return await _unauthorized(send, "An Authorization: Bearer token is required.")
        principal = await database_sync_to_async(principal_for_token, thread_sensitive=False)(raw)
        if principal is None:
            return await _unauthorized(send, "The token is invalid, expired or lacks the read scope.")
        return await self.inner(dict(scope, **{PRINCIPAL_KEY: principal}), receive, send)
