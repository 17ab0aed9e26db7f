"""What each broker needs to connect, and how entered credentials become the stored values.

Pure Python (no Django, no I/O). ``BrokerAccount`` has two encrypted columns, and each broker
uses them its own way:

============  =============================  =============================================
broker        api_key_encrypted              api_secret_encrypted
============  =============================  =============================================
alpaca        API key ID                     API secret key
binance       API key                        API secret (HMAC-SHA256)
schwab        app key                        JSON ``{"app_secret", "refresh_token", ...}``
                                             (the tokens come from the OAuth login)
ibkr          JSON ``{"host", "port",        (unused: TWS / IB Gateway needs no secret)
              "client_id"}`` (optional)
paper         (unused)                       (unused)
============  =============================  =============================================

A change is a :class:`CredentialChange`: ``None`` keeps a stored value, ``clear`` removes all.
:func:`credentials_merge` checks the change against the broker's rules and the stored state and
returns the new plaintext column values, or field errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

ALPACA, BINANCE, SCHWAB, IBKR, PAPER = "alpaca", "binance", "schwab", "ibkr", "paper"
MAX_LENGTH = 512
# keys, secrets and tokens are printable ASCII without blanks (a pasted newline is a typo)
TOKEN = re.compile(r"[\x21-\x7e]+")
HOSTNAME = re.compile(r"[A-Za-z0-9.:-]{1,253}")
CREDENTIAL_FIELDS = ("api_key", "api_secret", "refresh_token", "connection")


@dataclass(frozen=True)
class CredentialSpec:
    """The names a broker gives its credentials, and which of them it takes."""

    title: str
    key_name: str = ""  # "" when the broker takes no key / secret pair
    secret_name: str = ""
    refresh_token: bool = False
    connection: bool = False

    @property
    def pair(self) -> bool:
        return bool(self.key_name)


SPECS: dict[str, CredentialSpec] = {
    ALPACA: CredentialSpec("Alpaca", "API key ID", "API secret key"),
    BINANCE: CredentialSpec("Binance", "API key", "API secret (HMAC)"),
    SCHWAB: CredentialSpec("Schwab", "app key", "app secret", refresh_token=True),
    IBKR: CredentialSpec("Interactive Brokers", connection=True),
}


@dataclass(frozen=True)
class CredentialChange:
    """Entered credentials: ``None`` keeps what is stored; ``clear`` removes everything first."""

    api_key: str | None = None
    api_secret: str | None = None
    refresh_token: str | None = None
    connection: dict[str, Any] | None = None
    clear: bool = False

    def given(self) -> list[str]:
        return [name for name in CREDENTIAL_FIELDS if getattr(self, name) is not None]


def _nothing() -> str | None:
    return None


@dataclass(frozen=True)
class StoredCredentials:
    """What an account holds now; the secret's plaintext is read only if a partial change needs it."""

    has_key: bool = False
    has_secret: bool = False
    reveal_secret: Callable[[], str | None] = _nothing


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()  # a column value that stays as stored


@dataclass
class Merged:
    """The outcome: the new column values (plaintext, None to clear, KEEP), or the field errors."""

    api_key: str | _Keep | None = KEEP
    api_secret: str | _Keep | None = KEEP
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.api_key is not KEEP or self.api_secret is not KEEP


def _check_token(value: str, name: str, errors: dict[str, list[str]], what: str) -> None:
    if not value:
        errors.setdefault(name, []).append(f"The {what} may not be blank.")
    elif len(value) > MAX_LENGTH:
        errors.setdefault(name, []).append(f"The {what} is longer than {MAX_LENGTH} characters.")
    elif not TOKEN.fullmatch(value):
        errors.setdefault(name, []).append(f"The {what} may hold only printable characters, no blanks.")


