"""Day-trading rules, one policy per broker account.

Plain Python: no Django, no I/O, no clock (``today`` is passed in). Amounts are Decimal.

Which rule binds an account is not fixed here. FINRA Rule 4210(f)(8)(B) (the pattern-day-trader
rule: 4 or more day trades in 5 business days, $25,000 minimum equity) is being replaced by an
intraday margin standard (SR-FINRA-2025-017, approved 2026-04-14, phased in until 2027-10-20), and
brokers move at their own pace. So each account carries a :class:`DayTradingPolicy`:

``legacy_pdt``
    Count day trades over the last 5 business days of the exchange calendar, including today, and
    reject an order that could become day trade #4 when the margin account's previous-close equity
    is under $25,000. Pending orders count as potential day trades, as Alpaca's PDT protection
    counts them: any buy and sell in the same symbol today can fill in either order.
``intraday_margin``
    Reject an order that adds intraday exposure beyond the intraday buying power, i.e. one that
    would create or increase an intraday margin deficit. Orders that reduce a position pass.
``broker_enforced``
    Only mirror what the broker reports (Alpaca's ``pattern_day_trader`` and ``daytrade_count``, a
    "no new day trades" block). Missing flags mean the broker reports nothing to mirror.
``off``
    No check (cash and crypto accounts, or a broker that needs none).

Crypto accounts are exempt under every policy (crypto is not a security under the rule and brokers
do not count crypto round trips); cash accounts are exempt too (the rules concern margin accounts).

Counting day trades. A day trade is an opening trade followed by a closing trade in the same symbol
on the same trading day: buy then sell, or sell short then buy to cover. Quantities do not matter.
Per symbol and day, trades are grouped into runs of the same side, in execution order; the first
run opens, the next one closes it, the one after opens again, and so on. The count is the number
of closing runs, i.e. ``runs // 2`` (FINRA counts by changes of direction, RN 21-13):

* B, B, S -> 1;  B, S, B, S -> 2;  B, S, B -> 1;  S (short), B (cover) -> 1.

:class:`Trade` carries no start-of-day position, so the first trade of a day is taken as opening.
Selling an overnight position and buying it back the same day is therefore counted as a day trade
although it is not one; the error is on the cautious side. ``trades`` must be in execution order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_UP, Decimal
from enum import StrEnum

from orders.domain.enums import Side
from risk.domain.exchange_calendar import NYSE, TradingCalendar

PDT_EQUITY_MINIMUM = Decimal("25000")
PDT_MAX_DAY_TRADES = 3
PDT_WINDOW_BUSINESS_DAYS = 5

PDT_RULE_CITATION = "FINRA 4210(f)(8)(B)"
INTRADAY_MARGIN_CITATION = "SR-FINRA-2025-017"


class DayTradingPolicy(StrEnum):
    LEGACY_PDT = "legacy_pdt"
    INTRADAY_MARGIN = "intraday_margin"
    BROKER_ENFORCED = "broker_enforced"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Trade:
    """An executed fill (or an aggregated execution) in the account."""

    symbol: str
    side: Side
    quantity: Decimal
    day: date  # the trading day it executed on

    def __post_init__(self) -> None:
        _check_quantity(self.quantity)


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """An open order that could still execute today."""

    symbol: str
    side: Side
    quantity: Decimal  # what is left to fill

    def __post_init__(self) -> None:
        _check_quantity(self.quantity)


@dataclass(frozen=True, slots=True)
class DayTradingAccount:
    policy: DayTradingPolicy
    is_margin_account: bool
    last_equity: Decimal  # equity at the previous close
    crypto: bool = False  # crypto accounts are exempt
    # intraday_margin inputs
    intraday_buying_power: Decimal | None = None  # new intraday exposure allowed before a deficit
    intraday_exposure: Decimal = Decimal(0)  # intraday exposure already taken today
    # broker_enforced inputs: mirrors of the broker's own flags; None = the broker does not report it
    broker_pattern_day_trader: bool | None = None
    broker_daytrade_count: int | None = None
    broker_blocks_new_day_trades: bool | None = None


@dataclass(frozen=True, slots=True)
class DayTradeVerdict:
    allowed: bool
    rule: str  # the policy that decided, e.g. "legacy_pdt"
    reason: str  # human-readable, with the numbers
    day_trades: int | None  # day trades already made in the window (or the broker's count)
    limit: int | None  # the most day trades the rule allows in the window, when it has one


def _day_trades(n: int) -> str:
    return f"{n} day trade" if n == 1 else f"{n} day trades"


def _check_quantity(quantity: Decimal) -> None:
    if not isinstance(quantity, Decimal):
        raise TypeError(f"quantity must be a Decimal, got {type(quantity).__name__}")
    if not quantity > 0:
        raise ValueError(f"quantity must be positive, got {quantity}")


# --- counting ---------------------------------------------------------------------------------------


def _runs(sides: Iterable[Side]) -> tuple[int, Side | None]:
    """How many runs of equal sides, and the side of the last one."""
    runs, last = 0, None
    for side in sides:
        if side is not last:
            runs, last = runs + 1, side
    return runs, last


def _day_trades_in(sides: Iterable[Side]) -> int:
    return _runs(sides)[0] // 2


def trade_date(day: date, *, calendar: TradingCalendar = NYSE) -> date:
    """The session an execution on local date ``day`` counts for: that day if the exchange
    trades, else the next day it does (a weekend or holiday execution of a 24/7 venue or of
    overnight trading belongs to the next session, as brokers book it)."""
    for _ in range(15):  # the longest closure on record is far shorter
        if calendar.is_trading_day(day):
            return day
        day += timedelta(days=1)
    return day


def day_trade_window(today: date, *, calendar: TradingCalendar = NYSE) -> list[date]:
    """The last 5 business days, including ``today`` if it trades; oldest first."""
    return calendar.previous_trading_days(today, PDT_WINDOW_BUSINESS_DAYS)


def count_day_trades(trades: list[Trade], *, today: date, calendar: TradingCalendar = NYSE) -> int:
    """Day trades executed within the 5-business-day window that ends with ``today``."""
    window = set(day_trade_window(today, calendar=calendar))
    by_day_symbol: dict[tuple[date, str], list[Side]] = {}
    for trade in trades:
        if trade.day in window:
            by_day_symbol.setdefault((trade.day, trade.symbol), []).append(trade.side)
    return sum(_day_trades_in(sides) for sides in by_day_symbol.values())


def _potential_day_trades(executed: list[Side], pending: list[Side]) -> int:
    """The most extra day trades ``pending`` orders could add to today's ``executed`` trades.

    Pending orders may fill in any order, so take the worst case: they alternate sides, starting
    with the side that reverses the last executed run. Each buy/sell pair can make one day trade.
    """
    runs, last = _runs(executed)
    buys = sum(1 for side in pending if side is Side.BUY)
    sells = len(pending) - buys
    if last is None:
        new_runs = 2 * min(buys, sells) + (1 if buys != sells else 0)
    else:
        reversing = sells if last is Side.BUY else buys
        continuing = len(pending) - reversing
        new_runs = 2 * min(reversing, continuing) + (1 if reversing > continuing else 0)
    return (runs + new_runs) // 2 - runs // 2


@dataclass(frozen=True, slots=True)
class _Potential:
    before: int  # potential day trades from today's pending orders alone
    after: int  # ... and with the order being checked

    @property
    def from_order(self) -> int:
        return self.after - self.before


def _potential(
    *, symbol: str, side: Side, today: date, trades: list[Trade], pending: list[PendingOrder]
) -> _Potential:
    executed: dict[str, list[Side]] = {}
    for trade in trades:
        if trade.day == today:
            executed.setdefault(trade.symbol, []).append(trade.side)
    open_orders: dict[str, list[Side]] = {}
    for order in pending:
        open_orders.setdefault(order.symbol, []).append(order.side)
    before = sum(_potential_day_trades(executed.get(s, []), sides) for s, sides in open_orders.items())
    others = open_orders.get(symbol, [])
    mine = executed.get(symbol, [])
    gained = _potential_day_trades(mine, [*others, side]) - _potential_day_trades(mine, others)
    return _Potential(before=before, after=before + gained)


# --- the check --------------------------------------------------------------------------------------


def counts_pending_orders(account: DayTradingAccount) -> bool:
    """Whether :func:`check_order` looks at the account's pending orders (else pass none)."""
    if account.crypto or not account.is_margin_account:
        return False
    if account.policy is DayTradingPolicy.LEGACY_PDT:
        return account.last_equity < PDT_EQUITY_MINIMUM
    return account.policy is DayTradingPolicy.BROKER_ENFORCED


