"""Pre-trade risk rules: pure functions of a :class:`RiskContext`. Plain Python: no Django, no I/O.

:func:`assess` works out the :class:`Derived` values once, runs every rule in :data:`RULES` and
collects every failure, not just the first. It also returns the projected exposure and the
buying power the order reserves while it is open. A limit set to None is not checked.
Breaches use ``>``: a value equal to its limit passes. The two exceptions are the daily loss
and the drawdown, which already block new risk once they reach their limit.

The rules, in the order they run (each code is the ``RuleFailure.rule``):

TRADING_HALTED            the trading state is HALTED: no order passes.
TRADING_STATE_REDUCING    the state is REDUCING and the order does not reduce its position.
RESTRICTED_SYMBOL         the symbol is on the restricted list (case-insensitive).
SHORT_SELLING_NOT_ALLOWED short selling is off, and a SELL would take the projected net
                          position below zero (current + open sells + this order).
NO_REFERENCE_PRICE        nothing to value the order at. This fails closed, and every notional
                          rule is then skipped.
PRICE_COLLAR              a fat-finger check against the quote, within ``price_collar_percent``:
                          * a LIMIT BUY may not be priced above ask * (1 + N/100);
                          * a LIMIT SELL may not be priced below bid * (1 - N/100);
                          * a passive limit, however far from the market, is a resting order
                            and not an erroneous price, so it passes;
                          * a STOP or STOP_LIMIT needs its stop price within N% of the last
                            price, on either side;
                          * MARKET and TRAILING_STOP orders pass.
                          The rule is skipped when there is no quote.
MAX_ORDER_QUANTITY        the order quantity.
MAX_ORDER_NOTIONAL        quantity * reference price.
MAX_POSITION_QUANTITY     the projected net quantity in the symbol, across every broker.
MAX_POSITION_NOTIONAL     that quantity valued at the reference price.
MAX_GROSS_EXPOSURE        sum over symbols of |net quantity| * price.
MAX_NET_EXPOSURE          |sum over symbols of signed net quantity * price|.
MAX_ASSET_CLASS_EXPOSURE  gross exposure over the order's asset class.
MAX_BROKER_EXPOSURE       gross exposure of the order's broker account: its own legs and open
                          orders, with this order added.
MAX_OPEN_ORDERS           open orders, this one included.
MAX_ORDER_RATE            orders created in the last 60 s (created_at > now - 60 s), this one
                          included.
DAILY_LOSS_LIMIT          today's P&L <= -limit refuses every order that does not reduce.
MAX_DRAWDOWN              drawdown >= limit refuses every order that does not reduce.
INSUFFICIENT_BUYING_POWER the order's notional is more than buying power minus reserved.
                          Only orders that do not reduce are checked: a BUY, or a SELL that
                          opens or increases a short.
DUPLICATE_ORDER           a recent order with the same symbol, side, quantity and limit price
                          (None == None), created at or after now - duplicate_window_seconds.
                          Skipped when the client sent its own client_order_id.

Reference price:
* LIMIT and STOP_LIMIT use the limit price.
* STOP uses the stop price.
* MARKET and TRAILING_STOP use the quote's ask for a BUY and its bid for a SELL.
A missing or non-positive price counts as no price.

Worst case: an open order may fill. A position quantity is the current net quantity, plus every
open order on the order's side, plus this order. The portfolio figures (gross, net, asset class,
broker) are worked out per symbol as ``risk.domain.book`` describes (long case: net + every open
buy; short case: net - every open sell; the order added to the case on its side). The context
carries the rest of the book as totals and the order's symbol as legs, which are revalued here
at the order's reference price, so only the order's symbol is valued at the order's price.

Reducing: the order is on the opposite side of the current net position in its symbol, and with
the open orders already working on its side it does not go past zero (no flip). A reducing order
still faces these rules:
* the trading state, restricted, collar, order size, open orders, rate and duplicate rules.
It is exempt from these:
* DAILY_LOSS_LIMIT, MAX_DRAWDOWN and the buying-power rule (it reserves nothing);
* each position and exposure rule, unless the order raises that very figure. A sale that
  reduces a long still raises the net exposure of a book that is net short. It also raises the
  gross of a broker account where it opens a short while the long sits at another broker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from orders.domain.enums import OrderType, Side
from risk.domain.assessment import ProjectedExposure, RiskAssessment, RuleFailure
from risk.domain.book import Extra, contribution
from risk.domain.context import ProposedOrder, RiskContext, TradingState

ZERO = Decimal(0)
CENT = Decimal("0.01")
HUNDRED = Decimal(100)


# ---------------------------------------------------------------------------------------------
# Derived values, computed once per assessment
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exposure:
    """Worst-case portfolio exposure in USD, with or without the proposed order."""

    gross: Decimal
    net: Decimal
    asset_class: Decimal  # gross over the order's asset class
    broker: Decimal  # gross over the order's broker account


@dataclass(frozen=True, slots=True)
class Derived:
    """What the rules share, worked out once per assessment."""

    reference_price: Decimal | None  # None: nothing to value the order at
    order_notional: Decimal  # quantity * reference price; 0 without a reference price
    position: Decimal  # current net quantity in the symbol, every broker (positions only)
    position_before: Decimal  # position + open orders on the order's side
    projected_position: Decimal  # position_before + this order (signed)
    reduces: bool
    before: Exposure | None  # None without a reference price
    after: Exposure | None
    reserve: Decimal  # buying power this order reserves: its notional unless it reduces


Rule = Callable[[RiskContext, Derived], RuleFailure | None]


def _positive(value: Decimal | None) -> Decimal | None:
    return value if value is not None and value > 0 else None


def reference_price(ctx: RiskContext) -> Decimal | None:
    """The price the order is valued at, or None when there is nothing to value it at."""
    order, quote = ctx.order, ctx.quote
    if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return _positive(order.price)
    if order.order_type == OrderType.STOP:
        return _positive(order.stop_price)
    if quote is None:
        return None
    return _positive(quote.ask if order.side == Side.BUY else quote.bid)


def _reduces(order: ProposedOrder, position: Decimal, working: Decimal) -> bool:
    opposite = order.side.sign * position < 0
    return opposite and working + order.quantity <= abs(position)


def _exposure(ctx: RiskContext, reference: Decimal, with_order: bool) -> Exposure:
    """The book's figures: the rest of the book plus the order's symbol valued at ``reference``."""
    order, others = ctx.order, ctx.others
    extra = Extra(order.broker_id, order.side, order.quantity) if with_order else None
    mine = contribution(ctx.symbol_legs, reference, extra)
    return Exposure(
        gross=others.gross + mine.gross,
        net=max(abs(others.long_value + mine.long_value), abs(others.short_value + mine.short_value)),
        asset_class=others.in_asset_class(order.asset_class) + mine.gross,
        broker=others.broker_gross.get(order.broker_id, ZERO) + mine.broker_gross.get(order.broker_id, ZERO),
    )


def derive(ctx: RiskContext) -> Derived:
    order = ctx.order
    price = reference_price(ctx)
    position = sum((leg.net for leg in ctx.symbol_legs), ZERO)
    working = sum(
        (leg.open_buy if order.side == Side.BUY else leg.open_sell for leg in ctx.symbol_legs), ZERO
    )
    position_before = position + order.side.sign * working
    reduces = _reduces(order, position, working)
    notional = order.quantity * price if price is not None else ZERO
    return Derived(
        reference_price=price,
        order_notional=notional,
        position=position,
        position_before=position_before,
        projected_position=position_before + order.side.sign * order.quantity,
        reduces=reduces,
        before=_exposure(ctx, price, with_order=False) if price is not None else None,
        after=_exposure(ctx, price, with_order=True) if price is not None else None,
        reserve=ZERO if reduces else notional,
    )


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def _money(value: Decimal) -> str:
    """12,500.00. Sub-cent digits are shown rather than rounded, so a breach never reads as a tie."""
    cents = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{cents:,}" if cents == value else f"{value.normalize():,f}"


def _qty(value: Decimal) -> str:
    return f"{value.normalize():,f}"


def _exempt(d: Derived, before: Decimal, after: Decimal) -> bool:
    """A reducing order passes a position or exposure rule unless it raises that very figure."""
    return d.reduces and after <= before


# ---------------------------------------------------------------------------------------------
# The rules: (ctx, derived) -> RuleFailure | None
# ---------------------------------------------------------------------------------------------


def trading_halted(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    if ctx.limits.trading_state != TradingState.HALTED:
        return None
    return RuleFailure("TRADING_HALTED", "Trading is halted: no new orders are accepted (TRADING_HALTED).")


def trading_state_reducing(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    if ctx.limits.trading_state != TradingState.REDUCING or d.reduces:
        return None
    o = ctx.order
    return RuleFailure(
        "TRADING_STATE_REDUCING",
        f"Trading is reducing-only: a {o.side} of {_qty(o.quantity)} {o.symbol} does not reduce the net "
        f"position of {_qty(d.position)} without going past zero, counting the "
        f"{_qty(abs(d.position_before - d.position))} already on order on that side "
        f"(TRADING_STATE_REDUCING).",
    )


def restricted_symbol(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    restricted = {s.casefold() for s in ctx.limits.restricted_symbols}
    if ctx.order.symbol.casefold() not in restricted:
        return None
    return RuleFailure(
        "RESTRICTED_SYMBOL", f"{ctx.order.symbol} is on the restricted list (RESTRICTED_SYMBOL)."
    )


def short_selling_not_allowed(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    if ctx.limits.allow_short_selling or ctx.order.side != Side.SELL or d.projected_position >= 0:
        return None
    return RuleFailure(
        "SHORT_SELLING_NOT_ALLOWED",
        f"Short selling is not allowed: this sell would take the net position in {ctx.order.symbol} "
        f"to {_qty(d.projected_position)} (SHORT_SELLING_NOT_ALLOWED).",
        limit=ZERO,
        value=d.projected_position,
    )


def no_reference_price(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    if d.reference_price is not None:
        return None
    o = ctx.order
    return RuleFailure(
        "NO_REFERENCE_PRICE",
        f"No price to value this {o.order_type} {o.side} of {o.symbol}: no quote and no order price, "
        f"so the notional limits cannot be checked (NO_REFERENCE_PRICE).",
    )


def price_collar(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    percent, quote, o = ctx.limits.price_collar_percent, ctx.quote, ctx.order
    if percent is None or quote is None:
        return None
    band = percent / HUNDRED
    if o.order_type == OrderType.LIMIT and o.price is not None:
        ceiling, floor = quote.ask * (1 + band), quote.bid * (1 - band)
        if o.side == Side.BUY and o.price > ceiling:
            return _collar_failure(
                "limit", o.price, f"above the ask of {_money(quote.ask)}", percent, ceiling
            )
        if o.side == Side.SELL and o.price < floor:
            return _collar_failure("limit", o.price, f"below the bid of {_money(quote.bid)}", percent, floor)
    if o.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and o.stop_price is not None:
        ceiling, floor = quote.last * (1 + band), quote.last * (1 - band)
        last = _money(quote.last)
        if o.stop_price > ceiling:
            return _collar_failure("stop", o.stop_price, f"above the last price of {last}", percent, ceiling)
        if o.stop_price < floor:
            return _collar_failure("stop", o.stop_price, f"below the last price of {last}", percent, floor)
    return None


def _collar_failure(kind: str, price: Decimal, where: str, percent: Decimal, bound: Decimal) -> RuleFailure:
    return RuleFailure(
        "PRICE_COLLAR",
        f"The {kind} price {_money(price)} is more than {_qty(percent)}% {where}; the collar ends at "
        f"{_money(bound)} (PRICE_COLLAR).",
        limit=bound,
        value=price,
    )


def max_order_quantity(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    limit, value = ctx.limits.max_order_quantity, ctx.order.quantity
    if limit is None or value <= limit:
        return None
    return RuleFailure(
        "MAX_ORDER_QUANTITY",
        f"Order quantity {_qty(value)} exceeds the limit of {_qty(limit)} (MAX_ORDER_QUANTITY).",
        limit=limit,
        value=value,
    )


def max_order_notional(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    limit, value = ctx.limits.max_order_notional, d.order_notional
    if limit is None or d.reference_price is None or value <= limit:
        return None
    return RuleFailure(
        "MAX_ORDER_NOTIONAL",
        f"Order notional {_money(value)} exceeds the limit of {_money(limit)} (MAX_ORDER_NOTIONAL).",
        limit=limit,
        value=value,
    )


def max_position_quantity(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    limit = ctx.limits.max_position_quantity
    before, after = abs(d.position_before), abs(d.projected_position)
    if limit is None or after <= limit or _exempt(d, before, after):
        return None
    return RuleFailure(
        "MAX_POSITION_QUANTITY",
        f"Projected position of {_qty(d.projected_position)} {ctx.order.symbol} (open orders on the same "
        f"side included) exceeds the limit of {_qty(limit)} (MAX_POSITION_QUANTITY).",
        limit=limit,
        value=after,
    )


def max_position_notional(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    limit, price = ctx.limits.max_position_notional, d.reference_price
    if limit is None or price is None:
        return None
    before, after = abs(d.position_before) * price, abs(d.projected_position) * price
    if after <= limit or _exempt(d, before, after):
        return None
    return RuleFailure(
        "MAX_POSITION_NOTIONAL",
        f"Projected position value of {_money(after)} in {ctx.order.symbol} exceeds the limit of "
        f"{_money(limit)} (MAX_POSITION_NOTIONAL).",
        limit=limit,
        value=after,
    )


def _exposure_breach(
    code: str, what: str, limit: Decimal | None, d: Derived, pick: Callable[[Exposure], Decimal]
) -> RuleFailure | None:
    """Shared by the four exposure rules: ``what`` is the sentence's subject up to "exceeds"."""
    if limit is None or d.before is None or d.after is None:
        return None
    after = pick(d.after)
    if after <= limit or _exempt(d, pick(d.before), after):
        return None
    return RuleFailure(
        code,
        f"{what.format(value=_money(after))} exceeds the limit of {_money(limit)} ({code}).",
        limit=limit,
        value=after,
    )


