"""Broker-side services: the adapter registry, paper provisioning and the simulated market.

Nothing here imports ``orders``: adapters report :class:`BrokerOrderUpdate` values and the
caller hands them to ``orders.services.order_apply_update``.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from brokers.adapters.paper import instrument_spec, paper_quote
from brokers.domain.adapter import (
    BrokerAdapter,
    BrokerError,
    BrokerOrderUpdate,
    BrokerRejected,
    BrokerRetryable,
    Health,
    Quote,
)
from brokers.domain.market import step_mid
from brokers.models import (
    BrokerAccount,
    BrokerName,
    ConnectionStatus,
    Instrument,
    PaperBalance,
    PaperOrder,
    PaperOrderStatus,
    PaperVenue,
)
from brokers.ratelimit import LimitedAdapter, call_stats, rate_store_reset
from trademaster.outbox import outbox_record

# The accounts a new user gets, so that a fresh user can trade at once: two equity venues with
# different terms, and a crypto venue.
DEFAULT_PAPER_ACCOUNTS = (
    ("PAPER-EQ-A", "Paper Equities A (tight spread, per-share fee)", "paper-equities-a", Decimal("100000")),
    ("PAPER-EQ-B", "Paper Equities B (wider spread, no commission)", "paper-equities-b", Decimal("100000")),
    ("PAPER-CRYPTO", "Paper Crypto (bps fee)", "paper-crypto", Decimal("50000")),
)

_adapters: dict[int, tuple[tuple, BrokerAdapter]] = {}
_adapters_lock = threading.Lock()


def adapter_settings(account: BrokerAccount) -> tuple:
    """What an adapter is built from: a change (new credentials, an OAuth login, a switch between
    sandbox and live, in any process) makes the next ``adapter_for`` build a new one."""
    if account.broker_name == BrokerName.PAPER:
        return (account.paper_venue_id,)
    return (account.api_key_encrypted, account.api_secret_encrypted, account.sandbox_mode)


def adapter_for(account: BrokerAccount) -> BrokerAdapter:
    """One adapter instance per broker account, created on first use and again when the account's
    credentials or mode change, wrapped to respect the broker's rate limits and to count its calls
    (brokers.ratelimit.LimitedAdapter)."""
    wanted = adapter_settings(account)
    cached = _adapters.get(account.pk)
    if cached is not None and cached[0] == wanted:
        return cached[1]
    with _adapters_lock:
        cached = _adapters.get(account.pk)
        if cached is not None and cached[0] == wanted:
            return cached[1]
        cls = import_string(settings.BROKER_ADAPTERS[account.broker_name])
        adapter = LimitedAdapter.for_account(cls(account), account)
        _adapters[account.pk] = (wanted, adapter)
    if cached is not None:
        _stream_stop(cached[1])
    return adapter


def adapters_reset() -> None:
    """Forget cached adapters and this process's rate-limit state (in tests)."""
    with _adapters_lock:
        _adapters.clear()
    rate_store_reset()


def adapter_forget(account_id: int) -> None:
    """Drop one account's cached adapter (its credentials or mode changed); stops its stream."""
    with _adapters_lock:
        cached = _adapters.pop(account_id, None)
    if cached is not None:
        _stream_stop(cached[1])


def _stream_stop(adapter: BrokerAdapter) -> None:
    stop = getattr(adapter, "stream_stop", None)
    if stop is not None:
        stop()


