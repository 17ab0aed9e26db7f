"""Pre-trade risk: the single gate every order passes before it reaches a broker.

Concurrency: ``risk_check_order`` runs inside the transaction that places the order and takes
two row locks, always in this order: the user's RiskProfile (the risk lock: per-user limits and
the user's risk book) and the order's BrokerAccount (its buying power). It reads the book's
totals and the order's symbol (``risk.book``), never the whole book, so its cost does not grow
with the number of positions and orders. Whatever it reads about other orders is committed state,
so two concurrent orders are decided one after the other and can never together exceed a limit.
The buying power an approved order needs is held as a Reservation row until the order closes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from brokers.models import BrokerAccount
from orders.domain.enums import OPEN_STATUSES, AssetClass, OrderType, Side
from risk import queries
from risk.book import (
    BookView,
    risk_book_add_order,
    risk_book_rebuild,
    risk_book_refresh,
    risk_book_totals,
    risk_book_view,
    risk_lock,
    source_legs,
    totals_from_row,
)
from risk.domain.assessment import RiskAssessment, RuleFailure
from risk.domain.book import BookTotals, OpenOrder, reserved_remaining
from risk.domain.context import (
    RATE_WINDOW,
    ProposedOrder,
    Quote,
    RiskContext,
    RiskLimits,
    TradingState,
)
from risk.domain.daytrading import (
    DayTradingAccount,
    DayTradingPolicy,
    PendingOrder,
    Trade,
    check_order,
    counts_pending_orders,
    day_trade_window,
    trade_date,
)
from risk.domain.exchange_calendar import EXCHANGE_TIMEZONE
from risk.domain.rules import assess
from risk.models import Reservation, RiskProfile
from trademaster.errors import PermissionDenied
from trademaster.outbox import outbox_record

if TYPE_CHECKING:
    from orders.models import Order

_OPEN = [s.value for s in OPEN_STATUSES]


def risk_profile_get(*, user) -> RiskProfile:
    profile, _ = RiskProfile.objects.get_or_create(user=user)
    return profile


def _limits(profile: RiskProfile) -> RiskLimits:
    per_class = {}
    if profile.max_equity_exposure is not None:
        per_class[AssetClass.EQUITY] = profile.max_equity_exposure
    if profile.max_crypto_exposure is not None:
        per_class[AssetClass.CRYPTO] = profile.max_crypto_exposure
    return RiskLimits(
        max_position_quantity=profile.max_position_quantity,
        max_position_notional=profile.max_position_notional,
        max_gross_exposure=profile.max_gross_exposure,
        max_net_exposure=profile.max_net_exposure,
        max_asset_class_exposure=per_class,
        max_broker_exposure=profile.max_broker_exposure,
        max_order_notional=profile.max_order_notional,
        max_order_quantity=profile.max_order_quantity,
        max_open_orders=profile.max_open_orders,
        max_orders_per_minute=profile.max_orders_per_minute,
        daily_loss_limit=profile.daily_loss_limit,
        max_drawdown=profile.max_drawdown,
        price_collar_percent=profile.price_collar_percent,
        restricted_symbols=frozenset(profile.restricted_symbols or ()),
        allow_short_selling=profile.allow_short_selling,
        duplicate_window_seconds=profile.duplicate_window_seconds,
        trading_state=TradingState(profile.trading_state),
    )


def _equity_marks(
    profile: RiskProfile,
    user,
    now: dt.datetime,
    *,
    save: bool,
    totals: BookTotals | None = None,
    cash: Decimal | None = None,
) -> tuple[Decimal, Decimal]:
    """Today's P&L and drawdown from the user's live equity across brokers: the cash at every
    account plus every position at its latest mark (both read here unless given)."""
    if totals is None:
        totals = risk_book_totals(user_id=user.pk)
    if cash is None:
        cash = BrokerAccount.objects.filter(user=user).aggregate(v=Sum("cash"))["v"] or Decimal(0)
    equity = cash + totals.market_value
    today = now.date()
    start, peak = profile.day_start_equity, profile.day_peak_equity
    if profile.day != today or start is None or peak is None:
        start = peak = equity
    peak = max(peak, equity)
    if save and (
        profile.day != today or profile.day_start_equity != start or profile.day_peak_equity != peak
    ):
        profile.day, profile.day_start_equity, profile.day_peak_equity = today, start, peak
        profile.save(update_fields=["day", "day_start_equity", "day_peak_equity", "updated_at"])
    return equity - start, peak - equity


def _recent_activity(
    user, proposed: ProposedOrder, profile: RiskProfile, now: dt.datetime, exclude_order_id: int | None
) -> tuple[int, bool]:
    """Orders the user created in the last 60 s, and whether one duplicates the proposed order."""
    return queries.recent_orders(
        user_id=user.pk,
        exclude_order_id=exclude_order_id,
        rate_since=now - RATE_WINDOW,
        duplicate_since=now - dt.timedelta(seconds=profile.duplicate_window_seconds),
        duplicate_of=None
        if proposed.client_order_id_given
        else (proposed.symbol, proposed.side.value, proposed.quantity, proposed.price),
    )


@dataclass(frozen=True, slots=True)
class _Locked:
    """What the check reads under the risk lock and the account lock."""

    profile: RiskProfile
    view: BookView
    account: BrokerAccount
    cash: Decimal  # across the user's accounts


def _lock_and_read(*, user_id: int, account_id: int, symbol: str, order_id: int | None) -> _Locked:
    """Take the risk lock, read the profile and the book, then take and read the account."""
    profile = queries.profile_locked(user_id)
    if profile is None:
        RiskProfile.objects.get_or_create(user_id=user_id)
        profile = queries.profile_locked(user_id)
    book, legs, cash = queries.book_read(user_id, symbol)
    if book is None:  # the order being decided joins the book only once approved
        risk_book_rebuild(user_id=user_id, exclude_order_id=order_id)
        book, legs, cash = queries.book_read(user_id, symbol)
    account = queries.account_locked(account_id)
    return _Locked(profile, BookView(book, legs, totals_from_row(book)), account, cash)


def _context(
    *,
    user,
    account: BrokerAccount,
    proposed: ProposedOrder,
    quote: Quote | None,
    profile: RiskProfile,
    order_id: int | None,
    replacing: bool,
    now: dt.datetime,
    save_marks: bool,
    view: BookView | None,
    cash: Decimal | None,
) -> RiskContext:
    """The order's symbol in full and the rest of the book as totals (``risk.book``).

    ``order_id`` is the order being decided, if persisted: a new order is not in the book yet; an
    order being replaced is, and is taken out so that it is judged as if it were new.
    """
    view = view or risk_book_view(user_id=user.pk, symbol=proposed.symbol, exclude_order_id=order_id)
    totals, stored = view.totals, view.legs
    others = totals.swap(stored, ())
    mine = stored
    if replacing:
        mine = source_legs(user.pk, [proposed.symbol], exclude_order_id=order_id)
    count, duplicate = _recent_activity(user, proposed, profile, now, order_id)
    daily_pnl, drawdown = _equity_marks(profile, user, now, save=save_marks, totals=totals, cash=cash)
    return RiskContext(
        limits=_limits(profile),
        order=proposed,
        quote=quote,
        symbol_legs=tuple(mine),
        others=others,
        open_orders=others.open_orders + sum(leg.open_orders for leg in mine),
        orders_last_minute=count,
        duplicate=duplicate,
        buying_power=account.buying_power,
        reserved=others.broker_reserved.get(account.pk, Decimal(0))
        + sum((leg.reserved for leg in mine if leg.broker_id == account.pk), Decimal(0)),
        daily_pnl=daily_pnl,
        drawdown=drawdown,
        now=now,
    )


def _day_trading_failure(
    *,
    account: BrokerAccount,
    proposed: ProposedOrder,
    notional: Decimal,
    reserved: Decimal,
    now: dt.datetime,
    exclude_order_id: int | None,
) -> RuleFailure | None:
    """The account's day-trading policy (legacy PDT, intraday margin, broker flags, or off)."""
    from orders.models import Order

    policy = DayTradingPolicy(account.day_trading_policy)
    if policy is DayTradingPolicy.OFF:
        return None
    subject = DayTradingAccount(
        policy=policy,
        is_margin_account=account.margin_account,
        last_equity=account.total_value,
        crypto=proposed.asset_class is AssetClass.CRYPTO,
        # the broker's buying power is its intraday margin allowance; open orders already use some
        intraday_buying_power=account.buying_power,
        intraday_exposure=reserved,
    )
    zone = ZoneInfo(EXCHANGE_TIMEZONE)
    today = trade_date(now.astimezone(zone).date())
    since = dt.datetime.combine(day_trade_window(today)[0], dt.time(0), tzinfo=zone)
    trades = [
        Trade(symbol, Side(side), quantity, trade_date(executed_at.astimezone(zone).date()))
        for symbol, side, quantity, executed_at in queries.account_fills(account.pk, since)
    ]
    pending: list[PendingOrder] = []
    if counts_pending_orders(subject):
        # only symbols where pending orders can make a day trade: traded today, the order's own,
        # or with orders working on both sides
        open_orders = Order.objects.filter(broker=account, status__in=_OPEN).exclude(pk=exclude_order_id)
        both_sides = open_orders.values("symbol").annotate(sides=Count("side", distinct=True)).filter(sides=2)
        relevant = {proposed.symbol} | {t.symbol for t in trades if t.day == today}
        pending = [
            PendingOrder(symbol, Side(side), quantity - filled)
            for symbol, side, quantity, filled in open_orders.filter(
                Q(symbol__in=relevant) | Q(symbol__in=both_sides.values("symbol"))
            ).values_list("symbol", "side", "quantity", "filled_quantity")
        ]
    verdict = check_order(
        subject,
        symbol=proposed.symbol,
        side=proposed.side,
        quantity=proposed.quantity,
        notional=notional,
        today=today,
        trades=trades,
        pending=pending,
    )
    if verdict.allowed:
        return None
    return RuleFailure(
        "DAY_TRADING",
        verdict.reason,
        limit=None if verdict.limit is None else Decimal(verdict.limit),
        value=None if verdict.day_trades is None else Decimal(verdict.day_trades),
    )


