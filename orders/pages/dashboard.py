"""The dashboard: portfolio value, P&L, positions, open orders, brokers, risk state."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from brokers.selectors import broker_account_list
from orders import selectors


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
