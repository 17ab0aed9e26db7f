"""The pre-trade check's reads, in plain SQL: a handful of point lookups by index.

The check runs on every order under the user's lock, so its reads are written once here rather
than compiled by the ORM on each call (a compiled ORM query costs about three times the round
trip on a small machine). Each function returns plain values or unsaved-looking model instances
built from exactly the columns it selected. The SQL runs on PostgreSQL and SQLite alike: decimal,
date and JSON columns are read as text (exact on PostgreSQL; SQLite keeps DECIMAL as a float, and
its text is what the ORM would have read) and parsed here; SQLite has no row locks (it locks the
whole database for a writing transaction), so FOR UPDATE is added only where the backend has it.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import connection, models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from brokers.models import BrokerAccount
from orders.domain.enums import AssetClass
from risk.domain.book import BookLeg
from risk.models import RiskBook, RiskBookLeg, RiskProfile

_AS_TEXT = {"DecimalField", "JSONField", "DateField"}


def _for_update(of: str) -> str:
    if not connection.features.has_select_for_update:
        return ""
    return f" FOR UPDATE OF {of}" if connection.features.has_select_for_update_of else " FOR UPDATE"


@cache
def _fields(model: type[models.Model], names: tuple[str, ...] | None = None) -> tuple[models.Field, ...]:
    """The columns read for ``model``: every concrete one but timestamps, or ``names``."""
    fields = model._meta.concrete_fields
    if names is not None:
        return tuple(model._meta.get_field(n) for n in names)
    return tuple(f for f in fields if f.get_internal_type() != "DateTimeField")


def _select(fields: tuple[models.Field, ...], alias: str) -> str:
    columns = []
    for f in fields:
        column = f"{alias}.{connection.ops.quote_name(f.column)}"
        columns.append(f"CAST({column} AS TEXT)" if f.get_internal_type() in _AS_TEXT else column)
    return ", ".join(columns)


def _value(field: models.Field, raw: Any) -> Any:
    if raw is None:
        return None
    if isinstance(field, models.JSONField):
        return json.loads(raw) if isinstance(raw, str) else raw
    return field.to_python(raw)


def _instance(model: type[models.Model], fields: tuple[models.Field, ...], row: tuple) -> Any:
    instance = model(**{f.attname: _value(f, v) for f, v in zip(fields, row, strict=True)})
    instance._state.adding = False  # a stored row: save() updates it
    return instance


@cache
def _profile_sql(vendor: str) -> str:
    return (
        f"SELECT {_select(_fields(RiskProfile), 'p')} FROM risk_profiles p "
        f"WHERE p.user_id = %s{_for_update('p')}"
    )


def profile_locked(user_id: int) -> RiskProfile | None:
    """The user's RiskProfile under its row lock (the risk lock).

    The lock is taken by a statement of its own: under READ COMMITTED a statement that waited
    for a row lock returns the locked row as it is now, but any other table it joins as it was
    when the statement began. Whatever is guarded by the lock is read by the next statements.
    """
    with connection.cursor() as cursor:
        cursor.execute(_profile_sql(connection.vendor), [user_id])
        row = cursor.fetchone()
    return None if row is None else _instance(RiskProfile, _fields(RiskProfile), row)


_LEG = ("broker", "symbol", "asset_class", "net", "open_buy", "open_sell", "open_orders")
_LEG += ("mark", "order_price", "reserved", "market_value")


@cache
def _book_sql(vendor: str) -> str:
    return (
        f"SELECT {_select(_fields(RiskBook), 'b')}, "
        "(SELECT CAST(SUM(a.cash) AS TEXT) FROM broker_accounts a WHERE a.user_id = b.user_id), "
        f"{_select(_fields(RiskBookLeg, _LEG), 'l')} "
        "FROM risk_books b LEFT JOIN risk_book_legs l ON l.user_id = b.user_id AND l.symbol = %s "
        "WHERE b.user_id = %s ORDER BY l.broker_id"
    )


def book_read(user_id: int, symbol: str) -> tuple[RiskBook | None, list[BookLeg], Decimal]:
    """The user's RiskBook, the stored legs of ``symbol`` by account, and the cash of all the
    user's accounts. Read under the risk lock."""
    book_fields, leg_fields = _fields(RiskBook), _fields(RiskBookLeg, _LEG)
    with connection.cursor() as cursor:
        cursor.execute(_book_sql(connection.vendor), [symbol, user_id])
        rows = cursor.fetchall()
    if not rows:
        return None, [], Decimal(0)
    split = len(book_fields)
    book = _instance(RiskBook, book_fields, rows[0][:split])
    cash = Decimal(rows[0][split] or 0)
    legs = []
    for row in rows:
        if row[split + 1] is None:  # no leg in this symbol
            continue
        v = {f.attname: _value(f, raw) for f, raw in zip(leg_fields, row[split + 1 :], strict=True)}
        legs.append(
            BookLeg(
                broker_id=v["broker_id"],
                symbol=v["symbol"],
                asset_class=AssetClass(v["asset_class"]) if v["asset_class"] else None,
                net=v["net"],
                open_buy=v["open_buy"],
                open_sell=v["open_sell"],
                open_orders=v["open_orders"],
                mark=v["mark"],
                order_price=v["order_price"],
                reserved=v["reserved"],
                market_value=v["market_value"],
            )
        )
    return book, legs, cash


