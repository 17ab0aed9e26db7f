"""Order entry: the form, the live dry-run (risk verdict, route, quote) and placement.

``/trade/`` (``trade``, also ``order-new``) renders the entry card and the tracker panel. The
form posts back to it (htmx swaps the card ``#entry-card``; without JavaScript the whole page
comes back, and a placed order redirects to its page so that a reload cannot place it twice).
``/ui/trade/preview/`` re-renders ``#order-preview`` as the trader types, and ``/ui/trade/quote/``
the symbol's quote ``#quote``. The rules that turn a dry run into green/yellow/red and decide on
a confirmation are in ``orders.domain.entry``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from brokers.selectors import broker_account_list, quote_list
from orders import selectors, services
from orders.domain import entry
from orders.domain.enums import OrderStatus
from orders.domain.validation import asset_class_of
from orders.forms import OrderForm
from orders.pages.common import web_actor, with_events, with_toast
from risk.services import risk_profile_get
from routing.domain.scoring import order_to_route
from routing.services import route_quote
from trademaster.errors import TradeMasterError, ValidationFailed

KEEP_AFTER_PLACING = ("symbol", "side", "order_type", "time_in_force", "broker")


# --- the dry run --------------------------------------------------------------------------------


def _limits(user) -> entry.Limits:
    p = risk_profile_get(user=user)
    return entry.Limits(
        order_notional=p.max_order_notional,
        order_quantity=p.max_order_quantity,
        position_notional=p.max_position_notional,
        gross_exposure=p.max_gross_exposure,
        net_exposure=p.max_net_exposure,
    )


def _dry_run(user, form: OrderForm, *, explain: bool = True) -> dict[str, Any]:
    """What placing the form's order would do now (``orders.services.order_preview``), as the form
    shows it. Raises TradeMasterError when the order cannot be checked at all."""
    request = form.order_request()
    broker_id = form.broker_id()
    preview = services.order_preview(user=user, request=request, broker_id=broker_id)
    account = preview.account
    equity = sum((a.total_value for a in broker_account_list(user=user).filter(is_active=True)), Decimal(0))
    verdict = entry.evaluate(
        assessment=preview.assessment,
        quantity=request.quantity,
        limits=_limits(user),
        equity=equity,
        confirm_threshold=settings.ORDER_CONFIRM_NOTIONAL,
        route_status=account.connection_status,
        route_label=str(account),
    )
    result: dict[str, Any] = {
        "level": verdict.level,
        "reasons": verdict.reasons,
        "confirm": verdict.confirm,
        "account": account,
        "projected": preview.assessment.projected,
        "algo": form.cleaned_data.get("algo") or "",
    }
    if explain:
        asset_class = asset_class_of(request.symbol)
        assert asset_class is not None  # order_preview validated the symbol
        # why that account: every venue scored or skipped (and the split a large order would get)
        result["route"] = route_quote(
            user=user, order=order_to_route(request, asset_class), broker_id=broker_id
        )
    return result


def _incomplete(problems: list[str]) -> dict[str, Any]:
    return {"level": entry.RiskLevel.NONE, "reasons": problems}


def _labelled(form: OrderForm, exc: ValidationFailed) -> list[str]:
    out = []
    for name, errors in exc.fields.items():
        for error in errors:
            target, text = entry.form_error(name, str(error), form.fields)
            out.append(f"{form.fields[target].label}: {text}" if target else text)
    return out


@login_required
@require_POST
def preview(request: HttpRequest) -> HttpResponse:
    form = OrderForm(request.POST, user=request.user)
    if not form.ready():
        needed = [
            what
            for name, what in (("symbol", "a symbol"), ("quantity", "a quantity"))
            if not str(form.current(name) or "").strip()
        ]
        ctx = _incomplete([f"Enter {' and '.join(needed)} to see the risk check and the route."])
    elif not form.is_valid():
        ctx = _incomplete(form.missing())
    else:
        try:
            ctx = _dry_run(request.user, form)
        except ValidationFailed as exc:
            ctx = _incomplete(_labelled(form, exc))
        except TradeMasterError as exc:
            ctx = {"level": entry.RiskLevel.RED, "reasons": [exc.message, *exc.extra.get("candidates", [])]}
    return render(request, "orders/entry/_preview.html", {"preview": ctx})


@login_required
@require_GET
def quote(request: HttpRequest) -> HttpResponse:
    symbol = request.GET.get("symbol", "").strip().upper()
    ctx: dict[str, Any] = {"symbol": symbol}
    if symbol:
        try:
            quotes = quote_list(user=request.user, symbol=symbol)
        except TradeMasterError:
            ctx["problem"] = f"No quote for {symbol}."
        else:
            ctx["top"] = entry.top_of_book(symbol, [q for _, q in quotes])
    return render(request, "orders/entry/_quote.html", ctx)


# --- the page and placement ---------------------------------------------------------------------


def _respond(request: HttpRequest, form: OrderForm, **extra: Any) -> HttpResponse:
    ctx = {"form": form, "symbols": form.known_symbols(), **extra}
    template = "orders/entry/_card.html" if request.htmx else "orders/trade.html"
    return render(request, template, ctx)


def _rejection(user, order) -> list[str]:
    events = selectors.order_event_list(user=user, order_id=order.pk)
    rejected = [e.data for e in reversed(events) if e.to_status == OrderStatus.REJECTED.value]
    return entry.rejection_reasons(order.status_reason, rejected)


@login_required
def trade(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        initial = {k: request.GET[k] for k in ("symbol", "side", "order_type") if request.GET.get(k)}
        return _respond(request, OrderForm(user=request.user, initial=initial))
    form = OrderForm(request.POST, user=request.user)
    if not form.is_valid():
        return _respond(request, form)
    user = request.user
    key = entry.confirmation_key(form.order_values())
    confirmed = request.POST.get("confirmed") == "1" and request.POST.get("confirm_key") == key
    if not confirmed:
        try:
            dry = _dry_run(user, form, explain=False)
        except TradeMasterError as exc:
            form.add_service_error(exc)
            return _respond(request, form)
        if dry["confirm"]:
            return _respond(request, form, confirm=dry["confirm"], confirm_key=key, preview=dry)
    try:
        placed = services.order_place(
            user=user,
            request=form.order_request(),
            broker_id=form.broker_id(),
            algo=form.algo_params(),
            actor=web_actor(request),
        )
    except TradeMasterError as exc:
        form.add_service_error(exc)
        return _respond(request, form)
    order = placed.order
    if order.status == OrderStatus.REJECTED.value:
        reasons = _rejection(user, order)
        response = with_events(_respond(request, form, rejected=order, rejected_reasons=reasons), "tm-orders")
        return with_toast(response, kind="bad", title=f"Order {order.pk} rejected", text=reasons[0])
    if not request.htmx:
        messages.success(request, f"Order {order.pk} is {order.status}.")
        return redirect("order-page", order_id=order.pk)
    fresh = OrderForm(user=user, initial={k: form.cleaned_data.get(k) for k in KEEP_AFTER_PLACING})
    response = with_events(_respond(request, fresh, placed=order), "tm-orders", "tm-positions")
    return with_toast(
        response,
        kind="info",
        title=f"Order {order.pk} placed",
        text=f"{order.side} {order.quantity.normalize():f} {order.symbol} {order.order_type} · "
        f"{order.status}",
    )
