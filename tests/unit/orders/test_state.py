"""Unit tests for the order state machine (orders/domain/state.py).

The expected table below is written out by hand, independently of ``TRANSITIONS``: every
(status, event) pair of OrderStatus x OrderEventType that is not listed in it must raise
IllegalTransition. Progress-dependent targets are written as ``Fill(...)`` / ``WORKING_BACK`` and
resolved here by the rules stated in the module docstring, under several Progress values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from orders.domain.enums import TERMINAL_STATUSES, OrderStatus
from orders.domain.state import IllegalTransition, OrderEventType, Progress, apply, can_apply

S = OrderStatus
E = OrderEventType


@dataclass(frozen=True)
class Fill:
    """A fill: FILLED once complete, otherwise ``partial``."""

    partial: OrderStatus


class _WorkingBack:
    """End of a cancel/replace request that left the order open: back to its working status."""

    def __repr__(self) -> str:
        return "WORKING_BACK"


WORKING_BACK = _WorkingBack()

# Progress values under which every pair is exercised.
NOTHING = Progress()
TRIGGERED_ONLY = Progress(triggered=True)
PARTIAL = Progress(filled=True)
PARTIAL_TRIGGERED = Progress(filled=True, triggered=True)
COMPLETE = Progress(filled=True, complete=True)
COMPLETE_TRIGGERED = Progress(filled=True, complete=True, triggered=True)
PROGRESSES = {
    "nothing": NOTHING,
    "triggered": TRIGGERED_ONLY,
    "partial": PARTIAL,
    "partial+triggered": PARTIAL_TRIGGERED,
    "complete": COMPLETE,
    "complete+triggered": COMPLETE_TRIGGERED,
}

# The hand-written legal table. Anything not here is illegal.
EXPECTED: dict[tuple[OrderStatus, OrderEventType], object] = {
    # PENDING: persisted locally, never sent
    (S.PENDING, E.SUBMIT): S.SUBMITTED,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    (S.PENDING, E.REJECT): S.REJECTED,
    # SUBMITTED
    (S.SUBMITTED, E.ACCEPT): S.ACCEPTED,
    (S.SUBMITTED, E.REJECT): S.REJECTED,
    (S.SUBMITTED, E.TRIGGER): S.TRIGGERED,
    (S.SUBMITTED, E.FILL): Fill(partial=S.PARTIALLY_FILLED),
    (S.SUBMITTED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.SUBMITTED, E.CANCEL): S.CANCELLED,
    (S.SUBMITTED, E.EXPIRE): S.EXPIRED,
    # ACCEPTED
    (S.ACCEPTED, E.ACCEPT): S.ACCEPTED,
    (S.ACCEPTED, E.REJECT): S.REJECTED,
    (S.ACCEPTED, E.TRIGGER): S.TRIGGERED,
    (S.ACCEPTED, E.FILL): Fill(partial=S.PARTIALLY_FILLED),
    (S.ACCEPTED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.ACCEPTED, E.CANCEL): S.CANCELLED,
    (S.ACCEPTED, E.REQUEST_REPLACE): S.PENDING_REPLACE,
    (S.ACCEPTED, E.EXPIRE): S.EXPIRED,
    # TRIGGERED
    (S.TRIGGERED, E.ACCEPT): S.TRIGGERED,
    (S.TRIGGERED, E.REJECT): S.REJECTED,
    (S.TRIGGERED, E.TRIGGER): S.TRIGGERED,
    (S.TRIGGERED, E.FILL): Fill(partial=S.PARTIALLY_FILLED),
    (S.TRIGGERED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.TRIGGERED, E.CANCEL): S.CANCELLED,
    (S.TRIGGERED, E.REQUEST_REPLACE): S.PENDING_REPLACE,
    (S.TRIGGERED, E.EXPIRE): S.EXPIRED,
    # PARTIALLY_FILLED
    (S.PARTIALLY_FILLED, E.ACCEPT): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.TRIGGER): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): Fill(partial=S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELLED,
    (S.PARTIALLY_FILLED, E.REQUEST_REPLACE): S.PENDING_REPLACE,
    (S.PARTIALLY_FILLED, E.EXPIRE): S.EXPIRED,
    # PENDING_CANCEL
    (S.PENDING_CANCEL, E.ACCEPT): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.TRIGGER): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILL): Fill(partial=S.PENDING_CANCEL),
    (S.PENDING_CANCEL, E.CANCEL): S.CANCELLED,
    (S.PENDING_CANCEL, E.CANCEL_REJECT): WORKING_BACK,
    (S.PENDING_CANCEL, E.EXPIRE): S.EXPIRED,
    (S.PENDING_CANCEL, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.REPLACE): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.REPLACE_REJECT): S.PENDING_CANCEL,
    # PENDING_REPLACE
    (S.PENDING_REPLACE, E.ACCEPT): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.TRIGGER): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.FILL): Fill(partial=S.PENDING_REPLACE),
    (S.PENDING_REPLACE, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_REPLACE, E.CANCEL): S.CANCELLED,
    (S.PENDING_REPLACE, E.REPLACE): WORKING_BACK,
    (S.PENDING_REPLACE, E.REPLACE_REJECT): WORKING_BACK,
    (S.PENDING_REPLACE, E.EXPIRE): S.EXPIRED,
    # closed orders: only a fill racing the close is applied
    (S.CANCELLED, E.FILL): Fill(partial=S.CANCELLED),
    (S.EXPIRED, E.FILL): Fill(partial=S.EXPIRED),
    # late answers after the close change nothing
    **{
        (st, ev): st
        for st in (S.FILLED, S.CANCELLED, S.EXPIRED)
        for ev in (E.CANCEL_REJECT, E.REPLACE_REJECT, E.ACCEPT)
    },
    # REJECTED takes nothing
}

ALL_PAIRS = list(itertools.product(OrderStatus, OrderEventType))
ILLEGAL_PAIRS = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


def _resolve(expected: object, progress: Progress) -> OrderStatus:
    if isinstance(expected, Fill):
        return S.FILLED if progress.complete else expected.partial
    if expected is WORKING_BACK:
        if progress.complete:
            return S.FILLED
        if progress.filled:
            return S.PARTIALLY_FILLED
        if progress.triggered:
            return S.TRIGGERED
        return S.ACCEPTED
    assert isinstance(expected, OrderStatus)
    return expected


def _pair_id(pair: tuple[OrderStatus, OrderEventType]) -> str:
    return f"{pair[0].value}+{pair[1].value}"


# ---------------------------------------------------------------------------------------------
# The full product
# ---------------------------------------------------------------------------------------------


def test_expected_table_covers_the_full_product_exactly():
    # given the hand-written table and the enums
    # when counting pairs
    # then the product has 132 pairs, 61 of them legal and 71 illegal
    assert len(ALL_PAIRS) == 11 * 12
    assert set(EXPECTED) <= set(ALL_PAIRS)
    assert len(EXPECTED) == 61
    assert len(ILLEGAL_PAIRS) == 71


@pytest.mark.parametrize("progress", PROGRESSES.values(), ids=PROGRESSES.keys())
@pytest.mark.parametrize("pair", list(EXPECTED), ids=_pair_id)
def test_legal_pair_gives_expected_status(pair, progress):
    # given a legal (status, event) pair and an order progress
    status, event = pair
    # when the event is applied
    result = apply(status, event, progress)
    # then the status is the one written in the expected table, resolved for that progress
    assert result is _resolve(EXPECTED[pair], progress)
    assert can_apply(status, event) is True


@pytest.mark.parametrize("progress", PROGRESSES.values(), ids=PROGRESSES.keys())
@pytest.mark.parametrize("pair", ILLEGAL_PAIRS, ids=_pair_id)
def test_illegal_pair_raises_naming_status_and_event(pair, progress):
    # given a (status, event) pair that is not in the expected table
    status, event = pair
    # when the event is applied
    with pytest.raises(IllegalTransition) as excinfo:
        apply(status, event, progress)
    # then the error names both the status and the event
    assert str(excinfo.value) == f"an order in status {status.value} cannot take event {event.value}"
    assert excinfo.value.status is status
    assert excinfo.value.event is event
    assert can_apply(status, event) is False


def test_default_progress_is_nothing_filled():
    # given no progress argument
    # when a fill is applied to an accepted order
    # then it is treated as a partial fill
    assert apply(S.ACCEPTED, E.FILL) is S.PARTIALLY_FILLED


# ---------------------------------------------------------------------------------------------
# Named key cases
# ---------------------------------------------------------------------------------------------


def test_happy_path_pending_to_filled():
    # given a new local order
    status = S.PENDING
    # when it is submitted, accepted, partly filled, then completely filled
    status = apply(status, E.SUBMIT)
    assert status is S.SUBMITTED
    status = apply(status, E.ACCEPT)
    assert status is S.ACCEPTED
    status = apply(status, E.FILL, PARTIAL)
    assert status is S.PARTIALLY_FILLED
    status = apply(status, E.FILL, PARTIAL)
    assert status is S.PARTIALLY_FILLED
    status = apply(status, E.FILL, COMPLETE)
    # then it ends FILLED
    assert status is S.FILLED


def test_fill_after_cancel_requested_partial_keeps_pending_cancel():
    # given a working order whose cancel was requested
    status = apply(S.ACCEPTED, E.REQUEST_CANCEL)
    assert status is S.PENDING_CANCEL
    # when a partial fill races the cancel
    status = apply(status, E.FILL, PARTIAL)
    # then the fill is applied and the order still waits on the cancel
    assert status is S.PENDING_CANCEL


def test_fill_after_cancel_requested_completing_fill_gives_filled():
    # given an order waiting on its cancel
    status = S.PENDING_CANCEL
    # when the completing fill arrives before the cancel confirmation
    status = apply(status, E.FILL, COMPLETE)
    # then the order is FILLED and a later cancel confirmation is illegal
    assert status is S.FILLED
    with pytest.raises(IllegalTransition):
        apply(status, E.CANCEL)


def test_partial_fill_while_pending_cancel_then_cancel_confirmed():
    # given an order partially filled while its cancel is pending
    status = apply(S.PARTIALLY_FILLED, E.REQUEST_CANCEL)
    status = apply(status, E.FILL, PARTIAL)
    # when the cancel is confirmed
    status = apply(status, E.CANCEL)
    # then it is CANCELLED
    assert status is S.CANCELLED


def test_partial_fill_after_cancelled_is_applied_and_stays_cancelled():
    # given a cancelled order
    # when a partial fill that raced the cancel arrives
    status = apply(S.CANCELLED, E.FILL, PARTIAL)
    # then the fill is applied (no raise) and the order stays closed
    assert status is S.CANCELLED


def test_completing_fill_after_cancelled_gives_filled():
    # given a cancelled order
    # when a fill that completes the quantity arrives late
    status = apply(S.CANCELLED, E.FILL, COMPLETE)
    # then the order is FILLED
    assert status is S.FILLED


def test_fill_after_expired_is_applied():
    # given an expired order
    # when racing fills arrive
    # then a partial keeps it EXPIRED and a completing fill makes it FILLED
    assert apply(S.EXPIRED, E.FILL, PARTIAL) is S.EXPIRED
    assert apply(S.EXPIRED, E.FILL, COMPLETE) is S.FILLED


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (NOTHING, S.ACCEPTED),
        (TRIGGERED_ONLY, S.TRIGGERED),
        (PARTIAL, S.PARTIALLY_FILLED),
        (PARTIAL_TRIGGERED, S.PARTIALLY_FILLED),
    ],
    ids=["nothing-filled", "triggered", "partial", "partial+triggered"],
)
def test_cancel_rejected_returns_to_working_status(progress, expected):
    # given an order waiting on a cancel
    # when the broker rejects the cancel
    status = apply(S.PENDING_CANCEL, E.CANCEL_REJECT, progress)
    # then the order returns to the status matching its progress
    assert status is expected


@pytest.mark.parametrize("event", [E.REPLACE, E.REPLACE_REJECT])
@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (NOTHING, S.ACCEPTED),
        (TRIGGERED_ONLY, S.TRIGGERED),
        (PARTIAL, S.PARTIALLY_FILLED),
        (PARTIAL_TRIGGERED, S.PARTIALLY_FILLED),
    ],
    ids=["nothing-filled", "triggered", "partial", "partial+triggered"],
)
def test_replace_confirmed_or_rejected_returns_to_working_status(event, progress, expected):
    # given an order waiting on a replace
    # when the replace is confirmed or rejected
    status = apply(S.PENDING_REPLACE, event, progress)
    # then the order is working again, in the status matching its progress
    assert status is expected


@pytest.mark.parametrize("working", [S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED])
def test_replace_round_trip_from_each_working_status(working):
    # given a working order
    progress = {
        S.ACCEPTED: NOTHING,
        S.TRIGGERED: TRIGGERED_ONLY,
        S.PARTIALLY_FILLED: PARTIAL,
    }[working]
    # when a replace is requested and then confirmed
    pending = apply(working, E.REQUEST_REPLACE, progress)
    done = apply(pending, E.REPLACE, progress)
    # then it passed through PENDING_REPLACE and is back where it started
    assert pending is S.PENDING_REPLACE
    assert done is working


def test_replace_not_allowed_before_acknowledgement():
    # given a submitted but unacknowledged order
    # when a replace is requested
    # then it is refused
    with pytest.raises(IllegalTransition):
        apply(S.SUBMITTED, E.REQUEST_REPLACE)


LATE_ANSWERS = (E.CANCEL_REJECT, E.REPLACE_REJECT, E.ACCEPT)


@pytest.mark.parametrize("closed", [S.FILLED, S.CANCELLED, S.EXPIRED])
@pytest.mark.parametrize("event", LATE_ANSWERS, ids=lambda e: e.value)
def test_late_answers_after_the_close_change_nothing(closed, event):
    # given a closed order
    # when a "too late to cancel/replace" or a late acknowledgement arrives
    status = apply(closed, event, COMPLETE)
    # then the order stays as it was
    assert status is closed


@pytest.mark.parametrize(
    ("terminal", "event"),
    [(S.REJECTED, e) for e in OrderEventType]
    + [(S.FILLED, e) for e in OrderEventType if e not in LATE_ANSWERS],
)
def test_filled_and_rejected_take_no_event(terminal, event):
    # given an order that is FILLED or REJECTED (other than a late answer to a FILLED one)
    # when any event is applied, even with full progress
    with pytest.raises(IllegalTransition) as excinfo:
        apply(terminal, event, COMPLETE)
    # then it is refused, naming the status and the event
    assert terminal.value in str(excinfo.value)
    assert event.value in str(excinfo.value)


@pytest.mark.parametrize("closed", [S.CANCELLED, S.EXPIRED])
@pytest.mark.parametrize("event", [e for e in OrderEventType if e is not E.FILL and e not in LATE_ANSWERS])
def test_cancelled_and_expired_take_nothing_but_a_fill(closed, event):
    # given a cancelled or expired order
    # when any event other than a fill arrives
    # then it is refused
    with pytest.raises(IllegalTransition):
        apply(closed, event)


def test_terminal_statuses_enum_matches_table_shape():
    # given the terminal statuses
    # when looking for legal pairs leaving them
    leaving = {pair for pair in EXPECTED if pair[0] in TERMINAL_STATUSES}
    # then only the racing fills on CANCELLED and EXPIRED, and late answers (no-ops), are there
    late = {(st, ev) for st in (S.FILLED, S.CANCELLED, S.EXPIRED) for ev in LATE_ANSWERS}
    assert leaving == {(S.CANCELLED, E.FILL), (S.EXPIRED, E.FILL)} | late
    assert all(apply(st, ev, COMPLETE) is st for st, ev in late)


def test_pending_can_be_cancelled_locally():
    # given an order never sent to the broker
    # when it is cancelled locally
    status = apply(S.PENDING, E.CANCEL)
    # then it is CANCELLED
    assert status is S.CANCELLED


@pytest.mark.parametrize("progress", [PARTIAL, COMPLETE], ids=["partial", "complete"])
def test_pending_cannot_be_filled(progress):
    # given an order never sent to the broker
    # when a fill is applied
    with pytest.raises(IllegalTransition) as excinfo:
        apply(S.PENDING, E.FILL, progress)
    # then it is refused
    assert str(excinfo.value) == "an order in status PENDING cannot take event FILL"


@pytest.mark.parametrize(
    "event", [E.ACCEPT, E.TRIGGER, E.REQUEST_CANCEL, E.REQUEST_REPLACE, E.EXPIRE, E.CANCEL_REJECT]
)
def test_pending_takes_no_broker_event(event):
    # given an order never sent to the broker
    # when a broker-side event or a cancel request arrives
    # then it is refused
    with pytest.raises(IllegalTransition):
        apply(S.PENDING, event)


def test_stop_trigger_from_accepted():
    # given an accepted stop order
    # when its stop fires
    status = apply(S.ACCEPTED, E.TRIGGER)
    # then it is TRIGGERED, and a fill then moves it on
    assert status is S.TRIGGERED
    assert apply(status, E.FILL, PARTIAL_TRIGGERED) is S.PARTIALLY_FILLED
    assert apply(status, E.FILL, COMPLETE_TRIGGERED) is S.FILLED


@pytest.mark.parametrize("status", [S.TRIGGERED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE])
def test_repeated_trigger_is_a_no_op(status):
    # given an order already triggered or further along
    # when a trigger notice arrives again
    # then the status is unchanged
    assert apply(status, E.TRIGGER, TRIGGERED_ONLY) is status


@pytest.mark.parametrize(
    "status", [S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE]
)
def test_late_accept_is_a_no_op(status):
    # given an order already acknowledged (or further along)
    # when the acknowledgement arrives late
    result = apply(status, E.ACCEPT, PARTIAL)
    # then nothing changes
    assert result is status


def test_accept_from_submitted():
    # given a submitted order
    # when the broker acknowledges it
    # then it is ACCEPTED
    assert apply(S.SUBMITTED, E.ACCEPT) is S.ACCEPTED


@pytest.mark.parametrize("status", [S.PENDING, S.SUBMITTED, S.ACCEPTED, S.TRIGGERED])
def test_reject_before_any_fill(status):
    # given an order not yet filled
    # when it is rejected (locally or by the broker)
    # then it is REJECTED
    assert apply(status, E.REJECT) is S.REJECTED


@pytest.mark.parametrize("status", [S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE])
def test_reject_after_fill_or_during_request_is_illegal(status):
    # given a partly filled order or one waiting on a cancel/replace
    # when an order reject arrives
    # then it is refused
    with pytest.raises(IllegalTransition):
        apply(status, E.REJECT)


def test_cancel_requested_while_replace_pending():
    # given an order waiting on a replace
    # when a cancel is requested
    status = apply(S.PENDING_REPLACE, E.REQUEST_CANCEL)
    # then the cancel takes over
    assert status is S.PENDING_CANCEL


OVERLAPPING = [
    (S.PENDING_CANCEL, E.REQUEST_REPLACE),
    (S.PENDING_REPLACE, E.REQUEST_REPLACE),
    (S.PENDING_REPLACE, E.CANCEL_REJECT),
]


@pytest.mark.parametrize(("event"), [E.REQUEST_CANCEL, E.REPLACE, E.REPLACE_REJECT], ids=lambda e: e.value)
def test_cancel_in_flight_absorbs_repeats_and_late_replace_answers(event):
    # given an order waiting on a cancel
    # when the cancel is requested again, or the answer to an earlier replace arrives
    status = apply(S.PENDING_CANCEL, event, PARTIAL)
    # then it keeps waiting on the cancel
    assert status is S.PENDING_CANCEL


@pytest.mark.parametrize(("status", "event"), OVERLAPPING, ids=[_pair_id(p) for p in OVERLAPPING])
def test_overlapping_requests_are_refused(status, event):
    # given an order already waiting on a cancel or replace
    # when a second request, or the answer to the other kind of request, arrives
    # then it is refused
    with pytest.raises(IllegalTransition):
        apply(status, event)


@pytest.mark.parametrize("status", [S.SUBMITTED, S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED])
def test_cancel_request_from_every_active_status(status):
    # given an active order
    # when a cancel is requested and then confirmed
    pending = apply(status, E.REQUEST_CANCEL)
    done = apply(pending, E.CANCEL)
    # then it goes through PENDING_CANCEL to CANCELLED
    assert pending is S.PENDING_CANCEL
    assert done is S.CANCELLED


@pytest.mark.parametrize(
    "status",
    [S.SUBMITTED, S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE],
)
def test_expire_from_every_open_broker_status(status):
    # given an order open at the broker
    # when it expires
    # then it is EXPIRED
    assert apply(status, E.EXPIRE) is S.EXPIRED


def test_progress_is_frozen_and_defaults_to_nothing():
    # given a default Progress
    progress = Progress()
    # then nothing is filled, complete or triggered, and it cannot be mutated
    assert (progress.filled, progress.complete, progress.triggered) == (False, False, False)
    with pytest.raises(AttributeError):
        progress.filled = True  # type: ignore[misc]
