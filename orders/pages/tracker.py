"""The order tracker: open and recent orders, cancel and modify in place, the order's detail.

Every order row is ``templates/orders/tracker/_row.html`` (``tr#order-<pk>``); the live parts
re-fetch on ``tm-orders`` / ``tm-fills`` (``static/js/app.js``). A row action answered for htmx
returns the row itself (and a toast); without htmx it redirects as before.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from brokers.domain.adapter import OrderChange
from orders import selectors, services
from orders.domain.enums import OPEN_STATUSES, OrderStatus, OrderType
from orders.models import Fill, Order
from orders.pages.common import web_actor, with_toast
from routing import algos
from routing.models import AlgoOrder, RoutingDecision
from trademaster.errors import BrokerBusy, NotFound, TradeMasterError, ValidationFailed

# --- presentation -------------------------------------------------------------------------------

BADGES: dict[str, str] = {
    OrderStatus.PENDING: "info",
    OrderStatus.SUBMITTED: "info",
    OrderStatus.ACCEPTED: "info",
    OrderStatus.TRIGGERED: "info",
    OrderStatus.PENDING_CANCEL: "info",
    OrderStatus.PENDING_REPLACE: "info",
    OrderStatus.PARTIALLY_FILLED: "warn",
    OrderStatus.FILLED: "ok",
    OrderStatus.CANCELLED: "dim",
    OrderStatus.EXPIRED: "dim",
    OrderStatus.REJECTED: "bad",
}
OPEN = frozenset(s.value for s in OPEN_STATUSES)
# what a request is still in flight for: another cancel or change would only be refused
IN_FLIGHT = frozenset({OrderStatus.PENDING_CANCEL.value, OrderStatus.PENDING_REPLACE.value})

FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("All", ()),
    "open": ("Open", tuple(sorted(OPEN))),
    "filled": ("Filled", (OrderStatus.FILLED.value,)),
    "cancelled": ("Cancelled", (OrderStatus.CANCELLED.value, OrderStatus.EXPIRED.value)),
    "rejected": ("Rejected", (OrderStatus.REJECTED.value,)),
}
PAGE_LIMIT = 50
DECIMAL_TEXT = re.compile(r"-?\d+\.\d+")
PANEL_RECENT = 8


def num(value: Decimal | None, places: int = 0) -> str:
    """A Decimal as plain text without trailing zeros, with at least ``places`` decimals."""
    if value is None:
        return "—"
    text = f"{value.normalize():f}"
    if places:
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(places, '0')}"
    return text


@dataclass
class Row:
    """One order as the tracker shows it (numbers pre-formatted, never float)."""

    o: Order
    progress: dict[str, Any] | None = None
    compact: bool = False
    flash: bool = False
    focus_modify: bool = False
    error: str = ""

    @property
    def badge(self) -> str:
        return BADGES.get(self.o.status, "info")

    @property
    def is_open(self) -> bool:
        return self.o.status in OPEN

    @property
    def can_cancel(self) -> bool:
        return self.is_open and self.o.status != OrderStatus.PENDING_CANCEL

    @property
    def can_modify(self) -> bool:
        return self.is_open and self.o.status not in IN_FLIGHT and self.o.algo != "SPLIT"

    @property
    def qty(self) -> str:
        return num(self.o.quantity)

    @property
    def filled(self) -> str:
        return num(self.o.filled_quantity)

    @property
    def avg(self) -> str:
        return num(self.o.average_fill_price, 2)

    @property
    def commission(self) -> str:
        return num(self.o.commission, 2)

    @property
    def price_parts(self) -> list[tuple[str, str]]:
        """(label, value) pairs of the order's prices, by type."""
        o = self.o
        parts: list[tuple[str, str]] = []
        if o.stop_price is not None:
            parts.append(("stop", num(o.stop_price, 2)))
        if o.price is not None:
            parts.append(("limit" if o.order_type != OrderType.LIMIT else "", num(o.price, 2)))
        if o.trail_amount is not None:
            parts.append(("trail", num(o.trail_amount, 2)))
        if o.trail_percent is not None:
            parts.append(("trail", f"{num(o.trail_percent)}%"))
        return parts

    @property
    def broker_label(self) -> str:
        if self.o.broker_id:
            return str(self.o.broker)
        if self.o.algo:
            return f"{self.o.algo}: children routed"
        return "—"

    @property
    def status_parts(self) -> list[str]:
        """The status split at underscores (the template lets a narrow cell wrap there)."""
        return self.o.status.split("_")

    @property
    def type_parts(self) -> list[str]:
        return self.type_label.split("_")

    @property
    def type_label(self) -> str:
        return f"{self.o.order_type} · {self.o.algo}" if self.o.algo else self.o.order_type


