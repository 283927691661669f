"""What every app's viewsets share: parse a body or a query string, answer one cursor page, say 201 or 200.

A viewset parses its input with `parsed` / `parsed_query`, calls one service or selector, and shapes
the answer; a list answers `PagedViewSet.page` over the selector's queryset, or
`PagedViewSet.filtered_page` when the list's filters are query parameters handed to its selector.
`path_parameters` describes a path parameter once for the actions that take it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.acting import acting_user
from core.api.errors import ErrorSerializer

_M = TypeVar("_M", bound=Model)
_F = TypeVar("_F", bound=Callable[..., Any])
_V = TypeVar("_V", bound=type[Any])


def parsed(serializer_class: type[serializers.Serializer[Any]], data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Validated input, or a 400 with field details (a body that is not an object is refused too)."""
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def parsed_query(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    """The validated query string, or a 400 with field details."""
    # A plain dict, so that absent booleans stay absent instead of reading as HTML "unchecked".
    return parsed(serializer_class, request.query_params.dict())


def created_or_ok(created: bool) -> int:
    """201 when the call stored something new, 200 when it answered what was already stored."""
    return status.HTTP_201_CREATED if created else status.HTTP_200_OK


def error_response(description: str) -> OpenApiResponse:
    """An error answer (`{"detail", "code", "fields"}`) in the OpenAPI description."""
    return OpenApiResponse(ErrorSerializer, description=description)


class PagedViewSet(viewsets.GenericViewSet[_M]):
    """A viewset whose list answers one cursor page of a selector's queryset, shaped by its `serializer_class`
    (a model serializer: its model is the viewset's)."""

    def get_queryset(self) -> QuerySet[_M]:
        """No rows: every read goes through a selector. It names the model, for the OpenAPI schema."""
        output: Any = self.get_serializer_class()
        model: type[_M] = output.Meta.model
        return model._default_manager.none()

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


def path_parameters(parameter: OpenApiParameter, *actions: str) -> Callable[[_V], _V]:
    """Describes the path parameter `parameter` (its type and meaning) in the OpenAPI operation of each of a
    viewset's `actions`."""
    return extend_schema_view(**{action: extend_schema(parameters=[parameter]) for action in actions})


# The 400 answer of every endpoint that parses input.
INVALID_INPUT = error_response("Invalid input; `fields` names each problem")


def list_schema(
    summary: str,
    output: type[serializers.BaseSerializer[Any]],
    query: type[serializers.Serializer[Any]] | None = None,
    *,
    not_found: OpenApiResponse | None = None,
) -> Callable[[_F], _F]:
    """The OpenAPI description of a list: one cursor page of `output`, narrowed by the `query` parameters (a bad
    query is a 400), and `not_found` when the list belongs to a record that may not exist (404)."""
    responses: dict[int, Any] = {200: output(many=True)}
    if query is not None:
        responses[400] = INVALID_INPUT
    if not_found is not None:
        responses[404] = not_found
    return extend_schema(summary=summary, parameters=[query] if query is not None else None, responses=responses)
