"""Server-rendered pages for traders: parse, call one service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from brokers.selectors import broker_account_list
from orders import selectors, services
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest
from orders.forms import OrderForm
from trademaster.errors import NotFound, TradeMasterError


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "orders/dashboard.html",
        {
            "accounts": broker_account_list(user=user).filter(user=user),
            "positions": selectors.position_aggregate(user=user),
            "open_orders": selectors.order_list_open(user=user).select_related("broker")[:50],
            "recent_orders": selectors.order_list(user=user).filter(user=user).select_related("broker")[:20],
            "fills": selectors.fill_list(user=user).filter(user=user).select_related("broker")[:20],
        },
    )


@login_required
def order_new(request: HttpRequest) -> HttpResponse:
    form = OrderForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            placed = services.order_place(
                user=request.user,
                request=OrderRequest(
                    symbol=d["symbol"].strip().upper(),
                    side=Side(d["side"]),
                    order_type=OrderType(d["order_type"]),
                    quantity=d["quantity"],
                    time_in_force=TimeInForce(d["time_in_force"]),
                    price=d["price"],
                    stop_price=d["stop_price"],
                    trail_amount=d["trail_amount"],
                    trail_percent=d["trail_percent"],
                ),
                broker_id=d["broker"].pk if d["broker"] else None,
                actor=services.Actor.for_user(request.user, f"{request.user.get_username()} (web)"),
            )
        except TradeMasterError as exc:
            for field, errors in exc.extra.get("fields", {}).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
            if "fields" not in exc.extra:
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Order {placed.order.pk} is {placed.order.status}.")
            return redirect("order-page", order_id=placed.order.pk)
    return render(request, "orders/order_form.html", {"form": form})


@login_required
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        order = selectors.order_get(user=request.user, order_id=order_id)
    except NotFound:
        return render(request, "404.html", status=404)
    return render(
        request,
        "orders/order_detail.html",
        {"order": order, "events": order.events.order_by("id"), "fills": order.fills.order_by("id")},
    )


@login_required
@require_POST
def order_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        order = services.order_cancel(
            user=request.user,
            order_id=order_id,
            actor=services.Actor.for_user(request.user, f"{request.user.get_username()} (web)"),
        )
    except TradeMasterError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order {order.pk} is {order.status}.")
    return redirect("order-page", order_id=order_id)