def _algo_progress(orders: list[Order]) -> dict[int, dict[str, Any]]:
    """algo_progress (routing.algos, what GET /orders/<id>/algo/ returns) of each algo parent."""
    parents = [o.pk for o in orders if o.algo]
    if not parents:
        return {}
    return {a.parent_id: algos.algo_progress(a) for a in AlgoOrder.objects.filter(parent_id__in=parents)}


def rows(orders, *, compact: bool = False) -> list[Row]:
    orders = list(orders)
    progress = _algo_progress(orders)
    return [Row(o, progress.get(o.pk), compact=compact) for o in orders]


def _compact(request: HttpRequest) -> bool:
    return (request.POST.get("compact") or request.GET.get("compact")) == "1"


def one_row(request: HttpRequest, order_id: int, **extra) -> Row:
    row = rows([selectors.order_get(user=request.user, order_id=order_id)], compact=_compact(request))[0]
    for key, value in extra.items():
        setattr(row, key, value)
    return row


@dataclass
class Section:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    empty: str = "None."


def _top_level(user):
    return selectors.order_list(user=user).filter(user=user, parent__isnull=True).select_related("broker")


def sections(user, status: str, *, compact: bool = False) -> list[Section]:
    """Open orders, then recent closed ones (``all``); or one status group."""
    base = _top_level(user)
    limit = PANEL_RECENT if compact else PAGE_LIMIT
    if status == "all":
        return [
            Section(
                "open",
                "Open",
                rows(base.filter(status__in=OPEN).order_by("-id")[:PAGE_LIMIT], compact=compact),
                "No open orders.",
            ),
            Section(
                "recent",
                "Recent",
                rows(base.exclude(status__in=OPEN).order_by("-id")[:limit], compact=compact),
                "No closed orders yet.",
            ),
        ]
    title, statuses = FILTERS[status]
    found = base.filter(status__in=statuses).order_by("-id")[:PAGE_LIMIT]
    return [Section(status, title, rows(found, compact=compact), f"No {title.lower()} orders.")]


def _status_param(request: HttpRequest) -> str:
    status = request.GET.get("status", "all")
    return status if status in FILTERS else "all"


def _after(response: HttpResponse) -> HttpResponse:
    """Once the row settled, the live parts re-fetch (they skip while a row is being edited)."""
    response.headers["HX-Trigger-After-Settle"] = "tm-orders"
    return response


# --- list and panel -----------------------------------------------------------------------------


@login_required
@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    status = _status_param(request)
    return render(
        request,
        "orders/orders.html",
        {"status": status, "filters": FILTERS, "sections": sections(request.user, status)},
    )


@login_required
@require_GET
def orders_table(request: HttpRequest) -> HttpResponse:
    status = _status_param(request)
    return render(
        request,
        "orders/tracker/_list.html",
        {"status": status, "filters": FILTERS, "sections": sections(request.user, status)},
    )


@login_required
@require_GET
def panel(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "orders/tracker/_panel_body.html",
        {"sections": sections(request.user, "all", compact=True), "compact": True},
    )


# --- one row: show, cancel, modify --------------------------------------------------------------


