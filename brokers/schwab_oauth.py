"""Connect a Schwab broker account: the OAuth 2.0 authorization-code flow (broker-apis.md 3.2).

1. :func:`schwab_authorize_start` builds the authorize URL (``client_id`` = the account's app key,
   ``redirect_uri``, and a signed one-time ``state`` bound to the user and the account). The state's
   nonce is kept, pending, in the account's encrypted secret JSON (``oauth_state``).
2. Schwab sends the browser back to the callback with ``code`` and ``state``;
   :func:`schwab_authorize_finish` checks the state (signature, age, user, account, and that its nonce
   is the pending one, which it consumes), exchanges the code at the token URL
   (``grant_type=authorization_code``, HTTP Basic app key:secret) and stores the access and refresh
   tokens and the refresh token's issue time in the encrypted secret (format: ``brokers.adapters.schwab``).

Schwab takes only https callbacks (``http://127.0.0.1`` is allowed, ``localhost`` is not).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from brokers.adapters.schwab import (
    DEFAULT_TIMEOUT_SECONDS,
    TOKEN_URL,
    refresh_expires_at,
    secret_parse,
)
from brokers.models import BrokerAccount, BrokerName
from brokers.selectors import broker_account_get
from brokers.services import adapter_forget
from trademaster.crypto import DecryptionError, Sealed
from trademaster.errors import TradeMasterError

AUTHORIZE_URL = "https://api.schwabapi.com/v1/oauth/authorize"
STATE_SALT = "brokers.schwab_oauth.state"
STATE_MAX_AGE_SECONDS = 600


class SchwabOAuthError(TradeMasterError):
    """The flow cannot go on; the message says what to do."""


@dataclass(frozen=True, slots=True)
class SchwabConnection:
    account: BrokerAccount
    refresh_issued_at: dt.datetime
    refresh_expires_at: dt.datetime


def redirect_uri_check(uri: str) -> str:
    """Schwab's rule: https, or http on 127.0.0.1 (local development and the fake)."""
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname == "127.0.0.1":
        return uri
    raise SchwabOAuthError(
        "schwab_redirect_uri",
        f"Schwab needs an https callback URL (http only on 127.0.0.1), not {uri!r}: set SCHWAB_REDIRECT_URI.",
    )


def _secrets(account: BrokerAccount) -> tuple[str, dict]:
    if account.broker_name != BrokerName.SCHWAB:
        raise SchwabOAuthError("not_schwab", f"Broker account {account.pk} is not a Schwab account.")
    if not account.api_key_encrypted or not account.api_secret_encrypted:
        raise SchwabOAuthError(
            "schwab_no_app_key",
            f"Broker account {account.pk} has no Schwab app key and secret: enter them first.",
        )
    try:
        key = _reveal(account.api_key_encrypted)
        stored = secret_parse(_reveal(account.api_secret_encrypted))
    except DecryptionError as exc:
        raise SchwabOAuthError("schwab_credentials_unreadable", str(exc)) from exc
    if not stored.get("app_secret"):
        raise SchwabOAuthError("schwab_no_app_key", f"Broker account {account.pk} has no Schwab app secret.")
    return key, stored


def _reveal(value: Sealed | str) -> str:
    return value.reveal() if isinstance(value, Sealed) else value


def _locked(account_pk: int) -> BrokerAccount:
    return BrokerAccount.objects.select_for_update().get(pk=account_pk)


def schwab_authorize_start(*, user, account: BrokerAccount, redirect_uri: str) -> str:
    """The Schwab authorize URL to send the browser to; a new flow replaces a pending one."""
    redirect_uri_check(redirect_uri)
    nonce = secrets.token_urlsafe(16)
    with transaction.atomic():
        locked = _locked(account.pk)
        key, stored = _secrets(locked)
        stored["oauth_state"] = nonce
        BrokerAccount.objects.filter(pk=account.pk).update(api_secret_encrypted=json.dumps(stored))
    state = signing.dumps({"a": account.pk, "u": user.pk, "n": nonce}, salt=STATE_SALT, compress=True)
    base = getattr(settings, "SCHWAB_AUTHORIZE_URL", AUTHORIZE_URL)
    return f"{base}?{urlencode({'client_id': key, 'redirect_uri': redirect_uri, 'state': state})}"


