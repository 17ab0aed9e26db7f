"""The order state machine: a transition table and one function that applies it.

Every status change of an order goes through :func:`apply`. A pair that is not in the table is
an illegal transition and raises :class:`IllegalTransition`; nothing is silently overwritten.

Some targets depend on the order's progress rather than on the event alone; those are written
as the symbolic targets ``WORKING`` and ``FILL`` and resolved from the order's cumulative fill:

- ``WORKING``: the status an order returns to when a cancel or replace request ends without
  closing it (FILLED if a replace cut it to what already filled, PARTIALLY_FILLED if anything
  filled, TRIGGERED if its stop fired, else ACCEPTED).
- ``FILL``: FILLED once the cumulative quantity reaches the order quantity; before that
  PARTIALLY_FILLED, except that an order waiting on a cancel or replace keeps that status and a
  closed order (cancelled or expired, racing a fill) stays closed with the fill applied.

Real venues race: a fill may arrive after a cancel was requested or even confirmed. Such a fill
is always applied (see trading-anchors §4.1); only a fill that would exceed the order quantity is
refused, by the caller's quantity check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from orders.domain.enums import OrderStatus as S


class OrderEventType(StrEnum):
    SUBMIT = "SUBMIT"
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    TRIGGER = "TRIGGER"
    FILL = "FILL"
    REQUEST_CANCEL = "REQUEST_CANCEL"
    CANCEL = "CANCEL"
    CANCEL_REJECT = "CANCEL_REJECT"
    REQUEST_REPLACE = "REQUEST_REPLACE"
    REPLACE = "REPLACE"
    REPLACE_REJECT = "REPLACE_REJECT"
    EXPIRE = "EXPIRE"


E = OrderEventType

WORKING: Final = "WORKING"
FILL: Final = "FILL"
_SAME: Final = "SAME"

_ACTIVE = (S.SUBMITTED, S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED)
_AWAITING = (S.PENDING_CANCEL, S.PENDING_REPLACE)

TRANSITIONS: Final[dict[tuple[S, E], str]] = {
    (S.PENDING, E.SUBMIT): S.SUBMITTED,
    # a local cancel of an order that never left the service
    (S.PENDING, E.CANCEL): S.CANCELLED,
    # local refusal (validation, risk) or a broker refusal
    **{(s, E.REJECT): S.REJECTED for s in (S.PENDING, S.SUBMITTED, S.ACCEPTED, S.TRIGGERED)},
    (S.SUBMITTED, E.ACCEPT): S.ACCEPTED,
    # an acknowledgement that arrives late changes nothing
    **{(s, E.ACCEPT): _SAME for s in (S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED, *_AWAITING)},
    (S.SUBMITTED, E.TRIGGER): S.TRIGGERED,
    (S.ACCEPTED, E.TRIGGER): S.TRIGGERED,
    **{(s, E.TRIGGER): _SAME for s in (S.TRIGGERED, S.PARTIALLY_FILLED, *_AWAITING)},
    **{(s, E.FILL): FILL for s in (*_ACTIVE, *_AWAITING, S.CANCELLED, S.EXPIRED)},
    **{(s, E.REQUEST_CANCEL): S.PENDING_CANCEL for s in (*_ACTIVE, S.PENDING_REPLACE)},
    **{(s, E.CANCEL): S.CANCELLED for s in (*_ACTIVE, *_AWAITING)},
    (S.PENDING_CANCEL, E.CANCEL_REJECT): WORKING,
    # a second cancel request while one is in flight changes nothing (double click, retry)
    (S.PENDING_CANCEL, E.REQUEST_CANCEL): _SAME,
    # the answer to an earlier replace may arrive after a cancel was requested
    (S.PENDING_CANCEL, E.REPLACE): _SAME,
    (S.PENDING_CANCEL, E.REPLACE_REJECT): _SAME,
    # "too late to cancel/replace" and late acknowledgements arrive after the order closed
    **{
        (s, e): _SAME
        for s in (S.FILLED, S.CANCELLED, S.EXPIRED)
        for e in (E.CANCEL_REJECT, E.REPLACE_REJECT, E.ACCEPT)
    },
    **{(s, E.REQUEST_REPLACE): S.PENDING_REPLACE for s in (S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED)},
    (S.PENDING_REPLACE, E.REPLACE): WORKING,
    (S.PENDING_REPLACE, E.REPLACE_REJECT): WORKING,
    **{(s, E.EXPIRE): S.EXPIRED for s in (*_ACTIVE, *_AWAITING)},
}


class IllegalTransition(Exception):
    def __init__(self, status: S, event: E) -> None:
        super().__init__(f"an order in status {status} cannot take event {event}")
        self.status = status
        self.event = event


@dataclass(frozen=True, slots=True)
class Progress:
    """What the table needs to know about an order to resolve symbolic targets."""

    filled: bool = False  # anything filled so far (after this event)
    complete: bool = False  # cumulative filled quantity == order quantity (after this event)
    triggered: bool = False  # its stop has fired


def can_apply(status: S, event: E) -> bool:
    return (status, event) in TRANSITIONS


def apply(status: S, event: E, progress: Progress = Progress()) -> S:
    """Return the status after ``event``; raise IllegalTransition if the table forbids it."""
    try:
        target = TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(status, event) from None
    if target == _SAME:
        return status
    if target == WORKING:
        return _working(progress)
    if target == FILL:
        if progress.complete:
            return S.FILLED
        if status in (S.PENDING_CANCEL, S.PENDING_REPLACE, S.CANCELLED, S.EXPIRED):
            return status
        return S.PARTIALLY_FILLED
    return S(target)


def _working(progress: Progress) -> S:
    if progress.complete:
        return S.FILLED
    if progress.filled:
        return S.PARTIALLY_FILLED
    if progress.triggered:
        return S.TRIGGERED
    return S.ACCEPTED
