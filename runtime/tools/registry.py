"""Which tools a turn offers its model, how a call's arguments are checked, and how a call is run.

Offered: the enabled tool specs that name a runner (an agent's own tools and its skills' tools
when the run has an agent), and the allowed tools of the enabled MCP servers (the agent's), named
`server__tool`. Each name fits every provider's pattern and is unique; each schema is a valid
JSON Schema (2020-12) for an object. Anything else is left out of the turn with a note saying why
(the turn writes the notes to its trace), and the turn goes on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from jsonschema import Draft202012Validator, SchemaError

from core.models import AgentProfile, McpServerSpec, Run, Team, ToolSpec
from runtime.agents import team_member_for_tool, team_tools, teams_asked_from
from runtime.providers import ToolDefinition
from runtime.tools.builtins import ToolContext, ToolFailedError, builtin_run
from runtime.tools.gateway import MCP_UNAVAILABLE, McpGateway

# OpenAI's and Anthropic's tool-name pattern (Gemini's is wider).
NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MCP_SEPARATOR = "__"
CUT_MARKER = "\n[… result cut: {cut} of {total} characters not shown]"


@dataclass(frozen=True)
class OfferedTool:
    """A tool as the model sees it, with what runs it."""

    name: str
    description: str
    parameters: dict[str, Any]
    runner: str  # "builtin" | "mcp" | "client" | "delegate"
    target: str = ""  # the built-in's name, or the tool's name on its MCP server
    server: McpServerSpec | None = None
    team: Team | None = None  # the team whose member an `ask_<member>` tool delegates to
    requires_approval: bool = False

    def definition(self) -> ToolDefinition:
        return ToolDefinition(name=self.name, description=self.description, parameters=self.parameters)


@dataclass
class Offer:
    """The tools of one turn, by name, and why any was left out."""

    tools: dict[str, OfferedTool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, tool: OfferedTool) -> None:
        if not NAME_RE.fullmatch(tool.name):
            self.notes.append(f"tool {tool.name!r} left out: its name does not match ^[a-zA-Z0-9_-]{{1,64}}$")
        elif tool.name in self.tools:
            self.notes.append(f"tool {tool.name!r} left out: another tool has that name")
        elif (problem := schema_problem(tool.parameters)) is not None:
            self.notes.append(f"tool {tool.name!r} left out: {problem}")
        else:
            self.tools[tool.name] = tool

    def definitions(self) -> tuple[ToolDefinition, ...]:
        return tuple(tool.definition() for tool in self.tools.values())


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why `schema` cannot describe a tool's arguments (None when it can)."""
    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as exc:
        return f"its schema is not valid JSON Schema 2020-12: {exc.message}"
    if schema.get("type") != "object":
        return 'its schema is not an object schema ("type": "object")'
    return None


def _spec_tool(spec: ToolSpec, servers: Mapping[str, McpServerSpec]) -> OfferedTool | str:
    parameters = dict(spec.parameters) if spec.parameters else {"type": "object", "properties": {}}
    common = OfferedTool(
        name=spec.name,
        description=spec.description,
        parameters=parameters,
        runner="client",
        requires_approval=spec.requires_approval,
    )
    if spec.builtin:
        return replace(common, runner="builtin", target=spec.builtin)
    if spec.client:
        return common
    if spec.mcp:
        server_name, _, tool = spec.mcp.partition("/")
        server = servers.get(server_name)
        if server is None:
            return f"tool {spec.name!r} left out: MCP server {server_name!r} is not enabled"
        return replace(common, runner="mcp", target=tool, server=server)
    return f"tool {spec.name!r} left out: nothing runs it (set builtin, mcp or client)"


