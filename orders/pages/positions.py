"""Positions per broker and per symbol, with close and reduce."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from orders import selectors


@login_required
def positions(request: HttpRequest) -> HttpResponse:
    return render(
        request, "orders/positions.html", {"positions": selectors.position_aggregate(user=request.user)}
    )
