"""Every stored configuration record with its readiness: built from one snapshot, no query.

The readiness of providers, routes, MCP servers, agents and teams is core's readiness report;
the bootstrap adds what core cannot know: a ready route whose provider adapter rejects its
settings is blocked. A skill is blocked (core's report) when its instructions file is missing or a
tool it uses is missing or disabled, and so is every agent using it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.config.contracts import (
    ConfigDocument,
    ProviderConfig,
    ReadinessReport,
    ReadinessStatus,
    RecordReadiness,
    RouteConfig,
)
from core.config.readiness import DISABLED_REASON, provider_credential, tool_runner_reasons
from core.config.selectors import ConfigLoadProblems
from core.errors import InvalidInputError
from core.models import ModelRoute, Provider
from runtime.bootstrap.response import (
    ConfigFileInfo,
    ConfigSection,
    Entry,
    McpServerEntry,
    ProviderEntry,
    RouteEntry,
)
from runtime.providers import adapter_for

State = tuple[ReadinessStatus, tuple[str, ...]]


def plain_state(enabled: bool, reasons: Sequence[str] = ()) -> State:
    """The state of a record whose readiness the config report does not compute."""
    if not enabled:
        return "disabled", (DISABLED_REASON,)
    return ("blocked" if reasons else "ready"), tuple(reasons)


def adapter_problem(route: RouteConfig, provider: ProviderConfig | None) -> str | None:
    """Why the route's provider adapter cannot be built from the stored settings (no query), if it cannot."""
    if provider is None:
        return None
    stored_provider = Provider(
        name=provider.name,
        kind=provider.kind,
        base_url=provider.base_url,
        api_key_env=provider.api_key_env,
        options=dict(provider.options),
    )
    stored_route = ModelRoute(
        alias=route.alias,
        provider=stored_provider,
        model_id=route.model_id,
        context_window_tokens=route.context_window_tokens,
        max_output_tokens=route.max_output_tokens,
    )
    try:
        adapter_for(stored_route)
    except InvalidInputError as exc:
        return f"provider {provider.name!r} cannot answer: {exc.message}; fix it in the configuration"
    return None


def route_state(route: RouteConfig, state: RecordReadiness, provider: ProviderConfig | None) -> State:
    """The config report's readiness; a ready route whose adapter rejects its settings is blocked."""
    if state.status != "ready":
        return state.status, state.reasons
    problem = adapter_problem(route, provider)
    return ("ready", ()) if problem is None else ("blocked", (problem,))


def _reported(states: Sequence[RecordReadiness]) -> Mapping[str, State]:
    return {item.name: (item.status, item.reasons) for item in states}


def config_section(
    stored: ConfigDocument,
    report: ReadinessReport,
    file: ConfigFileInfo,
    last_load: ConfigLoadProblems | None = None,
) -> ConfigSection:
    """Every configuration record of `stored` with its readiness, and the last load's outcome (no query)."""
    providers = _reported(report.providers)
    routes = {item.name: item for item in report.routes}
    servers = {item.name: item for item in report.mcp_servers}
    agents = _reported(report.agents)
    teams = _reported(report.teams)
    skills = _reported(report.skills)
    provider_configs = {provider.name: provider for provider in stored.providers}

    return ConfigSection(
        file=file,
        default_route=report.default_route,
        last_load=last_load,
        providers=tuple(
            ProviderEntry(p, *providers[p.name], credential=provider_credential(p)) for p in stored.providers
        ),
        routes=tuple(
            RouteEntry(
                r, *route_state(r, routes[r.alias], provider_configs.get(r.provider)), probe=routes[r.alias].probe
            )
            for r in stored.routes
        ),
        tools=tuple(Entry(t, *plain_state(t.enabled, tool_runner_reasons(t))) for t in stored.tools),
        skills=tuple(Entry(s, *skills[s.name]) for s in stored.skills),
        mcp_servers=tuple(
            McpServerEntry(m, servers[m.name].status, servers[m.name].reasons, probe=servers[m.name].mcp_probe)
            for m in stored.mcp_servers
        ),
        agents=tuple(Entry(a, *agents[a.name]) for a in stored.agents),
        teams=tuple(Entry(t, *teams[t.name]) for t in stored.teams),
    )
