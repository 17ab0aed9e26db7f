"""Broker accounts entered by their owners: create, change credentials, test the connection.

Credentials are written encrypted (``EncryptedTextField``) and never read back for display; the
rules per broker live in :mod:`brokers.domain.credentials`. After a change the account's cached
adapter in this process is dropped, so the next call uses the new credentials.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from brokers.domain.adapter import BrokerError
from brokers.domain.credentials import KEEP, CredentialChange, StoredCredentials, credentials_merge
from brokers.models import BrokerAccount, BrokerName, ConnectionStatus
from brokers.services import adapter_forget, broker_account_health_check, broker_account_sync
from trademaster.crypto import DecryptionError, Sealed
from trademaster.errors import ValidationFailed


def credentials_stored(account: BrokerAccount) -> StoredCredentials:
    """What ``account`` holds now; its secret is decrypted only if a partial change needs it."""

    def reveal() -> str | None:
        value = account.api_secret_encrypted
        try:
            return value.reveal() if isinstance(value, Sealed) else value
        except DecryptionError:
            return None  # the caller asks for the secret again

    return StoredCredentials(
        has_key=bool(account.api_key_encrypted),
        has_secret=bool(account.api_secret_encrypted),
        reveal_secret=reveal,
    )


def _apply(account: BrokerAccount, change: CredentialChange, *, creating: bool) -> bool:
    """Set the merged credentials on ``account`` (unsaved); raise ValidationFailed on bad input."""
    merged = credentials_merge(
        broker_name=account.broker_name, change=change, stored=credentials_stored(account), creating=creating
    )
    if merged.errors:
        raise ValidationFailed(merged.errors)
    if merged.api_key is not KEEP:
        account.api_key_encrypted = merged.api_key
    if merged.api_secret is not KEEP:
        account.api_secret_encrypted = merged.api_secret
    return merged.changed


def broker_account_create(
    *,
    user,
    broker_name: str,
    account_id: str,
    credentials: CredentialChange,
    label: str = "",
    sandbox_mode: bool = True,
) -> BrokerAccount:
    """Add a broker account of ``user`` with its credentials (stored encrypted).

    Paper accounts are not created here: every user gets them (``broker_accounts_provision_paper``).
    """
    account = BrokerAccount(
        user=user,
        broker_name=broker_name,
        account_id=account_id,
        label=label,
        sandbox_mode=sandbox_mode,
        # a real broker says itself what it is: the first test or sync sets it
        connection_status=ConnectionStatus.DOWN,
        health_detail="not checked yet",
        day_trading_policy="off" if broker_name == BrokerName.BINANCE else "legacy_pdt",
        margin_account=broker_name != BrokerName.BINANCE,
    )
    _apply(account, credentials, creating=True)
    duplicate = ValidationFailed({"account_id": [f"You already have a {broker_name} account {account_id}."]})
    if BrokerAccount.objects.filter(user=user, broker_name=broker_name, account_id=account_id).exists():
        raise duplicate
    try:
        with transaction.atomic():
            account.save()
    except IntegrityError:
        raise duplicate from None  # a concurrent request created it first
    return account


def broker_account_update(
    *,
    account: BrokerAccount,
    credentials: CredentialChange,
    label: str | None = None,
    sandbox_mode: bool | None = None,
    is_active: bool | None = None,
) -> BrokerAccount:
    """Change an account's label, mode, activity or credentials (omitted values are kept)."""
    fields = ["updated_at"]
    if _apply(account, credentials, creating=False):
        fields += ["api_key_encrypted", "api_secret_encrypted"]
    for name, value in (("label", label), ("sandbox_mode", sandbox_mode), ("is_active", is_active)):
        if value is not None and getattr(account, name) != value:
            setattr(account, name, value)
            fields.append(name)
    if len(fields) > 1:
        account.save(update_fields=fields)
    if {"api_key_encrypted", "sandbox_mode", "is_active"} & set(fields):
        adapter_forget(account.pk)
    return account


@dataclass(frozen=True)
class ConnectionTest:
    status: ConnectionStatus
    latency_ms: int | None  # the health check's round trip; None when the broker did not answer
    message: str
    checked_at: dt.datetime
    account: BrokerAccount


def broker_account_test_connection(*, account: BrokerAccount) -> ConnectionTest:
    """Ask the broker now: a health check, then (if it answered) an account sync.

    Records the outcome like the periodic checks do (status change events included) and never
    raises for what the broker says: the answer carries the status and the broker's message.
    """
    status = ConnectionStatus(broker_account_health_check(account=account))
    message = account.health_detail
    latency = account.latency_ms if status == ConnectionStatus.CONNECTED else None
    if status == ConnectionStatus.CONNECTED:
        try:
            broker_account_sync(account=account)
        except (BrokerError, OSError) as exc:
            message = f"account sync failed: {exc}"
        status = ConnectionStatus(account.connection_status)
    return ConnectionTest(
        status=status,
        latency_ms=latency,
        message=(message or "connected")[:200],
        checked_at=timezone.now(),
        account=account,
    )
