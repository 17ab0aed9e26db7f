from __future__ import annotations

import django_filters

from orders.domain.enums import OPEN_STATUSES
from orders.models import Fill, Order, OrderStatusChoices, Position, SideChoices


class OrderFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=OrderStatusChoices.choices)
    open = django_filters.BooleanFilter(
        method="filter_open", label="Only open orders (true) or only closed (false)"
    )
    symbol = django_filters.CharFilter()
    side = django_filters.ChoiceFilter(choices=SideChoices.choices)
    broker_id = django_filters.NumberFilter(field_name="broker_id")
    client_order_id = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["status", "symbol", "side", "broker_id", "client_order_id"]

    def filter_open(self, queryset, name, value):
        statuses = [s.value for s in OPEN_STATUSES]
        return queryset.filter(status__in=statuses) if value else queryset.exclude(status__in=statuses)


class FillFilter(django_filters.FilterSet):
    order_id = django_filters.NumberFilter(field_name="order_id")
    symbol = django_filters.CharFilter()
    broker_id = django_filters.NumberFilter(field_name="broker_id")
    executed_after = django_filters.IsoDateTimeFilter(field_name="executed_at", lookup_expr="gte")

    class Meta:
        model = Fill
        fields = ["order_id", "symbol", "broker_id"]


class PositionFilter(django_filters.FilterSet):
    symbol = django_filters.CharFilter()
    broker_id = django_filters.NumberFilter(field_name="broker_id")

    class Meta:
        model = Position
        fields = ["symbol", "broker_id"]
