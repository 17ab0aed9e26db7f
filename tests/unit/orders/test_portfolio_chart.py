"""The dashboard's equity chart points (orders.domain.chart): plain Decimal arithmetic."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from orders.domain.chart import line_chart, percent_change


def test_points_are_scaled_into_the_box_with_the_baseline_in_view():
    chart = line_chart(
        [(D(0), D(100)), (D(50), D(120)), (D(100), D(90))], baseline=D(100), width=100, height=50, pad=5
    )
    # x: 5..95; y: high 120 at the top (5), low 90 at the bottom (45)
    assert chart.points == ((D("5.00"), D("31.67")), (D("50.00"), D("5.00")), (D("95.00"), D("45.00")))
    assert chart.baseline_y == D("31.67")
    assert (chart.first, chart.last, chart.low, chart.high) == (D(100), D(90), D(90), D(120))
    assert chart.trend == "down"
    assert chart.polyline == "5.00,31.67 50.00,5.00 95.00,45.00"
    assert chart.area == "5.00,31.67 5.00,31.67 50.00,5.00 95.00,45.00 95.00,31.67"


def test_a_baseline_outside_the_values_widens_the_range():
    chart = line_chart([(D(0), D(110)), (D(10), D(120))], baseline=D(100), width=100, height=100, pad=0)
    assert chart.baseline_y == D("100.00")  # the bottom
    assert chart.points[-1] == (D("100.00"), D("0.00"))
    assert chart.trend == "up"
    assert (chart.low, chart.high) == (D(110), D(120))  # the figures are the series', not the baseline


def test_one_point_is_a_level_line_and_a_flat_series_sits_mid_height():
    chart = line_chart([(D(7), D(100))], baseline=D(100), width=200, height=60, pad=10)
    assert chart.points == ((D("10.00"), D("30.00")), (D("190.00"), D("30.00")))
    assert chart.baseline_y == D("30.00")
    assert chart.trend == "flat"


def test_points_at_the_same_moment_do_not_divide_by_zero():
    chart = line_chart([(D(5), D(1)), (D(5), D(2))], baseline=D(1), width=10, height=10, pad=1)
    assert [x for x, _ in chart.points] == [D(1), D(1)]


def test_no_points_or_floats_are_refused():
    with pytest.raises(ValueError):
        line_chart([], baseline=D(1))
    with pytest.raises(TypeError):
        line_chart([(D(0), 1.5)], baseline=D(1))  # type: ignore[list-item]
    with pytest.raises(TypeError):
        line_chart([(D(0), D(1))], baseline=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "base", "expected"),
    [
        (D(5), D(200), D("2.5")),
        (D(-1), D(400), D("-0.25")),
        (D(0), D(10), D(0)),
        (D(5), D(0), None),
        (D(5), D(-3), None),
    ],
)
def test_percent_change(change, base, expected):
    assert percent_change(change, base) == expected
