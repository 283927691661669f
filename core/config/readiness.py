"""Readiness: can each provider, route, MCP server, agent and team be used right now?

Pure functions over contracts. They read whether an environment variable is set and look commands
up on PATH; they make no network call. What using a route taught (`RouteHealth`: a refused key, a
model the provider did not know, the last probe) comes in beside the contracts. A refused key is
compared by its HMAC (`env_fingerprint`): the variable's value is hashed, never kept or returned.
Each reason is a sentence a person can act on: `OPENAI_API_KEY is not set`,
`route 'fast' uses disabled provider 'openai'`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.utils.crypto import salted_hmac

from core.config.contracts import (
    AgentConfig,
    ConfigDocument,
    Credential,
    Kind,
    McpProbe,
    McpServerConfig,
    ProbeResult,
    ProviderConfig,
    ReadinessReport,
    RecordReadiness,
    RouteConfig,
    RouteHealth,
    SkillConfig,
    TeamConfig,
    ToolConfig,
)
from core.config.models import McpTransport

DISABLED_REASON = "disabled in the configuration; enable it to use it"
# An MCP server is ready only once a probe listed its tools. Not probed yet is not a failure: an
# agent using the server is not blocked by it (its first turn probes it).
NOT_PROBED = "not probed yet"
_FINGERPRINT_SALT = "agentchat.route-status.refused-key"


def key_fingerprint(value: str) -> str:
    """The HMAC-SHA256 (keyed by SECRET_KEY) of a key's value, in hex: tells a changed key without keeping it."""
    return salted_hmac(_FINGERPRINT_SALT, value, secret=settings.SECRET_KEY, algorithm="sha256").hexdigest()


def env_fingerprint(name: str) -> str:
    """`key_fingerprint` of the variable's value now ("" unset counts as a value too)."""
    return key_fingerprint(os.environ.get(name, "") if name else "")


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


def route_health_reasons(
    route: RouteConfig,
    provider: ProviderConfig | None,
    health: RouteHealth | None,
    *,
    fingerprint: Callable[[str], str] = env_fingerprint,
    redacted: bool = False,
) -> list[str]:
    """Why what using the route taught blocks it: a key refused while the variable still holds that value,
    or a model the provider said it does not know while the route still names it."""
    if health is None:
        return []
    reasons = []
    if (
        health.key_refused_hmac
        and provider is not None
        and health.key_refused_env == provider.api_key_env
        and fingerprint(provider.api_key_env) == health.key_refused_hmac
    ):
        if redacted:
            reasons.append(f"the key of provider {provider.name!r} was refused")
        elif provider.api_key_env:
            reasons.append(
                f"the key in {provider.api_key_env} was refused; put a working key in it "
                "(the route is usable again once the value changes) or probe the route again"
            )
        else:
            reasons.append(
                f"provider {provider.name!r} refused requests without a key; name the variable holding its key "
                "in the provider's api_key_env, or probe the route again"
            )
    if health.model_missing and health.model_missing == route.model_id:
        reasons.append(
            f"provider {route.provider!r} does not know model {route.model_id!r}; fix the route's model_id, "
            "or probe the route again once the model exists"
        )
    return reasons


def _probe_shown(route: RouteConfig, probe: ProbeResult | None, redacted: bool) -> ProbeResult | None:
    """The probe as a reader may see it: for users who are not staff the provider's message (which may
    name a variable or a URL) becomes a sentence naming the records."""
    if probe is None or not redacted or probe.ok:
        return probe
    message = f"the probe of route {route.alias!r} on provider {route.provider!r} failed ({probe.code})"
    return ProbeResult(
        ok=False,
        code=probe.code,
        message=message,
        model=probe.model,
        latency_ms=probe.latency_ms,
        probed_at=probe.probed_at,
    )


def route_readiness(
    route: RouteConfig,
    provider: RecordReadiness | None,
    *,
    provider_config: ProviderConfig | None = None,
    health: RouteHealth | None = None,
    fingerprint: Callable[[str], str] = env_fingerprint,
    redacted: bool = False,
) -> RecordReadiness:
    """A route is blocked while its provider is disabled or blocked, its key was refused, or its model is unknown."""
    reasons = _dependency(Kind.PROVIDER, f"route {route.alias!r}", route.provider, provider)
    reasons += route_health_reasons(route, provider_config, health, fingerprint=fingerprint, redacted=redacted)
    result = _result(Kind.ROUTE, route.alias, route.enabled, reasons)
    probe = _probe_shown(route, health.probe if health else None, redacted)
    return result if probe is None else replace(result, probe=probe)