_ACCOUNT = ("id", "user", "margin_account", "day_trading_policy", "buying_power", "cash", "total_value")


@cache
def _account_sql(vendor: str) -> str:
    return (
        f"SELECT {_select(_fields(BrokerAccount, _ACCOUNT), 'a')} FROM broker_accounts a "
        f"WHERE a.id = %s{_for_update('a')}"
    )


def account_locked(account_id: int) -> BrokerAccount:
    """The order's account (the columns the check needs) under its row lock."""
    with connection.cursor() as cursor:
        cursor.execute(_account_sql(connection.vendor), [account_id])
        row = cursor.fetchone()
    return _instance(BrokerAccount, _fields(BrokerAccount, _ACCOUNT), row)


def recent_orders(
    *,
    user_id: int,
    exclude_order_id: int | None,
    rate_since: dt.datetime,
    duplicate_since: dt.datetime,
    duplicate_of: tuple[str, str, Decimal, Decimal | None] | None,
) -> tuple[int, bool]:
    """Orders created after ``rate_since``, and whether one since ``duplicate_since`` has the
    same (symbol, side, quantity, price) as ``duplicate_of`` (None: do not look)."""
    adapt = connection.ops.adapt_datetimefield_value
    duplicate, params = "NULL", []
    if duplicate_of is not None:
        symbol, side, quantity, price = duplicate_of
        same_price = "price IS NULL" if price is None else "price = %s"
        duplicate = (
            "CASE WHEN created_at >= %s AND symbol = %s AND side = %s AND quantity = %s "
            f"AND {same_price} THEN 1 END"
        )
        params = [adapt(duplicate_since), symbol, side, quantity, *([] if price is None else [price])]
    sql = (
        f"SELECT COUNT(CASE WHEN created_at > %s THEN 1 END), COUNT({duplicate}) FROM orders "
        "WHERE user_id = %s AND created_at >= %s AND id <> %s AND algo = ''"
    )
    since = min(rate_since, duplicate_since)
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(rate_since), *params, user_id, adapt(since), exclude_order_id or 0])
        rate, duplicates = cursor.fetchone()
    return rate, duplicates > 0


def account_fills(account_id: int, since: dt.datetime) -> list[tuple[str, str, Decimal, dt.datetime]]:
    """The account's fills since ``since`` in execution order: (symbol, side, quantity, executed_at)."""
    sql = (
        "SELECT symbol, side, CAST(quantity AS TEXT), executed_at FROM fills "
        "WHERE broker_id = %s AND executed_at >= %s ORDER BY executed_at, id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [account_id, connection.ops.adapt_datetimefield_value(since)])
        rows = cursor.fetchall()
    return [(symbol, side, Decimal(quantity), _aware(executed)) for symbol, side, quantity, executed in rows]


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, dt.UTC)