def check_order(
    account: DayTradingAccount,
    *,
    symbol: str,
    side: Side,
    quantity: Decimal,
    notional: Decimal,
    today: date,
    trades: list[Trade],
    pending: list[PendingOrder],
    position: Decimal | None = None,
    calendar: TradingCalendar = NYSE,
) -> DayTradeVerdict:
    """The account policy's verdict on a new order.

    ``trades`` are the account's executions (at least the last 5 business days, in execution
    order), ``pending`` its other open orders, ``notional`` the order's estimated value.
    ``position`` is the signed position in ``symbol`` before the order, if known; the intraday
    margin rule uses it to tell reducing orders apart, and falls back on today's trades.
    """
    _check_quantity(quantity)
    if notional < 0:
        raise ValueError(f"notional must be >= 0, got {notional}")
    policy = account.policy
    if policy is DayTradingPolicy.OFF:
        return DayTradeVerdict(True, policy.value, "Day-trading checks are off for this account.", None, None)
    if account.crypto:
        reason = "Crypto account: crypto is not a security under the day-trading rules; exempt."
        return DayTradeVerdict(True, policy.value, reason, None, None)
    if not account.is_margin_account:
        reason = "Cash account: the day-trading rules apply to margin accounts only; exempt."
        return DayTradeVerdict(True, policy.value, reason, None, None)
    if policy is DayTradingPolicy.LEGACY_PDT:
        return _legacy_pdt(account, symbol, side, today, trades, pending, calendar)
    if policy is DayTradingPolicy.INTRADAY_MARGIN:
        return _intraday_margin(account, symbol, side, quantity, notional, today, trades, position)
    if policy is DayTradingPolicy.BROKER_ENFORCED:
        return _broker_enforced(account, symbol, side, today, trades, pending)
    raise ValueError(f"unknown day-trading policy {policy!r}")


