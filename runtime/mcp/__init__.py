"""The MCP client: sessions with the configured MCP servers (stdio, streamable HTTP, SSE) on the official SDK.

`mcp_gateway()` is the process's gateway: `tools(server)` lists (and records the probe),
`call(server, tool, arguments, timeout=)` calls a tool and never raises for a tool or server failure.
"""

from runtime.mcp.gateway import McpCallOutcome, McpGateway, McpTool, McpUnavailable, mcp_gateway

__all__ = ["McpCallOutcome", "McpGateway", "McpTool", "McpUnavailable", "mcp_gateway"]
