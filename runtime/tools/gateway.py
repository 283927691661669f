"""How the tool loop reaches MCP servers: a gateway the MCP client implements (`runtime/mcp/`).

The loop takes a gateway as a parameter. Without one, MCP tools are left out of the turn, with a
trace note saying "MCP client unavailable".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.models import McpServerSpec


@dataclass(frozen=True)
class McpTool:
    """A tool an MCP server lists: its name there, what it does, its arguments' JSON Schema."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class McpCallOutcome:
    """What a tool call returned: its text, whether the server reported an error, structured content if any."""

    text: str
    is_error: bool
    structured: dict[str, Any] | None


class McpGateway(Protocol):
    """Lists and calls an MCP server's tools; raises an Exception whose text is the reason it cannot."""

    def tools(self, server: McpServerSpec) -> list[McpTool]: ...

    def call(
        self, server: McpServerSpec, tool: str, arguments: dict[str, Any], *, timeout: float
    ) -> McpCallOutcome: ...


MCP_UNAVAILABLE = "MCP client unavailable"