def _legacy_pdt(
    account: DayTradingAccount,
    symbol: str,
    side: Side,
    today: date,
    trades: list[Trade],
    pending: list[PendingOrder],
    calendar: TradingCalendar,
) -> DayTradeVerdict:
    rule = DayTradingPolicy.LEGACY_PDT.value
    window = day_trade_window(today, calendar=calendar)
    span = f"{window[0].isoformat()}..{window[-1].isoformat()}"
    so_far = count_day_trades(trades, today=today, calendar=calendar)
    if account.last_equity >= PDT_EQUITY_MINIMUM:
        reason = (
            f"Previous-close equity {account.last_equity:,} is at least {PDT_EQUITY_MINIMUM:,}; "
            f"the pattern-day-trader limit ({PDT_RULE_CITATION}) does not apply "
            f"({_day_trades(so_far)} within {PDT_WINDOW_BUSINESS_DAYS} business days, window {span})."
        )
        return DayTradeVerdict(True, rule, reason, so_far, None)
    potential = _potential(symbol=symbol, side=side, today=today, trades=trades, pending=pending)
    worst = so_far + potential.after
    from_pending = f", {potential.before} more possible from pending orders" if potential.before else ""
    if potential.from_order and worst > PDT_MAX_DAY_TRADES:
        reason = (
            f"This order could be day trade #{worst} within {PDT_WINDOW_BUSINESS_DAYS} business days "
            f"({so_far} so far{from_pending}, window {span}); the pattern-day-trader rule "
            f"({PDT_RULE_CITATION}) limits accounts under ${PDT_EQUITY_MINIMUM:,} equity "
            f"to {PDT_MAX_DAY_TRADES}."
        )
        return DayTradeVerdict(False, rule, reason, so_far, PDT_MAX_DAY_TRADES)
    if potential.from_order:
        outcome = f"this order could be day trade #{worst}"
    else:
        outcome = "this order cannot complete a day trade today"
    reason = (
        f"{_day_trades(so_far)} within {PDT_WINDOW_BUSINESS_DAYS} business days{from_pending} "
        f"(window {span}); {outcome}; the limit under ${PDT_EQUITY_MINIMUM:,} equity "
        f"is {PDT_MAX_DAY_TRADES} ({PDT_RULE_CITATION})."
    )
    return DayTradeVerdict(True, rule, reason, so_far, PDT_MAX_DAY_TRADES)


