"""The Redis the stream tests use (DB 3) and the clean-up of a test's channel-layer keys."""

from __future__ import annotations

import redis

REDIS_URL = "redis://127.0.0.1:6379/3"


def redis_forget(prefix: str) -> None:
    """Delete every key a test's channel layer left behind."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
