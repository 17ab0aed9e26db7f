"""Order entry: the form, the live dry-run (risk verdict, route, quote) and placement."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from orders import services
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest
from orders.forms import OrderForm
from orders.pages.common import web_actor
from trademaster.errors import TradeMasterError


@login_required
def trade(request: HttpRequest) -> HttpResponse:
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
                actor=web_actor(request),
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
    return render(request, "orders/trade.html", {"form": form})
