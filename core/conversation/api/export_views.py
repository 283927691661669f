"""`GET /api/sessions/{id}/export/?format=json|markdown`: one session, downloadable, in the export formats."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from core.api.acting import acting_user
from core.api.schema import INVALID_INPUT, error_response
from core.api.serializers import StrictInputSerializer
from core.api.views import parsed_query
from core.conversation.exporting import export_json, export_markdown
from core.conversation.selectors import session_get

EXPORT_FORMATS = {"json": ("application/json", "json"), "markdown": ("text/markdown", "md")}


class ExportQuerySerializer(StrictInputSerializer):
    format = serializers.ChoiceField(choices=list(EXPORT_FORMATS), default="json")


class SessionExportView(APIView):
    """A session as `agentchat-export/1` JSON (every message of the tree) or Markdown (the active path)."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        # `format` names the export, not one of DRF's renderers; errors are JSON whatever it says.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        operation_id="sessions_export_retrieve",
        summary="Export a session (JSON in the agentchat-export/1 schema, or Markdown of the active path)",
        parameters=[
            OpenApiParameter("session_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Session id"),
            OpenApiParameter(
                "format", OpenApiTypes.STR, enum=list(EXPORT_FORMATS), description="json (default) or markdown"
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="agentchat-export/1"),
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="The active path"),
            400: INVALID_INPUT,
            404: error_response("Unknown session, or another user's"),
        },
    )
    def get(self, request: Request, session_id: str) -> StreamingHttpResponse:
        query: dict[str, Any] = parsed_query(ExportQuerySerializer, request)
        session = session_get(session_id=session_id, owner=acting_user(request))
        sessions = [session]
        media_type, suffix = EXPORT_FORMATS[query["format"]]
        pieces = export_json(sessions) if query["format"] == "json" else export_markdown(sessions)
        response = StreamingHttpResponse(
            (piece.encode() for piece in pieces), content_type=f"{media_type}; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="session-{session.pk}.{suffix}"'
        return response
