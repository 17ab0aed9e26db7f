"""The trader's pages and the partials htmx re-fetches (``/ui/...``)."""

from django.urls import path

from orders.pages import dashboard, entry, positions, tracker

urlpatterns = [
    # dashboard.py
    path("", dashboard.dashboard, name="dashboard"),
    # entry.py
    path("trade/", entry.trade, name="trade"),
    path("orders/new/", entry.trade, name="order-new"),
    # tracker.py
    path("orders/", tracker.order_list, name="orders"),
    path("orders/<int:order_id>/", tracker.order_detail, name="order-page"),
    path("orders/<int:order_id>/cancel/", tracker.order_cancel, name="order-cancel-page"),
    # positions.py
    path("positions/", positions.positions, name="positions"),
]
