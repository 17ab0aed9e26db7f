"""Idempotent order placement on (user, client_order_id), sequential and concurrent."""

from __future__ import annotations

import contextlib
import threading
from decimal import Decimal

import pytest
from django.db import connection

from brokers.models import PaperOrder
from orders.models import Order, OrderEvent
from tests.integration.pipeline.support import events, place
from trademaster.errors import Conflict

pytestmark = pytest.mark.django_db

D = Decimal


def resting(user, account, client_order_id, **overrides):
    request = {
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": "10",
        "price": "99.00",
        "time_in_force": "GTC",
        "client_order_id": client_order_id,
        **overrides,
    }
    return place(user, account, **request)


def test_same_client_order_id_twice_returns_the_same_order(trader, accounts, set_mid):
    # given an order placed with a client_order_id
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    first = resting(trader, account, "idem-1")
    assert first.created is True
    trail = events(first.order)
    # when the very same request is sent again
    again = resting(trader, account, "idem-1")
    # then it returns the order already placed, creates nothing and sends nothing to the venue
    assert again.created is False
    assert again.order.pk == first.order.pk
    assert again.order.status == "ACCEPTED"
    assert Order.objects.filter(user=trader, client_order_id="idem-1").count() == 1
    assert PaperOrder.objects.filter(client_order_id="idem-1").count() == 1
    assert events(first.order) == trail


def test_same_client_order_id_of_a_filled_order_returns_it_without_trading_again(trader, accounts, set_mid):
    # given a market order that filled
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    first = place(trader, account, side="BUY", order_type="MARKET", quantity="10", client_order_id="idem-2")
    assert first.order.status == "FILLED"
    # when it is retried with the same client_order_id
    again = place(trader, account, side="BUY", order_type="MARKET", quantity="10", client_order_id="idem-2")
    # then the filled order comes back and nothing trades twice
    assert (again.created, again.order.pk, again.order.status) == (False, first.order.pk, "FILLED")
    assert again.order.fills.count() == 1
    assert PaperOrder.objects.filter(client_order_id="idem-2").count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": "11"},
        {"price": "99.01"},
        {"side": "SELL"},
        {"time_in_force": "DAY"},
        {"symbol": "MSFT"},
        {"order_type": "MARKET", "price": None},
    ],
    ids=lambda change: "-".join(change),
)
def test_same_client_order_id_with_other_parameters_is_a_conflict(trader, accounts, set_mid, change):
    # given an order placed with a client_order_id
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    first = resting(trader, account, "idem-3").order
    events_before = OrderEvent.objects.count()
    # when the same id comes with different parameters
    with pytest.raises(Conflict) as excinfo:
        resting(trader, account, "idem-3", **change)
    # then it is a 409 naming the existing order; nothing is created
    assert excinfo.value.status_code == 409
    assert excinfo.value.code == "client_order_id_reused"
    assert excinfo.value.extra == {"order_id": first.pk}
    assert Order.objects.filter(user=trader).count() == 1
    assert PaperOrder.objects.filter(client_order_id="idem-3").count() == 1
    assert OrderEvent.objects.count() == events_before


def test_same_client_order_id_at_another_broker_account_is_a_conflict(trader, accounts, set_mid):
    # given an order placed at venue A
    set_mid("AAPL", "100.00")
    first = resting(trader, accounts["PAPER-EQ-A"], "idem-4").order
    # when the same id and parameters are sent to venue B
    with pytest.raises(Conflict) as excinfo:
        resting(trader, accounts["PAPER-EQ-B"], "idem-4")
    # then it is a conflict too
    assert excinfo.value.extra == {"order_id": first.pk}
    assert PaperOrder.objects.filter(client_order_id="idem-4").count() == 1


def test_two_users_may_use_the_same_client_order_id(trader, other_trader, accounts, set_mid):
    # given the trader placed an order with a client_order_id
    set_mid("AAPL", "100.00")
    mine = resting(trader, accounts["PAPER-EQ-A"], "shared-1")
    # when another user places one with the same id
    other_account = other_trader.broker_accounts.get(account_id="PAPER-EQ-A")
    theirs = resting(other_trader, other_account, "shared-1", quantity="7")
    # then both orders exist independently, each at its own account at the venue
    assert (mine.created, theirs.created) == (True, True)
    assert mine.order.pk != theirs.order.pk
    assert (theirs.order.user_id, theirs.order.quantity, theirs.order.status) == (
        other_trader.pk,
        D("7"),
        "ACCEPTED",
    )
    assert sorted(
        PaperOrder.objects.filter(client_order_id="shared-1").values_list("account_id", flat=True)
    ) == (sorted([accounts["PAPER-EQ-A"].pk, other_account.pk]))


THREADS = 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_submissions_of_one_client_order_id_create_one_order(trader, accounts, set_mid):
    # given 8 threads ready to submit the same order with the same client_order_id at the same moment
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    start = threading.Barrier(THREADS)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    # PostgreSQL: the submissions truly race (row locks, the unique constraint decides).
    # SQLite: the in-memory test database is shared between threads through SQLite's shared
    # cache, where a writer that meets another one's lock fails at once ("database table is
    # locked") instead of waiting as a file database does; SQLite runs one writer at a time
    # anyway, so there the threads (each on its own connection) take turns.
    turns = threading.Lock() if connection.vendor == "sqlite" else contextlib.nullcontext()

    def submit() -> None:
        try:
            start.wait(timeout=30)
            with turns:
                placed = resting(trader, account, "race-1")
            with lock:
                results.append((placed.order.pk, placed.created))
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(THREADS)]
    # when they all submit
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # then every thread got an answer without error, all the same order, and exactly one created it
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(results) == THREADS
    order_ids = {order_id for order_id, _ in results}
    assert len(order_ids) == 1
    assert sum(created for _, created in results) == 1
    # and exactly one order exists, sent exactly once to the venue
    orders = list(Order.objects.filter(user=trader, client_order_id="race-1"))
    assert [o.pk for o in orders] == list(order_ids)
    assert PaperOrder.objects.filter(account=account, client_order_id="race-1").count() == 1
    assert orders[0].status == "ACCEPTED"
    assert [e for e in events(orders[0]) if e[0] == "CREATED"] == [("CREATED", "PENDING")]
