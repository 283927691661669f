"""What every app's viewsets share: parse a body or a query string, answer one cursor page, say 201 or 200.

A viewset parses its input with `parsed` / `parsed_query`, calls one service or selector, and shapes
the answer (`PagedViewSet.shown`, 201 or 200); a list answers `PagedViewSet.page` over the selector's
queryset, or `PagedViewSet.filtered_page` when the list's filters are query parameters handed to its
selector. How each endpoint is described in the OpenAPI schema is `core.api.schema`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.acting import acting_user

_M = TypeVar("_M", bound=Model)


def parsed(serializer_class: type[serializers.Serializer[Any]], data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Validated input, or a 400 with field details (a body that is not an object is refused too)."""
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def parsed_query(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    """The validated query string, or a 400 with field details."""
    # A plain dict, so that absent booleans stay absent instead of reading as HTML "unchecked".
    return parsed(serializer_class, request.query_params.dict())


class PagedViewSet(viewsets.GenericViewSet[_M]):
    """A viewset whose list answers one cursor page of a selector's queryset, shaped by its `serializer_class`
    (a model serializer: its model is the viewset's)."""

    def get_queryset(self) -> QuerySet[_M]:
        """No rows: every read goes through a selector. It names the model, for the OpenAPI schema."""
        output: Any = self.get_serializer_class()
        model: type[_M] = output.Meta.model
        return model._default_manager.none()

    def shown(self, record: Any, *, created: bool = False) -> Response:
        """`record` as the viewset's `serializer_class` shows it: 201 when the call stored it new (`created`),
        else 200 (a read, a change, or a retry that found what was already stored)."""
        output: Any = self.get_serializer_class()
        return Response(output(record).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def page(self, queryset: QuerySet[Any]) -> Response:
        rows = self.paginate_queryset(queryset) or []  # every paged viewset sets a cursor pagination class
        output: Any = self.get_serializer_class()
        return self.get_paginated_response(output(rows, many=True).data)

    def filtered_page(
        self,
        request: Request,
        query_class: type[serializers.Serializer[Any]],
        select: Callable[..., QuerySet[Any]],
        *names: str,
        **renamed: str,
    ) -> Response:
        """One page of `select(owner=<the acting user>, name=<query parameter name>, …)`.

        `names` are the query parameters (parsed by `query_class`; a 400 names a bad one) that the
        selector takes as keywords of the same name; `renamed` maps a keyword of the selector to the
        query parameter that gives it. An absent parameter is None (no filter).
        """
        query = parsed_query(query_class, request)
        keywords = {name: name for name in names} | renamed
        rows = select(owner=acting_user(request), **{keyword: query.get(name) for keyword, name in keywords.items()})
        return self.page(rows)
