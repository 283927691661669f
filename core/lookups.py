"""Two reads every app's selectors and services make: one row or a 404, and optional filters."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import QuerySet

from core.errors import NotFoundError

M = TypeVar("M", bound=models.Model)


def row_get(queryset: QuerySet[M], field: str, missing: str, **lookup: Any) -> M:
    """The row of `queryset` matching `lookup`; a `NotFoundError` on `field` saying `missing` if none does."""
    try:
        return queryset.get(**lookup)
    except ObjectDoesNotExist:  # the model's DoesNotExist
        raise NotFoundError.for_field(field, missing) from None


def filtered(queryset: QuerySet[M], **lookups: Any) -> QuerySet[M]:
    """`queryset` filtered by each lookup whose value is not None (None: no filter on it)."""
    return queryset.filter(**{name: value for name, value in lookups.items() if value is not None})