class ModifyForm(forms.Form):
    """The new values of an inline change (blank or unchanged: keep)."""

    quantity = forms.DecimalField(label="New quantity", required=False, max_digits=20, decimal_places=8)
    price = forms.DecimalField(label="New limit price", required=False, max_digits=20, decimal_places=8)
    stop_price = forms.DecimalField(label="New stop price", required=False, max_digits=20, decimal_places=8)
    trail_amount = forms.DecimalField(
        label="New trail amount", required=False, max_digits=20, decimal_places=8
    )
    trail_percent = forms.DecimalField(label="New trail %", required=False, max_digits=10, decimal_places=4)

    def __init__(self, *args, order: Order, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.order = order
        for name in list(self.fields):
            if name not in self.applicable(order):
                del self.fields[name]
            else:
                value = getattr(order, name)
                self.fields[name].initial = None if value is None else num(value)

    @staticmethod
    def applicable(order: Order) -> list[str]:
        if order.algo:
            return ["quantity"]
        names = ["quantity"]
        if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            names.append("price")
        if order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
            names.append("stop_price")
        if order.order_type == OrderType.TRAILING_STOP:
            names.append("trail_percent" if order.trail_percent is not None else "trail_amount")
        return names

    def change(self) -> OrderChange:
        """Only what differs from the order (None keeps the old value)."""
        values = {
            name: value
            for name, value in self.cleaned_data.items()
            if value is not None and value != getattr(self.order, name)
        }
        return OrderChange(**values)


def _edit_response(
    request: HttpRequest, order: Order, form: ModifyForm, reasons: list[str] | None = None
) -> HttpResponse:
    return render(
        request,
        "orders/tracker/_edit_row.html",
        {
            "r": rows([order], compact=_compact(request))[0],
            "form": form,
            "reasons": reasons or [],
            # focus lands on the first field in error, else on the first field
            "focus": next((n for n in form.fields if n in form.errors), next(iter(form.fields))),
        },
    )


@login_required
@require_GET
def order_row(request: HttpRequest, order_id: int) -> HttpResponse:
    """The normal row (Keep after editing: focus returns to its Modify button)."""
    try:
        row = one_row(request, order_id, focus_modify=request.GET.get("focus") == "modify")
    except NotFound:
        return render(request, "404.html", status=404)
    return _after(render(request, "orders/tracker/_row.html", {"r": row}))


@login_required
@require_http_methods(["GET", "POST"])
def order_edit(request: HttpRequest, order_id: int) -> HttpResponse:
    """GET: the row as an inline form; POST: the change through ``order_replace``."""
    try:
        order = selectors.order_get(user=request.user, order_id=order_id)
    except NotFound:
        return render(request, "404.html", status=404)
    if request.method == "GET":
        if order.status not in OPEN:  # closed while the row was on screen: show it as it is now
            message = f"Order {order.pk} is {order.status} and can no longer be modified."
            row = one_row(request, order.pk, error=message)
            return _after(render(request, "orders/tracker/_row.html", {"r": row}))
        return _edit_response(request, order, ModifyForm(order=order))
    form = ModifyForm(request.POST, order=order)
    if not form.is_valid():
        return _edit_response(request, order, form)
    change = form.change()
    try:
        changed = services.order_replace(
            user=request.user, order_id=order.pk, change=change, actor=web_actor(request)
        )
    except ValidationFailed as exc:
        for name, errors in exc.fields.items():
            for error in errors:
                form.add_error(name if name in form.fields else None, error)
        return _edit_response(request, order, form)
    except TradeMasterError as exc:
        # a risk refusal lists each rule's reason (Conflict "risk_rejected", extra["reasons"])
        reasons = [r["reason"] for r in exc.extra.get("reasons", []) if isinstance(r, dict) and "reason" in r]
        form.add_error(None, "The pre-trade check refused the change." if reasons else exc.message)
        response = _edit_response(request, order, form, reasons)
        if isinstance(exc, BrokerBusy):
            with_toast(response, kind="warn", title=f"Order {order.pk} not changed", text=exc.message)
        return response
    row = one_row(request, changed.pk, flash=True, focus_modify=True)
    response = render(request, "orders/tracker/_row.html", {"r": row})
    wanted = {k: v for k, v in dataclasses.asdict(change).items() if v is not None}
    if changed.status == OrderStatus.PENDING_REPLACE:
        title, kind = f"Order {changed.pk}: change sent", "info"
    elif all(getattr(changed, k) == v for k, v in wanted.items()):
        title, kind = f"Order {changed.pk} modified", "info"
    else:  # the broker answered with a refusal (REPLACE_REJECT in the order's history)
        title, kind = f"Order {changed.pk} not changed by the broker", "warn"
    text = f"{_summary(changed)} · {changed.status}"
    return _after(with_toast(response, kind=kind, title=title, text=text))


def _summary(order: Order) -> str:
    row = Row(order)
    prices = " ".join(f"{label} {value}".strip() for label, value in row.price_parts)
    return f"{order.side} {row.qty} {order.symbol} {prices}".strip()


@login_required
@require_POST
def order_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        order = services.order_cancel(user=request.user, order_id=order_id, actor=web_actor(request))
    except NotFound:
        if request.htmx:
            return render(request, "404.html", status=404)
        messages.error(request, f"Order {order_id} does not exist.")
        return redirect("orders")
    except TradeMasterError as exc:
        if not request.htmx:
            messages.error(request, exc.message)
            return redirect("order-page", order_id=order_id)
        row = one_row(request, order_id, error=exc.message)
        response = render(request, "orders/tracker/_row.html", {"r": row})
        kind = "warn" if isinstance(exc, BrokerBusy) else "bad"
        return _after(
            with_toast(response, kind=kind, title=f"Order {order_id} not cancelled", text=exc.message)
        )
    if not request.htmx:
        messages.success(request, f"Order {order.pk} is {order.status}.")
        return redirect("order-page", order_id=order_id)
    row = one_row(request, order.pk, flash=True)
    response = render(request, "orders/tracker/_row.html", {"r": row})
    return _after(
        with_toast(response, kind="info", title=f"Order {order.pk} {order.status}", text=_summary(order))
    )


# --- the detail page ----------------------------------------------------------------------------


def _plain(value: Any) -> str:
    """A JSON value as short text: decimals without trailing zeros."""
    if isinstance(value, str) and DECIMAL_TEXT.fullmatch(value):
        return num(Decimal(value))
    return str(value)


def _present(value: Any) -> bool:
    return value not in ("", None, [], {})


def summarize(data: Any, limit: int = 160) -> str:
    """An event's data as one short line: ``key=value`` pairs, nested ones in braces."""

    def text(value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}={text(v)}" for k, v in value.items() if _present(v)) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(text(v) for v in value) + "]"
        return _plain(value)

    if isinstance(data, dict):
        line = ", ".join(f"{k}={text(v)}" for k, v in data.items() if _present(v))
    else:
        line = text(data)
    return line if len(line) <= limit else line[: limit - 1] + "…"