def connection_check(value: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """An IB TWS / Gateway address ``{"host", "port", "client_id"}`` (each optional)."""
    if not isinstance(value, dict):
        return None, ['Expected an object like {"host": "127.0.0.1", "port": 4002, "client_id": 7}.']
    unknown = sorted(set(value) - {"host", "port", "client_id"})
    if unknown:
        return None, [f"Unknown keys: {', '.join(unknown)} (only host, port and client_id)."]
    errors = []
    host, port, client_id = value.get("host"), value.get("port"), value.get("client_id")
    if host is not None and not (isinstance(host, str) and HOSTNAME.fullmatch(host)):
        errors.append("host must be a host name or an IP address.")
    if port is not None and not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
        errors.append("port must be a whole number from 1 to 65535.")
    if client_id is not None and not (
        isinstance(client_id, int) and not isinstance(client_id, bool) and 0 <= client_id < 2**31
    ):
        errors.append("client_id must be a whole number from 0 to 2147483647.")
    if errors:
        return None, errors
    return {k: value[k] for k in ("host", "port", "client_id") if value.get(k) is not None}, []


def schwab_secret_parse(secret: str | None) -> dict[str, Any]:
    """The stored Schwab secret as a dict; a bare (non-JSON) value is the app secret alone."""
    if not secret:
        return {}
    try:
        stored = json.loads(secret)
    except ValueError:
        stored = None
    return stored if isinstance(stored, dict) else {"app_secret": secret}


# what the OAuth login stores next to a refresh token; a token set by hand replaces them all
SCHWAB_TOKEN_KEYS = ("refresh_token", "refresh_issued_at", "access_token", "access_expires_at")


def credentials_merge(
    *, broker_name: str, change: CredentialChange, stored: StoredCredentials, creating: bool
) -> Merged:
    """Check ``change`` against the broker's rules and combine it with ``stored``.

    Creating an account with a key / secret broker needs both; a later change may give either
    (the other is kept). The stored secret is revealed only when a Schwab change keeps part of it
    (a rotated app secret keeps its refresh token and the other way round).
    """
    errors: dict[str, list[str]] = {}
    spec = SPECS.get(broker_name)
    given = change.given()
    if spec is None:
        if broker_name == PAPER:
            if creating:
                errors["broker_name"] = [
                    "Paper accounts come with every user (PAPER-EQ-A, PAPER-EQ-B, PAPER-CRYPTO); "
                    "they cannot be added here."
                ]
            for name in given:
                errors[name] = ["Paper venues take no credentials."]
            if change.clear and not errors:
                return Merged(api_key=None, api_secret=None)
        else:
            errors["broker_name"] = [f'"{broker_name}" is not a supported broker.']
        return Merged(errors=errors)
    if change.clear and given:
        errors["clear_credentials"] = ["Clear the credentials or send new ones, not both."]
        return Merged(errors=errors)
    if change.clear:
        return Merged(api_key=None, api_secret=None)
    for name in given:
        if name in ("api_key", "api_secret") and not spec.pair:
            errors[name] = [f"{spec.title} takes no API key or secret: TWS / IB Gateway logs in itself."]
        elif name == "refresh_token" and not spec.refresh_token:
            errors[name] = [f"{spec.title} takes no refresh token."]
        elif name == "connection" and not spec.connection:
            errors[name] = [f"{spec.title} takes no connection settings."]
    if errors:
        return Merged(errors=errors)
    if not spec.pair:
        if change.connection is None:
            return Merged()
        connection, problems = connection_check(change.connection)
        if problems:
            return Merged(errors={"connection": problems})
        return Merged(api_key=json.dumps(connection, sort_keys=True) if connection else None, api_secret=None)

    if change.api_key is not None:
        _check_token(change.api_key, "api_key", errors, spec.key_name)
    if change.api_secret is not None:
        _check_token(change.api_secret, "api_secret", errors, spec.secret_name)
    if change.refresh_token is not None and change.refresh_token != "":
        _check_token(change.refresh_token, "refresh_token", errors, "refresh token")
    has_key = change.api_key is not None or (not creating and stored.has_key)
    has_secret = change.api_secret is not None or (not creating and stored.has_secret)
    if creating or given:
        if not has_key:
            errors.setdefault("api_key", []).append(f"{spec.title} needs its {spec.key_name}.")
        if not has_secret:
            errors.setdefault("api_secret", []).append(f"{spec.title} needs its {spec.secret_name}.")
    if errors:
        return Merged(errors=errors)
    key = KEEP if change.api_key is None else change.api_key
    if broker_name == SCHWAB and (change.api_secret is not None or change.refresh_token is not None):
        # the secret column is JSON: a new app secret keeps the tokens, a new refresh token the app secret
        stored_secret = {} if creating else schwab_secret_parse(stored.reveal_secret())
        if change.api_secret is not None:
            stored_secret["app_secret"] = change.api_secret
        if change.refresh_token is not None:
            for name in SCHWAB_TOKEN_KEYS:
                stored_secret.pop(name, None)
            if change.refresh_token:
                stored_secret["refresh_token"] = change.refresh_token
        if not stored_secret.get("app_secret"):
            return Merged(errors={"api_secret": ["The stored app secret cannot be read: send it again."]})
        return Merged(api_key=key, api_secret=json.dumps(stored_secret))
    return Merged(api_key=key, api_secret=KEEP if change.api_secret is None else change.api_secret)


def ibkr_connection(stored_key: str | None) -> dict[str, Any]:
    """The IB TWS / Gateway address stored for an ibkr account ({} when none is set)."""
    if not stored_key:
        return {}
    try:
        value = json.loads(stored_key)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
