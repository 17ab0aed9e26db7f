"""The kill switch: halt, cancel every open order at every broker, optionally flatten every position.

Prices: AAPL 100.00, MSFT 400.00, BTC/USD 50,000.00. The trader holds a long of 10 AAPL at
PAPER-EQ-A, a short of 5 MSFT at PAPER-EQ-B and a long of 0.1 BTC/USD at PAPER-CRYPTO, and has
one resting limit order at each of the three venues.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from brokers.models import BrokerAccount, PaperOrder
from orders.models import Order, Position
from orders.services import (
    Actor,
    KillSwitchResult,
    kill_switch_engage,
    kill_switch_release,
    order_place,
)
from risk.models import RiskProfile
from risk.services import risk_profile_get
from tests.builders import order_request
from tests.conftest import bearer_client
from trademaster.errors import PermissionDenied
from trademaster.models import OutboxEvent

pytestmark = pytest.mark.django_db

KILL = "/api/v1/risk/kill-switch/"
RELEASE = "/api/v1/risk/kill-switch/release/"


def place(user, account, **kw) -> Order:
    return order_place(
        user=user, request=order_request(**kw), actor=Actor.for_user(user), broker_id=account.pk
    ).order


def accounts_of(user) -> dict[str, BrokerAccount]:
    return {a.account_id: a for a in BrokerAccount.objects.filter(user=user)}


def state(user) -> str:
    return RiskProfile.objects.get(user=user).trading_state


def quantities(user) -> dict[tuple[str, str], D]:
    return {
        (p.broker.account_id, p.symbol): p.quantity
        for p in Position.objects.filter(user=user).select_related("broker")
    }


@pytest.fixture
def prices(set_mid):
    set_mid("AAPL", "100.00")
    set_mid("MSFT", "400.00")
    set_mid("BTC/USD", "50000.00")


def build_book(user) -> list[Order]:
    """Three filled positions and one resting limit at each venue; returns the resting orders."""
    acc = accounts_of(user)
    assert (
        place(user, acc["PAPER-EQ-A"], symbol="AAPL", quantity="10", client_order_id="p1").status == "FILLED"
    )
    assert (
        place(user, acc["PAPER-EQ-B"], symbol="MSFT", side="SELL", quantity="5", client_order_id="p2").status
        == "FILLED"
    )
    assert (
        place(user, acc["PAPER-CRYPTO"], symbol="BTC/USD", quantity="0.1", client_order_id="p3").status
        == "FILLED"
    )
    resting = [
        place(
            user,
            acc["PAPER-EQ-A"],
            symbol="AAPL",
            order_type="LIMIT",
            price="90.00",
            quantity="5",
            client_order_id="r1",
        ),
        place(
            user,
            acc["PAPER-EQ-B"],
            symbol="MSFT",
            order_type="LIMIT",
            price="380.00",
            quantity="2",
            client_order_id="r2",
        ),
        place(
            user,
            acc["PAPER-CRYPTO"],
            symbol="BTC/USD",
            order_type="LIMIT",
            price="45000.00",
            quantity="0.05",
            time_in_force="GTC",
            client_order_id="r3",
        ),
    ]
    assert [o.status for o in resting] == ["ACCEPTED"] * 3
    return resting


@pytest.fixture
def book(trader, prices) -> list[Order]:
    return build_book(trader)


def test_the_kill_switch_halts_and_cancels_every_open_order_at_every_venue(trader, accounts, book):
    # when the kill switch is engaged without liquidation
    result = kill_switch_engage(user=trader, actor=Actor.for_user(trader))
    # then every resting order is cancelled, here and at its venue, and nothing failed
    assert result == KillSwitchResult(trader.pk, [o.pk for o in book], [], [], [])
    assert list(Order.objects.filter(user=trader).open()) == []
    assert [Order.objects.get(pk=o.pk).status for o in book] == ["CANCELLED"] * 3
    venue_orders = PaperOrder.objects.filter(client_order_id__in=["r1", "r2", "r3"]).order_by(
        "client_order_id"
    )
    assert [(p.account.account_id, p.status) for p in venue_orders] == [
        ("PAPER-EQ-A", "CANCELLED"),
        ("PAPER-EQ-B", "CANCELLED"),
        ("PAPER-CRYPTO", "CANCELLED"),
    ]
    # and the positions are left alone
    assert quantities(trader) == {
        ("PAPER-EQ-A", "AAPL"): D("10"),
        ("PAPER-EQ-B", "MSFT"): D("-5"),
        ("PAPER-CRYPTO", "BTC/USD"): D("0.1"),
    }
    # and trading is halted, recorded with who did it: a new order is refused
    assert state(trader) == "HALTED"
    events = OutboxEvent.objects.filter(user_id=trader.pk, type="TRADING_STATE_CHANGED")
    assert [e.payload for e in events] == [
        {"from": "ACTIVE", "to": "HALTED", "actor": "trader", "restricted_by": "self"}
    ]
    refused = place(trader, accounts["PAPER-EQ-A"], symbol="AAPL", quantity="1", client_order_id="n1")
    assert refused.status == "REJECTED"
    assert "TRADING_HALTED" in refused.status_reason


def test_liquidation_flattens_every_position_with_filled_market_orders_and_stays_halted(
    trader, accounts, book
):
    # when the kill switch is engaged with liquidation
    result = kill_switch_engage(user=trader, actor=Actor.for_user(trader, "desk"), liquidate=True)
    # then the resting orders are cancelled and one market order per position closed it
    assert result.cancelled == [o.pk for o in book]
    assert (result.cancel_failed, result.liquidation_failed) == ([], [])
    liquidations = list(
        Order.objects.filter(pk__in=result.liquidated).select_related("broker").order_by("pk")
    )
    assert result.liquidated == [o.pk for o in liquidations]
    assert [
        (o.broker.account_id, o.symbol, o.side, o.order_type, o.quantity, o.status) for o in liquidations
    ] == [
        ("PAPER-EQ-A", "AAPL", "SELL", "MARKET", D("10"), "FILLED"),
        ("PAPER-EQ-B", "MSFT", "BUY", "MARKET", D("5"), "FILLED"),
        ("PAPER-CRYPTO", "BTC/USD", "SELL", "MARKET", D("0.1"), "FILLED"),
    ]
    crypto = accounts["PAPER-CRYPTO"]
    assert liquidations[2].client_order_id.startswith(f"kill-{trader.pk}-{crypto.pk}-BTC_USD-")
    assert all(len(o.client_order_id) <= 64 for o in liquidations)
    assert set(quantities(trader).values()) == {D("0")}
    assert list(Order.objects.filter(user=trader).open()) == []
    # and the state went HALTED, REDUCING for the liquidation, and HALTED again
    events = OutboxEvent.objects.filter(user_id=trader.pk, type="TRADING_STATE_CHANGED").order_by("pk")
    assert [(e.payload["from"], e.payload["to"]) for e in events] == [
        ("ACTIVE", "HALTED"),
        ("HALTED", "REDUCING"),
        ("REDUCING", "HALTED"),
    ]
    assert [e.payload["actor"] for e in events] == ["desk", "desk (liquidation)", "desk"]
    assert state(trader) == "HALTED"


def test_failures_are_listed_per_order_and_the_rest_still_goes_through(trader, accounts, book):
    # given the venue filled the AAPL limit before the cancel arrives (we have not heard yet)
    PaperOrder.objects.filter(client_order_id="r1").update(status="FILLED")
    # and MSFT became restricted, which even a reducing order may not trade
    RiskProfile.objects.filter(pk=risk_profile_get(user=trader).pk).update(restricted_symbols=["MSFT"])
    # when the kill switch is engaged with liquidation
    result = kill_switch_engage(user=trader, actor=Actor.for_user(trader), liquidate=True)
    # then that one cancel failed with the venue's reason and the order is still working
    r1, r2, r3 = book
    assert result.cancelled == [r2.pk, r3.pk]
    assert result.cancel_failed == [(r1.pk, "the order is already filled")]
    assert Order.objects.get(pk=r1.pk).status == "ACCEPTED"
    # and MSFT could not be liquidated, the other two positions were
    msft = Order.objects.get(user=trader, symbol="MSFT", client_order_id__startswith="kill-")
    assert msft.status == "REJECTED"
    assert result.liquidation_failed == [("MSFT", accounts["PAPER-EQ-B"].pk, msft.status_reason)]
    assert "RESTRICTED_SYMBOL" in msft.status_reason
    assert len(result.liquidated) == 2
    assert quantities(trader) == {
        ("PAPER-EQ-A", "AAPL"): D("0"),
        ("PAPER-EQ-B", "MSFT"): D("-5"),
        ("PAPER-CRYPTO", "BTC/USD"): D("0"),
    }
    assert state(trader) == "HALTED"


# --- API --------------------------------------------------------------------------------------


def test_api_engages_the_kill_switch_and_returns_exact_lists(api, trader, accounts, book):
    response = api.post(KILL, {"liquidate": True}, format="json")
    assert response.status_code == 200
    liquidated = list(
        Order.objects.filter(user=trader, client_order_id__startswith="kill-")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    assert response.json() == {
        "results": [
            {
                "user_id": trader.pk,
                "cancelled": [o.pk for o in book],
                "cancel_failed": [],
                "liquidated": liquidated,
                "liquidation_failed": [],
            }
        ]
    }
    assert len(liquidated) == 3
    assert state(trader) == "HALTED"


def test_api_without_liquidate_only_cancels(api, trader, book):
    response = api.post(KILL, {}, format="json")
    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "user_id": trader.pk,
            "cancelled": [o.pk for o in book],
            "cancel_failed": [],
            "liquidated": [],
            "liquidation_failed": [],
        }
    ]
    assert quantities(trader) == {
        ("PAPER-EQ-A", "AAPL"): D("10"),
        ("PAPER-EQ-B", "MSFT"): D("-5"),
        ("PAPER-CRYPTO", "BTC/USD"): D("0.1"),
    }


def test_a_read_only_token_may_not_engage_it(trader, book):
    response = bearer_client(trader, scopes=("read",)).post(KILL, {}, format="json")
    assert response.status_code == 403
    assert response.json() == {"code": "permission_denied", "message": "This token lacks the 'trade' scope."}
    assert state(trader) == "ACTIVE"
    assert Order.objects.filter(user=trader).open().count() == 3


def test_only_staff_may_engage_it_for_all_users(api, trader, book):
    response = api.post(KILL, {"all_users": True}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "code": "staff_only",
        "message": "Only staff may engage the kill switch for all users.",
    }
    assert state(trader) == "ACTIVE"
    assert Order.objects.filter(user=trader).open().count() == 3


def test_staff_engage_the_global_switch_for_every_user(make_user, trader, other_trader, book):
    # given a second trader with a resting order, and a staff member with nothing
    other_resting = build_book(other_trader)
    staff = make_user("boss", is_staff=True)
    # when the staff member engages the global switch
    response = bearer_client(staff).post(KILL, {"all_users": True}, format="json")
    # then both traders are halted and their orders cancelled; the staff member is not touched
    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "user_id": user.pk,
            "cancelled": [o.pk for o in orders],
            "cancel_failed": [],
            "liquidated": [],
            "liquidation_failed": [],
        }
        for user, orders in [(trader, book), (other_trader, other_resting)]
    ]
    assert (state(trader), state(other_trader)) == ("HALTED", "HALTED")
    assert Order.objects.open().count() == 0
    # and everyone else who can trade is halted too (with nothing to cancel, no result entry)
    assert risk_profile_get(user=staff).trading_state == "HALTED"


def test_release_lets_the_trader_trade_again(api, trader, accounts, book):
    assert api.post(KILL, {}, format="json").status_code == 200
    response = api.post(RELEASE, format="json")
    assert response.status_code == 200
    assert response.json() == {"trading_state": "ACTIVE"}
    assert state(trader) == "ACTIVE"
    order = place(trader, accounts["PAPER-EQ-A"], symbol="AAPL", quantity="1", client_order_id="again")
    assert order.status == "FILLED"


def test_release_service_records_who_released(trader, prices):
    kill_switch_engage(user=trader, actor=Actor.for_user(trader))
    profile = kill_switch_release(user=trader, actor=Actor.for_user(trader, "ops"))
    assert profile.trading_state == "ACTIVE"
    last = OutboxEvent.objects.filter(user_id=trader.pk, type="TRADING_STATE_CHANGED").order_by("pk").last()
    assert last.payload == {"from": "HALTED", "to": "ACTIVE", "actor": "ops", "restricted_by": ""}


def test_a_halt_by_staff_can_only_be_released_by_staff(api, make_user, trader, prices):
    staff = make_user("ops", is_staff=True)
    kill_switch_engage(user=trader, actor=Actor.for_user(staff))
    assert risk_profile_get(user=trader).restricted_by == "staff"
    # the trader's own release is refused with the reason, and the halt holds
    response = api.post(RELEASE, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "restricted_by_staff"
    assert response.json()["message"] == "Trading was halted by staff; only staff can lift it."
    # halting again themselves does not weaken it
    assert api.post(KILL, {}, format="json").status_code == 200
    assert risk_profile_get(user=trader).restricted_by == "staff"
    assert state(trader) == "HALTED"
    # staff lift it
    assert kill_switch_release(user=trader, actor=Actor.for_user(staff)).trading_state == "ACTIVE"
    assert risk_profile_get(user=trader).restricted_by == ""


def test_a_halt_by_the_emergency_stop_loss_needs_staff_to_lift(trader, make_user, prices):
    from orders.models import ActorType

    kill_switch_engage(user=trader, actor=Actor(ActorType.SYSTEM, None, "emergency stop-loss"))
    with pytest.raises(PermissionDenied) as refused:
        kill_switch_release(user=trader, actor=Actor.for_user(trader))
    assert refused.value.message == "Trading was halted by the emergency stop-loss; only staff can lift it."
    staff = make_user("ops", is_staff=True)
    assert kill_switch_release(user=trader, actor=Actor.for_user(staff)).trading_state == "ACTIVE"


def test_a_state_set_in_admin_is_staffs(admin_client, trader, prices):
    profile = risk_profile_get(user=trader)
    url = reverse("admin:risk_riskprofile_change", args=[profile.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update(trading_state="REDUCING", restricted_symbols="[]")
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    profile.refresh_from_db()
    assert (profile.trading_state, profile.restricted_by) == ("REDUCING", "staff")
    with pytest.raises(PermissionDenied):
        kill_switch_release(user=trader, actor=Actor.for_user(trader))


# --- admin ------------------------------------------------------------------------------------


def test_admin_action_halts_and_cancels_the_selected_users_orders(admin_client, trader, other_trader, book):
    # given another trader with a resting order, who is not selected
    other_order = place(
        other_trader,
        accounts_of(other_trader)["PAPER-EQ-A"],
        symbol="AAPL",
        order_type="LIMIT",
        price="90.00",
        quantity="1",
        client_order_id="o1",
    )
    profile = risk_profile_get(user=trader)
    risk_profile_get(user=other_trader)
    # when the admin runs the action on the trader's profile
    response = admin_client.post(
        reverse("admin:risk_riskprofile_changelist"),
        {"action": "kill_switch_halt", "_selected_action": [profile.pk]},
    )
    # then the trader is halted with no open order left, and the other trader is untouched
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Kill switch engaged for 1 user(s): halted, 3 order(s) cancelled."
    ]
    assert state(trader) == "HALTED"
    assert list(Order.objects.filter(user=trader).open()) == []
    assert [Order.objects.get(pk=o.pk).status for o in book] == ["CANCELLED"] * 3
    assert (state(other_trader), Order.objects.get(pk=other_order.pk).status) == ("ACTIVE", "ACCEPTED")


def test_admin_liquidate_action_flattens_and_reports_failures(admin_client, trader, accounts, book):
    RiskProfile.objects.filter(pk=risk_profile_get(user=trader).pk).update(restricted_symbols=["MSFT"])
    response = admin_client.post(
        reverse("admin:risk_riskprofile_changelist"),
        {"action": "kill_switch_liquidate", "_selected_action": [risk_profile_get(user=trader).pk]},
    )
    assert response.status_code == 302
    msft = Order.objects.get(user=trader, symbol="MSFT", client_order_id__startswith="kill-")
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Kill switch engaged for 1 user(s): halted, 3 order(s) cancelled, 2 liquidation order(s) placed.",
        f"User {trader.pk}: MSFT at broker {accounts['PAPER-EQ-B'].pk} not liquidated: {msft.status_reason}",
    ]
    assert quantities(trader)[("PAPER-EQ-A", "AAPL")] == D("0")


def test_the_emergency_stop_loss_halts_and_liquidates_when_todays_loss_reaches_it(trader, accounts, set_mid):
    from orders.services import market_tick

    # given a long position and an emergency stop-loss of 500 for the day
    set_mid("AAPL", "100.00")
    account = accounts["PAPER-EQ-A"]
    buy = order_place(
        user=trader, request=order_request(quantity="100"), actor=Actor.for_user(trader), broker_id=account.pk
    ).order
    assert buy.status == "FILLED"
    RiskProfile.objects.filter(pk=risk_profile_get(user=trader).pk).update(emergency_loss_limit=D("500"))
    market_tick(advance=False)  # marks the day's starting equity
    assert risk_profile_get(user=trader).trading_state == "ACTIVE"
    # when the price falls 10 (a 1,000 loss) and the market ticks
    set_mid("AAPL", "90.00")
    market_tick(advance=False)
    # then trading is halted and the position was liquidated at market
    assert risk_profile_get(user=trader).trading_state == "HALTED"
    assert Position.objects.get(user=trader, broker=account, symbol="AAPL").quantity == D("0")
    sell = Order.objects.filter(user=trader, side="SELL").get()
    assert (sell.status, sell.order_type, sell.quantity) == ("FILLED", "MARKET", D("100"))
