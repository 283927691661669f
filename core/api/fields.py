"""Serializer fields shared by every app's API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class Int64Field(serializers.IntegerField):
    """An integer no database column or lookup overflows: outside the 64-bit range it is a 400 naming
    the field, instead of an OverflowError from the database driver. Explicit bounds narrow it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["min_value"] = max(kwargs.get("min_value", INT64_MIN), INT64_MIN)
        kwargs["max_value"] = min(kwargs.get("max_value", INT64_MAX), INT64_MAX)
        super().__init__(**kwargs)
