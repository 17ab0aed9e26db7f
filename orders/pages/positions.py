"""Positions per symbol (netted across brokers) and per broker account, with close and reduce.

Close and Reduce ask for confirmation inline: the button fetches the row in its confirming
state (``ui-position-confirm``), whose form posts to ``ui-position-close`` (or
``ui-position-close-all`` for a symbol's every leg). A success answers with the refreshed tables
and a toast; a bad quantity answers with the confirming row and its field error."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from orders import portfolio
from orders.domain.closing import closing_order
from orders.domain.enums import OrderStatus
from orders.models import Order
from orders.pages.common import web_actor, with_toast
from trademaster.errors import TradeMasterError, ValidationFailed

ACTIONS = ("close", "reduce", "close-all")


def _tables(request: HttpRequest, *, result: dict | None = None) -> HttpResponse:
    book = portfolio.position_book(user=request.user)
    return render(request, "orders/positions/_tables.html", {"book": book, "result": result})


def _whole_tables(request: HttpRequest, *, result: dict | None = None) -> HttpResponse:
    """The tables, swapped for the whole wrapper whatever element asked (a row's form did)."""
    return reswap(retarget(_tables(request, result=result), "#positions-tables"), "outerHTML")


@login_required
@require_GET
def positions(request: HttpRequest) -> HttpResponse:
    return render(request, "orders/positions.html", {"book": portfolio.position_book(user=request.user)})


@login_required
@require_GET
def tables_partial(request: HttpRequest) -> HttpResponse:
    return _tables(request)


def _broker_id(value: str) -> int:
    """The broker account pk a form sent (0, which names no account, when it is not a number)."""
    return int(value) if value.isdigit() else 0


def _confirm_row(
    request: HttpRequest, *, action: str, symbol: str, broker: str, quantity: str = "", errors=None
) -> HttpResponse:
    context = {"action": action, "confirming": True, "reduce_value": quantity, "errors": errors or {}}
    try:
        if action == "close-all":
            context["p"] = portfolio.position_symbol_get(user=request.user, symbol=symbol)
            return render(request, "orders/positions/_symbol_row.html", context)
        position = portfolio.position_get(user=request.user, broker_id=_broker_id(broker), symbol=symbol)
    except TradeMasterError as exc:
        return _whole_tables(request, result={"kind": "error", "text": exc.message})
    context["p"], context["closing"] = position, closing_order(position.quantity)
    return render(request, "orders/positions/_broker_row.html", context)


@login_required
@require_GET
def confirm_row(request: HttpRequest) -> HttpResponse:
    """A position row in its confirming state (``?action=close|reduce|close-all&symbol=&broker=``)."""
    action = request.GET.get("action", "")
    if action not in ACTIONS:
        return _whole_tables(request, result={"kind": "error", "text": "Unknown action."})
    return _confirm_row(
        request, action=action, symbol=request.GET.get("symbol", ""), broker=request.GET.get("broker", "")
    )


def _placed(request: HttpRequest, orders: list[Order], what: str) -> HttpResponse:
    """The refreshed tables (swapped for the whole wrapper), the outcome and a toast."""
    outcome = ", ".join(f"order {o.pk} {o.status} at {o.broker}" for o in orders)
    rejected = [o for o in orders if o.status == OrderStatus.REJECTED]
    if rejected:
        reasons = "; ".join(f"order {o.pk}: {o.status_reason}" for o in rejected)
        response = _whole_tables(request, result={"kind": "error", "text": f"{what} rejected. {reasons}"})
        return with_toast(response, kind="bad", title=f"{what} rejected", text=reasons)
    response = _whole_tables(request, result={"kind": "success", "text": f"{what}: {outcome}."})
    return with_toast(response, kind="info", title=what, text=outcome)


@login_required
@require_POST
def close(request: HttpRequest) -> HttpResponse:
    """Close (``action=close``) or reduce (``action=reduce``, ``quantity``) one broker's position."""
    action = request.POST.get("action", "close")
    symbol, broker = request.POST.get("symbol", ""), request.POST.get("broker", "")
    raw = request.POST.get("quantity", "").strip().replace(",", "")
    reduce_by: Decimal | None = None
    if action == "reduce":
        try:
            reduce_by = Decimal(raw)
        except InvalidOperation:
            errors = {"quantity": ["Enter a number."] if raw else ["Enter the quantity to reduce by."]}
            return _confirm_row(
                request, action=action, symbol=symbol, broker=broker, quantity=raw, errors=errors
            )
    try:
        order = portfolio.position_close(
            user=request.user,
            broker_id=_broker_id(broker),
            symbol=symbol,
            actor=web_actor(request),
            reduce_by=reduce_by,
        )
    except ValidationFailed as exc:  # shown under the quantity, the one field the person typed
        errors = {"quantity": [message for messages in exc.fields.values() for message in messages]}
        return _confirm_row(request, action=action, symbol=symbol, broker=broker, quantity=raw, errors=errors)
    except TradeMasterError as exc:
        response = _whole_tables(request, result={"kind": "error", "text": exc.message})
        return with_toast(response, kind="bad", title="Not placed", text=exc.message)
    verb = "Reduce" if action == "reduce" else "Close"
    return _placed(request, [order], f"{verb} {symbol}")


@login_required
@require_POST
def close_all(request: HttpRequest) -> HttpResponse:
    """Close every leg of a symbol: one market order per broker account holding it."""
    symbol = request.POST.get("symbol", "")
    try:
        orders = portfolio.position_close_all(user=request.user, symbol=symbol, actor=web_actor(request))
    except TradeMasterError as exc:
        response = _whole_tables(request, result={"kind": "error", "text": exc.message})
        return with_toast(response, kind="bad", title="Not placed", text=exc.message)
    return _placed(request, orders, f"Close {symbol} at every broker")
