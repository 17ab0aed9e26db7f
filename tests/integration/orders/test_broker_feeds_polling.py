"""The feed worker with an adapter that has no stream (poll_updates only), scripted per account:
cadence polling, error marking and escalation, recovery, and one failing account never holding
up another."""

from __future__ import annotations

import queue
import threading
import time
from decimal import Decimal as D

import pytest
from django.utils import timezone

from brokers.domain.adapter import (
    AccountInfo,
    BrokerOrderUpdate,
    BrokerRetryable,
    BrokerUnknownOutcome,
    Capabilities,
    FillReport,
    UpdateKind,
)
from brokers.models import BrokerAccount
from orders.feeds import BrokerFeeds, FeedSettings
from orders.models import Order, Position
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


class ScriptedBroker:
    """A poll-only broker (no ``stream_start``): each poll returns the next scripted item of its
    account (a list of updates, or an exception to raise); an empty script returns nothing."""

    scripts: dict[int, queue.Queue] = {}
    capabilities = Capabilities(asset_classes=frozenset(), order_types={}, time_in_force=frozenset())

    def __init__(self, account: BrokerAccount) -> None:
        self.script = ScriptedBroker.scripts.setdefault(account.pk, queue.Queue())
        self.polls = 0

    def poll_updates(self, now):
        self.polls += 1
        try:
            item = self.script.get_nowait()
        except queue.Empty:
            return []
        if isinstance(item, Exception):
            raise item
        return item

    def account(self) -> AccountInfo:  # read after fills (broker_account_sync)
        return AccountInfo(cash=D(50000), buying_power=D(50000), total_value=D(51000))


@pytest.fixture
def scripted(settings, trader):
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "schwab": f"{__name__}.ScriptedBroker"}
    ScriptedBroker.scripts = {}
    accounts = [
        BrokerAccount.objects.create(user=trader, broker_name="schwab", account_id=f"S-{n}", label=f"S{n}")
        for n in (1, 2)
    ]
    for account in accounts:
        ScriptedBroker.scripts[account.pk] = queue.Queue()
    return accounts


@pytest.fixture
def feeds():
    config = FeedSettings(
        poll_seconds=0.05,
        refresh_seconds=0.05,
        backoff_seconds=0.02,
        backoff_max_seconds=0.05,
        down_after_failures=3,
    )
    running = BrokerFeeds(config=config)
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def wait(feeds: BrokerFeeds, condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with feeds.db_lock:
            if condition():
                return
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.02)


def resting(trader, account, cid: str) -> Order:
    return Order.objects.create(
        user=trader,
        broker=account,
        client_order_id=cid,
        symbol="AAPL",
        asset_class="EQUITY",
        order_type="LIMIT",
        side="BUY",
        quantity=D(10),
        price=D("100"),
        time_in_force="GTC",
        status="ACCEPTED",
        broker_order_id=f"B-{cid}",
    )


def fill(cid: str, fill_id: str, qty: str, price: str) -> BrokerOrderUpdate:
    report = FillReport(broker_fill_id=fill_id, quantity=D(qty), price=D(price), fee=D(0))
    return BrokerOrderUpdate(UpdateKind.FILL, cid, f"B-{cid}", timezone.now(), fill=report)


def statuses(account) -> list[tuple[str, str]]:
    events = OutboxEvent.objects.filter(type="BROKER_STATUS", account_id=account.pk).order_by("pk")
    return [(e.payload["old_status"], e.payload["new_status"]) for e in events]


def test_a_poll_only_adapter_is_polled_on_its_cadence_and_fills_are_applied_once(trader, scripted, feeds):
    one, _ = scripted
    order = resting(trader, one, "o-1")
    script = ScriptedBroker.scripts[one.pk]

    script.put([fill("o-1", "f-1", "4", "99.50")])
    wait(feeds, lambda: Order.objects.get(pk=order.pk).status == "PARTIALLY_FILLED")
    script.put([fill("o-1", "f-1", "4", "99.50"), fill("o-1", "f-2", "6", "99.75")])  # f-1 again
    wait(feeds, lambda: Order.objects.get(pk=order.pk).status == "FILLED")

    order.refresh_from_db()
    assert (order.filled_quantity, order.average_fill_price) == (D(10), D("99.65"))
    assert Position.objects.get(user=trader, broker=one, symbol="AAPL").quantity == D(10)
    # after the fills' transaction: the account refresh, then the feed's own count
    wait(feeds, lambda: feeds.feeds[one.pk].stats.updates == 3)
    assert BrokerAccount.objects.get(pk=one.pk).cash == D(50000)


def test_errors_mark_the_account_escalate_to_down_and_recover_while_the_other_goes_on(
    trader, scripted, feeds
):
    one, two = scripted
    order = resting(trader, two, "o-2")
    failing = ScriptedBroker.scripts[one.pk]
    for _ in range(3):
        failing.put(BrokerRetryable("503 service unavailable", retry_after=0.01))

    ScriptedBroker.scripts[two.pk].put([fill("o-2", "g-1", "10", "101")])
    wait(feeds, lambda: Order.objects.get(pk=order.pk).status == "FILLED")
    wait(
        feeds, lambda: BrokerAccount.objects.get(pk=one.pk).connection_status == "CONNECTED" and statuses(one)
    )

    # retry later: DEGRADED; still failing after 3 in a row: DOWN; the next good poll: CONNECTED
    assert statuses(one) == [("CONNECTED", "DEGRADED"), ("DEGRADED", "DOWN"), ("DOWN", "CONNECTED")]
    assert statuses(two) == []
    assert feeds.feeds[one.pk].stats.errors == 3


def test_an_unknown_outcome_marks_down_at_once_and_a_retryable_error_after_it_keeps_it_down(
    trader, scripted, feeds
):
    one, _ = scripted
    ScriptedBroker.scripts[one.pk].put(BrokerUnknownOutcome("connection reset"))
    ScriptedBroker.scripts[one.pk].put(BrokerRetryable("connection refused", retry_after=0.01))
    wait(feeds, lambda: len(statuses(one)) == 2)
    assert statuses(one) == [("CONNECTED", "DOWN"), ("DOWN", "CONNECTED")]
    assert feeds.feeds[one.pk].stats.errors == 2


def test_a_rate_limit_waits_without_marking_the_account(trader, scripted, feeds):
    one, _ = scripted
    order = resting(trader, one, "o-3")
    script = ScriptedBroker.scripts[one.pk]
    script.put(
        BrokerRetryable("rate limited: local orders limit reached", retry_after=0.05, code="RATE_LIMITED")
    )
    script.put([fill("o-3", "h-1", "10", "100")])
    wait(feeds, lambda: Order.objects.get(pk=order.pk).status == "FILLED")
    assert statuses(one) == []
    assert feeds.feeds[one.pk].stats.rate_limited == 1
