"""The order form's rules: risk level, cautions, confirmation, fields per type (orders.domain.entry)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from brokers.domain.adapter import Quote
from orders.domain import entry
from orders.domain.entry import Limits, RiskLevel
from risk.domain.assessment import ProjectedExposure, RiskAssessment, RuleFailure

D = Decimal
THRESHOLD = D("50000")
NO_LIMITS = Limits()


def assessment(
    notional: str = "1000",
    *,
    failures: tuple[RuleFailure, ...] = (),
    position: str = "0",
    gross: str = "0",
    net: str = "0",
    buying_power_after: str = "99000",
    reserve: str | None = None,
) -> RiskAssessment:
    return RiskAssessment(
        failures=failures,
        projected=ProjectedExposure(
            order_notional=D(notional),
            position_notional=D(position),
            gross_exposure=D(gross),
            net_exposure=D(net),
            buying_power_after=D(buying_power_after),
        ),
        reserve=D(notional if reserve is None else reserve),
    )


def evaluate(
    a: RiskAssessment, *, quantity: str = "10", limits: Limits = NO_LIMITS, equity: str = "250000", **kw
):
    return entry.evaluate(
        assessment=a, quantity=D(quantity), limits=limits, equity=D(equity), confirm_threshold=THRESHOLD, **kw
    )


# --- level ---------------------------------------------------------------------------------------


def test_an_approved_order_far_from_every_limit_is_green():
    verdict = evaluate(assessment(), limits=Limits(order_notional=D("250000"), gross_exposure=D("1000000")))
    assert verdict == entry.Verdict(RiskLevel.GREEN, (), None)
    assert verdict.level.badge == "OK" and not verdict.needs_confirmation


def test_a_rejected_order_is_red_with_each_failed_rule():
    failures = (
        RuleFailure("RESTRICTED_SYMBOL", "GME is on the restricted list (RESTRICTED_SYMBOL)."),
        RuleFailure("MAX_ORDER_NOTIONAL", "Order notional 900.00 exceeds 500.00 (MAX_ORDER_NOTIONAL)."),
    )
    verdict = evaluate(assessment("900", failures=failures))
    assert verdict.level is RiskLevel.RED and verdict.level.badge == "Blocked"
    assert verdict.reasons == tuple(f.reason for f in failures)


def test_red_wins_over_cautions_and_a_refused_large_order_asks_for_no_confirmation():
    failure = RuleFailure("MAX_POSITION_NOTIONAL", "too big (MAX_POSITION_NOTIONAL).")
    verdict = evaluate(assessment("60000", failures=(failure,)), limits=Limits(order_notional=D("61000")))
    assert verdict.level is RiskLevel.RED
    assert verdict.reasons == ("too big (MAX_POSITION_NOTIONAL).",)
    assert not verdict.needs_confirmation  # confirming would not change the refusal


@pytest.mark.parametrize(
    ("kwargs", "limits", "reason"),
    [
        (
            {"notional": "800"},
            Limits(order_notional=D("1000")),
            "Order notional 800.00 is 80% of its 1,000.00 limit.",
        ),
        (
            {"position": "450000"},
            Limits(position_notional=D("500000")),
            "Position value 450,000.00 is 90% of its 500,000.00 limit.",
        ),
        (
            {"gross": "950000"},
            Limits(gross_exposure=D("1000000")),
            "Gross exposure 950,000.00 is 95% of its 1,000,000.00 limit.",
        ),
        ({"net": "85"}, Limits(net_exposure=D("100")), "Net exposure 85.00 is 85% of its 100.00 limit."),
    ],
)
def test_a_figure_at_80_percent_of_its_limit_is_a_caution(kwargs, limits, reason):
    verdict = evaluate(assessment(**kwargs), limits=limits)
    assert verdict.level is RiskLevel.YELLOW and verdict.level.badge == "Caution"
    assert verdict.reasons == (reason,)


def test_just_under_80_percent_is_green_and_no_limit_is_never_near():
    assert evaluate(assessment("799.99"), limits=Limits(order_notional=D("1000"))).level is RiskLevel.GREEN
    huge = evaluate(assessment("49000", gross="9000000", reserve="0"), limits=Limits(), equity="0")
    assert huge.level is RiskLevel.GREEN


def test_quantity_near_its_limit_is_a_caution():
    verdict = evaluate(assessment(), quantity="900", limits=Limits(order_quantity=D("1000")))
    assert verdict.reasons == ("Quantity 900 is 90% of its 1000 limit.",)


def test_using_most_of_the_buying_power_left_is_a_caution():
    verdict = evaluate(assessment("9000", buying_power_after="1000"), route_label="Paper A")
    assert verdict.level is RiskLevel.YELLOW
    assert verdict.reasons == ("Uses 90% of the buying power left at Paper A (1,000.00 after).",)
    # a reducing order reserves nothing
    assert evaluate(assessment("9000", buying_power_after="1000", reserve="0")).level is RiskLevel.GREEN


def test_a_degraded_route_is_a_caution():
    verdict = evaluate(assessment(), route_status="DEGRADED", route_label="Schwab main")
    assert verdict.reasons == ("The route Schwab main is DEGRADED: its broker connection is impaired.",)
    assert evaluate(assessment(), route_status="CONNECTED").level is RiskLevel.GREEN


# --- confirmation --------------------------------------------------------------------------------


def test_a_notional_at_the_threshold_needs_a_confirmation_and_is_a_caution():
    verdict = evaluate(assessment("50000"))
    assert verdict.needs_confirmation and verdict.level is RiskLevel.YELLOW
    assert (
        verdict.confirm
        == "Large order: 50,000.00 notional is at or above the 50,000.00 confirmation threshold."
    )
    assert verdict.reasons == (verdict.confirm,)
    assert not evaluate(assessment("49999.99")).needs_confirmation


def test_a_quarter_of_equity_needs_a_confirmation():
    reason = entry.confirmation_reason(notional=D("25000"), equity=D("100000"), threshold=THRESHOLD)
    assert (
        reason == "Large order: 25,000.00 notional is 25% of your 100,000.00 equity (confirmation from 25%)."
    )
    assert entry.confirmation_reason(notional=D("24999"), equity=D("100000"), threshold=THRESHOLD) is None


def test_no_notional_or_no_equity_asks_nothing_by_share():
    assert entry.confirmation_reason(notional=D("0"), equity=D("0"), threshold=THRESHOLD) is None
    assert entry.confirmation_reason(notional=D("100"), equity=D("0"), threshold=THRESHOLD) is None


def test_a_confirmation_is_for_one_set_of_parameters():
    base = {"symbol": "AAPL", "quantity": D("600"), "price": D("100"), "broker": None}
    key = entry.confirmation_key(base)
    assert key == entry.confirmation_key(dict(reversed(base.items())))
    assert key != entry.confirmation_key({**base, "quantity": D("700")})
    assert key != entry.confirmation_key({**base, "broker": 3})
    assert len(key) == 24


# --- fields per type and errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_type", "shown"),
    [
        ("MARKET", set()),
        ("LIMIT", {"price"}),
        ("STOP", {"stop_price"}),
        ("STOP_LIMIT", {"price", "stop_price"}),
        ("TRAILING_STOP", {"trail_amount", "trail_percent"}),
    ],
)
def test_price_fields_shown_per_order_type(order_type, shown):
    prices = {"price", "stop_price", "trail_amount", "trail_percent"}
    assert {f for f in prices if entry.shown(f, {"order_type": order_type})} == shown


def test_algo_fields_shown_per_algo():
    algo_fields = {"duration_minutes", "slices", "max_participation"}
    assert {f for f in algo_fields if entry.shown(f, {"algo": ""})} == set()
    assert {f for f in algo_fields if entry.shown(f, {"algo": "TWAP"})} == {"duration_minutes", "slices"}
    assert {f for f in algo_fields if entry.shown(f, {"algo": "VWAP"})} == algo_fields
    assert entry.shown("quantity", {}) and entry.show_when("price") == "order_type=LIMIT,STOP_LIMIT"


def test_service_errors_land_on_the_form_fields():
    fields = ["symbol", "quantity", "broker", "duration_minutes", "max_participation"]
    assert entry.form_error("broker_id", "PAPER-CRYPTO does not trade EQUITY.", fields) == (
        "broker",
        "PAPER-CRYPTO does not trade EQUITY.",
    )
    assert entry.form_error("end_time", "Give end_time or duration_seconds.", fields)[0] == "duration_minutes"
    assert entry.form_error("max_participation", "max_participation is a fraction in (0, 1].", fields) == (
        "max_participation",
        "Give a percentage above 0 and at most 100.",
    )
    assert entry.form_error("randomize", "randomize is a fraction.", fields) == (
        None,
        "randomize is a fraction.",
    )
    assert entry.form_error(
        "trail_amount", "needs exactly one of trail_amount or trail_percent.", fields
    ) == (
        None,
        "needs exactly one of a trail amount or a trail %.",
    )


def test_rejection_reasons_come_from_the_risk_failures_or_the_status_reason():
    events = [{"reason": "a b", "risk": [{"rule": "A", "reason": "a"}, {"rule": "B", "reason": "b"}]}]
    assert entry.rejection_reasons("a b", events) == ["a", "b"]
    assert entry.rejection_reasons("rejected by broker: no", [{"reason": "rejected by broker: no"}]) == [
        "rejected by broker: no"
    ]
    assert entry.rejection_reasons("", []) == ["The order was rejected."]


def test_top_of_book_takes_the_best_bid_and_ask_and_the_newest_last():
    t0 = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)

    def q(bid, ask, last, seconds):
        return Quote("AAPL", D(bid), D(ask), D(1), D(1), D(last), t0 + dt.timedelta(seconds=seconds))

    top = entry.top_of_book("AAPL", [q("99.98", "100.03", "100.00", 0), q("99.99", "100.05", "100.01", 2)])
    assert (top.bid, top.ask, top.last, top.venues) == (D("99.99"), D("100.03"), D("100.01"), 2)
    assert top.spread == D("0.04") and top.at == t0 + dt.timedelta(seconds=2)
    assert entry.top_of_book("AAPL", []) is None
