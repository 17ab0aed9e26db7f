"""Encryption at rest for broker credentials, on Fernet keys from the environment.

``TRADEMASTER_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys: the first encrypts,
every key decrypts, so keys rotate by prepending a new one and running ``rotate_broker_keys``.
A value that no key can decrypt raises :class:`DecryptionError`; ciphertext is never handed on
as if it were the secret.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
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
        raise ImproperlyConfigured(
            f"TRADEMASTER_ENCRYPTION_KEYS holds an invalid Fernet key: {exc}"
        ) from None


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


class Sealed:
    """A stored secret, still encrypted. ``reveal()`` decrypts it when it is really needed.

    Loading a row never decrypts, so listing accounts cannot leak or fail on a secret; its repr
    and str never show the value.
    """

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def reveal(self) -> str:
        return decrypt(self.token)

    def __repr__(self) -> str:
        return "Sealed('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sealed) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)


class EncryptedTextField(models.TextField):
    """Stores a Fernet token. Assign plaintext (str) to set; read back a :class:`Sealed`.

    Empty and NULL stay as they are (nothing to protect), unlike packages that turn falsy
    values into NULL silently.
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return Sealed(value)

    def to_python(self, value):
        return value

    def get_prep_value(self, value):
        if value is None or value == "":
            return value
        if isinstance(value, Sealed):
            return value.token
        return encrypt(str(value))

    def value_to_string(self, obj) -> str:
        return "********"
