"""`GET /api/bootstrap/`: the UI's first screen in one object.

The body is `bootstrap_read()` shaped by `serializers.BootstrapSerializer`. Conditional GET is
Django's own (`django.views.decorators.http.etag`): the ETag is a SHA-256 of the compact JSON
body, so a request whose `If-None-Match` names it (alone, in a list, weak `W/"…"`, or `*`) gets
`304 Not Modified` with no body. The decorator wraps `get`, which DRF calls after
authentication and permissions: an anonymous request is refused before anything is read.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_control
from django.views.decorators.http import etag
from django.views.decorators.vary import vary_on_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.acting import acting_user
from runtime.bootstrap.compose import bootstrap_read
from runtime.bootstrap.serializers import BootstrapSerializer, bootstrap_data

# Where the body computed for the ETag waits for the view, on the request being answered.
_RENDERED = "_bootstrap_rendered"


# What a user who is not staff does not see of a configuration record: where it connects and what
# it runs or reads from the environment (the readiness reasons they get name records instead).
STAFF_ONLY_FIELDS = ("base_url", "api_key_env", "command", "args", "url", "env_vars")


def without_staff_only_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with `STAFF_ONLY_FIELDS` left out of every configuration entry."""
    config = {
        name: [{k: v for k, v in entry.items() if k not in STAFF_ONLY_FIELDS} for entry in value]
        if isinstance(value, list)
        else value
        for name, value in data["config"].items()
    }
    return {**data, "config": config}


def rendered(request: Request) -> tuple[dict[str, Any], bytes]:
    """The bootstrap's data and its compact JSON for the signed-in user, computed once per request."""
    kept: tuple[dict[str, Any], bytes] | None = getattr(request, _RENDERED, None)
    if kept is None:
        user = acting_user(request)
        staff = bool(getattr(user, "is_staff", False))
        data = bootstrap_data(bootstrap_read(owner_id=user.pk, staff=staff))
        if not staff:
            data = without_staff_only_fields(data)
        kept = (data, JSONRenderer().render(data))
        setattr(request, _RENDERED, kept)
    return kept


def etag_of(body: bytes) -> str:
    """The strong ETag of `body` (quoted, so Django's `quote_etag` keeps it as is)."""
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def bootstrap_etag(request: Request, format: str | None = None) -> str:
    return etag_of(rendered(request)[1])


class BootstrapView(APIView):
    """The configuration, the counters and the state of every view, in one call."""

    @extend_schema(
        operation_id="bootstrap_retrieve",
        summary="Everything the UI needs for its first screen",
        parameters=[
            OpenApiParameter(
                name="If-None-Match",
                type=OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                required=False,
                description="An ETag from an earlier response: 304 when the body is unchanged",
            )
        ],
        responses={
            200: OpenApiResponse(BootstrapSerializer, description="The bootstrap; its strong ETag is in `ETag`"),
            304: OpenApiResponse(description="Not modified: If-None-Match names the current ETag; no body"),
        },
    )
    # Innermost first: the ETag check, then headers every answer (200 or 304) carries: private,
    # revalidated on each use, and varying by the signed-in user.
    @method_decorator([vary_on_headers("Cookie", "Authorization"), cache_control(private=True, no_cache=True)])
    @method_decorator(etag(bootstrap_etag))
    def get(self, request: Request, format: str | None = None) -> HttpResponseBase:
        data, body = rendered(request)
        renderer = getattr(request, "accepted_renderer", None)
        if type(renderer) is JSONRenderer and "indent" not in (request.accepted_media_type or ""):
            # Plain JSON asked for: the body the ETag was computed on is the response, rendered once.
            return HttpResponse(body, content_type=renderer.media_type)
        return Response(data)  # the browsable API, or JSON with an indent
