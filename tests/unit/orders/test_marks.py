from decimal import Decimal

from orders.domain.marks import MarkThrottle


def test_first_marks_go_out_at_once_then_once_per_interval_with_nothing_lost():
    throttle = MarkThrottle(Decimal(1))
    assert throttle.due(Decimal("0"), {7: {"AAPL"}}) == {7: {"AAPL"}}
    # inside the interval: held back, merged
    assert throttle.due(Decimal("0.3"), {7: {"MSFT"}}) == {}
    assert throttle.due(Decimal("0.6"), {7: {"AAPL"}}) == {}
    # the first tick after the interval sends what waited, even if it moved nothing itself
    assert throttle.due(Decimal("1.0"), {}) == {7: {"AAPL", "MSFT"}}
    assert throttle.due(Decimal("1.5"), {}) == {}


def test_users_are_throttled_separately():
    throttle = MarkThrottle(Decimal(1))
    assert throttle.due(Decimal("0"), {1: {"AAPL"}}) == {1: {"AAPL"}}
    assert throttle.due(Decimal("0.5"), {1: {"AAPL"}, 2: {"AAPL"}}) == {2: {"AAPL"}}
    assert throttle.due(Decimal("1.2"), {}) == {1: {"AAPL"}}
