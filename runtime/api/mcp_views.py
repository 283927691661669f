"""`POST /api/config/mcp-servers/{name}/probe/`: probe one MCP server; staff only (it starts a process)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.views import error_response
from core.config.api.serializers import McpProbeSerializer, ReadinessSerializer
from runtime.mcp.probe import mcp_probe


class McpServerReadinessSerializer(ReadinessSerializer):
    name = serializers.CharField(help_text="The MCP server's name")
    probe = McpProbeSerializer(source="mcp_probe", allow_null=True, help_text="The probe just made")

    class Meta:
        fields = ("name", "status", "reasons", "probe")


class McpServerProbeView(APIView):
    """Start the server (or reuse its session), complete the handshake, list its tools and store the result."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="config_mcp_servers_probe",
        request=None,
        responses={
            200: OpenApiResponse(
                McpServerReadinessSerializer,
                description="The server's readiness after the probe (a failed probe is still a 200: `probe.ok` "
                "is false and `probe.error` says why, with the server's last stderr lines).",
            ),
            403: error_response("Not staff: probes are an operator action."),
            404: error_response("No such MCP server."),
        },
        description=(
            "Lists the server's tools (after its `tool_allowlist`) through the app's MCP session and stores them "
            "with their schemas, or the error. Nothing is probed by reading a page; the first turn that needs "
            "the server probes it too."
        ),
    )
    def post(self, request: Request, name: str) -> Response:
        state = mcp_probe(name=name)
        data: dict[str, Any] = McpServerReadinessSerializer(state).data
        return Response(data)
