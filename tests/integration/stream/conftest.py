"""Fixtures for the live stream: the real Redis channel layer and the real outbox relay.

Each test gets its own channel-layer prefix on Redis DB 3, so parallel workers (and parallel runs)
never see each other's groups, and its keys are deleted afterwards.
"""

from __future__ import annotations

import uuid

import pytest

from .redis_support import REDIS_URL, redis_forget


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are created in every test here: skip the deliberately slow production hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def redis_layer(settings):
    """CHANNEL_LAYERS on the real Redis (core layer) under a prefix of this test's own."""
    prefix = f"tmstream-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": prefix},
        }
    }
    yield prefix
    redis_forget(prefix)
