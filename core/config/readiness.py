"""Readiness: can each provider, route, MCP server, agent and team be used right now?

Pure functions over contracts. They read only whether an environment variable is set (never its
value) and look commands up on PATH; they make no network call. Each reason is a sentence a
person can act on: `OPENAI_API_KEY is not set`, `route 'fast' uses disabled provider 'openai'`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping

from core.config.contracts import (
    AgentConfig,
    ConfigDocument,
    Credential,
    Kind,
    McpServerConfig,
    ProviderConfig,
    ReadinessReport,
    RecordReadiness,
    RouteConfig,
    TeamConfig,
)
from core.config.models import McpTransport

DISABLED_REASON = "disabled in the configuration; enable it to use it"


def env_is_set(name: str) -> bool:
    """Whether the variable is set to something non-empty; its value is not kept or returned."""
    return bool(os.environ.get(name))


def provider_credential(provider: ProviderConfig, *, is_set: Callable[[str], bool] = env_is_set) -> Credential:
    """`present` / `missing` for a provider naming a key variable, `not_needed` otherwise."""
    if not provider.api_key_env:
        return "not_needed"
    return "present" if is_set(provider.api_key_env) else "missing"


def _result(kind: Kind, name: str, enabled: bool, reasons: list[str]) -> RecordReadiness:
    if not enabled:
        return RecordReadiness(kind=kind, name=name, status="disabled", reasons=(DISABLED_REASON,))
    return RecordReadiness(kind=kind, name=name, status="blocked" if reasons else "ready", reasons=tuple(reasons))


def provider_readiness(
    provider: ProviderConfig, *, is_set: Callable[[str], bool] = env_is_set, redacted: bool = False
) -> RecordReadiness:
    """A provider is blocked while the variable it names is not set.

    `redacted` (what a user who is not staff reads): the reason names the record, not the variable.
    """
    reasons = []
    if provider_credential(provider, is_set=is_set) == "missing":
        reasons.append(
            f"the key of provider {provider.name!r} is not set" if redacted else f"{provider.api_key_env} is not set"
        )
    return _result(Kind.PROVIDER, provider.name, provider.enabled, reasons)


def _dependency(kind: Kind, owner: str, name: str, state: RecordReadiness | None) -> list[str]:
    """Why `owner` cannot use its `kind` named `name` (state None: it does not exist)."""
    if state is None:
        return [f"{owner} uses {kind.label} {name!r}, which does not exist"]
    if state.status == "disabled":
        return [f"{owner} uses disabled {kind.label} {name!r}"]
    if state.status == "blocked":
        return [f"{owner} uses {kind.label} {name!r}, which is blocked ({'; '.join(state.reasons)})"]
    return []


def route_readiness(route: RouteConfig, provider: RecordReadiness | None) -> RecordReadiness:
    """A route is blocked while its provider is disabled or blocked."""
    reasons = _dependency(Kind.PROVIDER, f"route {route.alias!r}", route.provider, provider)
    return _result(Kind.ROUTE, route.alias, route.enabled, reasons)


def mcp_server_readiness(
    server: McpServerConfig,
    *,
    is_set: Callable[[str], bool] = env_is_set,
    which: Callable[[str], str | None] = shutil.which,
    redacted: bool = False,
) -> RecordReadiness:
    """A stdio server needs its command on PATH; every server needs the variables it names set.

    `redacted` (what a user who is not staff reads): the reasons name the record, not the command or
    the variables.
    """
    reasons = []
    if server.transport == McpTransport.STDIO and server.command and which(server.command) is None:
        reasons.append(
            f"the command of MCP server {server.name!r} is not installed"
            if redacted
            else f"stdio command {server.command!r} is not on PATH; install it or give its full path"
        )
    unset = [name for name in server.env_vars if not is_set(name)]
    if redacted and unset:
        reasons.append(f"a variable MCP server {server.name!r} needs is not set")
    elif unset:
        reasons += [f"{name} is not set; MCP server {server.name!r} needs it" for name in unset]
    return _result(Kind.MCP_SERVER, server.name, server.enabled, reasons)


def agent_readiness(
    agent: AgentConfig,
    *,
    routes: Mapping[str, RecordReadiness],
    mcp_servers: Mapping[str, RecordReadiness],
    tools_enabled: Mapping[str, bool],
    skills_enabled: Mapping[str, bool],
) -> RecordReadiness:
    """An agent is blocked while its route or an MCP server is not ready, or a tool or skill is disabled."""
    owner = f"agent {agent.name!r}"
    reasons = _dependency(Kind.ROUTE, owner, agent.route, routes.get(agent.route))
    for name in agent.mcp_servers:
        reasons += _dependency(Kind.MCP_SERVER, owner, name, mcp_servers.get(name))
    for kind, names, enabled in (
        (Kind.TOOL, agent.tools, tools_enabled),
        (Kind.SKILL, agent.skills, skills_enabled),
    ):
        for name in names:
            if name not in enabled:
                reasons.append(f"{owner} uses {kind.label} {name!r}, which does not exist")
            elif not enabled[name]:
                reasons.append(f"{owner} uses disabled {kind.label} {name!r}")
    return _result(Kind.AGENT, agent.name, agent.enabled, reasons)


def team_readiness(team: TeamConfig, *, agents: Mapping[str, RecordReadiness]) -> RecordReadiness:
    """A team is blocked while any member (the lead included) is disabled or blocked."""
    reasons = []
    for name in team.members:
        state = agents.get(name)
        role = "lead" if name == team.lead else "member"
        if state is None:
            reasons.append(f"{role} {name!r} does not exist")
        elif state.status == "disabled":
            reasons.append(f"{role} {name!r} is disabled")
        elif state.status == "blocked":
            reasons.append(f"{role} {name!r} is blocked: {'; '.join(state.reasons)}")
    return _result(Kind.TEAM, team.name, team.enabled, reasons)


def readiness_report(
    document: ConfigDocument,
    *,
    is_set: Callable[[str], bool] = env_is_set,
    which: Callable[[str], str | None] = shutil.which,
    redacted: bool = False,
) -> ReadinessReport:
    """Readiness of every record in `document`, dependencies first (`redacted`: reasons name records only)."""
    providers = {item.name: provider_readiness(item, is_set=is_set, redacted=redacted) for item in document.providers}
    routes = {item.alias: route_readiness(item, providers.get(item.provider)) for item in document.routes}
    servers = {
        item.name: mcp_server_readiness(item, is_set=is_set, which=which, redacted=redacted)
        for item in document.mcp_servers
    }
    tools_enabled = {tool.name: tool.enabled for tool in document.tools}
    skills_enabled = {skill.name: skill.enabled for skill in document.skills}
    agents = {
        item.name: agent_readiness(
            item, routes=routes, mcp_servers=servers, tools_enabled=tools_enabled, skills_enabled=skills_enabled
        )
        for item in document.agents
    }
    teams = [team_readiness(item, agents=agents) for item in document.teams]
    default = next((route.alias for route in document.routes if route.is_default), None)
    return ReadinessReport(
        providers=tuple(providers.values()),
        routes=tuple(routes.values()),
        mcp_servers=tuple(servers.values()),
        agents=tuple(agents.values()),
        teams=tuple(teams),
        default_route=default,
    )
