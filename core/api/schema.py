"""How every app's API describes itself in the OpenAPI schema: error answers, lists, path parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers

from core.api.errors import ErrorSerializer

_F = TypeVar("_F", bound=Callable[..., Any])
_V = TypeVar("_V", bound=type[Any])


def error_response(description: str) -> OpenApiResponse:
    """An error answer (`{"detail", "code", "fields"}`) in the OpenAPI description."""
    return OpenApiResponse(ErrorSerializer, description=description)


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


def path_parameters(parameter: OpenApiParameter, *actions: str) -> Callable[[_V], _V]:
    """Describes the path parameter `parameter` (its type and meaning) in the OpenAPI operation of each of a
    viewset's `actions`."""
    return extend_schema_view(**{action: extend_schema(parameters=[parameter]) for action in actions})
