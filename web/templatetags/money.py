"""`{{ value|usd }}`: an exact Decimal of US dollars as a person reads it on a page."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

SMALLEST = Decimal("0.0001")


@register.filter
def usd(value: Decimal | None) -> str:
    """ "$0", "<$0.0001" for a cost too small for four places, else four places ("$0.0123")."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if value < SMALLEST:
        return "<$0.0001"
    return f"${value.quantize(SMALLEST)}"