def _intraday_margin(
    account: DayTradingAccount,
    symbol: str,
    side: Side,
    quantity: Decimal,
    notional: Decimal,
    today: date,
    trades: list[Trade],
    position: Decimal | None,
) -> DayTradeVerdict:
    rule = DayTradingPolicy.INTRADAY_MARGIN.value
    if position is None:
        position = sum(
            (t.side.sign * t.quantity for t in trades if t.day == today and t.symbol == symbol), Decimal(0)
        )
    reducible = abs(position) if position * side.sign < 0 else Decimal(0)
    if quantity <= reducible:
        reason = (
            f"This order reduces the {symbol} position ({position:,}); "
            "reducing orders are allowed under the intraday margin standard."
        )
        return DayTradeVerdict(True, rule, reason, None, None)
    added = notional
    if reducible:  # the order flips the position: only the part beyond flat adds exposure
        step = Decimal(1).scaleb(notional.as_tuple().exponent)
        added = (notional * (quantity - reducible) / quantity).quantize(step, rounding=ROUND_UP)
    exposure, buying_power = account.intraday_exposure, account.intraday_buying_power
    if buying_power is None:
        reason = (
            f"This order adds {added:,} of intraday exposure and the account's intraday buying power "
            "is unknown; refusing rather than risking an intraday margin deficit."
        )
        return DayTradeVerdict(False, rule, reason, None, None)
    after = exposure + added
    if after <= buying_power:
        reason = (
            f"Intraday exposure {exposure:,} + {added:,} = {after:,}, within the intraday buying "
            f"power of {buying_power:,}."
        )
        return DayTradeVerdict(True, rule, reason, None, None)
    deficit_before = max(exposure - buying_power, Decimal(0))
    if deficit_before:
        effect = f"increase the intraday margin deficit from {deficit_before:,} to {after - buying_power:,}"
    else:
        effect = f"create an intraday margin deficit of {after - buying_power:,}"
    reason = (
        f"Intraday exposure {exposure:,} + {added:,} = {after:,} exceeds the intraday buying power "
        f"of {buying_power:,}; this order would {effect} ({INTRADAY_MARGIN_CITATION} intraday margin "
        "standard). Orders that reduce a position are still allowed."
    )
    return DayTradeVerdict(False, rule, reason, None, None)


def _broker_enforced(
    account: DayTradingAccount,
    symbol: str,
    side: Side,
    today: date,
    trades: list[Trade],
    pending: list[PendingOrder],
) -> DayTradeVerdict:
    rule = DayTradingPolicy.BROKER_ENFORCED.value
    pdt, count, blocks = (
        account.broker_pattern_day_trader,
        account.broker_daytrade_count,
        account.broker_blocks_new_day_trades,
    )
    flags = f"pattern_day_trader={pdt}, daytrade_count={count}, blocks_new_day_trades={blocks}"
    under_minimum = account.last_equity < PDT_EQUITY_MINIMUM
    limit = PDT_MAX_DAY_TRADES if pdt is False and under_minimum else None
    could_day_trade = bool(
        _potential(symbol=symbol, side=side, today=today, trades=trades, pending=pending).from_order
    )
    if could_day_trade and blocks is True:
        reason = f"The broker blocks new day trades and this order could be one (broker flags: {flags})."
        return DayTradeVerdict(False, rule, reason, count, limit)
    if could_day_trade and limit is not None and count is not None and count >= PDT_MAX_DAY_TRADES:
        reason = (
            f"The broker counts {count} day trades and has not flagged the account as a pattern day "
            f"trader, equity {account.last_equity:,} is under {PDT_EQUITY_MINIMUM:,}, and this order "
            f"could be another day trade; the broker would reject it (broker flags: {flags})."
        )
        return DayTradeVerdict(False, rule, reason, count, limit)
    if pdt is None and count is None and blocks is None:
        reason = (
            "The broker reports no day-trading flags; nothing to mirror, the broker enforces its own rules."
        )
    elif could_day_trade:
        reason = f"The broker's flags do not block this order (broker flags: {flags})."
    else:
        reason = f"This order cannot complete a day trade today (broker flags: {flags})."
    return DayTradeVerdict(True, rule, reason, count, limit)
