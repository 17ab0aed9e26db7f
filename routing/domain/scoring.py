"""Best-execution scoring: which broker account should get an order, and why. Plain Python.

The routing service (``routing.services``) describes every account of the user as a
:class:`Venue` (its terms, its live quote and displayed depth, its health) and asks
:func:`route` for a :class:`Decision`: every candidate with its score and the reasons the others
were skipped. Nothing here talks to a database, a broker or a clock.

Eligibility (any failure skips the account, with the reason): active; connected (not DOWN);
supports the asset class, the symbol, the order type and the time in force; has the buying power
for the order's expected cost (orders that sell an existing long need none).

Score (lower is better), in basis points of the mid price so that every term is comparable:

* price: the expected all-in price (the displayed depth walked for the full quantity, plus fees;
  a limit order takes no level beyond its limit and the rest is priced at the limit) against the
  mid, signed so that paying more for a buy or getting less for a sell costs more;
  quantity beyond the displayed depth is priced at the last level plus ``beyond_depth_bps``;
* liquidity: ``weights.liquidity_bps`` times the share of the order NOT available at the touch;
* latency: ``weights.latency_bps_per_100ms`` per 100 ms of recent median latency;
* rejects: ``weights.reject_bps`` times the recent reject rate (0..1);
* health: ``weights.degraded_bps`` when the connection is DEGRADED.

A sell of a quantity that some eligible accounts hold goes only to those accounts (the others are skipped
with the reason), so that it closes the position instead of opening a short elsewhere.

Ties (within ``TIE_BPS``) go to the account with the most buying power left after the order, so
that a user's several accounts at one broker are used evenly rather than one being exhausted; then
to the lowest account id, so the choice is always deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from orders.domain.validation import OrderRequest

ZERO = Decimal(0)
BPS = Decimal(10000)
TIE_BPS = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Weights:
    """How much each term counts, per asset class (basis points of the mid)."""

    liquidity_bps: Decimal = Decimal(5)
    latency_bps_per_100ms: Decimal = Decimal("0.5")
    reject_bps: Decimal = Decimal(20)
    degraded_bps: Decimal = Decimal(10)
    beyond_depth_bps: Decimal = Decimal(25)


DEFAULT_WEIGHTS: dict[AssetClass, Weights] = {
    AssetClass.EQUITY: Weights(),
    AssetClass.CRYPTO: Weights(liquidity_bps=Decimal(10), beyond_depth_bps=Decimal(50)),
}


@dataclass(frozen=True, slots=True)
class Fees:
    bps: Decimal = ZERO  # of the notional
    per_unit: Decimal = ZERO
    minimum: Decimal = ZERO

    def of(self, quantity: Decimal, notional: Decimal) -> Decimal:
        fee = notional * self.bps / BPS + quantity * self.per_unit
        return max(fee, self.minimum) if fee > 0 else fee  # as the venue charges: no fee, no minimum


@dataclass(frozen=True, slots=True)
class Venue:
    """One broker account as routing sees it."""

    account_id: int
    label: str
    active: bool = True
    status: str = "CONNECTED"  # CONNECTED, DEGRADED or DOWN
    asset_classes: frozenset[AssetClass] = frozenset()
    has_symbol: bool = True
    order_types: frozenset[OrderType] = frozenset(OrderType)
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    buying_power: Decimal = ZERO
    long_position: Decimal = ZERO  # what the account holds of the symbol (a sell up to it needs no power)
    bid: Decimal | None = None
    ask: Decimal | None = None
    bids: Sequence[tuple[Decimal, Decimal]] = ()  # displayed depth, best first: (price, size)
    asks: Sequence[tuple[Decimal, Decimal]] = ()
    fees: Fees = field(default_factory=Fees)
    latency_ms: int = 0  # recent median
    reject_rate: Decimal = ZERO  # recent, 0..1


@dataclass(frozen=True, slots=True)
class OrderToRoute:
    symbol: str
    asset_class: AssetClass
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    limit_price: Decimal | None = None


def order_to_route(request: OrderRequest, asset_class: AssetClass) -> OrderToRoute:
    """What routing needs of a validated order request."""
    return OrderToRoute(
        symbol=request.symbol,
        asset_class=asset_class,
        side=request.side,
        order_type=request.order_type,
        time_in_force=request.time_in_force,
        quantity=request.quantity,
        limit_price=request.price,
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    account_id: int
    label: str
    score_bps: Decimal  # lower is better
    all_in_price: Decimal  # expected price per unit, fees included
    price_bps: Decimal
    liquidity_bps: Decimal
    latency_bps: Decimal
    reject_bps: Decimal
    health_bps: Decimal
    buying_power_after: Decimal


@dataclass(frozen=True, slots=True)
class Decision:
    winner: Candidate | None
    candidates: tuple[Candidate, ...]  # eligible, best first
    skipped: tuple[tuple[int, str, str], ...]  # (account id, label, reason)
    reason: str


def ineligible_because(venue: Venue, order: OrderToRoute) -> str | None:
    """Why ``venue`` cannot take ``order``, or None when it can (buying power is checked later)."""
    if not venue.active:
        return "account is inactive"
    if venue.status == "DOWN":
        return "broker connection is down"
    if order.asset_class not in venue.asset_classes:
        return f"does not trade {order.asset_class}"
    if not venue.has_symbol:
        return f"does not list {order.symbol}"
    if order.order_type not in venue.order_types:
        return f"does not take {order.order_type} orders"
    if order.time_in_force not in venue.time_in_force:
        return f"does not take {order.time_in_force} orders"
    if venue.bid is None or venue.ask is None or venue.bid <= 0 or venue.ask <= 0:
        return "no quote"
    return None


def _walk(
    levels: Iterable[tuple[Decimal, Decimal]],
    quantity: Decimal,
    beyond: Decimal,
    side: Side,
    limit: Decimal | None = None,
):
    """(notional, quantity available at the touch) for ``quantity`` across the displayed depth.

    With a ``limit``, levels beyond it are not taken: the rest is expected to rest and fill at the
    limit."""
    left, notional, touch, last = quantity, ZERO, ZERO, None
    for i, (price, size) in enumerate(levels):
        if limit is not None and side.sign * (price - limit) > 0:
            break
        take = min(left, size)
        notional += take * price
        if i == 0:
            touch = take
        left -= take
        last = price
        if left <= 0:
            break
    if left > 0 and limit is not None:
        return notional + left * limit, touch
    if left > 0:
        if last is None:
            return None, ZERO
        worse = last * (1 + side.sign * beyond / BPS)
        notional += left * worse
    return notional, touch


def candidate(venue: Venue, order: OrderToRoute, weights: Weights) -> Candidate | str:
    """The venue's score for the order, or why it cannot take it."""
    why = ineligible_because(venue, order)
    if why is not None:
        return why
    assert venue.bid is not None and venue.ask is not None
    mid = (venue.bid + venue.ask) / 2
    book = venue.asks if order.side == Side.BUY else venue.bids
    if not book:  # no depth shown: the touch only, as far as it goes
        book = ((venue.ask, order.quantity),) if order.side == Side.BUY else ((venue.bid, order.quantity),)
    limit = order.limit_price if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    notional, touch = _walk(book, order.quantity, weights.beyond_depth_bps, order.side, limit)
    if notional is None:
        return "no displayed depth"
    fees = venue.fees.of(order.quantity, notional)
    all_in = (notional + order.side.sign * fees) / order.quantity
    needs = notional + fees if order.side == Side.BUY else ZERO
    if order.side == Side.SELL and order.quantity > venue.long_position:
        needs = (order.quantity - venue.long_position) * all_in  # a short needs margin
    if needs > venue.buying_power:
        return (
            f"buying power {venue.buying_power.quantize(Decimal('0.01')):,} is short of the "
            f"{needs.quantize(Decimal('0.01')):,} needed"
        )
    price_bps = order.side.sign * (all_in - mid) / mid * BPS
    liquidity_bps = weights.liquidity_bps * (order.quantity - touch) / order.quantity
    latency_bps = weights.latency_bps_per_100ms * Decimal(venue.latency_ms) / 100
    reject_bps = weights.reject_bps * venue.reject_rate
    health_bps = weights.degraded_bps if venue.status == "DEGRADED" else ZERO
    return Candidate(
        account_id=venue.account_id,
        label=venue.label,
        score_bps=price_bps + liquidity_bps + latency_bps + reject_bps + health_bps,
        all_in_price=all_in,
        price_bps=price_bps,
        liquidity_bps=liquidity_bps,
        latency_bps=latency_bps,
        reject_bps=reject_bps,
        health_bps=health_bps,
        buying_power_after=venue.buying_power - needs,
    )