def broker_accounts_provision_paper(*, user) -> list[BrokerAccount]:
    """Give ``user`` the default paper accounts (idempotent)."""
    venues = {v.name: v for v in PaperVenue.objects.all()}
    accounts = []
    with transaction.atomic():
        for account_id, label, venue_name, cash in DEFAULT_PAPER_ACCOUNTS:
            venue = venues.get(venue_name)
            if venue is None:
                continue
            account, created = BrokerAccount.objects.get_or_create(
                user=user,
                broker_name=BrokerName.PAPER,
                account_id=account_id,
                defaults={
                    "label": label,
                    "paper_venue": venue,
                    # crypto is not a security: no day-trading rule; equities start on the legacy rule
                    "margin_account": "CRYPTO" not in venue.asset_classes,
                    "day_trading_policy": "off" if "CRYPTO" in venue.asset_classes else "legacy_pdt",
                    "sandbox_mode": True,
                    "buying_power": cash,
                    "cash": cash,
                    "total_value": cash,
                },
            )
            if created:
                PaperBalance.objects.create(account=account, cash=cash)
            accounts.append(account)
    return accounts


def broker_account_sync(*, account: BrokerAccount) -> BrokerAccount:
    """Refresh the cached cash, buying power and total value from the broker.

    A failure marks the account DOWN (DEGRADED when the broker only asks to retry later) and is
    raised again; a success brings a DOWN account back to CONNECTED.
    """
    try:
        info = adapter_for(account).account()
    except (BrokerError, OSError) as exc:
        broker_connection_status_set(
            account=account, status=_status_after(exc), reason=f"account sync failed: {exc}"
        )
        raise
    if account.connection_status == ConnectionStatus.DOWN:
        broker_connection_status_set(
            account=account, status=ConnectionStatus.CONNECTED, reason="account sync succeeded"
        )
    BrokerAccount.objects.filter(pk=account.pk).update(
        cash=info.cash, buying_power=info.buying_power, total_value=info.total_value
    )
    account.cash, account.buying_power, account.total_value = info.cash, info.buying_power, info.total_value
    return account


def _status_after(exc: Exception) -> ConnectionStatus:
    return ConnectionStatus.DEGRADED if isinstance(exc, BrokerRetryable) else ConnectionStatus.DOWN


def broker_connection_status_set(*, account: BrokerAccount, status: str, reason: str = "") -> bool:
    """Set an account's connection status; a change writes a BROKER_STATUS outbox event in the
    same transaction, so the stream and Kafka see every change and only real changes.

    The row is locked while comparing, so two processes noticing the same outage record it once.
    Returns True when the status changed.
    """
    status = ConnectionStatus(status)
    with transaction.atomic():
        old = (
            BrokerAccount.objects.select_for_update()
            .values_list("connection_status", flat=True)
            .get(pk=account.pk)
        )
        if old != status:
            BrokerAccount.objects.filter(pk=account.pk).update(
                connection_status=status, updated_at=timezone.now()
            )
            outbox_record(
                type="BROKER_STATUS",
                user_id=account.user_id,
                account_id=account.pk,
                payload={
                    "account_id": account.pk,
                    "broker_name": account.broker_name,
                    "label": account.label,
                    "old_status": old,
                    "new_status": status.value,
                    "reason": reason,
                },
            )
    account.connection_status = status.value
    return old != status


def broker_account_health_check(*, account: BrokerAccount) -> ConnectionStatus:
    """Ask the broker how it is (no transaction open) and record the answer; never raises.

    Also writes the account's error rate over the call-statistics window (brokers.ratelimit):
    above ``BROKER_ERROR_RATE_DEGRADED_PERCENT`` (with at least ``BROKER_ERROR_RATE_MIN_CALLS``
    calls) an account whose health check passes is DEGRADED, not CONNECTED.
    """
    try:
        report = adapter_for(account).health()
    except (BrokerError, OSError) as exc:
        status, reason = _status_after(exc), f"health check failed: {exc}"
        fields: dict = {}
    else:
        status, reason = ConnectionStatus(Health(report.status).value), report.detail
        account.latency_ms = int(report.latency_ms.to_integral_value())  # routing weighs it
        account.last_heartbeat_at = timezone.now()
        fields = {"latency_ms": account.latency_ms, "last_heartbeat_at": account.last_heartbeat_at}
    stats = call_stats(account.pk)
    account.error_rate, account.calls_checked = stats.error_rate, stats.calls
    if (
        status == ConnectionStatus.CONNECTED
        and stats.calls >= settings.BROKER_ERROR_RATE_MIN_CALLS
        and stats.error_rate > settings.BROKER_ERROR_RATE_DEGRADED_PERCENT
    ):
        status = ConnectionStatus.DEGRADED
        reason = (
            f"{stats.error_rate}% of the last {stats.calls} broker calls failed "
            f"(threshold {settings.BROKER_ERROR_RATE_DEGRADED_PERCENT}%)"
        )
    BrokerAccount.objects.filter(pk=account.pk).update(
        health_detail=reason[:200], error_rate=stats.error_rate, calls_checked=stats.calls, **fields
    )
    account.health_detail = reason[:200]
    broker_connection_status_set(account=account, status=status, reason=reason)
    return status


