"""Reconciliation repairs what the service missed while a broker acted on its own."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.utils import timezone

from brokers.adapters.paper import PaperAdapter
from brokers.domain.adapter import BrokerUnknownOutcome
from brokers.models import PaperOrder, PaperOrderStatus
from brokers.services import adapter_for, adapters_reset
from orders.models import Fill, Order, OrderEvent, Position
from orders.reconcile import reconcile_account, reconcile_all
from risk.book import risk_book_totals
from tests.integration.pipeline.support import place

pytestmark = pytest.mark.django_db


class UnansweringBroker(PaperAdapter):
    """The paper venue whose order lookups time out."""

    def get_order(self, client_order_id, broker_order_id=None):
        raise BrokerUnknownOutcome("lookup timed out")


def resting_buy(trader, account, set_mid) -> Order:
    set_mid("AAPL", "100.00")  # A asks 100.01: a buy at 99.00 rests
    order = place(trader, account, symbol="AAPL", order_type="LIMIT", quantity="10", price="99.00").order
    assert order.status == "ACCEPTED"
    return order


def test_a_fill_that_happened_while_the_service_was_down_is_repaired(trader, accounts, set_mid):
    account = accounts["PAPER-EQ-A"]
    order = resting_buy(trader, account, set_mid)
    # while the service is down the market falls through the limit and the venue fills the order;
    # nobody applies the venue's updates
    set_mid("AAPL", "98.00")
    missed = adapter_for(account).poll_updates(timezone.now())
    assert [u.kind for u in missed] == ["FILL"]
    assert Order.objects.get(pk=order.pk).status == "ACCEPTED"
    # when reconciliation runs
    report = reconcile_account(account=account)
    # then the order is filled at the venue's price, with its fill, position and audit trail
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.average_fill_price) == ("FILLED", D(10), D("99.00"))
    [fill] = Fill.objects.filter(order=order)
    assert (fill.quantity, fill.price) == (D(10), D("99.00"))
    assert fill.broker_fill_id == f"recon:{order.broker_order_id}:10"
    position = Position.objects.get(user=trader, broker=account, symbol="AAPL")
    assert (position.quantity, position.average_cost) == (D(10), D("99.00"))
    assert report.repaired == {order.client_order_id: ["filled 10 at the broker"]}
    assert OrderEvent.objects.filter(order=order, event_type="FILL", actor_type="BROKER").count() == 1
    assert risk_book_totals(user_id=trader.pk).open_orders == 0
    # and a second run finds nothing to do
    assert reconcile_account(account=account).repaired == {}
    assert Fill.objects.filter(order=order).count() == 1


def test_an_order_cancelled_at_the_broker_is_closed_with_the_reason(trader, accounts, set_mid):
    account = accounts["PAPER-EQ-A"]
    order = resting_buy(trader, account, set_mid)
    PaperOrder.objects.filter(client_order_id=order.client_order_id).update(status=PaperOrderStatus.CANCELLED)
    report = reconcile_all()
    order.refresh_from_db()
    assert (order.status, order.status_reason) == ("CANCELLED", "cancelled at the broker (reconciliation)")
    repaired = {order.client_order_id: ["cancelled at the broker (reconciliation)"]}
    assert [r.repaired for r in report] == [repaired]


def test_a_submitted_order_the_broker_never_received_is_rejected(trader, accounts):
    account = accounts["PAPER-EQ-A"]
    # the service committed SUBMITTED and died before the broker call
    order = Order.objects.create(
        user=trader,
        broker=account,
        client_order_id="lost-in-flight",
        symbol="AAPL",
        asset_class="EQUITY",
        order_type="MARKET",
        side="BUY",
        quantity=D(5),
        status="SUBMITTED",
    )
    reconcile_account(account=account)
    order.refresh_from_db()
    assert (order.status, order.status_reason) == ("REJECTED", "not received by the broker (reconciliation)")


def test_a_broker_that_cannot_answer_leaves_the_order_alone(trader, accounts, set_mid, settings):
    account = accounts["PAPER-EQ-A"]
    order = resting_buy(trader, account, set_mid)
    settings.BROKER_ADAPTERS = {**settings.BROKER_ADAPTERS, "paper": f"{__name__}.UnansweringBroker"}
    adapters_reset()
    report = reconcile_account(account=account)
    assert (report.checked, report.unreachable, report.repaired) == (1, 1, {})
    assert Order.objects.get(pk=order.pk).status == "ACCEPTED"


def test_the_command_says_what_it_repaired(trader, accounts, set_mid, capsys):
    account = accounts["PAPER-EQ-A"]
    order = resting_buy(trader, account, set_mid)
    PaperOrder.objects.filter(client_order_id=order.client_order_id).update(status=PaperOrderStatus.EXPIRED)
    call_command("reconcile")
    out = capsys.readouterr().out
    assert f"account {account.pk}: 1 checked, 1 repaired, 0 unreachable" in out
    assert f"{order.client_order_id}: expired at the broker (reconciliation)" in out
    assert Order.objects.get(pk=order.pk).status == "EXPIRED"
