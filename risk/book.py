"""The risk book in the database: each user's exposure per (account, symbol), with running totals.

``risk.domain.book`` has the arithmetic; this module keeps the RiskBook and RiskBookLeg rows in
step with the positions and open orders they summarise. Every transaction that changes a user's
positions or open orders calls :func:`risk_book_refresh` for the symbols it touched before it
commits, so the pre-trade check reads an exact book in two small queries instead of the whole
book. The user's RiskProfile row lock guards the book: writers take it (:func:`risk_lock`), and
the check holds it while it reads and decides.

Lock order, everywhere: order rows, then positions, then the RiskProfile, then the BrokerAccount.

A book missing (a new user, or rows written around the services) is built from scratch on first
use; :func:`risk_book_verify` compares a book with its sources and repairs it, and the periodic
risk monitor runs it, so a book written around the services cannot stay wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction

from orders.domain.enums import OPEN_STATUSES, AssetClass, Side
from risk.domain.book import (
    BookLeg,
    BookTotals,
    OpenOrder,
    PositionLeg,
    legs_from,
    reserved_remaining,
    totals_of,
    with_open_order,
)
from risk.models import RiskBook, RiskBookLeg, RiskProfile

logger = logging.getLogger(__name__)

_OPEN = [s.value for s in OPEN_STATUSES]
ZERO = Decimal(0)


def risk_lock(user_id: int) -> None:
    """Take the user's RiskProfile row lock (creating the profile if needed); in a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("the risk lock is only held inside a transaction")
    suffix = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = f"SELECT id FROM risk_profiles WHERE user_id = %s{suffix}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        if cursor.fetchone() is None:
            RiskProfile.objects.get_or_create(user_id=user_id)
            cursor.execute(sql, [user_id])


# --- reading the sources ----------------------------------------------------------------------


def source_legs(user_id: int, symbols: Iterable[str] | None = None, *, exclude_order_id: int | None = None):
    """The user's legs worked out from positions and open orders (all symbols when None)."""
    from orders.models import Order, Position

    positions = Position.objects.filter(user_id=user_id).exclude(quantity=0)
    # a parent order is worked through its children, which carry the exposure
    orders = Order.objects.filter(user_id=user_id, status__in=_OPEN, algo="")
    if symbols is not None:
        symbols = list(symbols)
        positions, orders = positions.filter(symbol__in=symbols), orders.filter(symbol__in=symbols)
    if exclude_order_id is not None:
        orders = orders.exclude(pk=exclude_order_id)
    return legs_from(
        (
            PositionLeg(broker_id, symbol, AssetClass(asset_class), quantity, price or cost, value)
            for broker_id, symbol, asset_class, quantity, price, cost, value in positions.values_list(
                "broker_id",
                "symbol",
                "asset_class",
                "quantity",
                "market_price",
                "average_cost",
                "market_value",
            )
        ),
        (
            OpenOrder(
                broker_id,
                symbol,
                Side(side),
                quantity - filled,
                price or stop or average or _per_unit(amount, quantity),
                AssetClass(asset_class),
                reserved_remaining(amount, quantity, filled) if amount is not None else ZERO,
            )
            for broker_id, symbol, side, asset_class, quantity, filled, price, stop, average, amount in (
                orders.values_list(
                    "broker_id",
                    "symbol",
                    "side",
                    "asset_class",
                    "quantity",
                    "filled_quantity",
                    "price",
                    "stop_price",
                    "average_fill_price",
                    "reservation__amount",
                )
            )
        ),
    )


def _per_unit(reserved: Decimal | None, quantity: Decimal) -> Decimal:
    """A MARKET order not yet filled has no price of its own: it is valued at what the pre-trade
    check reserved for it per unit (quote plus collar), so a second order checked while it is in
    flight still sees its exposure. No reservation (a sell): zero, as before."""
    if not reserved or not quantity:
        return ZERO
    return reserved / quantity


# --- the stored book --------------------------------------------------------------------------


def _leg(row: RiskBookLeg) -> BookLeg:
    return BookLeg(
        broker_id=row.broker_id,
        symbol=row.symbol,
        asset_class=AssetClass(row.asset_class) if row.asset_class else None,
        net=row.net,
        open_buy=row.open_buy,
        open_sell=row.open_sell,
        open_orders=row.open_orders,
        mark=row.mark,
        order_price=row.order_price,
        reserved=row.reserved,
        market_value=row.market_value,
    )


def _row(user_id: int, leg: BookLeg) -> RiskBookLeg:
    return RiskBookLeg(
        user_id=user_id,
        broker_id=leg.broker_id,
        symbol=leg.symbol,
        asset_class=leg.asset_class.value if leg.asset_class else "",
        net=leg.net,
        open_buy=leg.open_buy,
        open_sell=leg.open_sell,
        open_orders=leg.open_orders,
        mark=leg.mark,
        order_price=leg.order_price,
        reserved=leg.reserved,
        market_value=leg.market_value,
    )


def totals_from_row(book: RiskBook) -> BookTotals:
    brokers = {int(k): v for k, v in book.by_broker.items()}
    return BookTotals(
        gross=book.gross,
        long_value=book.long_value,
        short_value=book.short_value,
        asset_class_gross={
            (AssetClass(k) if k else None): Decimal(v) for k, v in book.by_asset_class.items()
        },
        broker_gross={k: Decimal(v["gross"]) for k, v in brokers.items() if "gross" in v},
        broker_reserved={k: Decimal(v["reserved"]) for k, v in brokers.items() if "reserved" in v},
        open_orders=book.open_orders,
        market_value=book.market_value,
    )


