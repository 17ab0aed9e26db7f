"""The dashboard (``/``) and its live partials: numbers, chart, brokers, alerts, kill switch."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum
from django.test import Client

from brokers.models import BrokerAccount
from orders.models import Order, Position
from orders.services import market_tick
from risk.equity import EQUITY_SAMPLE_RETENTION
from risk.models import EquitySample, RiskAlert, RiskProfile
from risk.monitoring import risk_monitor_user
from risk.services import Authority, trading_state_set

pytestmark = pytest.mark.django_db

PARTIALS = [
    ("/ui/dashboard/summary/", "dash-summary"),
    ("/ui/dashboard/chart/", "dash-chart"),
    ("/ui/dashboard/positions/", "dash-positions"),
    ("/ui/dashboard/brokers/", "dash-brokers"),
    ("/ui/dashboard/alerts/", "dash-alerts"),
    ("/ui/kill-switch/", "kill-switch"),
]
POSTS = ["/ui/kill-switch/engage/", "/ui/kill-switch/release/", "/ui/alerts/1/acknowledge/"]


def value(node) -> Decimal:
    return Decimal(node.attrs["data-value"])


def toast(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])["tm-toast"]


@pytest.fixture
def holding(trader, accounts, fill, set_mid):
    """10 AAPL bought at EQ-A (ask 100.01), then the market moves to 110 and positions are marked."""
    fill(trader, accounts["PAPER-EQ-A"], symbol="AAPL", quantity="10")
    set_mid("AAPL", "110.00")
    market_tick(advance=False)
    return Position.objects.get(user=trader, symbol="AAPL")


# --- the numbers ---------------------------------------------------------------------------------


def test_dashboard_shows_value_and_pnl_of_known_positions(client, trader, holding, dom):
    # given a known day start: 1,000 below the equity now
    accounts_value = BrokerAccount.objects.filter(user=trader).aggregate(v=Sum("total_value"))["v"]
    cash = BrokerAccount.objects.filter(user=trader).aggregate(v=Sum("cash"))["v"]
    equity = cash + Decimal("1100.00")  # 10 AAPL marked at 110
    RiskProfile.objects.filter(user=trader).update(
        day=dt.datetime.now(dt.UTC).date(), day_start_equity=equity - 1000, day_peak_equity=equity
    )
    # when the trader opens the dashboard
    page = dom(client.get("/"))
    # then every figure is the book's
    assert value(page.by_id("portfolio-value")) == accounts_value
    assert page.by_id("unrealized-pnl").text == "+99.90"  # (110 - 100.01) * 10
    assert value(page.by_id("unrealized-pnl")) == Decimal("99.9")
    assert value(page.by_id("daily-pnl")) == Decimal("1000")
    percent = Decimal(page.by_id("daily-pnl").attrs["data-percent"])
    assert percent == Decimal(1000) * 100 / (equity - 1000)
    assert "+1,000.00" in page.by_id("daily-pnl").text
    assert "%" in page.by_id("daily-pnl").text
    assert value(page.by_id("realized-pnl")) == 0
    state = page.by_id("trading-state")
    assert (state.attrs["data-state"], state.text, "ok" in state.classes) == ("ACTIVE", "ACTIVE", True)
    row = page.find("tr", data_symbol="AAPL")
    assert row.find(class_="p-qty").text == "10"
    assert value(row.find(class_="p-unrealized")) == holding.unrealized_pnl


def test_realized_pnl_includes_closed_positions(client, trader, accounts, fill, set_mid, dom):
    fill(trader, accounts["PAPER-EQ-B"], symbol="MSFT", quantity="5")
    set_mid("MSFT", "420.00")
    fill(trader, accounts["PAPER-EQ-B"], symbol="MSFT", side="SELL", quantity="5")
    position = Position.objects.get(user=trader, symbol="MSFT")
    assert position.quantity == 0 and position.realized_pnl > 0
    page = dom(client.get("/"))
    assert value(page.by_id("realized-pnl")) == position.realized_pnl
    assert "pos" in page.by_id("realized-pnl").classes
    # a flat position is not listed among the current positions
    assert page.find("tr", data_symbol="MSFT") is None


@pytest.mark.parametrize(("state", "badge"), [("ACTIVE", "ok"), ("REDUCING", "warn"), ("HALTED", "bad")])
def test_trading_state_badge(client, trader, state, badge, dom):
    RiskProfile.objects.update_or_create(user=trader, defaults={"trading_state": state})
    node = dom(client.get("/ui/dashboard/summary/")).by_id("trading-state")
    assert node.attrs["data-state"] == state
    assert node.text == state
    assert badge in node.classes


def test_brokers_show_connection_status(client, trader, accounts, dom):
    BrokerAccount.objects.filter(pk=accounts["PAPER-EQ-B"].pk).update(connection_status="DEGRADED")
    BrokerAccount.objects.filter(pk=accounts["PAPER-CRYPTO"].pk).update(connection_status="DOWN")
    brokers = dom(client.get("/ui/dashboard/brokers/")).by_id("brokers")
    statuses = {
        int(li.attrs["data-broker"]): (li.attrs["data-status"], li.find(class_="badge").classes)
        for li in brokers.find_all("li")
    }
    assert statuses[accounts["PAPER-EQ-A"].pk] == ("CONNECTED", {"badge", "ok"})
    assert statuses[accounts["PAPER-EQ-B"].pk] == ("DEGRADED", {"badge", "warn"})
    assert statuses[accounts["PAPER-CRYPTO"].pk] == ("DOWN", {"badge", "bad"})


@pytest.mark.parametrize(("url", "element_id"), PARTIALS)
def test_partials_render_with_their_live_wrapper(client, holding, url, element_id, dom):
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    page = dom(response)
    wrapper = page.by_id(element_id)
    assert wrapper.attrs["hx-get"] == url
    assert "from:body" in wrapper.attrs["hx-trigger"]
    assert wrapper.attrs["hx-swap"] == "outerHTML"
    assert page.find("html") is None  # a fragment, not a page


def test_the_dashboard_includes_the_open_orders_panel(client, dom):
    response = client.get("/")
    assert "orders/tracker/_panel.html" in [t.name for t in response.templates]
    assert dom(response).by_id("tracker-panel") is not None


def test_partials_refetch_on_the_stream_topics(client, dom):
    page = dom(client.get("/"))
    summary = page.by_id("dash-summary").attrs["hx-trigger"]
    for topic in ("tm-positions", "tm-fills", "tm-orders", "tm-risk", "tm-brokers"):
        assert f"{topic} from:body" in summary
    assert "tm-positions from:body" in page.by_id("dash-positions").attrs["hx-trigger"]
    assert "tm-brokers from:body" in page.by_id("dash-brokers").attrs["hx-trigger"]
    assert "tm-risk from:body" in page.by_id("dash-alerts").attrs["hx-trigger"]


# --- the equity chart ----------------------------------------------------------------------------


def test_equity_samples_are_recorded_and_throttled(trader, holding, settings):
    settings.EQUITY_SAMPLE_SECONDS = 60
    EquitySample.objects.all().delete()
    t0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    with time_machine.travel(t0, tick=False):
        risk_monitor_user(user=trader, now=t0)
        risk_monitor_user(user=trader, now=t0 + dt.timedelta(seconds=30))
        risk_monitor_user(user=trader, now=t0 + dt.timedelta(seconds=59))
        risk_monitor_user(user=trader, now=t0 + dt.timedelta(seconds=60))
    samples = list(EquitySample.objects.filter(user=trader).order_by("at"))
    assert [s.at for s in samples] == [t0, t0 + dt.timedelta(seconds=60)]
    profile = RiskProfile.objects.get(user=trader)
    assert samples[0].equity == profile.day_start_equity + samples[0].daily_pnl


def test_the_first_sample_of_a_day_is_always_taken_and_old_ones_pruned(trader, holding, settings):
    settings.EQUITY_SAMPLE_SECONDS = 3600
    EquitySample.objects.all().delete()
    old = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    EquitySample.objects.create(user=trader, at=old, equity=Decimal(1), daily_pnl=Decimal(0))
    late = dt.datetime(2026, 3, 2, 23, 59, 50, tzinfo=dt.UTC)
    risk_monitor_user(user=trader, now=late)
    next_day = late + dt.timedelta(seconds=20)  # within the interval, but a new day
    risk_monitor_user(user=trader, now=next_day)
    week_later = old + EQUITY_SAMPLE_RETENTION + dt.timedelta(days=1)
    risk_monitor_user(user=trader, now=week_later)
    ats = list(EquitySample.objects.filter(user=trader).order_by("at").values_list("at", flat=True))
    assert old not in ats  # pruned once older than the retention
    assert ats == [late, next_day, week_later]


def test_the_chart_draws_todays_samples_and_the_live_value(client, trader, holding, dom):
    EquitySample.objects.all().delete()
    now = dt.datetime.now(dt.UTC)
    profile = RiskProfile.objects.get(user=trader)
    start = profile.day_start_equity
    yesterday = now - dt.timedelta(days=1)
    EquitySample.objects.create(user=trader, at=yesterday, equity=start - 5000, daily_pnl=Decimal(0))
    for seconds, delta in ((-300, -50), (-200, 80), (-100, 20)):
        EquitySample.objects.create(
            user=trader,
            at=now + dt.timedelta(seconds=seconds),
            equity=start + delta,
            daily_pnl=Decimal(delta),
        )
    if now - dt.timedelta(seconds=300) < dt.datetime.combine(now.date(), dt.time(0), tzinfo=dt.UTC):
        pytest.fail("ran within 5 minutes after midnight UTC: today's samples would straddle two days")
    page = dom(client.get("/ui/dashboard/chart/"))
    chart = page.by_id("equity-chart")
    assert chart.tag == "svg" and chart.attrs["role"] == "img"
    points = chart.find("polyline").attrs["points"].split()
    assert len(points) == 4  # three samples of today + the live value; not yesterday's
    label = chart.attrs["aria-label"]
    for word in ("first", "last", "min", "max"):
        assert word in label
    live = BrokerAccount.objects.filter(user=trader).aggregate(v=Sum("cash"))["v"] + Decimal("1100")
    assert f"first {start - 50:,.2f}" in label
    assert f"last {live:,.2f}" in label
    assert f"min {min(start - 50, live):,.2f}" in label
    assert f"max {max(start + 80, live):,.2f}" in label
    assert chart.find("line", class_="baseline") is not None
    trend = "trend-up" if live > start else "trend-down" if live < start else "trend-flat"
    assert trend in chart.classes


# --- alerts --------------------------------------------------------------------------------------


@pytest.fixture
def alert(trader):
    return RiskAlert.objects.create(
        user=trader, rule="daily_loss", severity="CRITICAL", message="Daily loss 30,000 exceeds 25,000."
    )


def test_active_alerts_are_listed_and_can_be_acknowledged(client, trader, alert, dom):
    alerts = dom(client.get("/")).by_id("risk-alerts")
    item = alerts.find("li", id=f"alert-{alert.pk}")
    assert "Daily loss 30,000 exceeds 25,000." in item.text
    assert "bad" in item.find(class_="badge").classes
    # when the trader acknowledges it (htmx POST)
    response = client.post(f"/ui/alerts/{alert.pk}/acknowledge/", headers={"HX-Request": "true"})
    # then it is closed by them and the refreshed list no longer shows it
    assert response.status_code == 200
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None and alert.acknowledged_by == trader
    assert dom(response).by_id("risk-alerts").text == "No active alerts"
    assert toast(response)["title"] == "Alert acknowledged"


def test_acknowledging_twice_or_someone_elses_alert_is_refused(client, trader, other_trader, alert, dom):
    client.post(f"/ui/alerts/{alert.pk}/acknowledge/")
    again = client.post(f"/ui/alerts/{alert.pk}/acknowledge/")
    assert "already acknowledged" in dom(again).find(class_="error").text
    theirs = RiskAlert.objects.create(user=other_trader, rule="gross", severity="WARNING", message="x")
    response = client.post(f"/ui/alerts/{theirs.pk}/acknowledge/")
    assert toast(response)["kind"] == "bad"
    theirs.refresh_from_db()
    assert theirs.acknowledged_at is None


# --- kill switch ---------------------------------------------------------------------------------


@pytest.fixture
def resting(trader, accounts, fill):
    return fill(
        trader, accounts["PAPER-EQ-A"], symbol="AAPL", order_type="LIMIT", quantity="5", price="95.00"
    ).order


def test_kill_switch_asks_then_halts_and_cancels_everything(client, trader, resting, dom):
    assert resting.status == "ACCEPTED"
    start = dom(client.get("/")).by_id("kill-switch")
    assert start.find("button", id="kill-switch-button").text.endswith("Kill switch")
    assert "neon" in start.find("button", id="kill-switch-button").classes
    # the first click only asks
    asking = dom(client.get("/ui/kill-switch/?confirm=1")).by_id("kill-switch")
    assert "1 open order" in asking.by_id("kill-switch-question").text
    assert asking.find("button", id="kill-switch-confirm").text == "Confirm kill switch"
    assert Order.objects.get(pk=resting.pk).status == "ACCEPTED"
    # confirming halts and cancels
    response = client.post("/ui/kill-switch/engage/", headers={"HX-Request": "true"})
    assert RiskProfile.objects.get(user=trader).trading_state == "HALTED"
    assert Order.objects.get(pk=resting.pk).status == "CANCELLED"
    panel = dom(response).by_id("kill-switch")
    assert panel.attrs["data-state"] == "HALTED"
    assert panel.find("button", id="resume-trading").text == "Resume trading"
    triggers = json.loads(response.headers["HX-Trigger"])
    assert (
        triggers["tm-toast"]["title"] == "Kill switch engaged"
        and "1 open order(s) cancelled" in triggers["tm-toast"]["text"]
    )
    assert "tm-risk" in triggers


def test_resume_trading_releases_a_halt_of_ones_own(client, trader, dom):
    client.post("/ui/kill-switch/engage/")
    response = client.post("/ui/kill-switch/release/")
    assert RiskProfile.objects.get(user=trader).trading_state == "ACTIVE"
    assert dom(response).by_id("kill-switch").attrs["data-state"] == "ACTIVE"
    assert "tm-risk" in json.loads(response.headers["HX-Trigger"])  # every live part re-reads the state


def test_a_halt_by_staff_cannot_be_lifted_from_the_dashboard(client, trader, dom):
    trading_state_set(user=trader, state="HALTED", actor_label="risk desk", authority=Authority.STAFF)
    response = client.post("/ui/kill-switch/release/")
    assert RiskProfile.objects.get(user=trader).trading_state == "HALTED"
    error = dom(response).by_id("kill-switch-error")
    assert "only staff can lift it" in error.text
    assert toast(response)["kind"] == "bad"


# --- login required ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", *[u for u, _ in PARTIALS], "/ui/kill-switch/?confirm=1"])
def test_anonymous_get_redirects_to_login(trader, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", POSTS)
def test_anonymous_post_changes_nothing(trader, url):
    response = Client().post(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert not RiskProfile.objects.filter(trading_state="HALTED").exists()
