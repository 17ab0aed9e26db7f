"""The dashboard: portfolio value, P&L, the day's equity chart, positions, open orders, brokers,
risk alerts, trading state and the kill switch. Every live part is a partial under ``/ui/dashboard/``
that htmx re-fetches when the stream says its topic changed."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from orders import portfolio, selectors, services
from orders.pages.common import web_actor, with_events, with_toast
from trademaster.errors import TradeMasterError


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    summary = portfolio.portfolio_summary(user=request.user)
    return render(
        request,
        "orders/dashboard.html",
        {
            "summary": summary,
            "figures": summary.figures,
            "curve": summary.curve,
            "positions": summary.positions,
            "accounts": summary.accounts,
            "alerts": summary.alerts,
        },
    )


@login_required
@require_GET
def summary_partial(request: HttpRequest) -> HttpResponse:
    figures = portfolio.portfolio_figures(user=request.user)
    return render(request, "orders/dashboard/_summary.html", {"figures": figures})


@login_required
@require_GET
def chart_partial(request: HttpRequest) -> HttpResponse:
    figures = portfolio.portfolio_figures(user=request.user)
    curve = portfolio.equity_curve(user=request.user, figures=figures)
    return render(request, "orders/dashboard/_chart.html", {"figures": figures, "curve": curve})


@login_required
@require_GET
def positions_partial(request: HttpRequest) -> HttpResponse:
    positions = selectors.position_aggregate(user=request.user)
    return render(request, "orders/dashboard/_positions.html", {"positions": positions})


@login_required
@require_GET
def brokers_partial(request: HttpRequest) -> HttpResponse:
    accounts = portfolio.broker_account_status_list(user=request.user)
    return render(request, "orders/dashboard/_brokers.html", {"accounts": accounts})


def _alerts(request: HttpRequest, error: str = "") -> HttpResponse:
    alerts = portfolio.risk_alert_list_active(user=request.user)
    return render(request, "orders/dashboard/_alerts.html", {"alerts": alerts, "alert_error": error})


@login_required
@require_GET
def alerts_partial(request: HttpRequest) -> HttpResponse:
    return _alerts(request)


@login_required
@require_POST
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    try:
        alert = portfolio.alert_acknowledge(user=request.user, alert_id=alert_id)
    except TradeMasterError as exc:
        return with_toast(
            _alerts(request, exc.message), kind="bad", title="Not acknowledged", text=exc.message
        )
    return with_toast(_alerts(request), kind="info", title="Alert acknowledged", text=alert.message)


def _kill_switch(request: HttpRequest, *, confirming: bool = False, error: str = "") -> HttpResponse:
    figures = portfolio.portfolio_figures(user=request.user)
    return render(
        request,
        "orders/dashboard/_kill_switch.html",
        {"figures": figures, "confirming": confirming, "kill_error": error},
    )


@login_required
@require_GET
def kill_switch_partial(request: HttpRequest) -> HttpResponse:
    """The kill switch control; ``?confirm=1`` shows the confirmation step."""
    return _kill_switch(request, confirming=request.GET.get("confirm") == "1")


@login_required
@require_POST
def kill_switch_engage(request: HttpRequest) -> HttpResponse:
    result = services.kill_switch_engage(user=request.user, actor=web_actor(request))
    text = f"{len(result.cancelled)} open order(s) cancelled."
    if result.cancel_failed:
        text += f" {len(result.cancel_failed)} not cancelled: " + "; ".join(
            f"order {pk}: {reason}" for pk, reason in result.cancel_failed
        )
    response = with_events(_kill_switch(request), "tm-risk", "tm-orders")
    # the stream announces the state change itself; this toast says what was cancelled
    return with_toast(response, kind="bad", title="Kill switch engaged", text=text)


@login_required
@require_POST
def kill_switch_release(request: HttpRequest) -> HttpResponse:
    try:
        services.kill_switch_release(user=request.user, actor=web_actor(request))
    except TradeMasterError as exc:
        return with_toast(
            _kill_switch(request, error=exc.message), kind="bad", title="Still halted", text=exc.message
        )
    # no toast: the stream announces "Trading ACTIVE", and the panel itself changes at once
    return with_events(_kill_switch(request), "tm-risk")