def _store_totals(book: RiskBook, totals: BookTotals) -> None:
    brokers: dict[str, dict[str, str]] = {}
    for broker_id, gross in totals.broker_gross.items():
        brokers.setdefault(str(broker_id), {})["gross"] = f"{gross:f}"
    for broker_id, reserved in totals.broker_reserved.items():
        brokers.setdefault(str(broker_id), {})["reserved"] = f"{reserved:f}"
    book.gross, book.long_value, book.short_value = totals.gross, totals.long_value, totals.short_value
    book.market_value, book.open_orders = totals.market_value, totals.open_orders
    book.by_asset_class = {(k.value if k else ""): f"{v:f}" for k, v in totals.asset_class_gross.items()}
    book.by_broker = brokers
    book.save()


def _by_symbol(legs: Iterable[BookLeg]) -> dict[str, list[BookLeg]]:
    grouped: dict[str, list[BookLeg]] = {}
    for leg in legs:
        grouped.setdefault(leg.symbol, []).append(leg)
    return grouped


def risk_book_rebuild(*, user_id: int, exclude_order_id: int | None = None) -> BookTotals:
    """Build the user's book from scratch (without the order being decided, if any). Takes the risk lock."""
    with transaction.atomic():
        risk_lock(user_id)
        legs = source_legs(user_id, exclude_order_id=exclude_order_id)
        totals = totals_of(legs)
        RiskBookLeg.objects.filter(user_id=user_id).delete()
        RiskBookLeg.objects.bulk_create(_row(user_id, leg) for leg in legs)
        book = RiskBook.objects.filter(user_id=user_id).first() or RiskBook(user_id=user_id)
        _store_totals(book, totals)
    return totals


def _write_symbol(book: RiskBook, old: list[BookLeg], new: list[BookLeg]) -> None:
    """Replace one symbol's stored legs ``old`` by ``new`` and fold the change into the totals."""
    before = {leg.broker_id: leg for leg in old}
    after = {leg.broker_id: leg for leg in new}
    gone = [b for b in before if b not in after]
    if gone:
        RiskBookLeg.objects.filter(user_id=book.user_id, symbol=old[0].symbol, broker_id__in=gone).delete()
    for broker_id, leg in after.items():
        if broker_id not in before:
            _row(book.user_id, leg).save(force_insert=True)
        elif before[broker_id] != leg:
            row = _row(book.user_id, leg)
            RiskBookLeg.objects.filter(user_id=book.user_id, symbol=leg.symbol, broker_id=broker_id).update(
                **{f: getattr(row, f) for f in _LEG_FIELDS}
            )
    _store_totals(book, totals_from_row(book).swap(old, new))


_LEG_FIELDS = (
    "asset_class",
    "net",
    "open_buy",
    "open_sell",
    "open_orders",
    "mark",
    "order_price",
    "reserved",
    "market_value",
)


def risk_book_refresh(*, user_id: int, symbols: Iterable[str]) -> None:
    """Fold the current positions and open orders of ``symbols`` into the user's book.

    Call it inside the transaction that changed them, before it commits. Takes the risk lock.
    """
    symbols = sorted(set(symbols))
    if not symbols:
        return
    risk_lock(user_id)
    book = RiskBook.objects.filter(user_id=user_id).first()
    if book is None:
        risk_book_rebuild(user_id=user_id)
        return
    old = _by_symbol(_leg(r) for r in RiskBookLeg.objects.filter(user_id=user_id, symbol__in=symbols))
    new = _by_symbol(source_legs(user_id, symbols))
    for symbol in symbols:
        if old.get(symbol, []) != new.get(symbol, []):
            _write_symbol(book, old.get(symbol, []), new.get(symbol, []))


@dataclass
class BookView:
    """What a pre-trade check reads of the book: its totals row and one symbol's stored legs."""

    row: RiskBook
    legs: list[BookLeg]
    totals: BookTotals


def risk_book_view(*, user_id: int, symbol: str, exclude_order_id: int | None = None) -> BookView:
    """The book's totals and ``symbol``'s stored legs. Hold the risk lock while deciding on them.

    ``exclude_order_id``: the order being decided, left out if the book has to be built now.
    """
    row = RiskBook.objects.filter(user_id=user_id).first()
    if row is None:
        risk_book_rebuild(user_id=user_id, exclude_order_id=exclude_order_id)
        row = RiskBook.objects.get(user_id=user_id)
    legs = [_leg(r) for r in RiskBookLeg.objects.filter(user_id=user_id, symbol=symbol).order_by("broker_id")]
    return BookView(row, legs, totals_from_row(row))


def risk_book_add_order(view: BookView, order: OpenOrder) -> None:
    """Fold an order just approved under the risk lock into the book ``view`` was read from.

    Nothing else changed since (the lock is still held), so its symbol need not be re-read.
    """
    _write_symbol(view.row, view.legs, with_open_order(view.legs, order))


def risk_book_totals(*, user_id: int) -> BookTotals:
    """The whole book's totals (built first if the user has no book yet)."""
    row = RiskBook.objects.filter(user_id=user_id).first()
    return totals_from_row(row) if row is not None else risk_book_rebuild(user_id=user_id)


def risk_book_verify(*, user_id: int) -> bool:
    """Compare the stored book with its sources; rebuild it if they differ. True when it was right."""
    with transaction.atomic():
        risk_lock(user_id)
        book = RiskBook.objects.filter(user_id=user_id).first()
        stored = sorted(
            (_leg(r) for r in RiskBookLeg.objects.filter(user_id=user_id)),
            key=lambda g: (g.broker_id, g.symbol),
        )
        fresh = source_legs(user_id)
        if book is not None and stored == fresh and totals_from_row(book) == totals_of(fresh):
            return True
        if book is not None:
            logger.error(
                "risk book of user %s was out of step with its positions and orders; rebuilt", user_id
            )
        risk_book_rebuild(user_id=user_id)
        return book is None