SCORES = ("score_bps", "price_bps", "liquidity_bps", "latency_bps", "reject_bps", "health_bps")


def _candidate(c: dict[str, Any], winner_id: int | None) -> dict[str, Any]:
    """A stored candidate for display: scores in bps to 2 decimals, the price without trailing zeros."""
    shown = dict(c)
    for key in SCORES:
        if isinstance(c.get(key), str) and DECIMAL_TEXT.fullmatch(c[key]):
            shown[key] = num(Decimal(c[key]).quantize(Decimal("0.01")), 2)
    if isinstance(c.get("all_in_price"), str) and DECIMAL_TEXT.fullmatch(c["all_in_price"]):
        shown["all_in_price"] = num(Decimal(c["all_in_price"]), 2)
    shown["winner"] = c.get("account_id") == winner_id
    return shown


def _routing(order: Order) -> dict[str, Any] | None:
    """The stored routing decision (what GET /orders/<id>/routing/ returns), winner first."""
    decision = RoutingDecision.objects.filter(order=order).select_related("winner").first()
    if decision is None:
        return None
    candidates = [_candidate(c, decision.winner_id) for c in decision.candidates]
    return {"decision": decision, "candidates": candidates}


def progress_text(p: dict[str, Any]) -> dict[str, Any]:
    """The algo's quantities as text, and whether it is behind its schedule."""
    ahead = p["ahead_of_schedule"]
    return {
        "filled": num(p["filled_quantity"]),
        "total": num(p["quantity"]),
        "scheduled": num(p["scheduled_quantity"]),
        "behind": ahead < 0,
        "gap": num(abs(ahead)),
    }


