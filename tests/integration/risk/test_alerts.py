"""Live monitoring: breaches open one RiskAlert per (user, rule, symbol) and one RISK_ALERT event
when an alert opens or escalates; repeated runs update the open alert without new rows or events."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from brokers.services import broker_account_sync
from orders.services import Actor, market_tick, order_place, positions_revalue
from risk.models import RiskAlert, RiskProfile
from risk.monitoring import risk_alert_acknowledge, risk_monitor_user
from risk.services import risk_profile_get
from risk.tasks import risk_monitor_all_task
from tests.builders import order_request
from trademaster.errors import Conflict
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db


def place(user, account, **kw):
    return order_place(
        user=user, request=order_request(**kw), actor=Actor.for_user(user), broker_id=account.pk
    ).order


def limits(user, **values) -> None:
    RiskProfile.objects.filter(pk=risk_profile_get(user=user).pk).update(**values)


def alert_events(user):
    return list(OutboxEvent.objects.filter(type="RISK_ALERT", user_id=user.pk).order_by("pk"))


@pytest.fixture
def long_aapl(trader, accounts, set_mid):
    """100 AAPL bought at about 100 (today's start equity is marked before the fill)."""
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    assert place(trader, account, quantity="100").status == "FILLED"

    def price_to(mid: str) -> None:  # the market moves; positions are marked to it (live equity)
        set_mid("AAPL", mid)
        positions_revalue(mids={"AAPL": D(mid)})
        broker_account_sync(account=account)

    return price_to


def test_a_daily_loss_beyond_the_limit_opens_one_critical_alert_and_one_event(trader, long_aapl):
    limits(trader, daily_loss_limit=D("1500"))
    # when AAPL falls 20 %: about 2,000 lost today
    long_aapl("80.00")
    alerts = risk_monitor_user(user=trader)
    # then one CRITICAL DAILY_LOSS alert with the numbers, and one event for the alerts topic
    alert = RiskAlert.objects.get(user=trader)
    assert alerts == [alert]
    assert (alert.rule, alert.severity, alert.symbol, alert.limit) == (
        "DAILY_LOSS",
        "CRITICAL",
        "",
        D("1500"),
    )
    assert D("2000") <= alert.value < D("2100")
    assert "has reached the limit of 1,500.00" in alert.message
    [event] = alert_events(trader)
    assert event.payload["rule"] == "DAILY_LOSS" and event.payload["severity"] == "CRITICAL"
    assert event.payload["limit"] == "1500.00000000" and D(event.payload["value"]) == alert.value
    assert event.payload["id"] == alert.pk and event.payload["symbol"] == ""


def test_a_lasting_breach_updates_its_alert_without_new_rows_or_events(trader, long_aapl):
    limits(trader, daily_loss_limit=D("1500"))
    long_aapl("80.00")
    for _ in range(5):
        risk_monitor_user(user=trader)
    alert = RiskAlert.objects.get(user=trader)
    assert alert.occurrences == 5
    assert alert.last_seen_at > alert.created_at
    assert len(alert_events(trader)) == 1


def test_escalation_from_warning_to_critical_writes_one_more_event(trader, long_aapl):
    limits(trader, daily_loss_limit=D("1800"))
    long_aapl("85.00")  # about 1,500 lost: over 80 % of 1,800
    risk_monitor_user(user=trader)
    risk_monitor_user(user=trader)
    assert RiskAlert.objects.get(user=trader).severity == "WARNING"
    long_aapl("80.00")  # about 2,000: over the limit
    risk_monitor_user(user=trader)
    risk_monitor_user(user=trader)
    alert = RiskAlert.objects.get(user=trader)
    assert (alert.severity, alert.occurrences) == ("CRITICAL", 4)
    assert "has reached the limit" in alert.message
    events = alert_events(trader)
    assert [e.payload["severity"] for e in events] == ["WARNING", "CRITICAL"]
    assert events[1].payload["escalated_from"] == "WARNING"
    # and a recovery to WARNING does not downgrade the open alert nor publish anything
    long_aapl("85.00")
    risk_monitor_user(user=trader)
    assert RiskAlert.objects.get(user=trader).severity == "CRITICAL"
    assert len(alert_events(trader)) == 2


def test_after_acknowledging_a_breach_that_persists_opens_a_new_alert(trader, long_aapl, make_user):
    limits(trader, daily_loss_limit=D("1500"))
    long_aapl("80.00")
    risk_monitor_user(user=trader)
    first = RiskAlert.objects.get(user=trader)
    risk_officer = make_user("officer")
    risk_alert_acknowledge(alert=first, user=risk_officer)
    first.refresh_from_db()
    assert first.acknowledged_by == risk_officer and first.acknowledged_at is not None
    with pytest.raises(Conflict):
        risk_alert_acknowledge(alert=first, user=risk_officer)
    # when the monitor runs again and the loss is still there
    risk_monitor_user(user=trader)
    second = RiskAlert.objects.get(user=trader, acknowledged_at__isnull=True)
    assert second.pk != first.pk and second.occurrences == 1
    assert len(alert_events(trader)) == 2


def test_the_periodic_task_monitors_every_user_with_positions(trader, long_aapl, other_trader):
    limits(trader, daily_loss_limit=D("1500"))
    long_aapl("80.00")
    result = risk_monitor_all_task.apply()
    assert result.successful()
    assert result.result == 1  # the other trader holds nothing
    assert RiskAlert.objects.filter(user=trader, rule="DAILY_LOSS", severity="CRITICAL").count() == 1
    assert not RiskAlert.objects.filter(user=other_trader).exists()


def test_a_fill_near_the_position_limit_raises_a_warning(trader, accounts, set_mid):
    set_mid("AAPL", "100.00")
    limits(trader, max_position_notional=D("5000"))
    # the pre-trade check lets 45 AAPL (about 4,500) through; that is over 80 % of the limit
    assert place(trader, accounts["PAPER-EQ-A"], quantity="45").status == "FILLED"
    alert = RiskAlert.objects.get(user=trader)
    assert (alert.rule, alert.symbol, alert.severity) == ("POSITION_NOTIONAL", "AAPL", "WARNING")
    assert alert_events(trader)[0].payload["symbol"] == "AAPL"


def test_marking_to_market_past_the_position_limit_escalates_to_critical(trader, accounts, set_mid):
    set_mid("AAPL", "100.00")
    limits(trader, max_position_notional=D("5000"))
    place(trader, accounts["PAPER-EQ-A"], quantity="45")
    # when the price rises so the position is worth 45 * 130 = 5,850
    set_mid("AAPL", "130.00")
    market_tick(advance=False)
    alert = RiskAlert.objects.get(user=trader)
    assert (alert.severity, alert.value) == ("CRITICAL", D("5850"))
    assert [e.payload["severity"] for e in alert_events(trader)] == ["WARNING", "CRITICAL"]


def test_a_failing_monitor_never_breaks_order_processing(trader, accounts, set_mid, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("monitor down")

    monkeypatch.setattr("risk.monitoring.risk_monitor_user", broken)
    set_mid("AAPL", "100.00")
    assert place(trader, accounts["PAPER-EQ-A"], quantity="10").status == "FILLED"
    assert "live risk monitoring failed" in caplog.text


def test_admin_acknowledges_the_selected_alerts(admin_client, admin_user, trader, long_aapl):
    limits(trader, daily_loss_limit=D("1500"))
    long_aapl("80.00")
    risk_monitor_user(user=trader)
    alert = RiskAlert.objects.get(user=trader)
    assert admin_client.get("/admin/risk/riskalert/").status_code == 200
    response = admin_client.post(
        "/admin/risk/riskalert/", {"action": "acknowledge", "_selected_action": [alert.pk]}
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin_user and alert.acknowledged_at is not None
