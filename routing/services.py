"""Broker choice for an order: the one place the OMS asks where an order goes, and why.

Every account of the user is described as a :class:`routing.domain.scoring.Venue` (its terms,
its live quote and displayed depth, its buying power, its health, latency and recent reject
rate) and :func:`routing.domain.scoring.route` scores them. A named account bypasses the
scoring but not eligibility. A large order (notional or estimated impact over the configured
thresholds) with more than one eligible venue is fragmented by displayed depth
(:func:`routing.domain.impact.split_by_depth`); the caller places the split as a parent order
with one child per venue (``routing.algos``). The decision is stored with the order
(:class:`routing.models.RoutingDecision`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from brokers.domain.adapter import Capabilities, Quote
from brokers.models import BrokerAccount, Instrument
from brokers.services import adapter_for, quotes_for
from orders.domain.enums import AssetClass, OrderType, Side, TimeInForce
from orders.models import Order, OrderStatusChoices, Position
from routing.domain.impact import Allocation, Book, impact_bps, split_by_depth
from routing.domain.scoring import (
    DEFAULT_WEIGHTS,
    Candidate,
    Decision,
    Fees,
    OrderToRoute,
    Venue,
    Weights,
    route,
)
from routing.models import RoutingDecision
from trademaster.errors import NotFound, TradeMasterError

REJECT_WINDOW = dt.timedelta(hours=1)
SPLITTABLE_TYPES = (OrderType.MARKET, OrderType.LIMIT)
BUYING_POWER_SHORT = "buying power"
UNLIMITED = Decimal("1e30")


@dataclass(frozen=True, slots=True)
class MarketStats:
    lot_size: Decimal
    average_daily_volume: Decimal
    daily_volatility_bps: Decimal


@dataclass
class Route:
    """Where an order goes: one account, or (``split``) several, with the decision behind it."""

    order: OrderToRoute
    account: BrokerAccount | None
    decision: Decision
    explicit: bool = False
    impact_bps: Decimal | None = None
    split: list[Allocation] = field(default_factory=list)
    accounts: dict[int, BrokerAccount] = field(default_factory=dict)
    quotes: dict[int, Quote] = field(default_factory=dict)  # the live quotes the decision used


def weights() -> dict[AssetClass, Weights]:
    configured = dict(DEFAULT_WEIGHTS)
    for name, values in settings.ROUTING_WEIGHTS.items():
        base = configured[AssetClass(name)]
        configured[AssetClass(name)] = Weights(
            **{f: Decimal(str(values.get(f, getattr(base, f)))) for f in Weights.__dataclass_fields__}
        )
    return configured


def market_stats(symbol: str) -> MarketStats | None:
    row = (
        Instrument.objects.filter(symbol=symbol)
        .values_list("lot_size", "average_daily_volume", "daily_volatility_bps")
        .first()
    )
    return MarketStats(*row) if row else None


def _reject_rates(accounts: list[BrokerAccount]) -> dict[int, Decimal]:
    """Each account's share of orders refused by the broker (sent, then REJECTED) in the last hour."""
    rows = (
        Order.objects.filter(
            broker__in=accounts, submitted_at__gte=timezone.now() - REJECT_WINDOW, submitted_at__isnull=False
        )
        .values("broker_id")
        .annotate(sent=Count("id"), rejected=Count("id", filter=Q(status=OrderStatusChoices.REJECTED)))
    )
    return {r["broker_id"]: Decimal(r["rejected"]) / Decimal(r["sent"]) for r in rows if r["sent"]}


def _venue(
    account: BrokerAccount,
    capabilities: Capabilities,
    listed: bool,
    quote: Quote | None,
    long_position: Decimal,
    reject_rate: Decimal,
) -> Venue:
    fees = capabilities.fees
    return Venue(
        account_id=account.pk,
        label=str(account),
        active=account.is_active,
        status=account.connection_status,
        asset_classes=capabilities.asset_classes,
        has_symbol=listed,
        order_types=frozenset(capabilities.order_types),
        time_in_force=capabilities.time_in_force,
        buying_power=account.buying_power,
        long_position=long_position,
        bid=quote.bid if quote else None,
        ask=quote.ask if quote else None,
        bids=quote.bids if quote else (),
        asks=quote.asks if quote else (),
        fees=Fees(bps=fees.bps, per_unit=fees.per_unit, minimum=fees.minimum),
        latency_ms=account.latency_ms,
        reject_rate=reject_rate,
    )


