"""Day-trading policies (risk.domain.daytrading). Pure Python, no database.

Each policy is tested as a policy: which one binds an account is the account's setting, never
an assumption of these tests.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest

from orders.domain.enums import Side
from risk.domain.daytrading import (
    PDT_EQUITY_MINIMUM,
    PDT_MAX_DAY_TRADES,
    PDT_WINDOW_BUSINESS_DAYS,
    DayTradeVerdict,
    DayTradingAccount,
    DayTradingPolicy,
    PendingOrder,
    Trade,
    check_order,
    count_day_trades,
    day_trade_window,
    trade_date,
)

D = Decimal
d = date
BUY, SELL = Side.BUY, Side.SELL
P = DayTradingPolicy

# Wednesday before Thanksgiving 2026; the window is 2026-11-19..2026-11-25.
TODAY = d(2026, 11, 25)
SMALL_EQUITY = D("10000")


def trade(symbol: str, side: Side, day: date, quantity: str = "10") -> Trade:
    return Trade(symbol=symbol, side=side, quantity=D(quantity), day=day)


def round_trip(symbol: str, day: date) -> list[Trade]:
    return [trade(symbol, BUY, day), trade(symbol, SELL, day)]


def pending(symbol: str, side: Side, quantity: str = "10") -> PendingOrder:
    return PendingOrder(symbol=symbol, side=side, quantity=D(quantity))


def account(policy: DayTradingPolicy, **overrides) -> DayTradingAccount:
    fields: dict[str, object] = {"policy": policy, "is_margin_account": True, "last_equity": SMALL_EQUITY}
    fields.update(overrides)
    return DayTradingAccount(**fields)  # type: ignore[arg-type]


def check(
    acct: DayTradingAccount,
    *,
    symbol: str = "AAPL",
    side: Side = SELL,
    quantity: str = "10",
    notional: str = "1000",
    today: date = TODAY,
    trades: list[Trade] | None = None,
    open_orders: list[PendingOrder] | None = None,
    position: Decimal | None = None,
) -> DayTradeVerdict:
    return check_order(
        acct,
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        notional=D(notional),
        today=today,
        trades=trades or [],
        pending=open_orders or [],
        position=position,
    )


# Three day trades earlier in the window, and an AAPL buy today: selling AAPL today closes a day trade.
THREE_SO_FAR = [
    *round_trip("MSFT", d(2026, 11, 19)),
    *round_trip("TSLA", d(2026, 11, 20)),
    *round_trip("NVDA", d(2026, 11, 24)),
    trade("AAPL", BUY, TODAY),
]


# --- the policy is the account's setting ---------------------------------------------------------


def test_an_account_has_no_default_policy():
    with pytest.raises(TypeError):
        DayTradingAccount(is_margin_account=True, last_equity=SMALL_EQUITY)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        (P.LEGACY_PDT, False),
        (P.INTRADAY_MARGIN, True),  # the order reduces today's AAPL position
        (P.BROKER_ENFORCED, True),  # the broker reports no flags
        (P.OFF, True),
    ],
)
def test_the_same_order_is_judged_by_the_account_policy(policy, allowed):
    # Given three day trades in the window and a closing sell that would be the fourth
    acct = account(policy, intraday_buying_power=D("0"), intraday_exposure=D("5000"))

    # When the order is checked
    verdict = check(acct, trades=THREE_SO_FAR)

    # Then the account's policy decides, and names itself
    assert verdict.allowed is allowed
    assert verdict.rule == policy.value


# --- counting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sides", "expected"),
    [
        pytest.param([BUY, BUY, SELL], 1, id="finra-example-a-buy-buy-sell"),
        pytest.param([BUY, SELL, BUY, SELL], 2, id="finra-example-b-buy-sell-buy-sell"),
        pytest.param([BUY, SELL, BUY], 1, id="last-buy-still-open"),
        pytest.param([SELL, BUY], 1, id="short-then-cover"),
        pytest.param([BUY, SELL, SELL], 1, id="partial-closes"),
        pytest.param([BUY], 0, id="open-only"),
        pytest.param([], 0, id="nothing"),
    ],
)
def test_count_by_changes_of_direction(sides, expected):
    trades = [trade("AAPL", side, TODAY) for side in sides]

    assert count_day_trades(trades, today=TODAY) == expected


def test_a_round_trip_needs_the_same_symbol_and_the_same_day():
    trades = [
        trade("AAPL", BUY, d(2026, 11, 23)),
        trade("AAPL", SELL, d(2026, 11, 24)),  # held overnight
        trade("MSFT", BUY, TODAY),
        trade("TSLA", SELL, TODAY),  # another symbol
    ]

    assert count_day_trades(trades, today=TODAY) == 0


@pytest.mark.parametrize(
    ("today", "round_trip_day", "counted"),
    [
        # Thanksgiving 2026 (Thu 11-26) is not a business day: on Fri 11-27 the window reaches back to 11-20.
        pytest.param(d(2026, 11, 27), d(2026, 11, 20), 1, id="thanksgiving-window-first-day"),
        pytest.param(d(2026, 11, 27), d(2026, 11, 19), 0, id="thanksgiving-window-day-before"),
        # Fri 2026-07-03 is Independence Day observed: on Wed 07-08 the window reaches back to 07-01.
        pytest.param(d(2026, 7, 8), d(2026, 7, 1), 1, id="july-3-window-first-day"),
        pytest.param(d(2026, 7, 8), d(2026, 6, 30), 0, id="july-3-window-day-before"),
        pytest.param(d(2026, 7, 8), d(2026, 7, 9), 0, id="after-today"),
    ],
)
def test_the_window_is_five_exchange_business_days(today, round_trip_day, counted):
    # Given one day trade on round_trip_day
    trades = round_trip("AAPL", round_trip_day)

    # When the trades are counted for today
    # Then it counts only if its day is one of the last 5 NYSE business days
    assert count_day_trades(trades, today=today) == counted
    assert len(day_trade_window(today)) == PDT_WINDOW_BUSINESS_DAYS


def test_the_window_comes_from_the_calendar_passed_in():
    class EveryDayTrades:
        def is_trading_day(self, day: date, /) -> bool:
            return True

        def previous_trading_days(self, day: date, n: int, /) -> list[date]:
            return [d.fromordinal(day.toordinal() - i) for i in reversed(range(n))]

    trades = round_trip("AAPL", d(2026, 11, 20))

    assert count_day_trades(trades, today=d(2026, 11, 27)) == 1
    assert count_day_trades(trades, today=d(2026, 11, 27), calendar=EveryDayTrades()) == 0


# --- legacy_pdt -------------------------------------------------------------------------------------


def test_legacy_pdt_rejects_the_order_that_could_be_day_trade_4():
    # Given a margin account under $25,000 with 3 day trades in the window and an AAPL buy today
    acct = account(P.LEGACY_PDT)

    # When it sells AAPL today
    verdict = check(acct, trades=THREE_SO_FAR)

    # Then the order is rejected with the count, the window and the rule
    assert verdict == DayTradeVerdict(
        allowed=False,
        rule="legacy_pdt",
        reason=(
            "This order could be day trade #4 within 5 business days (3 so far, window "
            "2026-11-19..2026-11-25); the pattern-day-trader rule (FINRA 4210(f)(8)(B)) limits "
            "accounts under $25,000 equity to 3."
        ),
        day_trades=3,
        limit=3,
    )


def test_legacy_pdt_counts_pending_orders_as_potential_day_trades():
    # Given 2 day trades so far, and today an NVDA buy with an NVDA sell still pending (a third, maybe)
    trades = [
        *round_trip("MSFT", d(2026, 11, 19)),
        *round_trip("TSLA", d(2026, 11, 20)),
        trade("NVDA", BUY, TODAY),
        trade("AAPL", BUY, TODAY),
    ]
    open_orders = [pending("NVDA", SELL)]

    # When it sells AAPL
    verdict = check(account(P.LEGACY_PDT), trades=trades, open_orders=open_orders)

    # Then the sell could be day trade #4 and is rejected
    assert verdict.allowed is False
    assert verdict.reason == (
        "This order could be day trade #4 within 5 business days (2 so far, 1 more possible from "
        "pending orders, window 2026-11-19..2026-11-25); the pattern-day-trader rule "
        "(FINRA 4210(f)(8)(B)) limits accounts under $25,000 equity to 3."
    )
    assert (verdict.day_trades, verdict.limit) == (2, 3)


@pytest.mark.parametrize(
    ("candidate", "open_orders"),
    [
        pytest.param(BUY, [pending("AMD", SELL)], id="buy-after-a-pending-sell"),
        pytest.param(SELL, [pending("AMD", BUY)], id="sell-after-a-pending-buy"),
    ],
)
def test_legacy_pdt_pairs_pending_orders_in_any_order(candidate, open_orders):
    # Given 3 day trades so far, no AMD trade today, and an AMD order pending on the other side
    trades = THREE_SO_FAR[:-1]

    # When an AMD order is placed: the pair can fill in either order and make a day trade
    verdict = check(
        account(P.LEGACY_PDT), symbol="AMD", side=candidate, trades=trades, open_orders=open_orders
    )

    # Then it is rejected
    assert verdict.allowed is False
    assert verdict.reason.startswith("This order could be day trade #4 within 5 business days (3 so far,")


def test_legacy_pdt_counts_a_pair_once_however_many_orders_close_it():
    # Given 2 day trades so far, an AAPL buy today and an AAPL sell pending (day trade #3, maybe)
    trades = THREE_SO_FAR[2:]
    open_orders = [pending("AAPL", SELL, "5")]

    # When a second sell closes the rest of the same buy
    verdict = check(account(P.LEGACY_PDT), quantity="5", trades=trades, open_orders=open_orders)

    # Then it adds no day trade (FINRA: buy, sell, sell is one), so it is allowed
    assert verdict.allowed is True
    assert verdict.reason == (
        "2 day trades within 5 business days, 1 more possible from pending orders "
        "(window 2026-11-19..2026-11-25); this order cannot complete a day trade today; "
        "the limit under $25,000 equity is 3 (FINRA 4210(f)(8)(B))."
    )
    assert verdict.day_trades == 2


def test_legacy_pdt_allows_day_trade_3():
    # Given 2 day trades so far and an AAPL buy today
    trades = THREE_SO_FAR[2:]

    # When it sells AAPL
    verdict = check(account(P.LEGACY_PDT), trades=trades)

    # Then it is allowed and the reason gives the count
    assert verdict == DayTradeVerdict(
        allowed=True,
        rule="legacy_pdt",
        reason=(
            "2 day trades within 5 business days (window 2026-11-19..2026-11-25); this order could be "
            "day trade #3; the limit under $25,000 equity is 3 (FINRA 4210(f)(8)(B))."
        ),
        day_trades=2,
        limit=3,
    )


def test_legacy_pdt_allows_an_opening_order_at_3_day_trades():
    # Given 3 day trades so far and no AMD activity today
    # When it buys AMD (nothing pending could close it today)
    verdict = check(account(P.LEGACY_PDT), symbol="AMD", side=BUY, trades=THREE_SO_FAR)

    # Then it is allowed
    assert verdict.allowed is True
    assert "this order cannot complete a day trade today" in verdict.reason


@pytest.mark.parametrize(
    ("first_round_trip", "allowed"),
    [
        pytest.param(d(2026, 11, 20), False, id="inside-window-across-thanksgiving"),
        pytest.param(d(2026, 11, 19), True, id="outside-window"),
    ],
)
def test_legacy_pdt_ignores_day_trades_outside_the_window(first_round_trip, allowed):
    # Given today is Fri 2026-11-27 (the day after Thanksgiving), an AAPL buy today, and
    # day trades on 11-23 and 11-24 plus one on first_round_trip
    today = d(2026, 11, 27)
    trades = [
        *round_trip("MSFT", first_round_trip),
        *round_trip("TSLA", d(2026, 11, 23)),
        *round_trip("NVDA", d(2026, 11, 24)),
        trade("AAPL", BUY, today),
    ]

    # When it sells AAPL
    verdict = check(account(P.LEGACY_PDT), today=today, trades=trades)

    # Then the day trade counts only if its day is one of the 5 business days 11-20..11-27
    assert verdict.allowed is allowed
    assert "window 2026-11-20..2026-11-27" in verdict.reason


@pytest.mark.parametrize(
    ("equity", "allowed"),
    [
        pytest.param("24999.99", False, id="just-under"),
        pytest.param("25000", True, id="at-minimum"),
        pytest.param("250000", True, id="well-over"),
    ],
)
def test_legacy_pdt_applies_only_under_the_equity_minimum(equity, allowed):
    verdict = check(account(P.LEGACY_PDT, last_equity=D(equity)), trades=THREE_SO_FAR)

    assert verdict.allowed is allowed
    assert verdict.day_trades == 3


def test_legacy_pdt_reason_at_or_over_the_equity_minimum():
    verdict = check(account(P.LEGACY_PDT, last_equity=PDT_EQUITY_MINIMUM), trades=THREE_SO_FAR)

    assert verdict == DayTradeVerdict(
        allowed=True,
        rule="legacy_pdt",
        reason=(
            "Previous-close equity 25,000 is at least 25,000; the pattern-day-trader limit "
            "(FINRA 4210(f)(8)(B)) does not apply (3 day trades within 5 business days, "
            "window 2026-11-19..2026-11-25)."
        ),
        day_trades=3,
        limit=None,
    )


# --- exemptions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [P.LEGACY_PDT, P.INTRADAY_MARGIN, P.BROKER_ENFORCED])
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param(
            {"crypto": True},
            "Crypto account: crypto is not a security under the day-trading rules; exempt.",
            id="crypto",
        ),
        pytest.param(
            {"is_margin_account": False},
            "Cash account: the day-trading rules apply to margin accounts only; exempt.",
            id="cash",
        ),
    ],
)
def test_crypto_and_cash_accounts_are_exempt(policy, overrides, reason):
    # Given an account that would be blocked under every policy if it were a margin equity account
    acct = account(
        policy,
        intraday_buying_power=D("0"),
        intraday_exposure=D("5000"),
        broker_blocks_new_day_trades=True,
        **overrides,
    )

    # When it places the fourth day trade, opening new exposure
    verdict = check(acct, symbol="AAPL", side=SELL, quantity="20", trades=THREE_SO_FAR)

    # Then it is allowed, and the reason says why
    assert verdict == DayTradeVerdict(True, policy.value, reason, None, None)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"crypto": True}, {"is_margin_account": False}, {"broker_blocks_new_day_trades": True}],
)
def test_off_allows_everything(overrides):
    acct = account(P.OFF, intraday_buying_power=D("0"), intraday_exposure=D("5000"), **overrides)

    verdict = check(acct, trades=THREE_SO_FAR)

    assert verdict == DayTradeVerdict(True, "off", "Day-trading checks are off for this account.", None, None)


# --- intraday_margin --------------------------------------------------------------------------------


def margin_account(exposure: str, buying_power: str | None) -> DayTradingAccount:
    return account(
        P.INTRADAY_MARGIN,
        intraday_exposure=D(exposure),
        intraday_buying_power=None if buying_power is None else D(buying_power),
    )


def test_intraday_margin_rejects_an_order_that_creates_a_deficit():
    # Given 20,000 of intraday exposure against 25,000 of intraday buying power
    acct = margin_account("20000", "25000")

    # When it buys 6,000 more of a symbol it has not traded today
    verdict = check(acct, symbol="AMD", side=BUY, notional="6000.00", trades=THREE_SO_FAR)

    # Then it is rejected with the numbers
    assert verdict == DayTradeVerdict(
        allowed=False,
        rule="intraday_margin",
        reason=(
            "Intraday exposure 20,000 + 6,000.00 = 26,000.00 exceeds the intraday buying power of "
            "25,000; this order would create an intraday margin deficit of 1,000.00 "
            "(SR-FINRA-2025-017 intraday margin standard). Orders that reduce a position are still allowed."
        ),
        day_trades=None,
        limit=None,
    )


def test_intraday_margin_rejects_an_order_that_increases_a_deficit():
    # Given an account already 2,000 in deficit
    acct = margin_account("27000", "25000")

    # When it sells short 500 of a symbol it has not traded today
    verdict = check(acct, symbol="AMD", side=SELL, notional="500")

    # Then it is rejected
    assert verdict.allowed is False
    assert "would increase the intraday margin deficit from 2,000 to 2,500" in verdict.reason


@pytest.mark.parametrize(
    ("side", "quantity", "position"),
    [
        pytest.param(SELL, "10", None, id="sell-todays-buy"),
        pytest.param(SELL, "4", None, id="sell-part-of-todays-buy"),
        pytest.param(SELL, "50", D("100"), id="sell-part-of-an-overnight-long"),
        pytest.param(BUY, "30", D("-30"), id="cover-a-short"),
    ],
)
def test_intraday_margin_allows_reducing_orders_even_in_deficit(side, quantity, position):
    # Given an account in deficit that bought 10 AAPL today
    acct = margin_account("27000", "25000")

    # When the order reduces the AAPL position
    verdict = check(acct, side=side, quantity=quantity, trades=THREE_SO_FAR, position=position)

    # Then it is allowed
    assert verdict.allowed is True
    assert verdict.reason.startswith("This order reduces the AAPL position")


@pytest.mark.parametrize(
    ("notional", "allowed"),
    [
        pytest.param("5000", True, id="up-to-the-buying-power"),
        pytest.param("5000.01", False, id="one-cent-over"),
    ],
)
def test_intraday_margin_boundary(notional, allowed):
    verdict = check(margin_account("20000", "25000"), symbol="AMD", side=BUY, notional=notional)

    assert verdict.allowed is allowed


def test_intraday_margin_counts_only_the_part_of_a_flip_beyond_flat():
    # Given a 10 AAPL buy today and 24,000 of exposure against 25,000 of buying power
    acct = margin_account("24000", "25000")

    # When it sells 40 (10 close the long, 30 open a short) for 4,000
    verdict = check(acct, quantity="40", notional="4000", trades=THREE_SO_FAR)

    # Then only the 3,000 that opens the short adds exposure, creating a deficit of 2,000
    assert verdict.allowed is False
    assert verdict.reason.startswith("Intraday exposure 24,000 + 3,000 = 27,000 exceeds")


def test_intraday_margin_refuses_new_exposure_when_buying_power_is_unknown():
    acct = margin_account("0", None)

    opening = check(acct, symbol="AMD", side=BUY, notional="100")
    reducing = check(acct, side=SELL, trades=THREE_SO_FAR)

    assert opening.allowed is False
    assert opening.reason == (
        "This order adds 100 of intraday exposure and the account's intraday buying power is unknown; "
        "refusing rather than risking an intraday margin deficit."
    )
    assert reducing.allowed is True


# --- broker_enforced --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "equity", "symbol", "allowed", "reason"),
    [
        pytest.param(
            {"broker_blocks_new_day_trades": True},
            "10000",
            "AAPL",
            False,
            "The broker blocks new day trades and this order could be one (broker flags: "
            "pattern_day_trader=None, daytrade_count=None, blocks_new_day_trades=True).",
            id="block-flag",
        ),
        pytest.param(
            {"broker_blocks_new_day_trades": True},
            "10000",
            "AMD",
            True,
            "This order cannot complete a day trade today (broker flags: "
            "pattern_day_trader=None, daytrade_count=None, blocks_new_day_trades=True).",
            id="block-flag-opening-order",
        ),
        pytest.param(
            {"broker_pattern_day_trader": False, "broker_daytrade_count": 3},
            "10000",
            "AAPL",
            False,
            "The broker counts 3 day trades and has not flagged the account as a pattern day trader, "
            "equity 10,000 is under 25,000, and this order could be another day trade; the broker "
            "would reject it (broker flags: pattern_day_trader=False, daytrade_count=3, "
            "blocks_new_day_trades=None).",
            id="count-at-3-under-minimum",
        ),
        pytest.param(
            {"broker_pattern_day_trader": False, "broker_daytrade_count": 3},
            "25000",
            "AAPL",
            True,
            "The broker's flags do not block this order (broker flags: pattern_day_trader=False, "
            "daytrade_count=3, blocks_new_day_trades=None).",
            id="count-at-3-equity-at-minimum",
        ),
        pytest.param(
            {"broker_pattern_day_trader": False, "broker_daytrade_count": 2},
            "10000",
            "AAPL",
            True,
            "The broker's flags do not block this order (broker flags: pattern_day_trader=False, "
            "daytrade_count=2, blocks_new_day_trades=None).",
            id="count-at-2",
        ),
        pytest.param(
            {"broker_pattern_day_trader": True, "broker_daytrade_count": 7},
            "10000",
            "AAPL",
            True,
            "The broker's flags do not block this order (broker flags: pattern_day_trader=True, "
            "daytrade_count=7, blocks_new_day_trades=None).",
            id="already-flagged-broker-decides",
        ),
        pytest.param(
            {},
            "10000",
            "AAPL",
            True,
            "The broker reports no day-trading flags; nothing to mirror, the broker enforces its own rules.",
            id="no-flags-reported",
        ),
    ],
)
def test_broker_enforced_mirrors_the_broker_flags(flags, equity, symbol, allowed, reason):
    # Given the broker's flags and our own record of today's AAPL buy
    acct = account(P.BROKER_ENFORCED, last_equity=D(equity), **flags)

    # When a sell is placed (closing AAPL, or opening a short in AMD)
    verdict = check(acct, symbol=symbol, side=SELL, trades=THREE_SO_FAR)

    # Then the verdict follows the flags, names them, and reports the broker's count
    assert (verdict.allowed, verdict.rule, verdict.reason) == (allowed, "broker_enforced", reason)
    assert verdict.day_trades == flags.get("broker_daytrade_count")


def test_broker_enforced_ignores_our_own_count():
    # Given 3 day trades in our records but a broker count of 0
    acct = account(P.BROKER_ENFORCED, broker_pattern_day_trader=False, broker_daytrade_count=0)

    # When the order could be the fourth by our count
    verdict = check(acct, trades=THREE_SO_FAR)

    # Then the broker's count decides
    assert verdict.allowed is True
    assert (verdict.day_trades, verdict.limit) == (0, PDT_MAX_DAY_TRADES)


# --- values -----------------------------------------------------------------------------------------


def test_values_are_frozen():
    verdict = check(account(P.OFF))

    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.allowed = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("quantity", "error"),
    [(D("0"), ValueError), (D("-1"), ValueError), (1, TypeError)],
)
def test_quantities_are_positive_decimals(quantity, error):
    with pytest.raises(error):
        Trade(symbol="AAPL", side=BUY, quantity=quantity, day=TODAY)
    with pytest.raises(error):
        PendingOrder(symbol="AAPL", side=BUY, quantity=quantity)


def test_policy_values():
    assert [p.value for p in DayTradingPolicy] == ["legacy_pdt", "intraday_margin", "broker_enforced", "off"]


def test_an_execution_on_a_closed_day_counts_for_the_next_session():
    assert trade_date(date(2026, 12, 4)) == date(2026, 12, 4)  # a Friday trades
    assert trade_date(date(2026, 12, 5)) == date(2026, 12, 7)  # Saturday -> Monday
    assert trade_date(date(2026, 12, 6)) == date(2026, 12, 7)  # Sunday -> Monday
    assert trade_date(date(2026, 12, 25)) == date(2026, 12, 28)  # Christmas (Friday) -> Monday
