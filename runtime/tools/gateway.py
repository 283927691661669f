"""How the tool loop reaches MCP servers: a gateway that `runtime.mcp.McpGateway` implements (the workers and
the `chat` command pass `mcp_gateway()`).

The loop takes a gateway as a parameter. Without one, MCP tools are left out of the turn, with a
trace note saying "MCP client unavailable".
"""

from __future__ import annotations

from typing import Any, Protocol

from core.models import McpServerSpec
from runtime.mcp.gateway import McpCallOutcome, McpTool

__all__ = ["MCP_UNAVAILABLE", "McpCallOutcome", "McpGateway", "McpTool"]


class McpGateway(Protocol):
    """Lists and calls an MCP server's tools; raises an Exception whose text is the reason it cannot."""

    def tools(self, server: McpServerSpec) -> list[McpTool]: ...

    def call(
        self, server: McpServerSpec, tool: str, arguments: dict[str, Any], *, timeout: float
    ) -> McpCallOutcome: ...


MCP_UNAVAILABLE = "MCP client unavailable"
