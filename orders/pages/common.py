"""What every page module shares."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse

from orders.services import Actor


def web_actor(request: HttpRequest) -> Actor:
    """The person at the browser, as the order event log names them."""
    return Actor.for_user(request.user, f"{request.user.get_username()} (web)")


def _add_triggers(response: HttpResponse, events: dict[str, Any]) -> HttpResponse:
    triggers: dict[str, Any] = json.loads(response.headers.get("HX-Trigger", "{}") or "{}")
    triggers.update(events)
    response.headers["HX-Trigger"] = json.dumps(triggers)
    return response


def with_toast(response: HttpResponse, *, kind: str, title: str, text: str = "") -> HttpResponse:
    """Ask the page for a toast (``static/js/app.js`` listens for ``tm-toast``)."""
    return _add_triggers(response, {"tm-toast": {"kind": kind, "title": title, "text": text}})


def with_events(response: HttpResponse, *events: str) -> HttpResponse:
    """Also fire these body events (e.g. ``tm-orders``) so the live parts re-fetch at once,
    before the stream reports the change."""
    return _add_triggers(response, dict.fromkeys(events, True))
