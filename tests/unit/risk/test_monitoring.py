"""The live portfolio rules: CRITICAL at or beyond the limit, WARNING from 80 % of it, off when None."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from risk.domain.context import RiskLimits
from risk.domain.monitoring import PortfolioSnapshot, Rule, Severity, evaluate

NO_LIMITS = RiskLimits()


def snapshot(daily_pnl="0", drawdown="0", **positions: str) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        equity=D("100000"),
        daily_pnl=D(daily_pnl),
        drawdown=D(drawdown),
        positions={s: D(v) for s, v in positions.items()},
    )


def only(breaches, rule: Rule):
    found = [b for b in breaches if b.rule is rule]
    assert len(found) == 1, breaches
    return found[0]


def test_nothing_is_breached_without_limits():
    book = snapshot("-1000000", "1000000", AAPL="900000", MSFT="-5")
    assert evaluate(NO_LIMITS, book) == []


@pytest.mark.parametrize(
    ("pnl", "severity"),
    [
        ("-7999.99", None),
        ("-8000", Severity.WARNING),
        ("-9999.99", Severity.WARNING),
        ("-10000", Severity.CRITICAL),
        ("-12500", Severity.CRITICAL),
        ("5000", None),
    ],
)
def test_daily_loss_warns_at_80_percent_and_is_critical_at_the_limit(pnl, severity):
    breaches = evaluate(RiskLimits(daily_loss_limit=D("10000")), snapshot(pnl))
    if severity is None:
        assert breaches == []
        return
    breach = only(breaches, Rule.DAILY_LOSS)
    assert breach.severity is severity
    assert (breach.limit, breach.value) == (D("10000"), -D(pnl))


def test_the_message_names_the_numbers():
    breach = only(evaluate(RiskLimits(daily_loss_limit=D("10000")), snapshot("-12500")), Rule.DAILY_LOSS)
    assert breach.message == "Today's loss 12,500.00 has reached the limit of 10,000.00 (125.0%, DAILY_LOSS)."


@pytest.mark.parametrize(
    ("drawdown", "severity"), [("3999", None), ("4000", Severity.WARNING), ("5000", Severity.CRITICAL)]
)
def test_drawdown(drawdown, severity):
    breaches = evaluate(RiskLimits(max_drawdown=D("5000")), snapshot(drawdown=drawdown))
    assert [b.severity for b in breaches] == ([severity] if severity else [])
    assert all(b.rule is Rule.DRAWDOWN for b in breaches)


def test_gross_and_net_exposure_net_longs_against_shorts():
    # long 60k AAPL, short 40k MSFT: gross 100k, net 20k
    book = snapshot(AAPL="60000", MSFT="-40000")
    limits = RiskLimits(max_gross_exposure=D("100000"), max_net_exposure=D("24000"))
    breaches = evaluate(limits, book)
    gross, net = only(breaches, Rule.GROSS_EXPOSURE), only(breaches, Rule.NET_EXPOSURE)
    assert (gross.severity, gross.value) == (Severity.CRITICAL, D("100000"))
    assert (net.severity, net.value) == (Severity.WARNING, D("20000"))
    assert breaches[0].severity is Severity.CRITICAL  # most severe first


def test_position_notional_is_per_symbol_and_counts_shorts():
    book = snapshot(AAPL="1000", MSFT="-5000", TSLA="4100")
    breaches = evaluate(RiskLimits(max_position_notional=D("5000")), book)
    assert {(b.symbol, b.severity) for b in breaches} == {
        ("MSFT", Severity.CRITICAL),
        ("TSLA", Severity.WARNING),
    }
    assert (
        "Position in MSFT worth 5,000.00 has reached"
        in only([b for b in breaches if b.symbol == "MSFT"], Rule.POSITION_NOTIONAL).message
    )


def test_concentration_flags_a_symbol_above_its_share_of_gross():
    book = snapshot(AAPL="60000", MSFT="-30000", TSLA="10000")  # gross 100k: AAPL is 60 %
    breaches = evaluate(NO_LIMITS, book, concentration_limit_percent=D("50"))
    breach = only(breaches, Rule.CONCENTRATION)
    assert (breach.symbol, breach.severity, breach.limit, breach.value) == (
        "AAPL",
        Severity.WARNING,
        D("50"),
        D("60"),
    )
    assert (
        breach.message
        == "AAPL is 60.0% of gross exposure 100,000.00, above the limit of 50% (CONCENTRATION)."
    )


def test_concentration_at_the_limit_off_or_with_one_symbol_is_not_flagged():
    assert evaluate(NO_LIMITS, snapshot(AAPL="50", MSFT="50"), concentration_limit_percent=D("50")) == []
    assert evaluate(NO_LIMITS, snapshot(AAPL="90", MSFT="10"), concentration_limit_percent=None) == []
    assert evaluate(NO_LIMITS, snapshot(AAPL="90"), concentration_limit_percent=D("50")) == []