def proposed_from_order(order: Order, *, client_order_id_given: bool) -> ProposedOrder:
    return ProposedOrder(
        symbol=order.symbol,
        asset_class=AssetClass(order.asset_class),
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        broker_id=order.broker_id,
        price=order.price,
        stop_price=order.stop_price,
        client_order_id_given=client_order_id_given,
    )


def _decide(
    *,
    user,
    account: BrokerAccount,
    proposed: ProposedOrder,
    quote: Quote | None,
    profile: RiskProfile,
    order_id: int | None,
    replacing: bool = False,
    now: dt.datetime,
    save_marks: bool,
    view: BookView | None = None,
    cash: Decimal | None = None,
) -> RiskAssessment:
    context = _context(
        user=user,
        account=account,
        proposed=proposed,
        quote=quote,
        profile=profile,
        order_id=order_id,
        replacing=replacing,
        now=now,
        save_marks=save_marks,
        view=view,
        cash=cash,
    )
    assessment = assess(context)
    if profile.pdt_enforcement:
        failure = _day_trading_failure(
            account=account,
            proposed=proposed,
            notional=assessment.projected.order_notional,
            reserved=context.reserved,
            now=now,
            exclude_order_id=order_id,
        )
        if failure is not None:
            assessment = dataclasses.replace(assessment, failures=(*assessment.failures, failure))
    return assessment


