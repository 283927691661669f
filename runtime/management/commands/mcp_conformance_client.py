"""`manage.py mcp_conformance_client URL`: the MCP conformance suite's client under test, on Agent Chat's own sessions.

The suite (`@modelcontextprotocol/conformance client --command "python manage.py mcp_conformance_client"`)
starts a test server for a scenario, appends its URL to the command and names the scenario in
`MCP_CONFORMANCE_SCENARIO`. This command connects through `runtime.mcp`'s gateway (the same sessions and
calls the tool loop uses; no database is touched), lists the tools, and for `tools_call` calls each
tool with arguments built from its input schema. It exits 1 when the server cannot be reached or a call
fails.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import McpServerSpec, McpTransport
from runtime.mcp.gateway import McpGateway, McpUnavailable

CALL_TIMEOUT_S = 20.0


def sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a tool from its input schema: each required property gets a value of its type."""
    samples: dict[str, Any] = {"number": 2, "integer": 3, "string": "conformance", "boolean": True, "array": []}
    properties = schema.get("properties") or {}
    values: dict[str, Any] = {}
    for index, name in enumerate(schema.get("required") or []):
        kind = (properties.get(name) or {}).get("type", "string")
        value = samples.get(kind, {})
        values[name] = value + index if kind in ("number", "integer") else value
    return values


class Command(BaseCommand):
    help = "The MCP conformance suite's client under test (scenario from MCP_CONFORMANCE_SCENARIO): see the module."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="the scenario server's URL (the suite appends it)")

    def handle(self, *args: Any, **options: Any) -> None:
        scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "initialize")
        server = McpServerSpec(name="conformance", transport=McpTransport.STREAMABLE_HTTP, url=options["url"])
        gateway = McpGateway()
        try:
            try:
                tools = gateway.listed(server)
            except McpUnavailable as exc:
                raise CommandError(f"{scenario}: {exc.reason}") from None
            self.stdout.write(f"{scenario}: connected, {len(tools)} tool(s): {', '.join(t.name for t in tools)}")
            if scenario != "tools_call":
                return
            failed = []
            for tool in tools:
                arguments = sample_arguments(tool.input_schema)
                outcome = gateway.call(server, tool.name, arguments, timeout=CALL_TIMEOUT_S)
                self.stdout.write(f"{tool.name}({arguments}) -> {'error: ' if outcome.is_error else ''}{outcome.text}")
                if outcome.is_error:
                    failed.append(tool.name)
            if failed:
                raise CommandError(f"{scenario}: {len(failed)} call(s) failed: {', '.join(failed)}")
        finally:
            gateway.close()
