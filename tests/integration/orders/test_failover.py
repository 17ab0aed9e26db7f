"""Failover: an order a broker did not take goes to the next eligible broker, never twice."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from brokers.adapters.paper import PaperAdapter
from brokers.domain.adapter import BrokerRetryable, BrokerUnknownOutcome
from brokers.models import PaperOrder
from orders.models import OrderEvent
from orders.reconcile import reconcile_account
from orders.services import Actor, order_place, orders_resend_due
from risk.book import risk_book_totals
from routing.models import RoutingDecision
from tests.builders import order_request

pytestmark = pytest.mark.django_db


class FlakyVenues(PaperAdapter):
    """The paper venues, with the accounts named in ``failing`` failing the way ``mode`` says."""

    failing: set[str] = set()
    mode = (
        "busy"  # busy: 429 before anything happens; lost: times out, never arrived; late: times out, arrived
    )

    def place(self, request):
        account_id = self.account_label
        if account_id not in FlakyVenues.failing:
            return super().place(request)
        if FlakyVenues.mode == "busy":
            raise BrokerRetryable("429 too many requests", retry_after=2.0)
        if FlakyVenues.mode == "late":
            super().place(request)  # the broker took it; the answer is lost
        raise BrokerUnknownOutcome("read timed out")

    def __init__(self, account):
        super().__init__(account)
        self.account_label = account.account_id


@pytest.fixture
def flaky(settings):
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "paper": f"{__name__}.FlakyVenues"}
    FlakyVenues.failing, FlakyVenues.mode = {"PAPER-EQ-B"}, "busy"
    yield FlakyVenues
    FlakyVenues.failing, FlakyVenues.mode = set(), "busy"


def buy(trader, quantity="10", **kw):
    return order_place(
        user=trader,
        request=order_request(symbol="AAPL", quantity=quantity),
        actor=Actor.for_user(trader),
        **kw,
    ).order


def failovers(order):
    return list(OrderEvent.objects.filter(order=order, event_type="FAILOVER").values_list("data", flat=True))


def test_an_order_the_best_broker_refuses_for_now_goes_to_the_next(trader, accounts, set_mid, flaky):
    set_mid("AAPL", "100.00")
    a, b = accounts["PAPER-EQ-A"], accounts["PAPER-EQ-B"]
    # B is the best venue for 10 shares (no commission) but answers 429
    order = buy(trader)
    assert (order.broker_id, order.status, order.filled_quantity) == (a.pk, "FILLED", D(10))
    [moved] = failovers(order)
    assert (moved["from_broker"], moved["to_broker"]) == (b.pk, a.pk)
    assert moved["reason"] == "broker busy (retry after 2.0s): 429 too many requests"
    assert RoutingDecision.objects.get(order=order).winner_id == a.pk
    assert RoutingDecision.objects.get(order=order).reason.startswith("failover: ")
    assert not PaperOrder.objects.filter(account=b).exists()
    assert PaperOrder.objects.filter(account=a, client_order_id=order.client_order_id).count() == 1


def test_a_timed_out_submission_the_broker_never_received_is_looked_up_then_sent_elsewhere(
    trader, accounts, set_mid, flaky
):
    set_mid("AAPL", "100.00")
    flaky.mode = "lost"
    order = buy(trader)
    assert (order.broker_id, order.status) == (accounts["PAPER-EQ-A"].pk, "FILLED")
    assert failovers(order)[0]["reason"].startswith("not received by")


def test_a_timed_out_submission_the_broker_did_receive_is_never_sent_twice(trader, accounts, set_mid, flaky):
    set_mid("AAPL", "100.00")
    flaky.mode = "late"
    b = accounts["PAPER-EQ-B"]
    order = buy(trader)
    # found at B by its client_order_id: it stays there and nothing goes to A; the lookup says it
    # arrived (its fill comes with the next reconciliation)
    assert (order.broker_id, order.status) == (b.pk, "ACCEPTED")
    assert failovers(order) == []
    assert PaperOrder.objects.filter(client_order_id=order.client_order_id).count() == 1
    reconcile_account(account=b)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.average_fill_price) == ("FILLED", D(10), D("100.03"))


def test_an_order_on_a_named_broker_does_not_fail_over(trader, accounts, set_mid, flaky):
    set_mid("AAPL", "100.00")
    b = accounts["PAPER-EQ-B"]
    order = buy(trader, broker_id=b.pk)
    # it stays with B and is sent there again later (tests/integration/orders/test_deferred_retry.py)
    assert (order.broker_id, order.status, order.send_attempts) == (b.pk, "SUBMITTED", 1)
    assert order.status_reason.endswith(": 429 too many requests")
    assert order.resend_at is not None
    assert failovers(order) == []


def test_when_every_broker_refuses_the_order_is_rejected_with_the_reason(
    trader, accounts, set_mid, flaky, settings
):
    set_mid("AAPL", "100.00")
    flaky.failing = {"PAPER-EQ-A", "PAPER-EQ-B"}
    order = buy(trader)
    assert len(failovers(order)) == 1  # B -> A, then no account is left
    # A is busy too: the order waits at A to be sent again, and is rejected once the retries are spent
    assert (order.status, order.broker_id, order.send_attempts) == ("SUBMITTED", accounts["PAPER-EQ-A"].pk, 1)
    settings.BROKER_RETRY_MAX_ATTEMPTS = 2
    assert orders_resend_due(now=order.resend_at) == 1
    order.refresh_from_db()
    assert order.status == "REJECTED"
    assert order.status_reason.startswith("broker busy: refused 2 times")
    assert not PaperOrder.objects.exists()
    assert risk_book_totals(user_id=trader.pk).open_orders == 0
