"""`POST /api/config/mcp-servers/{name}/probe/`: probe one MCP server; staff only (it starts a process)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from core.config.api.serializers import McpProbeSerializer, ReadinessSerializer
from runtime.api.probe_schema import probe_schema
from runtime.mcp.probe import mcp_probe


class McpServerReadinessSerializer(ReadinessSerializer):
    name = serializers.CharField(help_text="The MCP server's name")
    probe = McpProbeSerializer(source="mcp_probe", allow_null=True, help_text="The probe just made")

    class Meta:
        fields = ("name", "status", "reasons", "probe")


FAILED = "`probe.ok` is false and `probe.error` says why, with the server's last stderr lines"
DOES = (
    "Lists the server's tools (after its `tool_allowlist`) through the app's MCP session and stores them with "
    "their schemas, or the error. Nothing is probed by reading a page; the first turn that needs the server "
    "probes it too."
)


@probe_schema("config_mcp_servers_probe", McpServerReadinessSerializer, "MCP server", FAILED, DOES)
@api_view(["POST"])
@permission_classes([IsAdminUser])
def mcp_server_probe(request: Request, name: str) -> Response:
    """Start the server (or reuse its session), complete the handshake, list its tools and store the result."""
    return Response(McpServerReadinessSerializer(mcp_probe(name=name)).data)
