"""The order-update feed worker: brings the later updates of orders resting at real brokers into
the OMS (the paper venue has its own loop, ``market_tick``).

One :class:`AccountFeed` thread per active non-paper broker account:

- it calls ``stream_start(wakeup)`` where the adapter has it (convention: a background listener
  that buffers the broker's pushes and calls ``wakeup()``); without it the adapter is polled;
- it calls ``poll_updates(now)`` when woken by the stream, or every ``poll_seconds``
  (``BROKER_FEED_POLL_SECONDS``, per broker: ``BROKER_FEED_POLL_SECONDS_BY_BROKER``; modest, as
  REST polling counts against the broker's rate limit), and hands what comes back to
  ``orders.services.order_apply_updates``;
- an adapter error marks the account's connection status (DEGRADED when the broker asks to retry
  later, else DOWN; DOWN after ``BROKER_FEED_DOWN_AFTER_FAILURES`` failures in a row; CONNECTED
  again after the next good poll) and backs off that account only
  (``BROKER_FEED_BACKOFF_SECONDS`` doubling up to ``BROKER_FEED_BACKOFF_MAX_SECONDS``, or the
  broker's ``retry_after`` when longer); a rate limit (``RATE_LIMITED``: the broker's 429 or the
  local limiter of ``adapter_for``) only waits ``retry_after`` and marks nothing; updates that
  could not be stored are kept and applied first on the next round.

:class:`BrokerFeeds` re-reads the account list every ``BROKER_FEED_REFRESH_SECONDS``, starting
feeds for new accounts, restarting those whose credentials or mode changed (a new adapter) and
stopping those of deactivated ones. Everything waits on events with
timeouts, so a stop event ends it at once. On SQLite (one writer at a time; the in-memory test
database even fails at once instead of waiting) the feeds take turns on the database through
``BrokerFeeds.db_lock``; on PostgreSQL they write in parallel. Adapters come from
``brokers.services.adapter_for`` (possibly wrapped) and are used through the interface only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections
from django.utils import timezone

from brokers import services as brokers_services
from brokers.domain.adapter import BrokerError, BrokerOrderUpdate, BrokerRetryable
from brokers.models import BrokerAccount, BrokerName, ConnectionStatus
from orders.services import order_apply_updates

logger = logging.getLogger(__name__)

OnApplied = Callable[[BrokerAccount, list[BrokerOrderUpdate]], None]


@dataclass(frozen=True, slots=True)
class FeedSettings:
    poll_seconds: float = 2.0
    poll_seconds_by_broker: dict[str, float] = field(default_factory=dict)
    refresh_seconds: float = 5.0
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    down_after_failures: int = 3  # a broker that keeps failing is DOWN, even if it said "retry"

    @classmethod
    def from_settings(cls) -> FeedSettings:
        d = cls()  # the defaults (slots: not readable from the class)
        return cls(
            poll_seconds=getattr(settings, "BROKER_FEED_POLL_SECONDS", d.poll_seconds),
            poll_seconds_by_broker=dict(getattr(settings, "BROKER_FEED_POLL_SECONDS_BY_BROKER", {})),
            refresh_seconds=getattr(settings, "BROKER_FEED_REFRESH_SECONDS", d.refresh_seconds),
            backoff_seconds=getattr(settings, "BROKER_FEED_BACKOFF_SECONDS", d.backoff_seconds),
            backoff_max_seconds=getattr(settings, "BROKER_FEED_BACKOFF_MAX_SECONDS", d.backoff_max_seconds),
            down_after_failures=getattr(settings, "BROKER_FEED_DOWN_AFTER_FAILURES", d.down_after_failures),
        )

    def poll_for(self, broker_name: str) -> float:
        return self.poll_seconds_by_broker.get(broker_name, self.poll_seconds)


@dataclass(slots=True)
class FeedStats:
    polls: int = 0
    updates: int = 0
    errors: int = 0
    rate_limited: int = 0
    last_error: str = ""


class AccountFeed:
    """The feed of one broker account, in its own thread (see the module doc)."""

    def __init__(
        self,
        account: BrokerAccount,
        config: FeedSettings,
        on_applied: OnApplied | None = None,
        db_lock: AbstractContextManager | None = None,
    ) -> None:
        self.account = account
        self.db_lock = db_lock or contextlib.nullcontext()
        self.config = config
        self.on_applied = on_applied
        self.stats = FeedStats()
        self.wake = threading.Event()  # set by the stream (wakeup) and by stop()
        self._stopped = threading.Event()
        self._pending: list[BrokerOrderUpdate] = []  # polled but not stored yet
        self._failing = False  # this feed marked the account DEGRADED/DOWN
        self._failures = 0  # in a row
        self._marked = ConnectionStatus.CONNECTED  # what this feed last recorded
        self._thread = threading.Thread(
            target=self._run, name=f"broker-feed-{account.pk}-{account.broker_name}", daemon=True
        )

    def start(self) -> AccountFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        adapter = brokers_services.adapter_for(self.account)
        delay = self.config.backoff_seconds
        try:
            while not self._stopped.is_set():
                self.wake.clear()  # before polling: an event during the poll wakes us again
                try:
                    self._round(adapter)
                except (BrokerError, OSError) as exc:
                    # retry_after may be a Decimal (the rate-limit wrapper's): waits take seconds
                    retry_after = int(getattr(exc, "retry_after", 0) * 1000) / 1000
                    if isinstance(exc, BrokerRetryable) and exc.code == "RATE_LIMITED":
                        # asked to slow down (our own limiter or the broker's 429): not an outage
                        self.stats.rate_limited += 1
                        self._stopped.wait(max(retry_after, self.config.backoff_seconds))
                        continue
                    self._failed(exc)
                    self._stopped.wait(max(delay, retry_after))  # this account only backs off
                    delay = min(delay * 2, self.config.backoff_max_seconds)
                    continue
                except DatabaseError:
                    logger.exception("broker feed %s: storing order updates failed", self.account.pk)
                    self._stopped.wait(delay)
                    delay = min(delay * 2, self.config.backoff_max_seconds)
                    continue
                delay = self.config.backoff_seconds
                self.wake.wait(self.config.poll_for(self.account.broker_name))
        finally:
            stream_stop = getattr(adapter, "stream_stop", None)
            if callable(stream_stop):
                stream_stop()
            connections.close_all()  # this thread's connections

    def _round(self, adapter) -> None:
        """Start the stream (idempotent), poll, store. Adapter errors propagate."""
        stream_start = getattr(adapter, "stream_start", None)
        if callable(stream_start):
            stream_start(self.wake.set)
        if not self._pending:
            self._pending = adapter.poll_updates(timezone.now())
            self.stats.polls += 1
        if not self._pending and not self._failing:
            return
        updates = self._pending  # kept until stored: a database error retries them next round
        with self.db_lock:
            close_old_connections()
            if self._failing:
                brokers_services.broker_connection_status_set(
                    account=self.account, status=ConnectionStatus.CONNECTED, reason="order updates resumed"
                )
                self._failing, self._failures, self._marked = False, 0, ConnectionStatus.CONNECTED
            if not updates:
                return
            try:
                order_apply_updates(account=self.account, updates=updates, sync_account=True)
            except (BrokerError, OSError) as exc:
                # the updates are stored (one transaction); only the account refresh after the
                # fills failed, and broker_account_sync has marked the account already
                logger.warning("broker feed %s: account refresh after fills failed: %s", self.account.pk, exc)
        self._pending = []
        self.stats.updates += len(updates)
        if self.on_applied is not None:
            self.on_applied(self.account, updates)

    def _failed(self, exc: BrokerError | OSError) -> None:
        self.stats.errors += 1
        self.stats.last_error = str(exc)
        logger.warning("broker feed %s (%s): %s", self.account.pk, self.account.broker_name, exc)
        self._failures += 1
        status = brokers_services._status_after(exc)  # the same rule as health checks and syncs
        if self._failures >= self.config.down_after_failures or self._marked == ConnectionStatus.DOWN:
            status = ConnectionStatus.DOWN  # persisting, or already DOWN: no better until a good poll
        self._marked = status
        try:
            with self.db_lock:
                brokers_services.broker_connection_status_set(
                    account=self.account, status=status, reason=f"order updates failed: {exc}"
                )
        except DatabaseError:
            logger.exception("broker feed %s: recording the connection status failed", self.account.pk)
        self._failing = True


class BrokerFeeds:
    """Keeps one :class:`AccountFeed` running per active non-paper broker account."""

    def __init__(self, *, config: FeedSettings | None = None, on_applied: OnApplied | None = None) -> None:
        self.config = config or FeedSettings.from_settings()
        self.on_applied = on_applied
        self.feeds: dict[int, AccountFeed] = {}
        self.db_lock: AbstractContextManager = (
            threading.Lock() if connection.vendor == "sqlite" else contextlib.nullcontext()
        )

    def refresh(self) -> None:
        """Start feeds for new active accounts; stop those of accounts deactivated or removed."""
        wanted = BrokerAccount.objects.active().exclude(broker_name=BrokerName.PAPER).order_by("pk")
        with self.db_lock:
            accounts = {a.pk: a for a in wanted}
        for pk in [pk for pk in self.feeds if pk not in accounts]:
            feed = self.feeds.pop(pk)
            feed.stop()
            logger.info("broker feed %s stopped (account no longer active)", pk)
        for pk, account in accounts.items():
            feed = self.feeds.get(pk)
            if feed is not None and brokers_services.adapter_settings(
                feed.account
            ) != brokers_services.adapter_settings(account):
                feed.stop()  # new credentials or mode: a new feed on a new adapter
                logger.info("broker feed %s restarted (the account's credentials or mode changed)", pk)
                feed = None
            if feed is None or not feed.is_alive():
                self.feeds[pk] = AccountFeed(account, self.config, self.on_applied, self.db_lock).start()
                logger.info("broker feed %s started (%s)", pk, account.broker_name)

    def run(self, stop: threading.Event) -> None:
        """Refresh every ``refresh_seconds`` until ``stop`` is set, then stop every feed."""
        try:
            while not stop.is_set():
                try:
                    self.refresh()
                except DatabaseError:
                    logger.exception("broker feeds: reading the broker accounts failed")
                    close_old_connections()
                stop.wait(self.config.refresh_seconds)
        finally:
            self.stop_all()
            connections.close_all()

    def stop_all(self, timeout: float = 10) -> None:
        feeds = list(self.feeds.values())
        self.feeds.clear()
        for feed in feeds:
            feed.stop()
        deadline = time.monotonic() + timeout
        for feed in feeds:
            feed.join(max(deadline - time.monotonic(), 0))


def broker_feeds_run(*, stop: threading.Event, on_applied: OnApplied | None = None) -> None:
    """Run the order-update feeds of every active non-paper broker account until ``stop`` is set."""
    BrokerFeeds(on_applied=on_applied).run(stop)