def mcp_server_readiness(
    server: McpServerConfig,
    *,
    probes: Mapping[str, McpProbe] | None = None,
    redacted: bool = False,
    which: Callable[[str], str | None] = shutil.which,
    is_set: Callable[[str], bool] = env_is_set,
) -> RecordReadiness:
    """A stdio server needs its command on PATH; every server needs the variables it names set.

    With `probes` (the stored probes by name, `core.config.selectors.mcp_health`), a server is
    ready only when its last probe listed its tools: never probed is blocked by `NOT_PROBED`, a
    failed probe by its error (with the server's stderr tail). `redacted` (what a user who is not
    staff reads): the reasons name the record, not the command, the variables or the error.
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
    probe = None if probes is None else probes.get(server.name)
    if probes is not None and not reasons:
        if probe is None:
            reasons.append(f"{NOT_PROBED}: run manage.py check_mcp {server.name}")
        elif not probe.ok:
            reasons.append(
                f"MCP server {server.name!r} failed its last probe; ask the operator to check it"
                if redacted
                else f"blocked: {probe.error}"
            )
    result = _result(Kind.MCP_SERVER, server.name, server.enabled, reasons)
    if probe is not None and redacted and not probe.ok:
        probe = replace(probe, error="")
    return result if probe is None else replace(result, mcp_probe=probe)


def tool_runner_reasons(tool: ToolConfig) -> list[str]:
    """Why a tool cannot run: nothing is named to run it."""
    if tool.runner:
        return []
    return [f'tool {tool.name!r} has nothing to run it; set builtin, mcp = "server/tool" or client = true']


def skill_file_exists(path: str) -> bool:
    """Whether a skill's `instructions_path` is a file inside the skills folder now."""
    folder = Path(settings.AGENTCHAT_SKILLS_DIR).resolve()
    try:
        candidate = (folder / path).resolve()
        return candidate.is_relative_to(folder) and candidate.is_file()
    except (OSError, ValueError):
        return False


def skill_readiness(
    skill: SkillConfig,
    *,
    tools_enabled: Mapping[str, bool],
    file_exists: Callable[[str], bool] = skill_file_exists,
    redacted: bool = False,
) -> RecordReadiness:
    """A skill is blocked while its instructions file is missing or a tool it uses is missing or disabled."""
    owner = f"skill {skill.name!r}"
    reasons = []
    if skill.instructions_path and not file_exists(skill.instructions_path):
        where = "" if redacted else f" ({skill.instructions_path!r} in {settings.AGENTCHAT_SKILLS_DIR})"
        reasons.append(f"the instructions file of {owner} is missing{where}; create it or fix instructions_path")
    reasons += _tool_reasons(owner, skill.tools, tools_enabled, fix="; enable it")
    return _result(Kind.SKILL, skill.name, skill.enabled, reasons)


def _tool_reasons(owner: str, names: tuple[str, ...], tools_enabled: Mapping[str, bool], *, fix: str = "") -> list[str]:
    """Why `owner` cannot use the tools `names`: each one missing or disabled."""
    reasons = []
    for name in names:
        if name not in tools_enabled:
            reasons.append(f"{owner} uses tool {name!r}, which does not exist")
        elif not tools_enabled[name]:
            reasons.append(f"{owner} uses disabled tool {name!r}{fix}")
    return reasons


def agent_readiness(
    agent: AgentConfig,
    *,
    routes: Mapping[str, RecordReadiness],
    mcp_servers: Mapping[str, RecordReadiness],
    tools_enabled: Mapping[str, bool],
    skills: Mapping[str, RecordReadiness],
) -> RecordReadiness:
    """An agent is blocked while its route, an MCP server or a skill is not ready, or a tool is disabled."""
    owner = f"agent {agent.name!r}"
    reasons = _dependency(Kind.ROUTE, owner, agent.route, routes.get(agent.route))
    for name in agent.mcp_servers:
        server = mcp_servers.get(name)
        if server is not None and server.reasons and all(r.startswith(NOT_PROBED) for r in server.reasons):
            continue  # the agent's first turn probes it
        reasons += _dependency(Kind.MCP_SERVER, owner, name, server)
    for name in agent.skills:
        reasons += _dependency(Kind.SKILL, owner, name, skills.get(name))
    reasons += _tool_reasons(owner, agent.tools, tools_enabled)
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
    health: Mapping[str, RouteHealth] | None = None,
    fingerprint: Callable[[str], str] = env_fingerprint,
    skill_file: Callable[[str], bool] = skill_file_exists,
    mcp_probes: Mapping[str, McpProbe] | None = None,
) -> ReadinessReport:
    """Readiness of every record in `document`, dependencies first (`redacted`: reasons name records only).

    `health`: what using each route taught, by alias (`core.config.selectors.route_health`).
    `mcp_probes`: each MCP server's last probe, by name (`core.config.selectors.mcp_health`); None
    leaves probes out (a file checked before it is loaded has none).
    """
    providers = {item.name: provider_readiness(item, is_set=is_set, redacted=redacted) for item in document.providers}
    provider_configs = {item.name: item for item in document.providers}
    health = health or {}
    routes = {
        item.alias: route_readiness(
            item,
            providers.get(item.provider),
            provider_config=provider_configs.get(item.provider),
            health=health.get(item.alias),
            fingerprint=fingerprint,
            redacted=redacted,
        )
        for item in document.routes
    }
    servers = {
        item.name: mcp_server_readiness(item, is_set=is_set, which=which, redacted=redacted, probes=mcp_probes)
        for item in document.mcp_servers
    }
    tools_enabled = {tool.name: tool.enabled for tool in document.tools}
    skills = {
        item.name: skill_readiness(item, tools_enabled=tools_enabled, file_exists=skill_file, redacted=redacted)
        for item in document.skills
    }
    agents = {
        item.name: agent_readiness(item, routes=routes, mcp_servers=servers, tools_enabled=tools_enabled, skills=skills)
        for item in document.agents
    }
    teams = [team_readiness(item, agents=agents) for item in document.teams]
    default = next((route.alias for route in document.routes if route.is_default), None)
    return ReadinessReport(
        providers=tuple(providers.values()),
        routes=tuple(routes.values()),
        mcp_servers=tuple(servers.values()),
        skills=tuple(skills.values()),
        agents=tuple(agents.values()),
        teams=tuple(teams),
        default_route=default,
    )
