"""Display filters for money and quantities on the dashboard and positions pages.

Decimal in, text out: nothing here goes through float. ``{% load portfolio_fmt %}``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()

CENT = Decimal("0.01")
Q8 = Decimal("0.00000001")


def _dec(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


@register.filter
def plain(value) -> str:
    """A plain decimal string (no exponent, no trailing zeros), for data-value attributes."""
    d = _dec(value)
    return "" if d is None else format(d.normalize(), "f")


@register.filter
def money(value) -> str:
    """1234.5 -> "1,234.50"."""
    d = _dec(value)
    return "" if d is None else format(d.quantize(CENT, ROUND_HALF_UP) + 0, ",.2f")


@register.filter
def signed_money(value) -> str:
    """1234.5 -> "+1,234.50", -3 -> "-3.00", 0 -> "0.00"."""
    d = _dec(value)
    if d is None:
        return ""
    d = d.quantize(CENT, ROUND_HALF_UP) + 0
    return format(d, "+,.2f") if d != 0 else "0.00"


@register.filter
def signed_percent(value) -> str:
    """0.1234 -> "+0.12%"; None -> "n/a"."""
    d = _dec(value)
    if d is None:
        return "n/a"
    d = d.quantize(CENT, ROUND_HALF_UP) + 0
    return (format(d, "+.2f") if d != 0 else "0.00") + "%"


@register.filter
def qty(value) -> str:
    """A quantity without trailing zeros: 10.00000000 -> "10", 0.50000000 -> "0.5", grouped."""
    d = _dec(value)
    if d is None:
        return ""
    d = d.quantize(Q8).normalize()
    return format(d, ",f") if d != 0 else "0"


@register.filter
def price(value) -> str:
    """A price with at least 2 and at most 8 decimals: 100.01000000 -> "100.01"."""
    d = _dec(value)
    if d is None:
        return ""
    d = d.quantize(Q8).normalize()
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        return format(d.quantize(CENT), ",.2f")
    return format(d, ",f")


@register.filter
def pnl_class(value) -> str:
    """ "pos" above zero, "neg" below, "" at zero."""
    d = _dec(value)
    if d is None or d == 0:
        return ""
    return "pos" if d > 0 else "neg"
