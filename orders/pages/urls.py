"""The trader's pages and the partials htmx re-fetches (``/ui/...``)."""

from django.urls import path

from orders.pages import dashboard, entry, positions, tracker

urlpatterns = [
    # dashboard.py
    path("", dashboard.dashboard, name="dashboard"),
    path("ui/dashboard/summary/", dashboard.summary_partial, name="ui-dashboard-summary"),
    path("ui/dashboard/chart/", dashboard.chart_partial, name="ui-dashboard-chart"),
    path("ui/dashboard/positions/", dashboard.positions_partial, name="ui-dashboard-positions"),
    path("ui/dashboard/brokers/", dashboard.brokers_partial, name="ui-dashboard-brokers"),
    path("ui/dashboard/alerts/", dashboard.alerts_partial, name="ui-dashboard-alerts"),
    path("ui/alerts/<int:alert_id>/acknowledge/", dashboard.alert_acknowledge, name="ui-alert-acknowledge"),
    path("ui/kill-switch/", dashboard.kill_switch_partial, name="ui-kill-switch"),
    path("ui/kill-switch/engage/", dashboard.kill_switch_engage, name="ui-kill-switch-engage"),
    path("ui/kill-switch/release/", dashboard.kill_switch_release, name="ui-kill-switch-release"),
    # entry.py
    path("trade/", entry.trade, name="trade"),
    path("orders/new/", entry.trade, name="order-new"),
    path("ui/trade/preview/", entry.preview, name="ui-trade-preview"),
    path("ui/trade/quote/", entry.quote, name="ui-trade-quote"),
    # tracker.py
    path("orders/", tracker.order_list, name="orders"),
    path("orders/<int:order_id>/", tracker.order_detail, name="order-page"),
    path("orders/<int:order_id>/cancel/", tracker.order_cancel, name="order-cancel-page"),
    path("ui/orders/panel/", tracker.panel, name="ui-orders-panel"),
    path("ui/orders/table/", tracker.orders_table, name="ui-orders-table"),
    path("ui/orders/<int:order_id>/row/", tracker.order_row, name="ui-order-row"),
    path("ui/orders/<int:order_id>/edit/", tracker.order_edit, name="ui-order-edit"),
    path("ui/orders/<int:order_id>/live/", tracker.order_detail_live, name="ui-order-live"),
    path("ui/orders/<int:order_id>/pause/", tracker.order_algo_pause, name="ui-order-pause"),
    path("ui/orders/<int:order_id>/resume/", tracker.order_algo_resume, name="ui-order-resume"),
    # positions.py
    path("positions/", positions.positions, name="positions"),
    path("ui/positions/", positions.tables_partial, name="ui-positions"),
    path("ui/positions/confirm/", positions.confirm_row, name="ui-position-confirm"),
    path("ui/positions/close/", positions.close, name="ui-position-close"),
    path("ui/positions/close-all/", positions.close_all, name="ui-position-close-all"),
]