def tools_offered(*, run: Run, gateway: McpGateway | None) -> Offer:
    """The tools `run`'s turn offers (see the module docstring); MCP servers are asked only here, per turn."""
    offer = Offer()
    specs = ToolSpec.objects.filter(enabled=True)
    servers_qs = McpServerSpec.objects.filter(enabled=True)
    agent = run.agent
    if agent is not None:
        specs = specs.filter(pk__in=[*agent.tools.values_list("pk", flat=True), *_skill_tool_ids(agent.pk)])
        servers_qs = servers_qs.filter(agents=agent)
    servers = {server.name: server for server in servers_qs.order_by("name")}
    for spec in specs.order_by("name"):
        tool = _spec_tool(spec, servers)
        if isinstance(tool, str):
            offer.notes.append(tool)
        elif tool.runner == "mcp" and gateway is None:
            offer.notes.append(f"tool {spec.name!r} left out: {MCP_UNAVAILABLE}")
        else:
            offer.add(tool)
    _team_tools_add(offer, run)
    if servers and gateway is None:
        offer.notes.append(f"MCP servers {', '.join(servers)} left out: {MCP_UNAVAILABLE}")
        return offer
    for server in servers.values():
        if gateway is None:
            break
        try:
            listed = gateway.tools(server)
        except Exception as exc:  # the gateway's reason, whatever went wrong: the turn goes on without it
            offer.notes.append(f"MCP server {server.name!r} left out: {exc}")
            continue
        allowed = set(server.tool_allowlist or ())
        for item in listed:
            if allowed and item.name not in allowed:
                continue
            offer.add(
                OfferedTool(
                    name=f"{server.name}{MCP_SEPARATOR}{item.name}".replace("-", "_"),
                    description=item.description,
                    parameters=dict(item.input_schema) or {"type": "object", "properties": {}},
                    runner="mcp",
                    target=item.name,
                    server=server,
                )
            )
    return offer


def _team_tools_add(offer: Offer, run: Run) -> None:
    """One `ask_<member>` tool per member of each team `run` may ask (`runtime.agents.teams_asked_from`)."""
    for team in teams_asked_from(run):
        for definition in team_tools(team):
            offer.add(
                OfferedTool(
                    name=definition.name,
                    description=definition.description,
                    parameters=dict(definition.parameters),
                    runner="delegate",
                    target=definition.name,
                    team=team,
                )
            )


def _delegated(
    tool: OfferedTool, arguments: Mapping[str, Any], *, context: ToolContext, gateway: McpGateway | None, call_id: str
) -> tuple[str, bool]:
    """Run the member an `ask_<member>` call names as a child run; its final text (or error) is the result."""
    # Imported here: a delegation runs the member's own tool loop, which runs this module's tools.
    from runtime.delegation import delegate

    member: AgentProfile | None = team_member_for_tool(tool.team, tool.target) if tool.team is not None else None
    if member is None:
        return f"{tool.name}: no such member in the team any more", True
    parent = Run.objects.select_related("agent").get(pk=context.run_id)
    outcome = delegate(
        parent_run=parent,
        member=member,
        request=arguments.get("request", ""),
        tool_call_id=call_id,
        gateway=gateway,
        source_seq=context.message_seq,
    )
    return result_capped(outcome.text), outcome.is_error


def _skill_tool_ids(agent_id: int) -> list[int]:
    return list(ToolSpec.objects.filter(skills__agents__pk=agent_id, skills__enabled=True).values_list("pk", flat=True))


def arguments_problem(tool: OfferedTool, arguments: Mapping[str, Any]) -> str | None:
    """Why `arguments` do not fit the tool's schema (None when they do), for the model to correct."""
    errors = sorted(Draft202012Validator(tool.parameters).iter_errors(dict(arguments)), key=lambda e: list(e.path))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(part) for part in first.path) or "(the arguments)"
    return f"invalid arguments for {tool.name}: {where}: {first.message}"


def result_capped(text: str) -> str:
    """The result as the model gets it: at most AGENTCHAT_TOOL_RESULT_MAX_CHARS, with a marker where it was cut."""
    limit = settings.AGENTCHAT_TOOL_RESULT_MAX_CHARS
    if len(text) <= limit:
        return text
    return text[:limit] + CUT_MARKER.format(cut=len(text) - limit, total=len(text))


def tool_run(
    tool: OfferedTool,
    arguments: Mapping[str, Any],
    *,
    context: ToolContext,
    gateway: McpGateway | None,
    call_id: str = "",
) -> tuple[str, bool]:
    """Run one approved call `call_id`: (result text, is_error). Never raises for the tool's own failures."""
    try:
        if tool.runner == "delegate":
            return _delegated(tool, arguments, context=context, gateway=gateway, call_id=call_id)
        if tool.runner == "builtin":
            return result_capped(builtin_run(tool.target, context, arguments)), False
        if tool.runner == "mcp" and gateway is not None and tool.server is not None:
            outcome = gateway.call(
                tool.server, tool.target, dict(arguments), timeout=float(settings.AGENTCHAT_TOOL_TIMEOUT_S)
            )
            return result_capped(outcome.text), outcome.is_error
    except ToolFailedError as exc:
        return result_capped(str(exc)), True
    except Exception as exc:  # an MCP server's failure (timeout, crash) is the call's error result
        return result_capped(f"{tool.name} failed: {exc}"), True
    return f"{tool.name} cannot run here: {MCP_UNAVAILABLE}", True
