"""Encryption at rest for broker credentials, on Fernet keys from the environment.

``TRADEMASTER_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys: the first encrypts,
every key decrypts, so keys rotate by prepending a new one and running ``rotate_broker_keys``.
A value that no key can decrypt raises :class:`DecryptionError`; ciphertext is never handed on
as if it were the secret.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import InvalidToken, MultiFernet, Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    pass


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("TRADEMASTER_ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRADEMASTER_ENCRYPTION_KEYS holds an invalid Fernet key: {exc}") from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored broker credential cannot be decrypted with the configured "
            "TRADEMASTER_ENCRYPTION_KEYS (wrong or rotated-out key)"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt under the first key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("a stored broker credential cannot be decrypted for rotation") from None


class Secret(str):
    """A decrypted secret whose repr never shows the value (logs, tracebacks, shells)."""

    def __repr__(self) -> str:
        return "Secret('********')"


class EncryptedTextField(models.TextField):
    """Stores a Fernet token; reads back a :class:`Secret`. Empty and NULL are kept as they are."""

    def from_db_value(self, value, expression, connection):  # noqa: ANN001
        if value is None or value == "":
            return value
        return Secret(decrypt(value))

    def get_prep_value(self, value):  # noqa: ANN001
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))