def broker_health_check_all() -> int:
    """Health-check every active account (each on its own, never raising); returns how many."""
    accounts = list(BrokerAccount.objects.active().select_related("paper_venue"))
    for account in accounts:
        broker_account_health_check(account=account)
    return len(accounts)


def quotes_for(*, accounts: list[BrokerAccount], symbol: str) -> dict[int, tuple[bool, Quote | None]]:
    """Each account's quote of ``symbol`` as ``(listed, quote or None)``, for routing.

    Paper accounts share one read of the instrument and one book per venue (their venue comes
    with the account: select_related("paper_venue")); other accounts ask their broker, where
    a refusal means the symbol is not listed and any other error means no quote now.
    """
    quotes: dict[int, tuple[bool, Quote | None]] = {}
    paper = [a for a in accounts if a.paper_venue_id is not None]
    if paper:
        inst = Instrument.objects.filter(symbol=symbol).first()
        books: dict[int, Quote] = {}
        for account in paper:
            if inst is None:
                quotes[account.pk] = (False, None)
                continue
            if account.paper_venue_id not in books:
                books[account.paper_venue_id] = paper_quote(inst, account.paper_venue)
            quotes[account.pk] = (True, books[account.paper_venue_id])
    for account in accounts:
        if account.paper_venue_id is None:
            try:
                quotes[account.pk] = (True, adapter_for(account).quote(symbol))
            except BrokerRejected:
                quotes[account.pk] = (False, None)
            except (BrokerError, OSError):
                quotes[account.pk] = (True, None)
    return quotes


def quote_get(*, account: BrokerAccount, symbol: str) -> Quote:
    return adapter_for(account).quote(symbol)


def market_advance(*, seed: int | None = None) -> dict[str, Decimal]:
    """Move every simulated instrument one step along its random walk; return the new mids."""
    seed = settings.MARKET_SEED if seed is None else seed
    with transaction.atomic():
        instruments = list(Instrument.objects.select_for_update().order_by("symbol"))
        for inst in instruments:
            inst.step += 1
            inst.mid = step_mid(inst.mid, instrument_spec(inst), seed=seed, step=inst.step)
        Instrument.objects.bulk_update(instruments, ["mid", "step"])
    return {i.symbol: i.mid for i in instruments}


def market_mids() -> dict[str, Decimal]:
    return dict(Instrument.objects.values_list("symbol", "mid"))


def market_set_mid(*, symbol: str, mid: Decimal) -> None:
    """Move one instrument to a given price (demo scripts and tests)."""
    Instrument.objects.filter(symbol=symbol).update(mid=mid)


def paper_poll(*, now: dt.datetime) -> list[tuple[BrokerAccount, list[BrokerOrderUpdate]]]:
    """Match every resting paper order against the current market; the updates per account."""
    account_ids = (
        PaperOrder.objects.filter(status=PaperOrderStatus.OPEN)
        .values_list("account_id", flat=True)
        .distinct()
    )
    results = []
    for account in BrokerAccount.objects.filter(pk__in=list(account_ids)).select_related("paper_venue"):
        updates = adapter_for(account).poll_updates(now)
        if updates:
            results.append((account, updates))
    return results