def _state_read(state: str) -> dict:
    max_age = getattr(settings, "SCHWAB_OAUTH_STATE_MAX_AGE_SECONDS", STATE_MAX_AGE_SECONDS)
    try:
        data = signing.loads(state, salt=STATE_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise SchwabOAuthError(
            "schwab_state_expired",
            f"The Schwab login took longer than {max_age} s and its state expired: connect again.",
        ) from None
    except signing.BadSignature:
        raise SchwabOAuthError(
            "schwab_state_invalid",
            "The Schwab callback carries no valid state: connect again.",
        ) from None
    if not isinstance(data, dict) or not {"a", "u", "n"} <= data.keys():
        raise SchwabOAuthError("schwab_state_invalid", "The Schwab callback state is malformed.")
    return data


def schwab_authorize_finish(*, user, state: str, code: str, redirect_uri: str) -> SchwabConnection:
    """Check the state, exchange the code and store the tokens; raises NotFound for an account
    the user may not see, :class:`SchwabOAuthError` for everything else."""
    data = _state_read(state)
    account = broker_account_get(user=user, account_id=data["a"])
    if data["u"] != user.pk:
        raise SchwabOAuthError(
            "schwab_state_user", "This Schwab login was started by another user: connect again yourself."
        )
    if not code:
        raise SchwabOAuthError("schwab_no_code", "Schwab sent no authorization code: connect again.")
    with transaction.atomic():  # consume the nonce first: a replayed callback fails here
        locked = _locked(account.pk)
        key, stored = _secrets(locked)
        if stored.get("oauth_state") != data["n"]:
            raise SchwabOAuthError(
                "schwab_state_used",
                "This Schwab login was already used or replaced by a newer one: connect again.",
            )
        del stored["oauth_state"]
        BrokerAccount.objects.filter(pk=account.pk).update(api_secret_encrypted=json.dumps(stored))
    tokens = _exchange(key, stored["app_secret"], code, redirect_uri)
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(account.pk)
        _key, current = _secrets(locked)
        current.update(
            refresh_token=tokens["refresh_token"],
            refresh_issued_at=now.isoformat(),
            access_token=tokens["access_token"],
            access_expires_at=(now + dt.timedelta(seconds=int(tokens.get("expires_in", 1800)))).isoformat(),
        )
        BrokerAccount.objects.filter(pk=account.pk).update(api_secret_encrypted=json.dumps(current))
    adapter_forget(account.pk)  # rebuilt here with the new tokens; other processes re-read the row
    account.refresh_from_db()
    return SchwabConnection(account, now, refresh_expires_at(now))


def _exchange(key: str, app_secret: str, code: str, redirect_uri: str) -> dict:
    token_url = getattr(settings, "SCHWAB_TOKEN_URL", TOKEN_URL)
    timeout = getattr(settings, "SCHWAB_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    try:
        response = httpx.post(token_url, data=form, auth=(key, app_secret), timeout=timeout)
    except httpx.HTTPError as exc:
        raise SchwabOAuthError(
            "schwab_unreachable", f"Cannot reach the Schwab token endpoint ({exc}): connect again later."
        ) from exc
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    if response.status_code in (400, 401):
        reason = payload.get("error_description") or payload.get("error") or response.reason_phrase
        raise SchwabOAuthError(
            "schwab_code_refused",
            f"Schwab refused the authorization code ({reason}); codes are single-use and short-lived: "
            "connect again. If it persists, check the app key, secret and callback URL.",
        )
    if response.status_code != 200 or not payload.get("access_token") or not payload.get("refresh_token"):
        raise SchwabOAuthError(
            "schwab_token_unavailable",
            f"The Schwab token endpoint answered {response.status_code} without tokens: connect again later.",
        )
    return payload