def route_venues(
    *, user, symbol: str, account_ids: list[int] | None = None, exclude: frozenset[int] = frozenset()
) -> list[tuple[BrokerAccount, Venue, Quote | None]]:
    """The user's accounts (or the given ones, less ``exclude``) as routing sees them now, live
    quotes included."""
    accounts = BrokerAccount.objects.filter(user=user).select_related("paper_venue").order_by("id")
    if account_ids is not None:
        accounts = accounts.filter(pk__in=account_ids)
    if exclude:
        accounts = accounts.exclude(pk__in=exclude)
    accounts = list(accounts)
    held = dict(
        Position.objects.filter(user=user, symbol=symbol, broker__in=accounts).values_list(
            "broker_id", "quantity"
        )
    )
    rejects = _reject_rates(accounts)
    quotes = quotes_for(accounts=[a for a in accounts if a.is_active], symbol=symbol)
    venues = []
    for account in accounts:
        capabilities = adapter_for(account).capabilities
        long = max(held.get(account.pk, Decimal(0)), Decimal(0))
        listed, quote = quotes.get(account.pk, (True, None))
        venue = _venue(account, capabilities, listed, quote, long, rejects.get(account.pk, Decimal(0)))
        venues.append((account, venue, quote))
    return venues


def venue_key(account: BrokerAccount) -> tuple[str, int | None]:
    """Which market an account sees: accounts at one venue (or one broker) share its book."""
    return (account.broker_name, account.paper_venue_id)


def _split(
    order: OrderToRoute,
    decision: Decision,
    venues: dict[int, Venue],
    accounts: dict[int, BrokerAccount],
    stats: MarketStats | None,
) -> tuple[Decimal | None, list[Allocation]]:
    """(impact estimate, the split when the order is large enough to fragment, else [])."""
    impact = None
    if stats is not None:
        impact = impact_bps(
            quantity=order.quantity,
            adv=stats.average_daily_volume,
            daily_volatility_bps=stats.daily_volatility_bps,
            coefficient=settings.ROUTING_IMPACT_COEFFICIENT,
        )
    if (
        stats is None
        or len(decision.candidates) < 2
        or order.order_type not in SPLITTABLE_TYPES
        or order.time_in_force == TimeInForce.FOK
        or order.quantity % stats.lot_size != 0
    ):
        return impact, []
    winner = decision.candidates[0]
    notional = order.quantity * winner.all_in_price
    if (
        notional < settings.ROUTING_SPLIT_MIN_NOTIONAL
        and (impact or 0) < settings.ROUTING_SPLIT_MIN_IMPACT_BPS
    ):
        return impact, []
    limit = order.limit_price if order.order_type == OrderType.LIMIT else None
    books = []
    seen: set[tuple[str, int | None]] = set()
    for c in decision.candidates:  # best first: a venue's depth goes to its best-ranked account
        key = venue_key(accounts[c.account_id])
        if key in seen:  # the same venue's book seen through another account: count it once
            continue
        seen.add(key)
        v = venues[c.account_id]
        levels = v.asks if order.side == Side.BUY else v.bids
        if limit is not None:  # a limit order takes only the depth within its limit
            levels = tuple((p, q) for p, q in levels if order.side.sign * (p - limit) <= 0)
        if levels:
            books.append(Book(account_id=v.account_id, levels=levels, fees=v.fees))
    if len(books) < 2:
        return impact, []
    allocations = split_by_depth(quantity=order.quantity, side=order.side, books=books, lot=stats.lot_size)
    return impact, allocations if len(allocations) > 1 else []


def _short_of_power(decision: Decision, venues: dict[int, Venue], order: OrderToRoute) -> Decision:
    """No account has the buying power: the best of those that lack only that still gets the
    order, so that the pre-trade check rejects it with its reasons and the rejection is on record."""
    short = {i for i, _, why in decision.skipped if why.startswith(BUYING_POWER_SHORT)}
    if not short:
        return decision
    lifted = [replace(v, buying_power=UNLIMITED) if v.account_id in short else v for v in venues.values()]
    fallback = route(lifted, order, weights())
    if fallback.winner is None:
        return decision

    def real(c: Candidate) -> Candidate:  # what is really left (negative: short by that much)
        needed = UNLIMITED - c.buying_power_after if c.account_id in short else Decimal(0)
        left = venues[c.account_id].buying_power - needed if c.account_id in short else c.buying_power_after
        return replace(c, buying_power_after=left)

    candidates = tuple(real(c) for c in fallback.candidates)
    return replace(
        fallback,
        winner=candidates[0],
        candidates=candidates,
        skipped=decision.skipped,
        reason=f"{fallback.winner.label}: no account has the buying power; the pre-trade check decides",
    )


