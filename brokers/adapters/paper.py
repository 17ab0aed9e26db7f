"""The paper venue: a simulated broker that fills orders against the simulated market.

It keeps its own books in the database (PaperOrder, PaperBalance, PaperHolding), as a real
broker keeps its own, so several processes (web, market runner, workers) share one venue. Each
call runs in its own short transaction; the caller never holds one open across it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from brokers.domain.adapter import (
    AccountInfo,
    BrokerOrderRequest,
    BrokerOrderState,
    BrokerOrderStatus,
    BrokerOrderUpdate,
    BrokerPosition,
    BrokerRejected,
    Capabilities,
    FeeSchedule,
    FillReport,
    Health,
    HealthReport,
    OrderChange,
    OrderRef,
    Quote,
    Support,
    UpdateKind,
)
from brokers.domain.calendar import session_date
from brokers.domain.market import Book, InstrumentSpec, VenueSpec, build_book, commission
from brokers.domain.matching import MatchResult, VenueOrder, VenueOrderStatus, on_entry, on_tick
from brokers.models import (
    BrokerAccount,
    Instrument,
    PaperBalance,
    PaperHolding,
    PaperOrder,
    PaperOrderStatus,
    PaperVenue,
)
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from orders.domain.positions import PositionState, apply_fill

ALL_TYPES = {t: Support.NATIVE for t in OrderType}
Q8 = Decimal("0.00000001")
MARKET_BUY_COLLAR = Decimal("1.03")


def instrument_spec(inst: Instrument) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=inst.symbol,
        asset_class=AssetClass(inst.asset_class),
        tick_size=inst.tick_size,
        lot_size=inst.lot_size,
        base_size=inst.base_size,
        volatility_ticks=inst.volatility_ticks,
    )


def venue_spec(venue: PaperVenue) -> VenueSpec:
    return VenueSpec(
        name=venue.name,
        spread_bps=venue.spread_bps,
        depth_levels=venue.depth_levels,
        size_factor=venue.size_factor,
        commission_bps=venue.commission_bps,
        commission_per_unit=venue.commission_per_unit,
        min_commission=venue.min_commission,
    )


def _venue_order(po: PaperOrder) -> VenueOrder:
    return VenueOrder(
        order_id=po.venue_order_id,
        side=Side(po.side),
        order_type=OrderType(po.order_type),
        quantity=po.quantity,
        time_in_force=TimeInForce(po.time_in_force),
        filled_quantity=po.filled_quantity,
        price=po.price,
        stop_price=po.stop_price,
        trail_amount=po.trail_amount,
        trail_percent=po.trail_percent,
        triggered=po.triggered,
        watermark=po.watermark,
        status=VenueOrderStatus(po.status),
    )


class PaperAdapter:
    def __init__(self, account: BrokerAccount) -> None:
        if account.paper_venue_id is None:
            raise ValueError(f"broker account {account.pk} has no paper venue")
        self.account_id = account.pk
        self.venue_id = account.paper_venue_id
        venue = account.paper_venue
        self.capabilities = Capabilities(
            asset_classes=frozenset(AssetClass(a) for a in venue.asset_classes),
            order_types=dict(ALL_TYPES),
            time_in_force=frozenset(TimeInForce),
            fees=FeeSchedule(
                bps=venue.commission_bps, per_unit=venue.commission_per_unit, minimum=venue.min_commission
            ),
        )

    # --- helpers ------------------------------------------------------------------------
    def _venue(self) -> PaperVenue:
        return PaperVenue.objects.get(pk=self.venue_id)

    def _book(self, inst: Instrument, venue: PaperVenue) -> Book:
        return build_book(inst.mid, instrument_spec(inst), venue_spec(venue))

    def _instrument(self, symbol: str) -> Instrument:
        inst = Instrument.objects.filter(symbol=symbol).first()
        if inst is None:
            raise BrokerRejected(f"the paper venue does not list {symbol}", code="UNKNOWN_SYMBOL")
        return inst

    def _update(self, kind: UpdateKind, po: PaperOrder, now: dt.datetime, **kw: object) -> BrokerOrderUpdate:
        return BrokerOrderUpdate(
            kind=kind,
            client_order_id=po.client_order_id,
            broker_order_id=po.venue_order_id,
            occurred_at=now,
            **kw,
        )

    def _settle(
        self, po: PaperOrder, result: MatchResult, venue: PaperVenue, now: dt.datetime
    ) -> list[BrokerOrderUpdate]:
        """Book the executions of a match on the venue's side and describe them as updates."""
        updates: list[BrokerOrderUpdate] = []
        if result.triggered_now:
            updates.append(self._update(UpdateKind.TRIGGERED, po, now))
        if result.executions:
            balance = PaperBalance.objects.select_for_update().get(account_id=self.account_id)
            holding, _ = PaperHolding.objects.select_for_update().get_or_create(
                account_id=self.account_id, symbol=po.symbol
            )
            side = Side(po.side)
            state = PositionState(quantity=holding.quantity, average_cost=holding.average_cost)
            spec = venue_spec(venue)
            for ex in result.executions:
                fee = commission(spec, ex.quantity, ex.price)
                po.fill_seq += 1
                notional = ex.quantity * ex.price
                po.fill_notional += notional
                balance.cash += (-notional if side is Side.BUY else notional) - fee
                state = apply_fill(state, side=side, quantity=ex.quantity, price=ex.price, fee=fee)
                updates.append(
                    self._update(
                        UpdateKind.FILL,
                        po,
                        now,
                        fill=FillReport(
                            broker_fill_id=f"{po.venue_order_id}-{po.fill_seq}",
                            quantity=ex.quantity,
                            price=ex.price,
                            fee=fee,
                            liquidity=ex.liquidity,
                        ),
                    )
                )
            holding.quantity = state.quantity
            holding.average_cost = state.average_cost.quantize(Decimal("0.00000001"))
            holding.save(update_fields=["quantity", "average_cost"])
            balance.cash = balance.cash.quantize(Q8)
            balance.save(update_fields=["cash"])
        new = result.order
        po.filled_quantity = new.filled_quantity
        po.triggered = new.triggered
        po.watermark = new.watermark
        po.status = new.status.value
        po.save(
            update_fields=[
                "filled_quantity",
                "triggered",
                "watermark",
                "status",
                "fill_seq",
                "fill_notional",
                "updated_at",
            ]
        )
        if new.status is VenueOrderStatus.CANCELLED:
            updates.append(self._update(UpdateKind.CANCELLED, po, now, reason=result.reason))
        elif new.status is VenueOrderStatus.EXPIRED:
            updates.append(self._update(UpdateKind.EXPIRED, po, now, reason=result.reason))
        return updates

    def _check_funds(self, req: BrokerOrderRequest, book: Book, venue: PaperVenue) -> None:
        balance = PaperBalance.objects.get(account_id=self.account_id)
        if req.side is Side.BUY:
            if req.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                reference = req.price
            else:
                # an order that ends as a market order may walk the book or fill later: like real
                # brokers, value it with a collar above the current ask (or its stop)
                reference = max(book.best_ask, req.stop_price or book.best_ask) * MARKET_BUY_COLLAR
            needed = req.quantity * reference + commission(venue_spec(venue), req.quantity, reference)
            if needed > balance.cash:
                raise BrokerRejected(
                    f"insufficient buying power: the order needs {needed.quantize(Decimal('0.01'))}, "
                    f"the account has {balance.cash.quantize(Decimal('0.01'))}",
                    code="INSUFFICIENT_BUYING_POWER",
                )
        elif req.asset_class is AssetClass.CRYPTO:
            held = (
                PaperHolding.objects.filter(account_id=self.account_id, symbol=req.symbol)
                .values_list("quantity", flat=True)
                .first()
            ) or Decimal(0)
            if req.quantity > held:
                raise BrokerRejected(
                    f"insufficient {req.symbol.split('/')[0]}: selling {req.quantity}, holding {held} "
                    "(no short selling of crypto)",
                    code="INSUFFICIENT_BALANCE",
                )

    # --- the adapter interface ------------------------------------------------------------
    def place(self, request: BrokerOrderRequest) -> list[BrokerOrderUpdate]:
        now = timezone.now()
        with transaction.atomic():
            venue = self._venue()
            if venue.reject_new_orders_reason:
                raise BrokerRejected(venue.reject_new_orders_reason, code="VENUE_REJECT")
            if request.asset_class.value not in venue.asset_classes:
                raise BrokerRejected(f"{venue.name} does not trade {request.asset_class.lower()}")
            inst = self._instrument(request.symbol)
            if request.quantity % inst.lot_size != 0:
                raise BrokerRejected(
                    f"quantity must be a multiple of the lot size {inst.lot_size.normalize():f}"
                )
            for name in ("price", "stop_price"):
                value = getattr(request, name)
                if value is not None and value % inst.tick_size != 0:
                    raise BrokerRejected(
                        f"{name} must be a multiple of the tick size {inst.tick_size.normalize():f}"
                    )
            if PaperOrder.objects.filter(
                account_id=self.account_id, client_order_id=request.client_order_id
            ).exists():
                raise BrokerRejected("duplicate client_order_id", code="DUPLICATE_CLIENT_ORDER_ID")
            book = self._book(inst, venue)
            self._check_funds(request, book, venue)
            po = PaperOrder.objects.create(
                account_id=self.account_id,
                venue_order_id=f"P-{uuid.uuid4().hex[:20]}",
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side.value,
                order_type=request.order_type.value,
                time_in_force=request.time_in_force.value,
                quantity=request.quantity,
                price=request.price,
                stop_price=request.stop_price,
                trail_amount=request.trail_amount,
                trail_percent=request.trail_percent,
                session_date=session_date(now, request.asset_class),
            )
            result = on_entry(_venue_order(po), book, tick=inst.tick_size)
            return [self._update(UpdateKind.ACCEPTED, po, now), *self._settle(po, result, venue, now)]

    def _locked(self, ref: OrderRef) -> PaperOrder:
        po = (
            PaperOrder.objects.select_for_update()
            .filter(account_id=self.account_id, client_order_id=ref.client_order_id)
            .first()
        )
        if po is None:
            raise BrokerRejected("order not found at the paper venue", code="ORDER_NOT_FOUND")
        return po

    def cancel(self, ref: OrderRef) -> list[BrokerOrderUpdate]:
        now = timezone.now()
        with transaction.atomic():
            po = self._locked(ref)
            if po.status != PaperOrderStatus.OPEN:
                raise BrokerRejected(f"the order is already {po.status.lower()}", code="NOT_OPEN")
            po.status = PaperOrderStatus.CANCELLED
            po.save(update_fields=["status", "updated_at"])
            return [self._update(UpdateKind.CANCELLED, po, now, reason="cancelled on request")]

    def replace(self, ref: OrderRef, change: OrderChange) -> list[BrokerOrderUpdate]:
        now = timezone.now()
        with transaction.atomic():
            po = self._locked(ref)
            if po.status != PaperOrderStatus.OPEN:
                raise BrokerRejected(f"the order is already {po.status.lower()}", code="NOT_OPEN")
            if change.quantity is not None and change.quantity <= po.filled_quantity:
                raise BrokerRejected(
                    f"the new quantity {change.quantity} must exceed the filled quantity {po.filled_quantity}"
                )
            for name in ("quantity", "price", "stop_price"):
                value = getattr(change, name)
                if value is not None:
                    setattr(po, name, value)
            if change.trail_amount is not None or change.trail_percent is not None:
                po.trail_amount, po.trail_percent = change.trail_amount, change.trail_percent
            if change.time_in_force is not None:
                po.time_in_force = change.time_in_force.value
            po.save()
            venue = self._venue()
            inst = self._instrument(po.symbol)
            in_force = OrderChange(
                quantity=po.quantity,
                price=po.price,
                stop_price=po.stop_price,
                trail_amount=po.trail_amount,
                trail_percent=po.trail_percent,
                time_in_force=TimeInForce(po.time_in_force),
            )
            result = on_entry(_venue_order(po), self._book(inst, venue), tick=inst.tick_size)
            return [
                self._update(UpdateKind.REPLACED, po, now, change=in_force),
                *self._settle(po, result, venue, now),
            ]

    def poll_updates(self, now: dt.datetime) -> list[BrokerOrderUpdate]:
        """Match this account's resting orders against the current market; expire DAY orders."""
        updates: list[BrokerOrderUpdate] = []
        with transaction.atomic():
            orders = list(
                PaperOrder.objects.select_for_update()
                .filter(account_id=self.account_id, status=PaperOrderStatus.OPEN)
                .order_by("id")
            )
            if not orders:
                return updates
            venue = self._venue()
            instruments = {
                i.symbol: i for i in Instrument.objects.filter(symbol__in={o.symbol for o in orders})
            }
            for po in orders:
                inst = instruments[po.symbol]
                if po.time_in_force == TimeInForce.DAY and po.session_date < session_date(
                    now, AssetClass(inst.asset_class)
                ):
                    po.status = PaperOrderStatus.EXPIRED
                    po.save(update_fields=["status", "updated_at"])
                    updates.append(
                        self._update(UpdateKind.EXPIRED, po, now, reason="DAY order expired at the close")
                    )
                    continue
                result = on_tick(_venue_order(po), self._book(inst, venue), tick=inst.tick_size)
                if result.executions or result.order != _venue_order(po):
                    updates.extend(self._settle(po, result, venue, now))
        return updates

    def _state(self, po: PaperOrder) -> BrokerOrderState:
        status = {
            PaperOrderStatus.OPEN: BrokerOrderStatus.TRIGGERED if po.triggered else BrokerOrderStatus.OPEN,
            PaperOrderStatus.FILLED: BrokerOrderStatus.FILLED,
            PaperOrderStatus.CANCELLED: BrokerOrderStatus.CANCELLED,
            PaperOrderStatus.EXPIRED: BrokerOrderStatus.EXPIRED,
            PaperOrderStatus.REJECTED: BrokerOrderStatus.REJECTED,
        }[PaperOrderStatus(po.status)]
        return BrokerOrderState(
            client_order_id=po.client_order_id,
            broker_order_id=po.venue_order_id,
            symbol=po.symbol,
            side=Side(po.side),
            status=status,
            quantity=po.quantity,
            filled_quantity=po.filled_quantity,
            average_fill_price=(po.fill_notional / po.filled_quantity).quantize(Q8)
            if po.filled_quantity
            else None,
        )

    def get_order(self, client_order_id: str, broker_order_id: str | None = None) -> BrokerOrderState | None:
        po = PaperOrder.objects.filter(account_id=self.account_id, client_order_id=client_order_id).first()
        return None if po is None else self._state(po)

    def open_orders(self) -> list[BrokerOrderState]:
        return [
            self._state(po)
            for po in PaperOrder.objects.filter(account_id=self.account_id, status=PaperOrderStatus.OPEN)
        ]

    def positions(self) -> list[BrokerPosition]:
        return [
            BrokerPosition(symbol=h.symbol, quantity=h.quantity, average_cost=h.average_cost)
            for h in PaperHolding.objects.filter(account_id=self.account_id).exclude(quantity=0)
        ]

    def account(self) -> AccountInfo:
        cash = PaperBalance.objects.get(account_id=self.account_id).cash
        holdings = list(PaperHolding.objects.filter(account_id=self.account_id).exclude(quantity=0))
        mids = dict(
            Instrument.objects.filter(symbol__in=[h.symbol for h in holdings]).values_list("symbol", "mid")
        )
        value = cash + sum((h.quantity * mids.get(h.symbol, h.average_cost) for h in holdings), Decimal(0))
        return AccountInfo(cash=cash, buying_power=max(cash, Decimal(0)), total_value=value.quantize(Q8))

    def quote(self, symbol: str) -> Quote:
        return paper_quote(self._instrument(symbol), self._venue())

    def health(self) -> HealthReport:
        venue = self._venue()
        if venue.reject_new_orders_reason:
            return HealthReport(
                status=Health.DEGRADED, latency_ms=Decimal(0), detail=venue.reject_new_orders_reason
            )
        return HealthReport(status=Health.CONNECTED, latency_ms=Decimal(0))


def paper_quote(inst: Instrument, venue: PaperVenue) -> Quote:
    """The venue's quote of an instrument: its book's top and displayed depth."""
    book = build_book(inst.mid, instrument_spec(inst), venue_spec(venue))
    return Quote(
        symbol=inst.symbol,
        bid=book.best_bid,
        ask=book.best_ask,
        bid_size=book.bid_size,
        ask_size=book.ask_size,
        last=inst.mid,
        at=inst.updated_at,
        bids=tuple((level.price, level.size) for level in book.bids),
        asks=tuple((level.price, level.size) for level in book.asks),
    )
