"""Page filters: `usd` (an exact Decimal of US dollars as a person reads it), `as_json` (a tool call's
arguments or result, indented)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

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


@register.filter
def as_json(value: Any) -> str:
    """`value` as indented JSON (a string stays as it is); the template escapes the result."""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
