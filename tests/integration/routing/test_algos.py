"""TWAP/VWAP parent orders on the paper venues, driven by a controllable clock (no sleeping)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from brokers.domain.volume import expected_volume
from brokers.models import Instrument, PaperOrder
from orders.domain.enums import AssetClass
from orders.models import Order
from orders.services import Actor, kill_switch_engage, market_tick, order_place
from risk.domain.context import TradingState
from risk.services import risk_profile_get
from routing.algos import (
    AlgoParams,
    algo_cancel,
    algo_modify,
    algo_pause,
    algo_progress,
    algo_release_due,
    algo_resume,
)
from routing.models import AlgoOrder, AlgoSlice, AlgoState, SliceState
from tests.builders import order_request
from trademaster.errors import Conflict, ValidationFailed
from trademaster.models import OutboxEvent
from trademaster.relay import envelope
from trademaster.stream.frames import frames_for

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)
SECOND = dt.timedelta(seconds=1)
NEW_YORK = ZoneInfo("America/New_York")
UNFILLED_300 = "schedule ended with 300 of 300 unfilled (see the children for why)"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are created in every test here: skip the deliberately slow production hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def algo_order(
    user,
    *,
    kind: str = "TWAP",
    symbol: str = "AAPL",
    quantity: str = "500",
    slices: int | None = 5,
    start: dt.datetime | None = None,
    minutes: int = 5,
    max_participation: str | None = None,
    **extra,
) -> Order:
    start = start or timezone.now() + dt.timedelta(hours=1)
    params = AlgoParams(
        kind=kind,
        start_time=start,
        duration_seconds=minutes * 60,
        slices=slices,
        max_participation=None if max_participation is None else Decimal(max_participation),
    )
    request = order_request(symbol=symbol, quantity=quantity, **extra)
    return order_place(user=user, request=request, actor=Actor.for_user(user), algo=params).order


def twap(user, *, quantity="500", slices=5, start=None, minutes=5, **extra) -> Order:
    return algo_order(user, quantity=quantity, slices=slices, start=start, minutes=minutes, **extra)


def children(parent: Order) -> list[Order]:
    return list(Order.objects.filter(parent=parent).order_by("pk"))


def slices_of(parent: Order) -> list[AlgoSlice]:
    return list(AlgoSlice.objects.filter(algo__parent=parent).order_by("seq"))


def fresh(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def an_hour_ahead() -> dt.datetime:
    """A whole minute about an hour from now: the start of a window (start_time may not be past)."""
    return (timezone.now() + dt.timedelta(hours=1)).replace(second=0, microsecond=0)


def next_weekday_at(hour: int, minute: int) -> dt.datetime:
    """The first weekday hh:mm in New York at least an hour from now."""
    earliest = timezone.now() + dt.timedelta(hours=1)
    day = earliest.astimezone(NEW_YORK).date()
    while True:
        at = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NEW_YORK)
        if day.weekday() < 5 and at >= earliest:
            return at
        day += dt.timedelta(days=1)


def progress_events(user) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type="ALGO_PROGRESS", user_id=user.pk).order_by("id"))


# --- schedules ----------------------------------------------------------------------------------


def test_twap_releases_each_slice_at_its_time(trader, accounts, set_mid):
    set_mid("AAPL", "100.00")
    start = timezone.now() + dt.timedelta(hours=1)
    parent = twap(trader, start=start)
    assert parent.status == "ACCEPTED"
    assert parent.algo == "TWAP"
    assert children(parent) == []
    due = list(AlgoSlice.objects.filter(algo__parent=parent).values_list("due_at", "quantity"))
    assert due == [(start + i * MINUTE, Decimal(100)) for i in range(5)]
    for i in range(5):
        assert algo_release_due(now=start + i * MINUTE - dt.timedelta(seconds=1)) == 0
        assert len(children(parent)) == i
        assert algo_release_due(now=start + i * MINUTE) == 1
        assert [c.quantity for c in children(parent)] == [Decimal(100)] * (i + 1)
    parent.refresh_from_db()
    assert parent.status == "FILLED"
    assert parent.filled_quantity == Decimal(500)
    assert set(AlgoSlice.objects.filter(algo__parent=parent).values_list("state", flat=True)) == {
        SliceState.RELEASED
    }


def test_vwap_slices_follow_the_equity_volume_curve_over_the_open(trader, accounts, set_mid):
    # given a VWAP window from 09:00 to 12:00 New York, in six half-hour slices
    set_mid("AAPL", "10.00")
    start = next_weekday_at(9, 0)
    half_hour = 30 * MINUTE
    parent = algo_order(trader, kind="VWAP", quantity="1000", slices=6, start=start, minutes=180)
    assert (parent.status, parent.algo) == ("ACCEPTED", "VWAP")
    # then the half hour before the open (no volume) has no slice; one follows each half hour after
    opens = start + half_hour
    plan = slices_of(parent)
    assert [s.due_at for s in plan] == [opens + i * half_hour for i in range(5)]
    quantities = [s.quantity for s in plan]
    assert sum(quantities) == Decimal(1000)
    # and the slices shrink from the busy open towards midday: the first over twice the last
    assert all(a > b for a, b in pairwise(quantities)), quantities
    assert quantities[0] > 2 * quantities[-1], quantities
    # each in proportion to the expected market volume of its half hour, to within one share
    adv = Instrument.objects.get(symbol="AAPL").average_daily_volume
    volumes = [
        expected_volume(AssetClass.EQUITY, adv, opens + i * half_hour, opens + (i + 1) * half_hour)
        for i in range(5)
    ]
    for quantity, volume in zip(quantities, volumes, strict=True):
        assert abs(quantity - Decimal(1000) * volume / sum(volumes)) < 1, (quantities, volumes)
    # when the clock runs, each slice goes at its own time, no earlier
    assert algo_release_due(now=start) == 0
    for i, s in enumerate(plan):
        assert algo_release_due(now=s.due_at - SECOND) == 0
        assert len(children(parent)) == i
        assert algo_release_due(now=s.due_at) == 1
        assert [c.quantity for c in children(parent)] == quantities[: i + 1]
    parent = fresh(parent)
    assert (parent.status, parent.filled_quantity) == ("FILLED", Decimal(1000))


def test_late_slices_are_merged_and_the_catch_up_is_capped(trader, accounts, set_mid, settings):
    settings.ALGO_CATCH_UP_LIMIT = Decimal(2)
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, quantity="1000", slices=10, start=start, minutes=10)
    assert algo_release_due(now=start) == 1
    # when the worker misses slices 1 to 3 and comes back at slice 4's time
    assert algo_release_due(now=start + 4 * MINUTE + 10 * SECOND) == 1
    plan = slices_of(parent)
    # then the missed slices are merged into slice 4 ...
    assert [(s.state, s.note) for s in plan[1:4]] == [(SliceState.SKIPPED, "late: merged into slice 4")] * 3
    # ... which sends at most 2 x its planned 100, not the 400 the schedule is behind
    assert (plan[4].state, plan[4].released_quantity) == (SliceState.RELEASED, Decimal(200))
    assert [c.quantity for c in children(parent)] == [Decimal(100), Decimal(200)]
    # and the next slice, still 300 behind, is capped the same way
    assert algo_release_due(now=start + 5 * MINUTE) == 1
    assert [c.quantity for c in children(parent)] == [Decimal(100), Decimal(200), Decimal(200)]
    # when the worker is down again until the final slice, that slice releases everything left
    assert algo_release_due(now=start + 9 * MINUTE) == 1
    plan = slices_of(parent)
    assert [(s.state, s.note) for s in plan[6:9]] == [(SliceState.SKIPPED, "late: merged into slice 9")] * 3
    assert [c.quantity for c in children(parent)] == [Decimal(q) for q in (100, 200, 200, 500)]
    parent = fresh(parent)
    assert (parent.status, parent.filled_quantity) == ("FILLED", Decimal(1000))
    assert AlgoOrder.objects.get(parent=parent).state == AlgoState.DONE


# --- remainders, limits and participation -------------------------------------------------------


def resting_twap(user, start: dt.datetime) -> Order:
    """A GTC TWAP of 300 AAPL in three slices, limited at 9.95 (the market asks 10.01)."""
    return twap(
        user,
        quantity="300",
        slices=3,
        start=start,
        minutes=3,
        order_type="LIMIT",
        price="9.95",
        time_in_force="GTC",
    )


def test_unfilled_remainders_roll_into_the_next_slice_and_the_parent_expires(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")  # asks 10.01 at both equity venues: the 9.95 limit rests
    start = an_hour_ahead()
    parent = resting_twap(trader, start)
    assert algo_release_due(now=start) == 1
    [first] = children(parent)
    assert (first.order_type, first.price, first.time_in_force) == ("LIMIT", Decimal("9.95"), "GTC")
    assert (first.status, first.quantity) == ("ACCEPTED", Decimal(100))
    # when the next slice is due, the resting child is cancelled and its 100 roll into the new one
    assert algo_release_due(now=start + MINUTE) == 1
    first, second = children(parent)
    assert (first.status, first.filled_quantity) == ("CANCELLED", Decimal(0))
    assert (second.status, second.quantity) == ("ACCEPTED", Decimal(200))
    assert algo_release_due(now=start + 2 * MINUTE) == 1
    first, second, third = children(parent)
    assert second.status == "CANCELLED"
    assert (third.status, third.quantity) == ("ACCEPTED", Decimal(300))
    assert fresh(parent).status == "ACCEPTED"  # still working until the window ends
    # when the window ends with nothing filled, the last child is cancelled and the parent expires
    algo_release_due(now=start + 3 * MINUTE)
    assert fresh(third).status == "CANCELLED"
    parent = fresh(parent)
    assert (parent.status, parent.filled_quantity) == ("EXPIRED", Decimal(0))
    assert parent.status_reason == UNFILLED_300
    assert Order.objects.filter(user=trader).open().count() == 0


def test_a_resting_remainder_fills_when_the_market_comes_to_the_limit(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = resting_twap(trader, start)
    assert algo_release_due(now=start) == 1
    assert algo_release_due(now=start + MINUTE) == 1
    first, second = children(parent)
    assert (first.status, second.status, second.quantity) == ("CANCELLED", "ACCEPTED", Decimal(200))
    # when the market falls to the limit (asks 9.91) and the paper market matches its resting orders
    set_mid("AAPL", "9.90")
    assert market_tick(now=start + MINUTE + 30 * SECOND, advance=False) > 0
    second = fresh(second)
    # a resting limit order fills at its own price
    assert (second.status, second.filled_quantity, second.average_fill_price) == (
        "FILLED",
        Decimal(200),
        Decimal("9.95"),
    )
    parent = fresh(parent)
    assert (parent.status, parent.filled_quantity) == ("PARTIALLY_FILLED", Decimal(200))
    # then the final slice only sends what is left, and fills at once
    assert algo_release_due(now=start + 2 * MINUTE) == 1
    third = children(parent)[2]
    assert (third.quantity, third.status, third.average_fill_price) == (
        Decimal(100),
        "FILLED",
        Decimal("9.91"),
    )
    parent = fresh(parent)
    assert (parent.status, parent.filled_quantity) == ("FILLED", Decimal(300))
    assert parent.average_fill_price == ((200 * Decimal("9.95") + 100 * Decimal("9.91")) / 300).quantize(
        Decimal("0.00000001")
    )


def test_max_participation_caps_each_child_at_its_share_of_the_expected_volume(trader, accounts, set_mid):
    # given 1 BTC over two one-minute slices, at most 1% of the market's expected volume each
    set_mid("BTC/USD", "1000.00")
    start = an_hour_ahead()
    parent = algo_order(
        trader,
        symbol="BTC/USD",
        quantity="1",
        slices=2,
        start=start,
        minutes=2,
        max_participation="0.01",
    )
    assert [s.quantity for s in slices_of(parent)] == [Decimal("0.5")] * 2
    adv = Instrument.objects.get(symbol="BTC/USD").average_daily_volume
    lot = Decimal("0.0001")

    def cap(a: dt.datetime, b: dt.datetime) -> Decimal:
        return (Decimal("0.01") * expected_volume(AssetClass.CRYPTO, adv, a, b) // lot) * lot

    first_cap, second_cap = cap(start, start + MINUTE), cap(start + MINUTE, start + 2 * MINUTE)
    assert Decimal("0.1") < first_cap < Decimal("0.5")  # about 17 BTC trade a minute: the cap binds
    # when both slices come due, each child is exactly its cap, rounded down to the lot
    assert algo_release_due(now=start) == 1
    assert [c.quantity for c in children(parent)] == [first_cap]
    assert algo_release_due(now=start + MINUTE) == 1
    assert [c.quantity for c in children(parent)] == [first_cap, second_cap]
    # and the final slice, capped too, leaves the rest unfilled: the parent expires with it
    parent = fresh(parent)
    assert parent.status == "EXPIRED"
    assert parent.filled_quantity == first_cap + second_cap
    assert "unfilled" in parent.status_reason


# --- risk -----------------------------------------------------------------------------------------


def test_each_child_passes_the_pre_trade_check(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    profile = risk_profile_get(user=trader)
    profile.max_order_quantity = Decimal(50)  # below every slice
    profile.save(update_fields=["max_order_quantity"])
    start = an_hour_ahead()
    parent = twap(trader, quantity="300", slices=3, start=start, minutes=3)
    assert parent.status == "ACCEPTED"  # the parent itself is never sent: only its children are checked
    algo_release_due(now=start)
    [child] = children(parent)
    assert child.status == "REJECTED"
    assert "MAX_ORDER_QUANTITY" in child.status_reason
    first = slices_of(parent)[0]
    assert (first.state, first.child_id, first.released_quantity) == (
        SliceState.RELEASED,
        child.pk,
        Decimal(100),
    )
    # when the remaining slices come due, each child (the refused quantity rolled in) is refused too
    algo_release_due(now=start + MINUTE)
    algo_release_due(now=start + 2 * MINUTE)
    kids = children(parent)
    assert [(c.quantity, c.status) for c in kids] == [
        (Decimal(100), "REJECTED"),
        (Decimal(200), "REJECTED"),
        (Decimal(300), "REJECTED"),
    ]
    assert all("MAX_ORDER_QUANTITY" in c.status_reason for c in kids)
    assert [s.child_id for s in slices_of(parent)] == [c.pk for c in kids]
    # then nothing is left to release and the parent expires, saying what went unfilled
    parent = fresh(parent)
    assert parent.status == "EXPIRED"
    assert parent.status_reason == UNFILLED_300


def test_a_halted_account_rejects_the_parent_at_creation(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    profile = risk_profile_get(user=trader)
    profile.trading_state = TradingState.HALTED.value
    profile.save(update_fields=["trading_state"])
    start = an_hour_ahead()
    parent = twap(trader, quantity="300", slices=3, start=start, minutes=3)
    assert parent.status == "REJECTED"
    assert "HALTED" in parent.status_reason
    assert not AlgoOrder.objects.filter(parent=parent).exists()
    assert algo_release_due(now=start + 3 * MINUTE) == 0
    assert children(parent) == []


# --- control: pause, resume, modify, cancel ---------------------------------------------------------


def test_pause_holds_due_slices_and_resume_replans_the_rest(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, start=start)
    assert algo_release_due(now=start) == 1
    actor = Actor.for_user(trader)
    algo = algo_pause(user=trader, order_id=parent.pk, actor=actor)
    assert algo.state == AlgoState.PAUSED
    # while paused nothing is released, even once slices are due
    assert algo_release_due(now=start + MINUTE) == 0
    assert algo_release_due(now=start + 2 * MINUTE + 30 * SECOND) == 0
    assert len(children(parent)) == 1
    assert [s.state for s in slices_of(parent)[1:]] == [SliceState.PLANNED] * 4
    assert algo_progress(AlgoOrder.objects.get(pk=algo.pk), start + 2 * MINUTE)["next_slice_at"] is None
    # when resumed with two of the five minutes left, the 400 left are replanned over them
    algo = algo_resume(user=trader, order_id=parent.pk, actor=actor, now=start + 3 * MINUTE)
    assert algo.state == AlgoState.RUNNING
    plan = slices_of(parent)
    assert [(s.seq, s.state, s.note) for s in plan[1:5]] == [
        (seq, SliceState.SKIPPED, "replanned") for seq in range(1, 5)
    ]
    assert [(s.seq, s.due_at, s.quantity, s.state) for s in plan[5:]] == [
        (5, start + 3 * MINUTE, Decimal(200), SliceState.PLANNED),
        (6, start + 4 * MINUTE, Decimal(200), SliceState.PLANNED),
    ]
    assert algo_release_due(now=start + 3 * MINUTE) == 1
    assert algo_release_due(now=start + 4 * MINUTE) == 1
    assert [c.quantity for c in children(parent)] == [Decimal(100), Decimal(200), Decimal(200)]
    parent = fresh(parent)
    assert (parent.status, parent.filled_quantity) == ("FILLED", Decimal(500))


def test_modify_quantity_up_and_down_replans_what_is_left(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, start=start)
    assert algo_release_due(now=start) == 1  # 100 filled
    actor = Actor.for_user(trader)
    # up: 600 left over the four minutes left
    parent = algo_modify(
        user=trader, order_id=parent.pk, actor=actor, quantity=Decimal(700), now=start + MINUTE
    )
    assert parent.quantity == Decimal(700)
    plan = slices_of(parent)
    assert [(s.seq, s.note) for s in plan[1:5]] == [(seq, "replanned") for seq in range(1, 5)]
    assert [(s.seq, s.due_at, s.quantity) for s in plan[5:]] == [
        (5 + i, start + (1 + i) * MINUTE, Decimal(150)) for i in range(4)
    ]
    assert algo_release_due(now=start + MINUTE) == 1  # 250 filled
    # down: 50 left over the three minutes left
    parent = algo_modify(
        user=trader, order_id=parent.pk, actor=actor, quantity=Decimal(300), now=start + 2 * MINUTE
    )
    assert [s.quantity for s in slices_of(parent) if s.state == SliceState.PLANNED] == [
        Decimal(17),
        Decimal(17),
        Decimal(16),
    ]
    # below what is filled: refused, nothing changes
    with pytest.raises(ValidationFailed) as refused:
        algo_modify(
            user=trader, order_id=parent.pk, actor=actor, quantity=Decimal(249), now=start + 2 * MINUTE
        )
    assert "quantity" in refused.value.fields
    assert fresh(parent).quantity == Decimal(300)
    for i in range(2, 5):
        assert algo_release_due(now=start + i * MINUTE) == 1
    assert [c.quantity for c in children(parent)] == [Decimal(q) for q in (100, 150, 17, 17, 16)]
    parent = fresh(parent)
    assert (parent.status, parent.filled_quantity) == ("FILLED", Decimal(300))


def test_modify_quantity_below_the_working_quantity_is_refused(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = resting_twap(trader, start)
    assert algo_release_due(now=start) == 1  # 100 resting, none filled
    with pytest.raises(ValidationFailed) as refused:
        algo_modify(
            user=trader, order_id=parent.pk, actor=Actor.for_user(trader), quantity=Decimal(99), now=start
        )
    assert refused.value.fields["quantity"] == ["quantity must be at least 100 (filled and working)."]


def test_modify_quantity_to_what_has_filled_completes_the_parent(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, start=start)
    assert algo_release_due(now=start + MINUTE) == 1  # slices 0 and 1 merged: 200 filled
    parent = algo_modify(
        user=trader,
        order_id=parent.pk,
        actor=Actor.for_user(trader),
        quantity=Decimal(200),
        now=start + MINUTE,
    )
    assert (parent.status, parent.quantity, parent.filled_quantity) == ("FILLED", Decimal(200), Decimal(200))
    assert not AlgoSlice.objects.filter(algo__parent=parent, state=SliceState.PLANNED).exists()
    assert algo_release_due(now=start + 5 * MINUTE) == 0
    assert len(children(parent)) == 1


def test_modify_end_time_replans_over_the_new_window(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, start=start)
    assert algo_release_due(now=start) == 1
    parent = algo_modify(
        user=trader,
        order_id=parent.pk,
        actor=Actor.for_user(trader),
        end_time=start + 9 * MINUTE,
        now=start + MINUTE,
    )
    algo = AlgoOrder.objects.get(parent=parent)
    assert algo.end_time == start + 9 * MINUTE
    plan = slices_of(parent)
    assert [s.note for s in plan[1:5]] == ["replanned"] * 4
    # the 400 left over the eight minutes left
    assert [(s.seq, s.due_at, s.quantity) for s in plan[5:]] == [
        (5 + i, start + (1 + i) * MINUTE, Decimal(50)) for i in range(8)
    ]
    for i in range(1, 9):
        assert algo_release_due(now=start + i * MINUTE) == 1
    parent = fresh(parent)
    assert (parent.status, parent.filled_quantity) == ("FILLED", Decimal(500))
    # a filled parent has nothing left to modify
    with pytest.raises(Conflict):
        algo_modify(
            user=trader, order_id=parent.pk, actor=Actor.for_user(trader), end_time=start + 20 * MINUTE
        )


def test_modify_end_time_in_the_past_is_refused(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, start=start)
    with pytest.raises(ValidationFailed) as refused:
        algo_modify(
            user=trader,
            order_id=parent.pk,
            actor=Actor.for_user(trader),
            end_time=start + 2 * MINUTE,
            now=start + 3 * MINUTE,
        )
    assert "end_time" in refused.value.fields
    assert AlgoOrder.objects.get(parent=parent).end_time == start + 5 * MINUTE


def test_cancel_cancels_open_children_and_skips_the_rest(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(
        trader,
        quantity="300",
        slices=3,
        start=start,
        minutes=3,
        order_type="LIMIT",
        price="10.05",
        time_in_force="GTC",
    )
    assert algo_release_due(now=start) == 1  # marketable at 10.01: 100 filled
    set_mid("AAPL", "10.50")  # now the 10.05 limit rests
    assert algo_release_due(now=start + MINUTE) == 1
    filled, resting = children(parent)
    assert (filled.status, resting.status) == ("FILLED", "ACCEPTED")
    # when the trader cancels the parent
    parent = algo_cancel(user=trader, order_id=parent.pk, actor=Actor.for_user(trader))
    # then its open child is cancelled, the last slice skipped and what filled is kept
    assert fresh(resting).status == "CANCELLED"
    assert (parent.status, parent.filled_quantity) == ("CANCELLED", Decimal(100))
    assert parent.status_reason == "cancelled with 100 of 300 filled"
    assert [(s.state, s.note) for s in slices_of(parent)] == [
        (SliceState.RELEASED, ""),
        (SliceState.RELEASED, ""),
        (SliceState.SKIPPED, "cancelled"),
    ]
    assert AlgoOrder.objects.get(parent=parent).state == AlgoState.CANCELLED
    assert algo_release_due(now=start + 2 * MINUTE) == 0
    assert len(children(parent)) == 2
    # and cancelling again is a conflict
    with pytest.raises(Conflict) as again:
        algo_cancel(user=trader, order_id=parent.pk, actor=Actor.for_user(trader))
    assert again.value.status_code == 409


# --- exactly once -----------------------------------------------------------------------------------


def test_a_slice_claimed_by_a_crashed_worker_is_placed_exactly_once(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, quantity="300", slices=3, start=start, minutes=3)
    algo = AlgoOrder.objects.get(parent=parent)
    # given a worker that claimed slice 0 (RELEASING, quantity and id fixed) and died before placing it
    AlgoSlice.objects.filter(algo=algo, seq=0).update(
        state=SliceState.RELEASING,
        released_quantity=Decimal(100),
        client_order_id=f"TMA{algo.pk}S0",
        released_at=start,
    )
    # when the next worker runs, at slice 1's time
    assert algo_release_due(now=start + MINUTE) == 2
    # then slice 0 is placed once under its fixed id, and slice 1 follows with its own 100
    assert [(c.client_order_id, c.quantity) for c in children(parent)] == [
        (f"TMA{algo.pk}S0", Decimal(100)),
        (f"TMA{algo.pk}S1", Decimal(100)),
    ]
    assert [(s.state, s.child_id) for s in slices_of(parent)[:2]] == [
        (SliceState.RELEASED, c.pk) for c in children(parent)
    ]
    assert algo_release_due(now=start + MINUTE) == 0
    assert len(children(parent)) == 2


def test_a_crash_after_placing_the_child_does_not_place_it_again(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, quantity="300", slices=3, start=start, minutes=3)
    assert algo_release_due(now=start) == 1
    [child] = children(parent)
    # given a worker that placed the child but died before marking the slice RELEASED
    AlgoSlice.objects.filter(algo__parent=parent, seq=0).update(state=SliceState.RELEASING, child=None)
    # when the next worker runs, it finds the child that exists instead of sending a second one
    assert algo_release_due(now=start) == 0
    assert children(parent) == [child]
    assert PaperOrder.objects.filter(client_order_id=child.client_order_id).count() == 1
    first = slices_of(parent)[0]
    assert (first.state, first.child_id) == (SliceState.RELEASED, child.pk)
    assert fresh(child).status == "FILLED"
    # and the schedule carries on as before
    assert algo_release_due(now=start + MINUTE) == 1
    assert [c.quantity for c in children(parent)] == [Decimal(100), Decimal(100)]


def test_running_twice_for_the_same_now_releases_nothing_twice(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, quantity="300", slices=3, start=start, minutes=3)
    assert algo_release_due(now=start) == 1
    assert algo_release_due(now=start) == 0
    assert algo_release_due(now=start + MINUTE + 5 * SECOND) == 1
    assert algo_release_due(now=start + MINUTE + 5 * SECOND) == 0
    assert [c.quantity for c in children(parent)] == [Decimal(100), Decimal(100)]
    assert len({c.client_order_id for c in children(parent)}) == 2


# --- progress and the live stream ------------------------------------------------------------------


def test_progress_compares_fills_with_the_schedule(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = twap(trader, start=start)
    algo = AlgoOrder.objects.get(parent=parent)
    before = algo_progress(algo, start - MINUTE)
    assert (before["scheduled_quantity"], before["filled_quantity"], before["next_slice_at"]) == (
        Decimal(0),
        Decimal(0),
        start,
    )
    algo_release_due(now=start)
    algo_release_due(now=start + MINUTE)
    on_time = algo_progress(algo, start + MINUTE)
    assert on_time["scheduled_quantity"] == Decimal(200)
    assert on_time["filled_quantity"] == Decimal(200)
    assert on_time["percent_filled"] == Decimal("40.00")
    assert on_time["percent_scheduled"] == Decimal("40.00")
    assert on_time["ahead_of_schedule"] == Decimal(0)
    assert on_time["next_slice_at"] == start + 2 * MINUTE
    assert (on_time["slices_total"], on_time["slices_released"]) == (5, 2)
    assert on_time["children"] == [c.pk for c in children(parent)]
    # slice 2 is due but not yet released: behind by its 100
    behind = algo_progress(algo, start + 2 * MINUTE)
    assert behind["scheduled_quantity"] == Decimal(300)
    assert behind["percent_scheduled"] == Decimal("60.00")
    assert behind["ahead_of_schedule"] == Decimal(-100)


def test_algo_progress_events_are_written_and_streamed_on_the_orders_topic(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = resting_twap(trader, start)
    actor = Actor.for_user(trader)
    assert len(progress_events(trader)) == 1  # scheduled
    algo_release_due(now=start)
    assert len(progress_events(trader)) == 2  # released slice 0
    released = progress_events(trader)[-1].payload["progress"]
    assert released["order_id"] == parent.pk
    assert released["children"] == [c.pk for c in children(parent)]
    assert Decimal(released["scheduled_quantity"]) == Decimal(100)  # as of the release, not the wall clock
    algo_pause(user=trader, order_id=parent.pk, actor=actor)
    algo_resume(user=trader, order_id=parent.pk, actor=actor, now=start + 30 * SECOND)
    algo_modify(user=trader, order_id=parent.pk, actor=actor, quantity=Decimal(400), now=start + 30 * SECOND)
    algo_cancel(user=trader, order_id=parent.pk, actor=actor)
    events = progress_events(trader)
    states = [(e.payload["progress"]["state"], e.payload["progress"]["quantity"]) for e in events]
    assert [s for s, _ in states] == ["RUNNING", "RUNNING", "PAUSED", "RUNNING", "RUNNING", "CANCELLED"]
    assert Decimal(states[4][1]) == Decimal(400)
    assert {e.payload["progress"]["order_id"] for e in events} == {parent.pk}
    # the live stream maps each to an ALGO_PROGRESS frame on the orders topic, and nowhere else
    last = events[-1]
    assert frames_for(envelope(last), ["orders", "fills", "positions"]) == [
        (
            "orders",
            {
                "type": "ALGO_PROGRESS",
                "event_id": str(last.event_id),
                "occurred_at": last.occurred_at.isoformat(),
                "data": last.payload,
            },
        )
    ]
    assert frames_for(envelope(last), ["fills", "positions"]) == []


# --- kill switch ---------------------------------------------------------------------------------------


def test_the_kill_switch_cancels_a_running_twap_and_its_children(trader, accounts, set_mid):
    set_mid("AAPL", "10.00")
    start = an_hour_ahead()
    parent = resting_twap(trader, start)
    assert algo_release_due(now=start) == 1
    [child] = children(parent)
    assert child.status == "ACCEPTED"
    # when the kill switch is engaged
    result = kill_switch_engage(user=trader, actor=Actor.for_user(trader))
    # then the parent is cancelled with its resting child, and nothing is left open
    assert result.cancelled == [parent.pk]
    assert result.cancel_failed == []
    assert fresh(parent).status == "CANCELLED"
    assert fresh(child).status == "CANCELLED"
    assert Order.objects.filter(user=trader).open().count() == 0
    assert AlgoOrder.objects.get(parent=parent).state == AlgoState.CANCELLED
    # and no slice is released afterwards
    assert algo_release_due(now=start + MINUTE) == 0
    assert algo_release_due(now=start + 3 * MINUTE) == 0
    assert children(parent) == [child]
    assert [s.state for s in slices_of(parent)[1:]] == [SliceState.SKIPPED] * 2