def max_gross_exposure(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    return _exposure_breach(
        "MAX_GROSS_EXPOSURE",
        "Projected gross exposure {value}",
        ctx.limits.max_gross_exposure,
        d,
        lambda e: e.gross,
    )


def max_net_exposure(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    return _exposure_breach(
        "MAX_NET_EXPOSURE", "Projected net exposure {value}", ctx.limits.max_net_exposure, d, lambda e: e.net
    )


def max_asset_class_exposure(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    asset_class = ctx.order.asset_class
    return _exposure_breach(
        "MAX_ASSET_CLASS_EXPOSURE",
        f"Projected {asset_class} exposure {{value}}",
        ctx.limits.max_asset_class_exposure.get(asset_class),
        d,
        lambda e: e.asset_class,
    )


def max_broker_exposure(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    return _exposure_breach(
        "MAX_BROKER_EXPOSURE",
        f"Projected exposure {{value}} at broker account {ctx.order.broker_id}",
        ctx.limits.max_broker_exposure,
        d,
        lambda e: e.broker,
    )


def max_open_orders(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    limit, value = ctx.limits.max_open_orders, ctx.open_orders + 1
    if limit is None or value <= limit:
        return None
    return RuleFailure(
        "MAX_OPEN_ORDERS",
        f"This order would make {value} open orders, over the limit of {limit} (MAX_OPEN_ORDERS).",
        limit=Decimal(limit),
        value=Decimal(value),
    )


def max_order_rate(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    limit = ctx.limits.max_orders_per_minute
    if limit is None:
        return None
    value = ctx.orders_last_minute + 1
    if value <= limit:
        return None
    return RuleFailure(
        "MAX_ORDER_RATE",
        f"This order would make {value} orders in the last 60 seconds, over the limit of {limit} "
        f"(MAX_ORDER_RATE).",
        limit=Decimal(limit),
        value=Decimal(value),
    )


def daily_loss_limit(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    limit = ctx.limits.daily_loss_limit
    if limit is None or d.reduces or ctx.daily_pnl > -limit:
        return None
    loss = -ctx.daily_pnl
    return RuleFailure(
        "DAILY_LOSS_LIMIT",
        f"Today's loss of {_money(loss)} has reached the daily loss limit of {_money(limit)}; only orders "
        f"that reduce a position are accepted (DAILY_LOSS_LIMIT).",
        limit=limit,
        value=loss,
    )


def max_drawdown(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    limit = ctx.limits.max_drawdown
    if limit is None or d.reduces or ctx.drawdown < limit:
        return None
    return RuleFailure(
        "MAX_DRAWDOWN",
        f"Drawdown of {_money(ctx.drawdown)} has reached the limit of {_money(limit)}; only orders that "
        f"reduce a position are accepted (MAX_DRAWDOWN).",
        limit=limit,
        value=ctx.drawdown,
    )


def insufficient_buying_power(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    needed, available = d.reserve, ctx.buying_power - ctx.reserved
    if d.reference_price is None or d.reduces or needed <= available:
        return None
    return RuleFailure(
        "INSUFFICIENT_BUYING_POWER",
        f"This order needs {_money(needed)} of buying power but {_money(available)} is available "
        f"({_money(ctx.buying_power)} less {_money(ctx.reserved)} reserved by open orders) "
        f"(INSUFFICIENT_BUYING_POWER).",
        limit=available,
        value=needed,
    )


def duplicate_order(ctx: RiskContext, d: Derived) -> RuleFailure | None:
    o = ctx.order
    if o.client_order_id_given or not ctx.duplicate:
        return None
    at = "at market" if o.price is None else f"at {_money(o.price)}"
    return RuleFailure(
        "DUPLICATE_ORDER",
        f"The same order ({o.side} {_qty(o.quantity)} {o.symbol} {at}) was placed in the last "
        f"{ctx.limits.duplicate_window_seconds} seconds; send your own client_order_id to place it "
        f"again (DUPLICATE_ORDER).",
    )


RULES: tuple[Rule, ...] = (
    trading_halted,
    trading_state_reducing,
    restricted_symbol,
    short_selling_not_allowed,
    no_reference_price,
    price_collar,
    max_order_quantity,
    max_order_notional,
    max_position_quantity,
    max_position_notional,
    max_gross_exposure,
    max_net_exposure,
    max_asset_class_exposure,
    max_broker_exposure,
    max_open_orders,
    max_order_rate,
    daily_loss_limit,
    max_drawdown,
    insufficient_buying_power,
    duplicate_order,
)


def assess(ctx: RiskContext) -> RiskAssessment:
    """Run every rule; return every failure, the projected exposure and the reservation."""
    d = derive(ctx)
    failures = tuple(f for f in (rule(ctx, d) for rule in RULES) if f is not None)
    price = d.reference_price
    projected = ProjectedExposure(
        order_notional=d.order_notional,
        position_quantity=d.projected_position,
        position_notional=abs(d.projected_position) * price if price is not None else ZERO,
        gross_exposure=d.after.gross if d.after is not None else ZERO,
        net_exposure=d.after.net if d.after is not None else ZERO,
        buying_power_after=ctx.buying_power - ctx.reserved - d.reserve,
    )
    return RiskAssessment(failures=failures, projected=projected, reserve=d.reserve)