def _detail(request: HttpRequest, order_id: int) -> dict[str, Any]:
    order = selectors.order_get(user=request.user, order_id=order_id)
    order = Order.objects.select_related("broker").get(pk=order.pk)
    algo = AlgoOrder.objects.filter(parent=order).first()
    progress = algos.algo_progress(algo) if algo else None
    children = rows(Order.objects.filter(parent=order).select_related("broker").order_by("pk"))
    # an algo parent has no fills of its own: its children's are shown
    fills = (
        (Fill.objects.filter(order__parent=order) if order.algo else order.fills.all())
        .select_related("broker", "order")
        .order_by("id")
    )
    return {
        "order": order,
        "r": Row(order, progress),
        "prices": {
            "limit": num(order.price, 2),
            "stop": num(order.stop_price, 2),
            "trail": num(order.trail_amount, 2)
            if order.trail_amount is not None
            else f"{num(order.trail_percent)}%",
        },
        "pf": progress_text(progress) if progress else None,
        "algo": algo,
        "progress": progress,
        "slices": [{"s": x, "qty": num(x.quantity)} for x in algo.slices.order_by("seq")] if algo else [],
        "children": children,
        "events": [{"e": e, "summary": summarize(e.data)} for e in order.events.order_by("id")],
        "fills": [
            {"f": f, "qty": num(f.quantity), "price": num(f.price, 2), "fee": num(f.fee, 2)} for f in fills
        ],
        "routing": _routing(order),
    }


@login_required
@require_GET
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        context = _detail(request, order_id)
    except NotFound:
        return render(request, "404.html", status=404)
    return render(request, "orders/order_detail.html", context)


@login_required
@require_GET
def order_detail_live(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        context = _detail(request, order_id)
    except NotFound:
        return render(request, "404.html", status=404)
    return render(request, "orders/tracker/_detail_live.html", context)


def _algo_control(request: HttpRequest, order_id: int, action: str) -> HttpResponse:
    """Pause or resume an algo parent (routing.algos services), then the live part again."""
    control = {"pause": algos.algo_pause, "resume": algos.algo_resume}[action]
    try:
        control(user=request.user, order_id=order_id, actor=web_actor(request))
    except NotFound:
        return render(request, "404.html", status=404)
    except TradeMasterError as exc:
        response = render(request, "orders/tracker/_detail_live.html", _detail(request, order_id))
        return with_toast(response, kind="bad", title=f"Order {order_id} not {action}d", text=exc.message)
    context = {**_detail(request, order_id), "focus_algo": True}  # focus moves to Resume/Pause
    response = render(request, "orders/tracker/_detail_live.html", context)
    return with_toast(response, kind="info", title=f"Order {order_id} {action}d")


@login_required
@require_POST
def order_algo_pause(request: HttpRequest, order_id: int) -> HttpResponse:
    return _algo_control(request, order_id, "pause")


@login_required
@require_POST
def order_algo_resume(request: HttpRequest, order_id: int) -> HttpResponse:
    return _algo_control(request, order_id, "resume")