def route(
    venues: Iterable[Venue], order: OrderToRoute, weights: dict[AssetClass, Weights] | None = None
) -> Decision:
    """Score every venue; the best eligible one wins, ties broken by buying power left, then id."""
    chosen = (weights or DEFAULT_WEIGHTS)[order.asset_class]
    candidates: list[Candidate] = []
    skipped: list[tuple[int, str, str]] = []
    venues = sorted(venues, key=lambda v: v.account_id)
    # a sell goes where the position is: an account holding the whole quantity closes it rather
    # than another account opening a short beside it
    results = [(venue, candidate(venue, order, chosen)) for venue in venues]
    holders = {
        v.account_id
        for v, result in results
        if order.side == Side.SELL and v.long_position >= order.quantity and not isinstance(result, str)
    }
    for venue, result in results:
        if not isinstance(result, str) and holders and venue.account_id not in holders:
            result = "does not hold the position (another account does)"
        if isinstance(result, str):
            skipped.append((venue.account_id, venue.label, result))
        else:
            candidates.append(result)
    if not candidates:
        return Decision(None, (), tuple(skipped), "no eligible broker account")
    best = min(c.score_bps for c in candidates)

    def rank(c: Candidate):
        tied = c.score_bps - best <= TIE_BPS
        return (not tied, c.score_bps if not tied else ZERO, -c.buying_power_after, c.account_id)

    ranked = sorted(candidates, key=rank)
    winner = ranked[0]
    reason = (
        f"{winner.label}: best expected all-in price and execution quality ({_bps(winner.score_bps)} bps)"
    )
    if len(ranked) > 1:
        runner = ranked[1]
        if runner.score_bps - best <= TIE_BPS:
            why = (
                f"more buying power left ({winner.buying_power_after:,.2f})"
                if winner.buying_power_after != runner.buying_power_after
                else "same buying power left; lower account id"
            )
            reason = f"{winner.label}: tied with {runner.label} on {_bps(best)} bps; {why}"
        else:
            reason += f", {_bps(runner.score_bps - winner.score_bps)} bps better than {runner.label}"
    return Decision(winner, tuple(ranked), tuple(skipped), reason)


def _bps(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"
