"""`manage.py check_mcp [NAME]`: start each enabled MCP server (or NAME), list its tools, store the result."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.config.contracts import RecordReadiness
from core.config.selectors import mcp_server_list
from core.management.base import DomainCommand
from runtime.mcp.gateway import mcp_gateway
from runtime.mcp.probe import mcp_probe


def probe_lines(state: RecordReadiness) -> list[str]:
    """One server's probe as lines a person reads: `name: ready: 7 tools`, then each tool, or why it failed."""
    probe = state.mcp_probe
    if probe is None:  # its command or a variable is missing: not started
        return [f"{state.name}: blocked: {'; '.join(state.reasons)}"]
    if probe.ok:
        return [f"{state.name}: {probe.summary}", *(f"  {tool.line}" for tool in probe.tools)]
    return [f"{state.name}: {probe.summary}", *(f"  {line}" for line in probe.error.splitlines()[1:])]


class Command(DomainCommand):
    help = (
        "Start each enabled MCP server (or NAME, enabled or not), complete the MCP handshake, list its tools "
        "(after its tool_allowlist), store the result and show it in readiness. Exits 1 when one fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="probe only this MCP server")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        names = [name] if name else list(mcp_server_list().filter(enabled=True).values_list("name", flat=True))
        if not names:
            self.stdout.write(
                "No enabled MCP servers to probe: add [[mcp_servers]] to the config file and run manage.py load_config."
            )
            return
        failed = []
        try:
            for server in names:
                state = mcp_probe(name=server)
                for line in probe_lines(state):
                    self.stdout.write(line)
                if state.mcp_probe is None or not state.mcp_probe.ok:
                    failed.append(server)
        finally:
            mcp_gateway().close()
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(names)} MCP server(s) failed their probe: {', '.join(failed)}; "
                "see each line above for what to fix"
            )
