"""Property tests for the risk rules: a simulated book never goes over a limit.

Random orders are proposed against a small simulated book. Each accepted order becomes an open
order in the next context. The rest of the book reaches the rules as running totals, kept the
way ``risk.book`` keeps them (one symbol swapped at a time), and they must always equal the
totals worked out from scratch. Open orders later fill in full or in part, or are cancelled. After
every step an independent oracle looks at every way the open orders could still fill (each
one filled or not). In none of them may a limited figure be over its limit. Partial fills lie
between those cases, and every figure is convex in the fills, so the cases cover them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orders.domain.enums import AssetClass, OrderType, Side
from risk.domain.book import BookLeg, BookTotals, OpenOrder, PositionLeg, legs_from, totals_of
from risk.domain.context import ProposedOrder, Quote, RiskContext, RiskLimits
from risk.domain.rules import assess
from tests.unit.risk.builders import NOW

D = Decimal
ZERO = D(0)
EQUITY, CRYPTO = AssetClass.EQUITY, AssetClass.CRYPTO
SYMBOLS: dict[str, tuple[AssetClass, Decimal]] = {  # symbol -> (asset class, price: bid = ask = last = mark)
    "AAA": (EQUITY, D("10")),
    "BBB": (EQUITY, D("25")),
    "BTC/USD": (CRYPTO, D("100")),
}
BROKERS = (1, 2)
MAX_OPEN = 6  # keeps the oracle's 2**n fill cases small


@dataclass
class SimOrder:
    broker_id: int
    symbol: str
    side: Side
    remaining: Decimal
    reserves: bool  # holds buying power: remaining * price

    @property
    def price(self) -> Decimal:
        return SYMBOLS[self.symbol][1]

    @property
    def reserved(self) -> Decimal:
        return self.remaining * self.price if self.reserves else ZERO


@dataclass
class Book:
    buying_power: dict[int, Decimal]
    legs: dict[tuple[int, str], Decimal] = field(default_factory=dict)  # (broker, symbol) -> signed qty
    open: list[SimOrder] = field(default_factory=list)
    totals: BookTotals | None = None  # running totals, kept one symbol at a time

    def __post_init__(self) -> None:
        self.totals = totals_of(self.book_legs())

    def reserved(self, broker_id: int) -> Decimal:
        return sum((o.reserved for o in self.open if o.broker_id == broker_id), ZERO)

    def book_legs(self, symbol: str | None = None) -> list[BookLeg]:
        """The book as ``risk.domain.book`` legs, from scratch (one symbol, or all)."""
        positions = [
            PositionLeg(broker_id=b, symbol=s, asset_class=SYMBOLS[s][0], quantity=q, price=SYMBOLS[s][1])
            for (b, s), q in self.legs.items()
            if symbol in (None, s)
        ]
        orders = [
            OpenOrder(
                broker_id=o.broker_id,
                symbol=o.symbol,
                side=o.side,
                remaining=o.remaining,
                price=o.price,
                asset_class=SYMBOLS[o.symbol][0],
                reserved=o.reserved,
            )
            for o in self.open
            if symbol in (None, o.symbol)
        ]
        return legs_from(positions, orders)

    def change(self, symbol: str, mutate) -> None:
        """Apply ``mutate`` (which touches ``symbol`` only) and fold it into the running totals."""
        old = self.book_legs(symbol)
        mutate()
        self.totals = self.totals.swap(old, self.book_legs(symbol))
        assert self.totals == totals_of(self.book_legs())


def context_for(book: Book, limits: RiskLimits, order: ProposedOrder) -> RiskContext:
    price = SYMBOLS[order.symbol][1]
    mine = book.book_legs(order.symbol)
    return RiskContext(
        limits=limits,
        order=order,
        quote=Quote(bid=price, ask=price, last=price),
        symbol_legs=tuple(mine),
        others=book.totals.swap(mine, ()),
        open_orders=len(book.open),
        orders_last_minute=0,
        duplicate=False,
        buying_power=book.buying_power[order.broker_id],
        reserved=book.reserved(order.broker_id),
        daily_pnl=ZERO,
        drawdown=ZERO,
        now=NOW,
    )


# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------


def fill_cases(book: Book) -> Iterator[dict[tuple[int, str], Decimal]]:
    """The legs after every subset of the open orders fills."""
    for filled in itertools.product((False, True), repeat=len(book.open)):
        legs = dict(book.legs)
        for o, fills in zip(book.open, filled, strict=True):
            if fills:
                key = (o.broker_id, o.symbol)
                legs[key] = legs.get(key, ZERO) + o.side.sign * o.remaining
        yield legs


def within(value: Decimal, limit: Decimal | None) -> bool:
    return limit is None or value <= limit


def figures(book: Book) -> dict[str, Decimal]:
    """Every limited figure, at its worst over the fill cases."""
    worst: dict[str, Decimal] = {"open orders": D(len(book.open))}
    for broker_id in BROKERS:  # reservations beyond the buying power (limit 0)
        worst[f"overdraft {broker_id}"] = book.reserved(broker_id) - book.buying_power[broker_id]
    for legs in fill_cases(book):
        net = {s: sum((q for (_, sym), q in legs.items() if sym == s), ZERO) for s in SYMBOLS}
        value = {s: net[s] * SYMBOLS[s][1] for s in SYMBOLS}
        case = {"gross": sum(abs(v) for v in value.values()), "net": abs(sum(value.values()))}
        for s in SYMBOLS:
            case[f"position quantity {s}"] = abs(net[s])
            case[f"position notional {s}"] = abs(value[s])
        for asset_class in AssetClass:
            case[f"class {asset_class}"] = sum(
                abs(v) for s, v in value.items() if SYMBOLS[s][0] == asset_class
            )
        for broker_id in BROKERS:
            case[f"broker {broker_id}"] = sum(
                abs(q) * SYMBOLS[s][1] for (b, s), q in legs.items() if b == broker_id
            )
        for name, figure in case.items():
            worst[name] = max(figure, worst.get(name, figure))
    return worst


def limit_of(name: str, limits: RiskLimits) -> Decimal | int | None:
    kind, _, key = name.rpartition(" ")
    by_kind: dict[str, Decimal | int | None] = {
        "open": limits.max_open_orders,
        "overdraft": ZERO,
        "": {"gross": limits.max_gross_exposure, "net": limits.max_net_exposure}.get(key),
        "position quantity": limits.max_position_quantity,
        "position notional": limits.max_position_notional,
        "class": limits.max_asset_class_exposure.get(AssetClass(key)) if kind == "class" else None,
        "broker": limits.max_broker_exposure,
    }
    return by_kind[kind]


def over_limit(book: Book, limits: RiskLimits) -> dict[str, Decimal]:
    """The figures over their limit: name -> worst value."""
    over = {}
    for name, value in figures(book).items():
        limit = limit_of(name, limits)
        if limit is not None and value > limit:
            over[name] = value
    return over


def assert_within_limits(book: Book, limits: RiskLimits) -> None:
    assert over_limit(book, limits) == {}


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------


def money(low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=low, max_value=high, places=2, allow_nan=False, allow_infinity=False)


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


limits_strategy = st.builds(
    RiskLimits,
    max_position_quantity=optional(st.integers(5, 100).map(Decimal)),
    max_position_notional=optional(money(200, 3000)),
    max_gross_exposure=optional(money(500, 8000)),
    max_net_exposure=optional(money(200, 5000)),
    max_asset_class_exposure=st.dictionaries(st.sampled_from(AssetClass), money(200, 6000), max_size=2),
    max_broker_exposure=optional(money(300, 6000)),
    max_order_notional=optional(money(100, 2000)),
    max_order_quantity=optional(st.integers(1, 40).map(Decimal)),
    max_open_orders=st.integers(1, MAX_OPEN),
    allow_short_selling=st.booleans(),
)

place = st.tuples(
    st.just("place"),
    st.sampled_from(sorted(SYMBOLS)),
    st.sampled_from(Side),
    st.decimals(min_value=D("0.01"), max_value=D("40"), places=2, allow_nan=False, allow_infinity=False),
    st.sampled_from(BROKERS),
    st.sampled_from([OrderType.MARKET, OrderType.LIMIT]),
)
fill = st.tuples(st.just("fill"), st.integers(0, MAX_OPEN), st.sampled_from([D("1"), D("0.5")]))
cancel = st.tuples(st.just("cancel"), st.integers(0, MAX_OPEN))
actions_strategy = st.lists(st.one_of(place, place, fill, fill, cancel), min_size=10, max_size=40)
buying_power_strategy = st.one_of(st.sampled_from([D("100000"), D("5000"), D("1000"), ZERO]), money(0, 8000))


# ---------------------------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------------------------


def apply(book: Book, limits: RiskLimits, action: tuple) -> bool:
    """Apply one action; True when it was an accepted order."""
    kind = action[0]
    if kind == "place":
        _, symbol, side, quantity, broker_id, order_type = action
        asset_class, price = SYMBOLS[symbol]
        order = ProposedOrder(
            symbol=symbol,
            asset_class=asset_class,
            side=side,
            order_type=order_type,
            quantity=quantity,
            broker_id=broker_id,
            price=price if order_type == OrderType.LIMIT else None,
        )
        ctx = context_for(book, limits, order)
        result = assess(ctx)
        if not result.approved:
            return False
        assert within(quantity, limits.max_order_quantity)
        assert within(quantity * price, limits.max_order_notional)
        assert result.reserve in (ZERO, quantity * price)
        assert result.reserve <= ctx.buying_power - ctx.reserved
        new = SimOrder(broker_id, symbol, side, quantity, reserves=result.reserve > 0)
        book.change(symbol, lambda: book.open.append(new))
        return True
    elif book.open and kind == "fill":
        _, index, fraction = action
        o = book.open[index % len(book.open)]
        quantity = o.remaining * fraction

        def fill_it() -> None:
            key = (o.broker_id, o.symbol)
            book.legs[key] = book.legs.get(key, ZERO) + o.side.sign * quantity
            if o.reserves:
                book.buying_power[o.broker_id] -= quantity * o.price
            o.remaining -= quantity
            if o.remaining == 0:
                book.open.remove(o)

        book.change(o.symbol, fill_it)
    elif book.open and kind == "cancel":
        o = book.open[action[1] % len(book.open)]
        book.change(o.symbol, lambda: book.open.remove(o))
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=limits_strategy,
    buying_power=st.tuples(buying_power_strategy, buying_power_strategy),
    actions=actions_strategy,
)
def test_no_accepted_order_takes_the_book_over_a_limit(limits, buying_power, actions):
    book = Book(buying_power=dict(zip(BROKERS, buying_power, strict=True)))
    accepted = 0
    for action in actions:
        accepted += apply(book, limits, action)
        assert_within_limits(book, limits)
    event(f"accepted orders: {min(accepted, 5)}{'+' if accepted >= 5 else ''}")


legs_strategy = st.dictionaries(
    st.tuples(st.sampled_from(BROKERS), st.sampled_from(sorted(SYMBOLS))),
    st.decimals(min_value=-60, max_value=60, places=1, allow_nan=False, allow_infinity=False),
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=limits_strategy,
    buying_power=st.tuples(buying_power_strategy, buying_power_strategy),
    legs=legs_strategy,
    actions=actions_strategy,
)
def test_from_any_book_no_step_raises_a_figure_that_ends_over_its_limit(limits, buying_power, legs, actions):
    """The book may start over its limits: then only steps that do not raise those figures pass."""
    book = Book(buying_power=dict(zip(BROKERS, buying_power, strict=True)), legs=dict(legs))
    event(f"over a limit at the start: {bool(over_limit(book, limits))}")
    for action in actions:
        before = figures(book)
        apply(book, limits, action)
        for name, value in over_limit(book, limits).items():
            assert value <= before[name], (name, action)


def test_the_simulation_accepts_orders_within_generous_limits():
    """Guards the property against passing only because every order is refused."""
    limits = RiskLimits(max_gross_exposure=D("1000"), max_open_orders=MAX_OPEN)
    book = Book(buying_power={1: D("10000"), 2: D("10000")})
    for _ in range(3):
        apply(book, limits, ("place", "AAA", Side.BUY, D("30"), 1, OrderType.LIMIT))  # 300 each
    assert len(book.open) == 3
    apply(book, limits, ("place", "BBB", Side.SELL, D("4.01"), 2, OrderType.MARKET))  # 100.25: over
    assert len(book.open) == 3
    apply(book, limits, ("fill", 0, D("1")))
    apply(book, limits, ("place", "AAA", Side.SELL, D("30"), 1, OrderType.MARKET))  # reduces
    assert len(book.open) == 3
    assert book.reserved(1) == D("600")
    assert_within_limits(book, limits)
