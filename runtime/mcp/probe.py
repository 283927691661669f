"""Probing an MCP server on demand: start it (or reuse its session), list its tools, store the result."""

from __future__ import annotations

import contextlib

from core.config.contracts import Kind, RecordReadiness
from core.config.readiness import mcp_server_readiness
from core.config.selectors import config_instance_get, mcp_health, mcp_server_config
from core.models import McpServerSpec
from runtime.mcp.gateway import McpUnavailable, mcp_gateway


def mcp_probe(*, name: str) -> RecordReadiness:
    """Probe the server named `name` (enabled or not) and return its readiness with the stored probe.

    Raises `NotFoundError` for an unknown name. A server that fails is not an exception: its
    readiness is blocked by the stored error.
    """
    server: McpServerSpec = config_instance_get(Kind.MCP_SERVER, name)
    with contextlib.suppress(McpUnavailable):  # stored by the gateway; the readiness below says why
        mcp_gateway().tools(server)
    return mcp_server_readiness(mcp_server_config(server), probes=mcp_health())
