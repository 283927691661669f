"""The telemetry API: record a usage report, list events, and the summary the tokens view reads.

Each action parses with a serializer, calls one service or selector, and shapes the answer. The
summary reads only rollups, so its cost does not depend on the number of events.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.acting import acting_user
from core.api.pagination import NewestFirstCursorPagination
from core.api.schema import INVALID_INPUT, error_response, list_schema
from core.api.views import PagedViewSet, parsed, parsed_query
from telemetry.api.serializers import (
    UsageEventSerializer,
    UsageListQuerySerializer,
    UsageRecordSerializer,
    UsageSummaryQuerySerializer,
    UsageSummarySerializer,
)
from telemetry.models import UsageEvent
from telemetry.selectors import usage_events, usage_summary
from telemetry.services import usage_record

ERRORS_404 = error_response("Unknown (or malformed) session id")
ERRORS_409 = error_response("request_id already recorded with other usage")


def _scope(request: Request, query: dict[str, Any]) -> AbstractBaseUser | None:
    """Whose usage a read covers: the caller's own, or with `all=true` everyone's (staff only)."""
    user = acting_user(request)
    if not query.get("all"):
        return user
    if not getattr(user, "is_staff", False):
        raise PermissionDenied("Only staff read every user's usage; leave out all=true to read yours.")
    return None


class UsageCursorPagination(NewestFirstCursorPagination):
    """Usage events newest first by occurrence (usage_event_recent_idx); no COUNT."""

    ordering = ("-occurred_at", "-id")


class UsageViewSet(PagedViewSet[UsageEvent]):
    """Usage events: record one provider report, list them newest first."""

    serializer_class = UsageEventSerializer
    pagination_class = UsageCursorPagination

    @list_schema(
        "List usage events, newest first", UsageEventSerializer, UsageListQuerySerializer, not_found=ERRORS_404
    )
    def list(self, request: Request) -> Response:
        query = parsed_query(UsageListQuerySerializer, request)
        events = usage_events(
            owner=_scope(request, query),
            session_id=query.get("session"),
            provider=query.get("provider"),
            model=query.get("model"),
        )
        return self.page(events)

    @extend_schema(
        summary="Record one usage report",
        request=UsageRecordSerializer,
        responses={
            201: OpenApiResponse(UsageEventSerializer, description="Recorded"),
            200: OpenApiResponse(UsageEventSerializer, description="Already recorded: the stored event"),
            400: INVALID_INPUT,
            409: ERRORS_409,
        },
    )
    def create(self, request: Request) -> Response:
        data = parsed(UsageRecordSerializer, request.data)
        result = usage_record(owner=acting_user(request), **data)
        return self.shown(result.event, created=result.created)


class UsageSummaryView(APIView):
    """Token usage for the tokens view, read only from the rollups."""

    @extend_schema(
        summary="Usage today, all time, per day, by model and provider (and one session)",
        parameters=[UsageSummaryQuerySerializer],
        responses={200: UsageSummarySerializer, 404: ERRORS_404},
    )
    def get(self, request: Request) -> Response:
        query = parsed_query(UsageSummaryQuerySerializer, request)
        return Response(
            UsageSummarySerializer(usage_summary(owner=_scope(request, query), session_id=query.get("session"))).data
        )
