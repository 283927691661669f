"""What the staff-only probe endpoints share: their OpenAPI description (routes, MCP servers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema

from core.api.schema import error_response


def probe_schema(operation_id: str, serializer: Any, record: str, failed: str, does: str) -> Callable[[Any], Any]:
    """`extend_schema` of `POST …/{key}/probe/`: 200 with the record's readiness (a failed probe included), 403, 404."""
    return extend_schema(
        operation_id=operation_id,
        request=None,
        responses={
            200: OpenApiResponse(
                serializer,
                description=f"The {record}'s readiness after the probe, with the probe's result (a failed probe is "
                f"still a 200: {failed}).",
            ),
            403: error_response("Not staff: probes are an operator action."),
            404: error_response(f"No such {record}."),
        },
        description=does,
    )
