"""BROKER_STATUS events: every change of an account's connection status, in the same transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from brokers.adapters.paper import PaperAdapter
from brokers.domain.adapter import AccountInfo, BrokerError, BrokerRetryable
from brokers.models import BrokerAccount, ConnectionStatus
from brokers.services import (
    adapters_reset,
    broker_account_health_check,
    broker_account_sync,
    broker_connection_status_set,
)
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db


def status_events(account: BrokerAccount) -> list[dict]:
    return list(
        OutboxEvent.objects.filter(type="BROKER_STATUS", account_id=account.pk)
        .order_by("id")
        .values_list("payload", flat=True)
    )


def stored_status(account: BrokerAccount) -> str:
    return BrokerAccount.objects.values_list("connection_status", flat=True).get(pk=account.pk)


class UnreachableBroker(PaperAdapter):
    """The paper venue behind a broken network: account queries fail until ``reachable``."""

    reachable = False
    error: type[BrokerError] = BrokerError

    def account(self) -> AccountInfo:
        if not UnreachableBroker.reachable:
            raise UnreachableBroker.error("connection reset by peer")
        return super().account()


@pytest.fixture
def unreachable(settings):
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "paper": f"{__name__}.UnreachableBroker"}
    UnreachableBroker.reachable, UnreachableBroker.error = False, BrokerError
    yield UnreachableBroker
    UnreachableBroker.reachable, UnreachableBroker.error = False, BrokerError


def test_a_change_writes_one_event_with_old_and_new_status(accounts, trader):
    account = accounts["PAPER-EQ-A"]
    assert (
        broker_connection_status_set(account=account, status=ConnectionStatus.DOWN, reason="timeout") is True
    )
    assert stored_status(account) == "DOWN"
    assert account.connection_status == "DOWN"
    [event] = OutboxEvent.objects.filter(type="BROKER_STATUS")
    assert (event.user_id, event.account_id) == (trader.pk, account.pk)
    assert event.payload == {
        "account_id": account.pk,
        "broker_name": "paper",
        "label": account.label,
        "old_status": "CONNECTED",
        "new_status": "DOWN",
        "reason": "timeout",
    }


def test_setting_the_same_status_again_writes_nothing(accounts):
    account = accounts["PAPER-EQ-A"]
    assert broker_connection_status_set(account=account, status="CONNECTED") is False
    broker_connection_status_set(account=account, status="DOWN")
    assert broker_connection_status_set(account=account, status="DOWN", reason="still down") is False
    assert [e["new_status"] for e in status_events(account)] == ["DOWN"]


def test_the_event_and_the_status_commit_or_roll_back_together(accounts):
    account = accounts["PAPER-EQ-A"]
    with pytest.raises(RuntimeError), transaction.atomic():
        broker_connection_status_set(account=account, status="DOWN", reason="will roll back")
        raise RuntimeError("the caller's transaction fails")
    assert stored_status(account) == "CONNECTED"
    assert status_events(account) == []


def test_a_failed_account_sync_marks_the_account_down_and_a_good_one_brings_it_back(accounts, unreachable):
    account = BrokerAccount.objects.get(pk=accounts["PAPER-EQ-A"].pk)
    # when the broker cannot be reached, the sync still fails as before, and the account is DOWN
    with pytest.raises(BrokerError):
        broker_account_sync(account=account)
    assert stored_status(account) == "DOWN"
    # when it answers again, the account is CONNECTED
    unreachable.reachable = True
    broker_account_sync(account=account)
    assert stored_status(account) == "CONNECTED"
    assert [(e["old_status"], e["new_status"]) for e in status_events(account)] == [
        ("CONNECTED", "DOWN"),
        ("DOWN", "CONNECTED"),
    ]
    assert status_events(account)[0]["reason"] == "account sync failed: connection reset by peer"
    assert status_events(account)[1]["reason"] == "account sync succeeded"


def test_a_broker_asking_to_retry_later_is_degraded(accounts, unreachable):
    unreachable.error = BrokerRetryable
    account = accounts["PAPER-EQ-B"]
    with pytest.raises(BrokerRetryable):
        broker_account_sync(account=account)
    assert stored_status(account) == "DEGRADED"


def test_the_health_check_records_what_the_venue_reports(accounts):
    # given a paper venue refusing new orders (its fault injection): it reports DEGRADED
    account = accounts["PAPER-EQ-A"]
    venue = account.paper_venue
    venue.reject_new_orders_reason = "venue halted"
    venue.save()
    assert broker_account_health_check(account=account) == ConnectionStatus.DEGRADED
    # and once it accepts orders again, CONNECTED
    venue.reject_new_orders_reason = ""
    venue.save()
    assert broker_account_health_check(account=account) == ConnectionStatus.CONNECTED
    assert [(e["new_status"], e["reason"]) for e in status_events(account)] == [
        ("DEGRADED", "venue halted"),
        ("CONNECTED", ""),
    ]


class SilentBroker(PaperAdapter):
    """The paper venue not answering its health check (it asks to retry later)."""

    def health(self):
        raise BrokerRetryable("health endpoint timed out")


def test_the_health_check_records_the_heartbeat_latency_and_what_the_broker_said(accounts, settings):
    account = accounts["PAPER-EQ-A"]
    assert broker_account_health_check(account=account) == ConnectionStatus.CONNECTED
    stored = BrokerAccount.objects.get(pk=account.pk)
    assert stored.last_heartbeat_at is not None and stored.latency_ms == 0 and stored.health_detail == ""
    # a failed check keeps the last heartbeat and says why
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "paper": f"{__name__}.SilentBroker"}
    adapters_reset()
    assert broker_account_health_check(account=account) == ConnectionStatus.DEGRADED
    failed = BrokerAccount.objects.get(pk=account.pk)
    assert failed.last_heartbeat_at == stored.last_heartbeat_at
    assert failed.health_detail == "health check failed: health endpoint timed out"
    assert failed.connection_status == "DEGRADED"


def test_the_admin_tests_a_connection_on_request(admin_client, accounts):
    account = accounts["PAPER-EQ-B"]
    response = admin_client.post(
        "/admin/brokers/brokeraccount/",
        {"action": "test_connection", "_selected_action": [account.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert f"{account}: CONNECTED (0 ms)" in response.content.decode()
    assert BrokerAccount.objects.get(pk=account.pk).last_heartbeat_at is not None