def risk_assess(
    *,
    user,
    account: BrokerAccount,
    proposed: ProposedOrder,
    quote: Quote | None,
    now: dt.datetime | None = None,
) -> RiskAssessment:
    """A dry run: what the check would say about this order now. Takes no lock and writes nothing
    (except a missing risk book, which is built on first use)."""
    return _decide(
        user=user,
        account=account,
        proposed=proposed,
        quote=quote,
        profile=risk_profile_get(user=user),
        order_id=None,
        now=now or timezone.now(),
        save_marks=False,
    )


def risk_check_order(*, order: Order, quote: Quote | None, client_order_id_given: bool) -> RiskAssessment:
    """Decide on a persisted PENDING order and, if approved, reserve its buying power.

    Must run inside the transaction that places the order: it takes the profile and account
    row locks there, so concurrent orders are decided one at a time.
    """
    decision = risk_decide(order=order, quote=quote, client_order_id_given=client_order_id_given)
    if decision.assessment.approved:
        risk_hold(order=order, decision=decision)
    return decision.assessment


@dataclass(frozen=True, slots=True)
class Decision:
    assessment: RiskAssessment
    locked: _Locked


def risk_decide(*, order: Order, quote: Quote | None, client_order_id_given: bool) -> Decision:
    """The verdict on a persisted PENDING order: takes the locks, reads, runs the rules."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("the pre-trade check must run inside the placing transaction")
    locked = _lock_and_read(
        user_id=order.user_id, account_id=order.broker_id, symbol=order.symbol, order_id=order.pk
    )
    assessment = _decide(
        user=order.user,
        account=locked.account,
        proposed=proposed_from_order(order, client_order_id_given=client_order_id_given),
        quote=quote,
        profile=locked.profile,
        order_id=order.pk,
        now=timezone.now(),
        save_marks=True,
        view=locked.view,
        cash=locked.cash,
    )
    return Decision(assessment, locked)


def risk_hold(*, order: Order, decision: Decision) -> None:
    """An approved order's buying power reservation, and its place in the risk book."""
    held = _as_stored(decision.assessment.reserve)
    if held > 0:
        Reservation.objects.create(order=order, account_id=order.broker_id, amount=held)
    # the order joins the book as it stands: open, nothing filled, its reservation held
    risk_book_add_order(
        decision.locked.view,
        OpenOrder(
            broker_id=order.broker_id,
            symbol=order.symbol,
            side=Side(order.side),
            remaining=order.quantity,
            price=order.price or order.stop_price or Decimal(0),
            asset_class=AssetClass(order.asset_class),
            reserved=reserved_remaining(held, order.quantity, Decimal(0)),
        ),
    )


