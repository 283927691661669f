"""Reads of the configuration records, with their joins applied, as querysets or contracts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.db import connection, models
from django.db.models import Prefetch, QuerySet
from django.db.models.manager import BaseManager

from core.config.contracts import (
    CONTRACTS,
    ConfigDocument,
    Kind,
    McpProbe,
    McpServerConfig,
    McpToolInfo,
    MemoryConfig,
    ProbeResult,
    Problem,
    ProviderConfig,
    ReadinessReport,
    RecordConfig,
    RecordReadiness,
    RouteConfig,
    RouteHealth,
)
from core.config.models import (
    AgentProfile,
    ConfigVersion,
    McpServerSpec,
    McpServerStatus,
    MemorySettings,
    ModelRoute,
    Provider,
    RouteStatus,
    SkillSpec,
    Team,
    TeamMember,
    ToolSpec,
)
from core.config.readiness import provider_readiness, readiness_report, route_readiness
from core.config.validation import References
from core.errors import InvalidInputError
from core.lookups import row_get

MODELS: dict[Kind, type[models.Model]] = {
    Kind.PROVIDER: Provider,
    Kind.ROUTE: ModelRoute,
    Kind.TOOL: ToolSpec,
    Kind.SKILL: SkillSpec,
    Kind.MCP_SERVER: McpServerSpec,
    Kind.AGENT: AgentProfile,
    Kind.TEAM: Team,
}
_KINDS: dict[type[models.Model], Kind] = {model: kind for kind, model in MODELS.items()}
# The primary keys of ConfigVersion's rows: the configuration's stamp, and the stamp of what using the
# routes and probing the MCP servers taught (`RouteStatus`, `McpServerStatus`).
CONFIG_VERSION_ROW = 1
STATUS_VERSION_ROW = 2
# How a referring model is named in "… is used by routes: fast, smart".
_REFERRER_LABELS: dict[type[models.Model], str] = {
    ModelRoute: "routes",
    SkillSpec: "skills",
    AgentProfile: "agents",
    Team: "teams",
    TeamMember: "teams",
}


def provider_list() -> QuerySet[Provider]:
    """Providers by name."""
    return Provider.objects.order_by("name")


def route_list() -> QuerySet[ModelRoute]:
    """Routes by alias, each with its provider and its status (what using it taught; none until then)."""
    return ModelRoute.objects.select_related("provider", "status").order_by("alias")


def route_resolve(route_alias: str | None, *, enabled_only: bool = True) -> ModelRoute:
    """The route named `route_alias` (the default route when None or empty), with its provider.

    An unknown alias, no default route, or (with `enabled_only`) a disabled route is an
    `InvalidInputError` on the field `route`, saying what to send instead.
    """
    routes = ModelRoute.objects.select_related("provider")
    if route_alias:
        route = routes.filter(alias=route_alias).first()
        if route is None:
            raise InvalidInputError.for_field(
                "route", f"no model route {route_alias!r}; use an alias from /api/config/routes/"
            )
    else:
        route = routes.filter(is_default=True).first()
        if route is None:
            raise InvalidInputError.for_field(
                "route", "no route given and no default route is configured; name a route or mark one as default"
            )
    if enabled_only and not route.enabled:
        raise InvalidInputError.for_field("route", f"route {route.alias!r} is disabled; enable it or pick another")
    return route


def _usable(kind: Kind, name: object) -> Any:
    """The enabled, ready agent or team called `name` (with its route, or its lead's), or an
    InvalidInputError on the field `agent` / `team`. Readiness costs `config_readiness`'s 13 queries."""
    field = "agent" if kind == Kind.AGENT else "team"
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError.for_field(field, f"empty; give the name of a {field} from /api/config/{field}s/")
    records: QuerySet[Any] = (
        AgentProfile.objects.select_related("route__provider")
        if kind == Kind.AGENT
        else Team.objects.select_related("lead__route__provider")
    )
    record = records.filter(name=name).first()
    if record is None:
        raise InvalidInputError.for_field(field, f"no {field} {name!r}; use a name from /api/config/{field}s/")
    if not record.enabled:
        raise InvalidInputError.for_field(field, f"{field} {name!r} is disabled; enable it or pick another")
    report = config_readiness(redacted=True)
    states = report.agents if kind == Kind.AGENT else report.teams
    state = next((item for item in states if item.name == name), None)
    if state is not None and state.status != "ready":
        raise InvalidInputError.for_field(
            field, f"{field} {name!r} is {state.status}: {'; '.join(state.reasons)}; fix it or pick another"
        )
    return record


def agent_usable(name: object) -> AgentProfile:
    """The agent called `name` with its route, when it exists, is enabled and ready (see `_usable`)."""
    return cast(AgentProfile, _usable(Kind.AGENT, name))


def team_usable(name: object) -> Team:
    """The team called `name` with its lead and the lead's route, when it is enabled and ready: lead and
    every member ready (see `_usable`)."""
    return cast(Team, _usable(Kind.TEAM, name))


def tool_list() -> QuerySet[ToolSpec]:
    """Tools by name."""
    return ToolSpec.objects.order_by("name")


def skill_list() -> QuerySet[SkillSpec]:
    """Skills by name, with their tools."""
    return SkillSpec.objects.prefetch_related(Prefetch("tools", queryset=ToolSpec.objects.order_by("name"))).order_by(
        "name"
    )


def mcp_server_list() -> QuerySet[McpServerSpec]:
    """MCP servers by name."""
    return McpServerSpec.objects.order_by("name")


def agent_list() -> QuerySet[AgentProfile]:
    """Agents by name, with their route, tools, skills and MCP servers."""
    return (
        AgentProfile.objects.select_related("route")
        .prefetch_related(
            Prefetch("tools", queryset=ToolSpec.objects.order_by("name")),
            Prefetch("skills", queryset=SkillSpec.objects.order_by("name")),
            Prefetch("mcp_servers", queryset=McpServerSpec.objects.order_by("name")),
        )
        .order_by("name")
    )


def team_list() -> QuerySet[Team]:
    """Teams by name, with their lead and their members in order."""
    return (
        Team.objects.select_related("lead")
        .prefetch_related(Prefetch("members", queryset=TeamMember.objects.select_related("agent").order_by("position")))
        .order_by("name")
    )


LISTS: dict[Kind, Callable[[], QuerySet[Any]]] = {
    Kind.PROVIDER: provider_list,
    Kind.ROUTE: route_list,
    Kind.TOOL: tool_list,
    Kind.SKILL: skill_list,
    Kind.MCP_SERVER: mcp_server_list,
    Kind.AGENT: agent_list,
    Kind.TEAM: team_list,
}


def config_queryset(kind: Kind) -> QuerySet[Any]:
    """The list queryset for one kind (joins applied)."""
    return LISTS[kind]()


def config_instance_get(kind: Kind, key: str) -> Any:
    """The stored record of `kind` named `key`, with its joins; raises `NotFoundError`."""
    missing = f"no {kind.label} named {key!r}; check the name"
    return row_get(config_queryset(kind), kind.key_field, missing, **{kind.key_field: key})


def _contract_value(value: Any) -> Any:
    """A model attribute as its contract holds it: a record by its name, records and JSON lists as tuples."""
    if isinstance(value, TeamMember):
        value = value.agent  # a team's member is its agent
    if isinstance(value, models.Model):
        return getattr(value, _KINDS[type(value)].key_field)
    if isinstance(value, BaseManager):
        return tuple(_contract_value(item) for item in value.all())
    if isinstance(value, list):
        return tuple(value)
    return value


def record_to_config(instance: models.Model) -> RecordConfig:
    """The contract of a stored record (its relations must be loaded by the list selector).

    Each contract field is the model's attribute of the same name, as `_contract_value` gives it.
    """
    kind = _KINDS.get(type(instance))
    if kind is None:
        raise TypeError(f"not a configuration record: {type(instance).__name__}")
    contract = CONTRACTS[kind]
    return contract(**{item.name: _contract_value(getattr(instance, item.name)) for item in fields(contract)})


def provider_config(instance: Provider) -> ProviderConfig:
    """The contract of a stored provider."""
    return cast(ProviderConfig, record_to_config(instance))


def route_config(instance: ModelRoute) -> RouteConfig:
    """The contract of a stored route (its provider must be selected with it)."""
    return cast(RouteConfig, record_to_config(instance))


def mcp_server_config(instance: McpServerSpec) -> McpServerConfig:
    """The contract of a stored MCP server."""
    return cast(McpServerConfig, record_to_config(instance))


def config_record_get(kind: Kind, key: str) -> RecordConfig:
    """The contract of the record of `kind` named `key`; raises `NotFoundError`."""
    return record_to_config(config_instance_get(kind, key))


def config_snapshot() -> ConfigDocument:
    """Every stored record as contracts, in 12 queries whatever the number of records.

    providers; routes+provider; tools; skills, their tools; MCP servers; agents+route, their
    tools, skills and MCP servers; teams+lead, their members+agent.
    """
    sections: dict[str, Any] = {
        kind.value: tuple(record_to_config(item) for item in config_queryset(kind)) for kind in Kind
    }
    return ConfigDocument(**sections)


MEMORY_SETTINGS_ROW = 1


def memory_config() -> MemoryConfig:
    """The stored `[memory]` table (one query); the defaults before `load_config` first wrote it."""
    row = MemorySettings.objects.filter(pk=MEMORY_SETTINGS_ROW).first()
    if row is None:
        return MemoryConfig()
    return MemoryConfig(**{item.name: getattr(row, item.name) for item in fields(MemoryConfig)})


def config_version() -> str:
    """The configuration's version stamp: replaced by every service write that changes a record (one query).

    Equal stamps mean equal records as long as every write goes through `core.config.services`
    (the API, the admin and `load_config` all do); "" when the row is missing. Read as fixed SQL:
    the bootstrap asks on every request, and the ORM would cost more to compile than this to run.
    """
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {quote('stamp')} FROM {quote(ConfigVersion._meta.db_table)} "  # noqa: S608  # nosec B608 (names only)
        f"WHERE {quote(ConfigVersion._meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [CONFIG_VERSION_ROW])
        row = cursor.fetchone()
    return "" if row is None else str(row[0])


@dataclass(frozen=True)
class ConfigStamps:
    """The configuration's version stamp (`config_version`) and the statuses' stamp; "" for a missing row."""

    config: str
    statuses: str


def config_stamps() -> ConfigStamps:
    """`config_version()` and the statuses' stamp, in one query.

    The statuses' stamp is replaced by every service write of a route's or an MCP server's status
    (`route_probe_record`, `route_turn_outcome`, `mcp_probe_record`): equal stamps mean equal
    `route_health()` and `mcp_health()` as long as the writes go through the services.
    """
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {quote(ConfigVersion._meta.pk.column)}, {quote('stamp')} "  # noqa: S608  # nosec B608 (names only)
        f"FROM {quote(ConfigVersion._meta.db_table)} WHERE {quote(ConfigVersion._meta.pk.column)} IN (%s, %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [CONFIG_VERSION_ROW, STATUS_VERSION_ROW])
        stamps = {int(row): str(stamp) for row, stamp in cursor.fetchall()}
    return ConfigStamps(config=stamps.get(CONFIG_VERSION_ROW, ""), statuses=stamps.get(STATUS_VERSION_ROW, ""))


def config_references() -> References:
    """The names that exist, per kind, and the default route: what one-record validation checks against."""
    names = {kind: frozenset(MODELS[kind]._default_manager.values_list(kind.key_field, flat=True)) for kind in Kind}
    default = ModelRoute.objects.filter(is_default=True).values_list("alias", flat=True).first()
    return References(names=names, default_route=default)


def config_referrers(kind: Kind, key: str) -> list[str]:
    """What refers to the record (`routes: fast, smart`), for refusing its deletion."""
    instance = config_instance_get(kind, key)
    found: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for relation in instance._meta.related_objects:
        if (relation.one_to_many or relation.one_to_one) and relation.on_delete is models.CASCADE:
            continue  # owned rows (a team's member list, a route's status) go with the record
        related = relation.related_model
        rows = related._default_manager.filter(**{relation.field.name: instance})
        label = _REFERRER_LABELS.get(related, str(related._meta.verbose_name_plural))
        if related is TeamMember:
            names = rows.values_list("team__name", flat=True)
        elif any(field.name == "name" for field in related._meta.concrete_fields):
            names = rows.values_list("name", flat=True)
        elif any(field.name == "alias" for field in related._meta.concrete_fields):
            names = rows.values_list("alias", flat=True)
        else:
            count = rows.count()
            if count:
                counts[label] = counts.get(label, 0) + count
            continue
        for name in names:
            if name not in found.setdefault(label, []):
                found[label].append(name)
    described = [f"{label}: {', '.join(sorted(names))}" for label, names in found.items() if names]
    return described + [f"{count} {label}" for label, count in counts.items()]


def route_status_health(status: RouteStatus) -> RouteHealth:
    """A stored route status as the readiness functions read it."""
    probe = None
    if status.probed_at is not None:
        probe = ProbeResult(
            ok=bool(status.probe_ok),
            code=status.probe_code,
            message=status.probe_message,
            model=status.probe_model,
            latency_ms=status.probe_latency_ms,
            probed_at=status.probed_at,
        )
    return RouteHealth(
        probe=probe,
        key_refused_env=status.key_refused_env,
        key_refused_hmac=status.key_refused_hmac,
        model_missing=status.model_missing,
    )


def route_health() -> dict[str, RouteHealth]:
    """What using each route taught (last probe, refused key, unknown model), by alias (one query)."""
    return {status.route.alias: route_status_health(status) for status in RouteStatus.objects.select_related("route")}


def route_health_get(*, route_id: int) -> RouteHealth | None:
    """What using one route taught; None when nothing was recorded (one query)."""
    status = RouteStatus.objects.filter(route_id=route_id).first()
    return None if status is None else route_status_health(status)


def mcp_status_probe(status: McpServerStatus) -> McpProbe:
    """A stored MCP server status as the readiness functions read it."""
    tools = tuple(
        McpToolInfo(name=str(tool.get("name", "")), description=str(tool.get("description", "")))
        for tool in status.tools
        if isinstance(tool, dict)
    )
    return McpProbe(ok=status.ok, tools=tools, error=status.error, probed_at=status.probed_at)


def mcp_health() -> dict[str, McpProbe]:
    """Each probed MCP server's last probe, by name (one query)."""
    rows = McpServerStatus.objects.select_related("server").defer("server__args", "server__tool_allowlist")
    return {status.server.name: mcp_status_probe(status) for status in rows}


def mcp_server_status_get(*, server_id: int) -> McpServerStatus | None:
    """One MCP server's stored probe with its tools' schemas; None when never probed (one query)."""
    return McpServerStatus.objects.filter(server_id=server_id).first()


def stored_route_readiness(route: ModelRoute) -> RecordReadiness:
    """One stored route's readiness with what using it taught (its provider and status selected with it,
    as `route_list` does: no query)."""
    provider = provider_config(route.provider)
    status = getattr(route, "status", None)  # missing until the route is probed or a turn blocks it
    return route_readiness(
        route_config(route),
        provider_readiness(provider),
        provider_config=provider,
        health=None if status is None else route_status_health(status),
    )


def config_readiness(*, redacted: bool = False) -> ReadinessReport:
    """Readiness of every stored provider, route, MCP server, agent and team, with what using the routes
    taught and the MCP servers' probes (14 queries: the snapshot's 12, `route_health`, `mcp_health`).

    `redacted` (for users who are not staff): reasons name records, never variables, URLs or commands.
    """
    return readiness_report(config_snapshot(), redacted=redacted, health=route_health(), mcp_probes=mcp_health())


# --- the last `load_config` -------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigLoadProblems:
    """What the last `manage.py load_config` against this database found wrong in its file.

    `problems` is empty after a clean load. While it is not, the database still holds the last
    configuration that loaded (a failed load changes nothing).
    """

    file: str
    checked_at: str
    problems: tuple[Problem, ...]


def config_load_status_path() -> Path:
    """Where `load_config` records its outcome: one JSON file per database, under var/ (git-ignored)."""
    db = connection.settings_dict
    key = f"{connection.vendor}:{db.get('HOST') or ''}:{db.get('PORT') or ''}:{db.get('NAME') or ''}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return Path(settings.BASE_DIR) / "var" / "config-load" / f"{digest}.json"


def config_load_problems() -> ConfigLoadProblems | None:
    """The outcome of the last `load_config` against this database; None if it never ran here."""
    path = config_load_status_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ConfigLoadProblems(
            file=str(raw["file"]),
            checked_at=str(raw["checked_at"]),
            problems=tuple(Problem(str(p["location"]), str(p["message"])) for p in raw["problems"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        problem = Problem("", f"{path} is not a readable load record; run manage.py load_config again")
        return ConfigLoadProblems(file=str(path), checked_at="", problems=(problem,))