def route_decide(
    *,
    user,
    order: OrderToRoute,
    broker_id: int | None = None,
    allow_split: bool = True,
    exclude: frozenset[int] = frozenset(),
) -> Route:
    """Where ``order`` goes (never to an account in ``exclude``: failover). Raises
    ``broker_not_found`` / ``broker_ineligible`` for a named account that is missing or cannot
    take it, ``no_eligible_broker`` when none can."""
    if broker_id is not None and not BrokerAccount.objects.filter(pk=broker_id, user=user).exists():
        raise NotFound("broker_not_found", f"Broker account {broker_id} does not exist.")
    listed = route_venues(
        user=user,
        symbol=order.symbol,
        account_ids=None if broker_id is None else [broker_id],
        exclude=exclude,
    )
    accounts = {a.pk: a for a, _, _ in listed}
    venues = {v.account_id: v for _, v, _ in listed}
    quotes = {a.pk: q for a, _, q in listed if q is not None}
    decision = route(venues.values(), order, weights())
    short_of_power = decision.winner is None
    if short_of_power:
        decision = _short_of_power(decision, venues, order)
    if broker_id is not None:
        if decision.winner is None:
            reason = decision.skipped[0][2]
            account = accounts[broker_id]
            raise TradeMasterError(
                "broker_ineligible",
                f"Broker account {account} {reason}.",
                {"fields": {"broker_id": [f"{account} {reason}."]}},
            )
        return Route(order, accounts[broker_id], decision, explicit=True, accounts=accounts, quotes=quotes)
    if decision.winner is None:
        raise TradeMasterError(
            "no_eligible_broker",
            f"No broker account can take a {order.order_type} {order.time_in_force} "
            f"{order.asset_class.lower()} order for {order.symbol}.",
            {"candidates": [f"{label}: {reason}" for _, label, reason in decision.skipped]},
        )
    # an order no account can pay for goes whole to one account, whose pre-trade check rejects it
    splittable = allow_split and not short_of_power
    impact, split = None, []
    if splittable:
        impact, split = _split(order, decision, venues, accounts, market_stats(order.symbol))
    return Route(
        order,
        accounts[decision.winner.account_id],
        decision,
        impact_bps=impact,
        split=split,
        accounts=accounts,
        quotes=quotes,
    )


def decision_payload(route_: Route) -> dict[str, Any]:
    """The decision as the API, the admin and the audit trail show it."""
    d = route_.decision
    reason = d.reason
    if route_.explicit:
        reason = f"{route_.account}: named by the client (scoring bypassed; eligibility checked)"
    if route_.split:
        reason = (
            f"split across {len(route_.split)} venues by displayed depth "
            f"(estimated impact {route_.impact_bps} bps); {d.reason}"
        )
    return {
        "explicit": route_.explicit,
        "winner": route_.account.pk if route_.account and not route_.split else None,
        "reason": reason,
        "impact_bps": route_.impact_bps,
        "candidates": [
            {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(c).items()} for c in d.candidates
        ],
        "skipped": [{"account_id": i, "label": label, "reason": why} for i, label, why in d.skipped],
        "split": [
            {
                "account_id": a.account_id,
                "label": str(route_.accounts[a.account_id]),
                "quantity": str(a.quantity),
                "expected_price": None if a.expected_price is None else str(a.expected_price),
            }
            for a in route_.split
        ],
    }


def route_record(*, order: Order, route_: Route, replace: bool = False) -> RoutingDecision:
    """Store why ``order`` went where it went (the caller's transaction); ``replace``: a failover
    decided again, and the stored decision says so."""
    payload = decision_payload(route_)
    if replace:
        payload["reason"] = f"failover: {payload['reason']}"
        RoutingDecision.objects.filter(order=order).delete()
    return RoutingDecision.objects.create(
        order=order,
        explicit=payload["explicit"],
        winner_id=payload["winner"],
        reason=payload["reason"],
        candidates=payload["candidates"],
        skipped=payload["skipped"],
        impact_bps=payload["impact_bps"],
        split=payload["split"],
    )


def route_quote(*, user, order: OrderToRoute, broker_id: int | None = None) -> dict[str, Any]:
    """What routing would do with ``order`` now, without placing anything: every account with
    its score or the reason it is skipped, the winner and why, the impact estimate and the split."""
    try:
        route_ = route_decide(user=user, order=order, broker_id=broker_id)
    except TradeMasterError as exc:
        if exc.code not in ("no_eligible_broker", "broker_ineligible"):
            raise
        listed = route_venues(
            user=user, symbol=order.symbol, account_ids=None if broker_id is None else [broker_id]
        )
        decision = route((v for _, v, _ in listed), order, weights())
        route_ = Route(
            order, None, decision, explicit=broker_id is not None, accounts={a.pk: a for a, _, _ in listed}
        )
        payload = decision_payload(route_)
        payload["reason"] = exc.message
        return payload
    return decision_payload(route_)