def _as_stored(amount: Decimal) -> Decimal:
    """A reservation as its DECIMAL(18,8) column keeps it: rounded up, never under-reserved."""
    return amount.quantize(Decimal("1e-8"), rounding=ROUND_UP)


class Authority(StrEnum):
    """Who restricted a user's trading (HALTED or REDUCING)."""

    SELF = "self"  # the user (their own kill switch)
    STAFF = "staff"  # an admin, or the global kill switch
    SYSTEM = "system"  # the service itself: the emergency stop-loss


_STAFF_ONLY = {Authority.STAFF, Authority.SYSTEM}


def trading_state_set(
    *,
    user,
    state: TradingState,
    actor_label: str,
    authority: Authority = Authority.SELF,
    by_staff: bool = False,
) -> RiskProfile:
    """Set the user's trading state and record who did it (outbox TRADING_STATE_CHANGED).

    A restriction set by staff or the system can only be lifted (back to ACTIVE) ``by_staff``;
    a later restriction by the user does not weaken it. Raises PermissionDenied otherwise.
    Takes the profile's row lock, the first lock ``risk_check_order`` takes, so an order being
    decided concurrently is decided entirely before or entirely after the change.
    """
    state = TradingState(state)
    with transaction.atomic():
        risk_lock(user.pk)
        profile = RiskProfile.objects.get(user_id=user.pk)
        before, held_by = profile.trading_state, profile.restricted_by
        if state is TradingState.ACTIVE:
            if held_by in _STAFF_ONLY and not by_staff:
                who = "the emergency stop-loss" if held_by == Authority.SYSTEM else "staff"
                raise PermissionDenied(
                    "restricted_by_staff",
                    f"Trading was {before.lower()} by {who}; only staff can lift it.",
                    {"trading_state": before, "restricted_by": held_by},
                )
            held_by = ""
        elif held_by not in _STAFF_ONLY:
            held_by = Authority(authority).value
        profile.trading_state, profile.restricted_by = state.value, held_by
        profile.save(update_fields=["trading_state", "restricted_by", "updated_at"])
        outbox_record(
            type="TRADING_STATE_CHANGED",
            user_id=user.pk,
            payload={"from": before, "to": state.value, "actor": actor_label, "restricted_by": held_by},
        )
    return profile


def risk_check_replace(
    *, order: Order, quantity: Decimal, price: Decimal | None, stop_price: Decimal | None, quote: Quote | None
) -> RiskAssessment:
    """Decide on a cancel-replace of a working order (its new total ``quantity`` and prices).

    Runs inside the replacing transaction with the same locks as a new order; the order itself is
    left out of the book and its unfilled part is judged as if it were new. If approved, its
    reservation follows the new size.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("risk_check_replace must run inside the replacing transaction")
    locked = _lock_and_read(
        user_id=order.user_id, account_id=order.broker_id, symbol=order.symbol, order_id=order.pk
    )
    account = locked.account
    remaining = quantity - order.filled_quantity
    proposed = dataclasses.replace(
        proposed_from_order(order, client_order_id_given=True),
        quantity=remaining,
        price=price,
        stop_price=stop_price,
    )
    assessment = _decide(
        user=order.user,
        account=account,
        proposed=proposed,
        quote=quote,
        profile=locked.profile,
        order_id=order.pk,
        replacing=True,
        now=timezone.now(),
        save_marks=True,
        view=locked.view,
        cash=locked.cash,
    )
    if assessment.approved:
        # reservations are pro-rated by (quantity - filled) / quantity: store the full-size amount
        amount = _as_stored(assessment.reserve * quantity / remaining)
        if amount > 0:
            Reservation.objects.update_or_create(order=order, defaults={"account": account, "amount": amount})
        else:
            Reservation.objects.filter(order=order).delete()
        risk_book_refresh(user_id=order.user_id, symbols=[order.symbol])  # its reservation changed
    return assessment


def risk_emergency_stop_due(*, user) -> str | None:
    """Why the user's emergency stop-loss must fire now (today's loss reached it), or None."""
    profile = risk_profile_get(user=user)
    if profile.emergency_loss_limit is None or profile.trading_state == TradingState.HALTED:
        return None
    daily_pnl, _ = _equity_marks(profile, user, timezone.now(), save=False)
    if daily_pnl > -profile.emergency_loss_limit:
        return None
    return (
        f"today's P&L {daily_pnl.quantize(Decimal('0.01')):,} reached the emergency stop-loss of "
        f"-{profile.emergency_loss_limit.quantize(Decimal('0.01')):,}"
    )
