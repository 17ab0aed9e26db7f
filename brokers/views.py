"""Server-rendered broker pages: connecting a Schwab account through Schwab's OAuth login."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from brokers import schwab_oauth
from brokers.selectors import broker_account_get
from trademaster.errors import NotFound


def _redirect_uri(request: HttpRequest) -> str:
    return settings.SCHWAB_REDIRECT_URI or request.build_absolute_uri(reverse("brokers:schwab-callback"))


def _failed(request: HttpRequest, message: str, account=None) -> HttpResponse:
    return render(request, "brokers/schwab_error.html", {"message": message, "account": account}, status=400)


@login_required
@require_GET
def schwab_connect(request: HttpRequest, account_id: int) -> HttpResponse:
    """Send the browser to Schwab's login for this account (owner or staff only)."""
    try:
        account = broker_account_get(user=request.user, account_id=account_id)
    except NotFound:
        raise Http404("no such broker account") from None
    try:
        url = schwab_oauth.schwab_authorize_start(
            user=request.user, account=account, redirect_uri=_redirect_uri(request)
        )
    except schwab_oauth.SchwabOAuthError as exc:
        return _failed(request, exc.message, account)
    return redirect(url)


@login_required
@require_GET
def schwab_callback(request: HttpRequest) -> HttpResponse:
    """Where Schwab sends the browser back: exchange the code, then say until when it is connected."""
    if request.GET.get("error"):
        error = request.GET.get("error_description") or request.GET["error"]
        return _failed(request, f"Schwab did not authorize the connection ({error}): connect again.")
    try:
        connection = schwab_oauth.schwab_authorize_finish(
            user=request.user,
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
            redirect_uri=_redirect_uri(request),
        )
    except NotFound:
        raise Http404("no such broker account") from None
    except schwab_oauth.SchwabOAuthError as exc:
        return _failed(request, exc.message)
    return render(request, "brokers/schwab_connected.html", {"connection": connection})
