"""The order tracker: open and recent orders, cancel and modify in place, the order's detail."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from orders import selectors, services
from orders.pages.common import web_actor
from trademaster.errors import NotFound, TradeMasterError


@login_required
def order_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "orders/orders.html",
        {
            "open_orders": selectors.order_list_open(user=user).select_related("broker")[:50],
            "recent_orders": selectors.order_list(user=user).filter(user=user).select_related("broker")[:20],
        },
    )


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
        order = services.order_cancel(user=request.user, order_id=order_id, actor=web_actor(request))
    except TradeMasterError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order {order.pk} is {order.status}.")
    return redirect("order-page", order_id=order_id)
