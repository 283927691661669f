"""The bootstrap: everything the UI needs for its first screen, read in a fixed number of queries.

`bootstrap_read()` composes core (configuration, sessions), memory and telemetry into one typed
`Bootstrap`, then decides the state of every view (`empty` | `blocked` | `ready`) with the rules
in `VIEW_RULES`: one small function per view, each returning the state and the sentences a person
can act on. The README's "Bootstrap" table describes the same rules; change both together.

Queries, whatever the amount of data (pinned in tests/runtime/test_bootstrap.py):
  1   applied migrations (django_migrations; the migration files are read once per process)
  1   the whole content of the configuration tables, compared with the kept snapshot's
      (+12 for `core.config.selectors.config_snapshot` and +1 to check the content again, on the
      first request after the configuration changed)
  1   session counters and the message count (one aggregate over sessions)
  1   the most recent sessions with their route
  1   memory counts (one statement, a scalar subquery per tier)
  1   telemetry today and all time (rollups only, one UNION ALL)
The configuration file is read on every request; it is validated again only when its bytes, the
skills folder or the skill files it names changed.
When migrations are pending the stores may not have their tables yet: only the first query runs,
and every view is blocked until `manage.py migrate`.
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from django.db import DatabaseError, connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from core.config.contracts import (
    ConfigDocument,
    Credential,
    Kind,
    ProviderConfig,
    ReadinessReport,
    ReadinessStatus,
    RecordReadiness,
    RouteConfig,
)
from core.config.loading import ConfigFileError, config_file_read
from core.config.readiness import DISABLED_REASON, provider_credential, readiness_report
from core.config.selectors import config_snapshot
from core.config.validation import ConfigInvalidError
from core.conversation.selectors import (
    compaction_threshold_percent,
    fullness_percent,
    needs_compaction,
)
from core.errors import InvalidInputError
from core.models import AgentSession, ModelRoute, Provider, SessionStatus
from memory.selectors import memory_counts
from runtime.providers import adapter_for
from telemetry.selectors import UsageCounts, usage_overview

APP_NAME = "Agent Chat"
# Bump when a field is removed or changes meaning; adding a field keeps the version.
SCHEMA_VERSION = 1
RECENT_SESSIONS = 5
# Problems listed for an invalid configuration file (the count says how many there are in all).
MAX_FILE_PROBLEMS = 20

ViewState = Literal["empty", "blocked", "ready"]
FileState = Literal["loaded", "not_loaded", "out_of_date", "empty", "missing", "invalid"]
VIEW_NAMES = ("chat", "model", "tools", "skills", "mcp", "memory", "team", "tokens", "config")


# --- the response ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AppInfo:
    name: str
    version: str
    schema_version: int
    database_vendor: str
    migrations_applied: bool
    pending_migrations: tuple[str, ...]


@dataclass(frozen=True)
class ConfigFileInfo:
    """How the configuration file compares with what the database holds."""

    path: str
    state: FileState
    problems: tuple[str, ...] = ()
    problem_count: int = 0
    differences: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    kind: str
    base_url: str
    api_key_env: str
    credential: Credential
    enabled: bool
    status: ReadinessStatus
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RouteEntry:
    alias: str
    provider: str
    model_id: str
    context_window_tokens: int
    max_output_tokens: int
    price_input_per_mtok: Decimal | None
    price_cached_input_per_mtok: Decimal | None
    price_output_per_mtok: Decimal | None
    is_default: bool
    enabled: bool
    status: ReadinessStatus
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ToolEntry:
    name: str
    description: str
    requires_approval: bool
    enabled: bool
    status: ReadinessStatus
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SkillEntry:
    name: str
    description: str
    tools: tuple[str, ...]
    enabled: bool
    status: ReadinessStatus
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class McpServerEntry:
    name: str
    transport: str
    command: str
    url: str
    env_vars: tuple[str, ...]
    tool_allowlist: tuple[str, ...]
    enabled: bool
    status: ReadinessStatus
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class AgentEntry:
    name: str
    description: str
    route: str
    tools: tuple[str, ...]
    skills: tuple[str, ...]
    mcp_servers: tuple[str, ...]
    enabled: bool
    status: ReadinessStatus
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class TeamEntry:
    name: str
    description: str
    lead: str
    members: tuple[str, ...]
    enabled: bool
    status: ReadinessStatus
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ConfigSection:
    file: ConfigFileInfo
    default_route: str | None
    providers: tuple[ProviderEntry, ...] = ()
    routes: tuple[RouteEntry, ...] = ()
    tools: tuple[ToolEntry, ...] = ()
    skills: tuple[SkillEntry, ...] = ()
    mcp_servers: tuple[McpServerEntry, ...] = ()
    agents: tuple[AgentEntry, ...] = ()
    teams: tuple[TeamEntry, ...] = ()


@dataclass(frozen=True)
class RecentSession:
    id: UUID
    title: str
    status: str
    route: str
    message_count: int
    last_activity: dt.datetime
    context_fullness_percent: float
    needs_compaction: bool


@dataclass(frozen=True)
class SessionsSection:
    total: int = 0
    active: int = 0
    archived: int = 0
    needing_compaction: int = 0
    compaction_threshold_percent: int = 0
    recent: tuple[RecentSession, ...] = ()


@dataclass(frozen=True)
class MemorySection:
    messages: int = 0
    daily_episodes: int = 0
    long_term: int = 0
    pinned: int = 0
    attachments: int = 0
    latest_episode_day: dt.date | None = None


@dataclass(frozen=True)
class ModelUsageEntry:
    provider: str
    model: str
    today: UsageCounts
    all_time: UsageCounts


@dataclass(frozen=True)
class TelemetrySection:
    timezone: str
    day: dt.date
    today: UsageCounts = field(default_factory=UsageCounts)
    all_time: UsageCounts = field(default_factory=UsageCounts)
    by_model: tuple[ModelUsageEntry, ...] = ()


@dataclass(frozen=True)
class ViewStatus:
    state: ViewState
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bootstrap:
    """The whole `GET /api/bootstrap/` response."""

    schema_version: int
    app: AppInfo
    config: ConfigSection
    sessions: SessionsSection
    memory: MemorySection
    telemetry: TelemetrySection
    views: dict[str, ViewStatus]


# --- migrations -----------------------------------------------------------------------------


@functools.cache
def _migration_nodes(alias: str) -> tuple[tuple[tuple[str, str], tuple[tuple[str, str], ...]], ...]:
    """Every migration on disk with what it replaces, in plan order (read once per process).

    Reading the files never queries the database (`MigrationLoader(None)`); which of them are
    applied is read on each call, so the answer is right right after `migrate`.
    """
    loader = MigrationLoader(None, ignore_no_migrations=True)
    nodes = []
    for key in loader.graph.leaf_nodes():
        for node in loader.graph.forwards_plan(key):
            nodes.append((node, tuple(loader.disk_migrations[node].replaces)))
    seen: set[tuple[str, str]] = set()
    ordered = []
    for node, replaces in nodes:
        if node not in seen:
            seen.add(node)
            ordered.append((node, replaces))
    return tuple(ordered)


def pending_migrations() -> tuple[str, ...]:
    """`app.name` of each migration not applied yet (one query on django_migrations)."""
    quote = connection.ops.quote_name
    table = quote(MigrationRecorder.Migration._meta.db_table)
    try:
        with connection.cursor() as cursor:
            # Read as SQL, like the recorder's own table check: the ORM would compile more than it reads.
            cursor.execute(f"SELECT {quote('app')}, {quote('name')} FROM {table}")  # noqa: S608  # nosec B608
            applied = {(str(app), str(name)) for app, name in cursor.fetchall()}
    except DatabaseError:
        # No django_migrations table: nothing was ever migrated.
        applied = set()
    pending = []
    for node, replaces in _migration_nodes(connection.alias):
        if node in applied or (replaces and all(tuple(item) in applied for item in replaces)):
            continue
        pending.append(f"{node[0]}.{node[1]}")
    return tuple(pending)


def app_version() -> str:
    from django.conf import settings

    return str(settings.SPECTACULAR_SETTINGS.get("VERSION", "0"))


# --- the configuration file -----------------------------------------------------------------


def config_file_path() -> Path:
    from django.conf import settings

    return Path(settings.AGENTCHAT_CONFIG)


@dataclass(frozen=True)
class _FileCheck:
    """What validating a configuration file depended on, and what it gave."""

    data: bytes
    skills_dir: str
    # Each skill's instructions_path as written, with what the filesystem said when it was checked.
    skill_files: tuple[tuple[str, str, bool], ...]
    result: ConfigDocument | ConfigFileInfo


# Path → the last validation of that file. Validating (TOML, every rule, each tool's JSON Schema)
# costs more than the rest of the bootstrap together, and its result is a pure function of the
# file's bytes, the skills folder and whether each instructions_path is a file in it: while all
# of those are unchanged the stored result is exactly what validating again would give.
_file_checks: dict[str, _FileCheck] = {}


def _skill_files(data: bytes, skills_dir: str) -> tuple[tuple[str, str, bool], ...]:
    """(instructions_path, resolved path, is a file) for each skill of the TOML in `data` that names one."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ()
    skills = raw.get(Kind.SKILL.value)
    values = [
        item["instructions_path"]
        for item in (skills if isinstance(skills, list) else [])
        if isinstance(item, dict) and isinstance(item.get("instructions_path"), str)
    ]
    return tuple(_skill_file_state(value, skills_dir) for value in values)


def _skill_file_state(value: str, skills_dir: str) -> tuple[str, str, bool]:
    try:
        candidate = (Path(skills_dir) / value).resolve()
        return value, str(candidate), candidate.is_file()
    except (OSError, ValueError):  # a NUL byte, a path too long: validation reports it
        return value, "", False


def _config_file_document(path: Path) -> ConfigDocument | ConfigFileInfo:
    """The validated document in `path`, or the file's state when it cannot be used.

    The last result per path is reused while the file's bytes, the skills folder and the state of
    every skill file it names are unchanged (each request still reads the file and stats those).
    """
    from django.conf import settings

    try:
        data = path.read_bytes()
    except OSError:
        return _config_file_validate(path)  # missing or unreadable: nothing worth keeping
    skills_dir = str(Path(settings.AGENTCHAT_SKILLS_DIR).resolve())
    key = str(path)
    known = _file_checks.get(key)
    if (
        known is not None
        and known.data == data
        and known.skills_dir == skills_dir
        and all(_skill_file_state(value, skills_dir) == (value, *state) for value, *state in known.skill_files)
    ):
        return known.result
    skill_files = _skill_files(data, skills_dir)
    result = _config_file_validate(path)
    try:
        unchanged = path.read_bytes() == data
    except OSError:
        unchanged = False
    if unchanged:  # validated what was read: keep it (a file rewritten meanwhile is validated next time)
        _file_checks[key] = _FileCheck(data=data, skills_dir=skills_dir, skill_files=skill_files, result=result)
    return result


def _config_file_validate(path: Path) -> ConfigDocument | ConfigFileInfo:
    try:
        return config_file_read(path)
    except ConfigFileError as exc:
        state: FileState = "missing" if not path.exists() else "invalid"
        return ConfigFileInfo(path=str(path), state=state, problems=(str(exc),), problem_count=1)
    except ConfigInvalidError as exc:
        problems = tuple(str(problem) for problem in exc.problems)
        return ConfigFileInfo(
            path=str(path), state="invalid", problems=problems[:MAX_FILE_PROBLEMS], problem_count=len(problems)
        )


# Per file path: the last (file document, stored configuration, answer). Both documents are the
# cached objects of their checks, so the same two objects mean the same answer.
_file_infos: dict[str, tuple[ConfigDocument, ConfigDocument, ConfigFileInfo]] = {}


def config_file_info(stored: ConfigDocument) -> ConfigFileInfo:
    """Whether the configuration file is readable and valid, and whether the database holds it."""
    path = config_file_path()
    document = _config_file_document(path)
    if isinstance(document, ConfigFileInfo):
        return document
    last = _file_infos.get(str(path))
    if last is not None and last[0] is document and last[1] is stored:
        return last[2]
    info = _config_file_compare(path, document, stored)
    _file_infos[str(path)] = (document, stored, info)
    return info


def _config_file_compare(path: Path, document: ConfigDocument, stored: ConfigDocument) -> ConfigFileInfo:
    if document.count() == 0:
        return ConfigFileInfo(path=str(path), state="empty")
    if stored.count() == 0:
        return ConfigFileInfo(path=str(path), state="not_loaded")
    differences = []
    for kind in Kind:
        current = {record.key: record for record in stored.records(kind)}
        for record in document.records(kind):
            if record.key not in current:
                differences.append(f"{kind.label} {record.key!r} is in the file but not loaded")
            elif current[record.key] != record:
                differences.append(f"{kind.label} {record.key!r} differs from the file")
    if differences:
        return ConfigFileInfo(path=str(path), state="out_of_date", differences=tuple(differences))
    return ConfigFileInfo(path=str(path), state="loaded")


# --- the stored configuration, read again only when it changed ------------------------------


@functools.cache
def _config_content_sql(vendor: str) -> str:
    """One statement returning the whole content of every configuration table, one column per table.

    The tables are every model of `core.config.models` with their many-to-many link tables: all
    that `config_snapshot()` reads. Each column is the table's rows in primary-key order, every
    value quoted by the database (SQLite `quote()`, PostgreSQL's row text), so two results are
    equal only when every row and value is.
    """
    from django.apps import apps

    quote = connection.ops.quote_name
    columns = []  # only table and column names from the models are interpolated
    for model in apps.get_app_config("core").get_models(include_auto_created=True):
        if model.__module__ != "core.config.models":
            continue
        table = quote(model._meta.db_table)
        pk = quote(model._meta.pk.column)
        if vendor == "postgresql":
            columns.append(
                f"(SELECT string_agg(ROW(whole_row.*)::text, E'\\n' ORDER BY whole_row.{pk}) "  # noqa: S608  # nosec B608
                f"FROM {table} whole_row)"
            )
        else:
            row = " || ',' || ".join(f"quote({quote(field.column)})" for field in model._meta.concrete_fields)
            columns.append(
                f"(SELECT group_concat(r, char(10)) FROM (SELECT {row} AS r FROM {table} ORDER BY {pk}))"  # noqa: S608  # nosec B608
            )
    return "SELECT " + ", ".join(columns)


def config_content() -> tuple[str | None, ...]:
    """The content of every configuration table (one query): what `stored_config` keys its cache by."""
    with connection.cursor() as cursor:
        cursor.execute(_config_content_sql(connection.vendor))
        row = cursor.fetchone()
    return tuple(row)


# (content of the configuration tables, the snapshot read from them); see stored_config.
_snapshot: tuple[tuple[str | None, ...], ConfigDocument] | None = None


def stored_config() -> ConfigDocument:
    """`config_snapshot()`, read again only when the configuration tables changed.

    Every request reads the tables' whole content in one statement and compares it with the
    content the kept snapshot was read from: equal content gives an equal snapshot, so the answer
    is exact whoever wrote (a service, the admin, another process) and however (`save()`,
    `QuerySet.update()`, raw SQL). On a change: 1 + 12 + 1 queries. The snapshot is kept only when
    the content read before and after it is the same, so it was read from that content.
    """
    global _snapshot
    content = config_content()
    if _snapshot is not None and _snapshot[0] == content:
        return _snapshot[1]
    snapshot = config_snapshot()
    if config_content() == content:
        _snapshot = (content, snapshot)
    return snapshot


# --- configuration records with their readiness ---------------------------------------------


def _plain_readiness(enabled: bool, reasons: list[str]) -> dict[str, Any]:
    """`status` and `reasons` of a record whose readiness the config report does not compute."""
    if not enabled:
        return {"status": "disabled", "reasons": (DISABLED_REASON,)}
    return {"status": "blocked" if reasons else "ready", "reasons": tuple(reasons)}


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


def _route_state(route: RouteConfig, state: RecordReadiness, provider: ProviderConfig | None) -> dict[str, Any]:
    """The config report's readiness; a ready route whose adapter rejects its settings is blocked."""
    if state.status != "ready":
        return {"status": state.status, "reasons": state.reasons}
    problem = adapter_problem(route, provider)
    if problem is None:
        return {"status": "ready", "reasons": ()}
    return {"status": "blocked", "reasons": (problem,)}


def config_section(stored: ConfigDocument, report: ReadinessReport, file: ConfigFileInfo) -> ConfigSection:
    """Every configuration record with its readiness (no query: built from the snapshot)."""
    providers = {item.name: item for item in report.providers}
    routes = {item.name: item for item in report.routes}
    servers = {item.name: item for item in report.mcp_servers}
    agents = {item.name: item for item in report.agents}
    teams = {item.name: item for item in report.teams}
    tools_enabled = {tool.name: tool.enabled for tool in stored.tools}
    provider_configs = {provider.name: provider for provider in stored.providers}

    def skill_reasons(tools: Sequence[str], owner: str) -> list[str]:
        reasons = []
        for name in tools:
            if name not in tools_enabled:
                reasons.append(f"{owner} uses tool {name!r}, which does not exist")
            elif not tools_enabled[name]:
                reasons.append(f"{owner} uses disabled tool {name!r}; enable it")
        return reasons

    return ConfigSection(
        file=file,
        default_route=report.default_route,
        providers=tuple(
            ProviderEntry(
                name=p.name,
                kind=p.kind,
                base_url=p.base_url,
                api_key_env=p.api_key_env,
                credential=provider_credential(p),
                enabled=p.enabled,
                status=providers[p.name].status,
                reasons=providers[p.name].reasons,
            )
            for p in stored.providers
        ),
        routes=tuple(
            RouteEntry(
                alias=r.alias,
                provider=r.provider,
                model_id=r.model_id,
                context_window_tokens=r.context_window_tokens,
                max_output_tokens=r.max_output_tokens,
                price_input_per_mtok=r.price_input_per_mtok,
                price_cached_input_per_mtok=r.price_cached_input_per_mtok,
                price_output_per_mtok=r.price_output_per_mtok,
                is_default=r.is_default,
                enabled=r.enabled,
                **_route_state(r, routes[r.alias], provider_configs.get(r.provider)),
            )
            for r in stored.routes
        ),
        tools=tuple(
            ToolEntry(
                name=t.name,
                description=t.description,
                requires_approval=t.requires_approval,
                enabled=t.enabled,
                status="ready" if t.enabled else "disabled",
                reasons=() if t.enabled else (DISABLED_REASON,),
            )
            for t in stored.tools
        ),
        skills=tuple(
            SkillEntry(
                name=s.name,
                description=s.description,
                tools=s.tools,
                enabled=s.enabled,
                **_plain_readiness(s.enabled, skill_reasons(s.tools, f"skill {s.name!r}")),
            )
            for s in stored.skills
        ),
        mcp_servers=tuple(
            McpServerEntry(
                name=m.name,
                transport=m.transport,
                command=m.command,
                url=m.url,
                env_vars=m.env_vars,
                tool_allowlist=m.tool_allowlist,
                enabled=m.enabled,
                status=servers[m.name].status,
                reasons=servers[m.name].reasons,
            )
            for m in stored.mcp_servers
        ),
        agents=tuple(
            AgentEntry(
                name=a.name,
                description=a.description,
                route=a.route,
                tools=a.tools,
                skills=a.skills,
                mcp_servers=a.mcp_servers,
                enabled=a.enabled,
                status=agents[a.name].status,
                reasons=agents[a.name].reasons,
            )
            for a in stored.agents
        ),
        teams=tuple(
            TeamEntry(
                name=t.name,
                description=t.description,
                lead=t.lead,
                members=t.members,
                enabled=t.enabled,
                status=teams[t.name].status,
                reasons=teams[t.name].reasons,
            )
            for t in stored.teams
        ),
    )


# --- sessions, memory, telemetry ------------------------------------------------------------


@functools.cache
def _session_counts_sql() -> str:
    """Total, active, active needing compaction and the summed message counters, in one pass."""
    quote = connection.ops.quote_name
    session = {field.name: field.column for field in AgentSession._meta.concrete_fields}
    route = {field.name: field.column for field in ModelRoute._meta.concrete_fields}

    def column(name: str) -> str:
        return f"s.{quote(session[name])}"

    status = column("status")
    window = f"r.{quote(route['context_window_tokens'])}"
    # tokens * 100 >= threshold * window, as core.conversation.selectors.session_needs_compaction says.
    needs = f"{column('tokens_since_checkpoint')} * 100 >= {window} * %s"
    return (
        f"SELECT COUNT(*), "  # noqa: S608  # nosec B608 (table and column names only; values are parameters)
        f"COUNT(*) FILTER (WHERE {status} = %s), "
        f"COUNT(*) FILTER (WHERE {status} = %s AND {needs}), "
        f"COALESCE(SUM({column('message_count')}), 0) "
        f"FROM {quote(AgentSession._meta.db_table)} s "
        f"JOIN {quote(ModelRoute._meta.db_table)} r ON r.{quote(route['id'])} = {column('route')}"
    )


# What the bootstrap shows of each recent session, as (AgentSession field, SQL alias) pairs.
_RECENT_COLUMNS = ("id", "title", "status", "message_count", "tokens_since_checkpoint", "updated")


@functools.cache
def _recent_sessions_sql() -> str:
    """The most recent sessions (walking `session_recent_idx`) with their route's alias and window."""
    quote = connection.ops.quote_name
    session = {field.name: field.column for field in AgentSession._meta.concrete_fields}
    route = {field.name: field.column for field in ModelRoute._meta.concrete_fields}
    columns = ", ".join(f"s.{quote(session[name])}" for name in _RECENT_COLUMNS)
    return (
        f"SELECT {columns}, r.{quote(route['alias'])}, "  # noqa: S608  # nosec B608 (names only)
        f"r.{quote(route['context_window_tokens'])} "
        f"FROM {quote(AgentSession._meta.db_table)} s "
        f"JOIN {quote(ModelRoute._meta.db_table)} r ON r.{quote(route['id'])} = s.{quote(session['route'])} "
        f"ORDER BY s.{quote(session['updated'])} DESC, s.{quote(session['id'])} DESC LIMIT %s"
    )


def recent_sessions(threshold: int) -> tuple[RecentSession, ...]:
    """The RECENT_SESSIONS most recent sessions with their route's alias and context fullness, in one query.

    Each column is converted exactly as the ORM converts it (the backend's and the field's
    converters: the id to a UUID, `updated` to an aware datetime); the fullness and the
    compaction flag are core's `fullness_percent` and `needs_compaction`. The ORM's
    `select_related` query would cost more to compile than this costs to run.
    """
    table = AgentSession._meta.db_table
    converters = []
    for index, name in enumerate(_RECENT_COLUMNS):
        column = AgentSession._meta.get_field(name).get_col(table)  # type: ignore[union-attr]
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    with connection.cursor() as cursor:
        cursor.execute(_recent_sessions_sql(), [RECENT_SESSIONS])
        rows = cursor.fetchall()
    recent = []
    for row in rows:
        values = list(row)
        for index, column, found in converters:
            for converter in found:
                values[index] = converter(values[index], column, connection)
        pk, title, status, message_count, tokens, updated, route, window = values
        recent.append(
            RecentSession(
                id=pk,
                title=title or f"session {pk}",  # AgentSession.__str__
                status=status,
                route=route,
                message_count=message_count,
                last_activity=updated,
                context_fullness_percent=fullness_percent(tokens, window),
                needs_compaction=needs_compaction(status, tokens, window, threshold),
            )
        )
    return tuple(recent)


def sessions_section() -> tuple[SessionsSection, int]:
    """Session counters and the message total in one aggregate query, the most recent sessions in another.

    Raw history (every stored message) is summed from the sessions' exact `message_count`
    counters, so the messages table is never scanned. The aggregate is SQL: one pass over the
    sessions (the route is a primary-key lookup per row) that costs less to run than the ORM's
    aggregate costs to compile.
    """
    threshold = compaction_threshold_percent()
    with connection.cursor() as cursor:
        cursor.execute(_session_counts_sql(), [SessionStatus.ACTIVE.value, SessionStatus.ACTIVE.value, threshold])
        total, active, needing, messages = cursor.fetchone()
    section = SessionsSection(
        total=int(total),
        active=int(active),
        archived=int(total) - int(active),
        needing_compaction=int(needing),
        compaction_threshold_percent=threshold,
        recent=recent_sessions(threshold),
    )
    return section, int(messages)


def memory_section(messages: int) -> MemorySection:
    counts = memory_counts()
    return MemorySection(
        messages=messages,
        daily_episodes=counts.episodes,
        long_term=counts.long_term,
        pinned=counts.pinned,
        attachments=counts.attachments,
        latest_episode_day=counts.latest_episode_day,
    )


def telemetry_section() -> TelemetrySection:
    overview = usage_overview()
    return TelemetrySection(
        timezone=overview.timezone,
        day=overview.day,
        today=overview.today,
        all_time=overview.all_time,
        by_model=tuple(
            ModelUsageEntry(provider=item.provider, model=item.model, today=item.today, all_time=item.all_time)
            for item in overview.by_model
        ),
    )


# --- view states: each rule written once ----------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the view rules look at: everything is already read; the rules make no query."""

    pending_migrations: tuple[str, ...]
    config: ConfigSection
    sessions: SessionsSection
    memory: MemorySection
    telemetry: TelemetrySection

    @property
    def file_path(self) -> str:
        return self.config.file.path


def _ready(reasons: Sequence[str] = ()) -> ViewStatus:
    return ViewStatus(state="ready", reasons=tuple(reasons))


def _blocked(*reasons: str) -> ViewStatus:
    return ViewStatus(state="blocked", reasons=reasons)


def _empty(*reasons: str) -> ViewStatus:
    return ViewStatus(state="empty", reasons=reasons)


def _load_hint(facts: Facts, section: str) -> str:
    """How to get records of `section` into the database, given the state of the file."""
    file = facts.config.file
    if file.state == "not_loaded":
        return f"run manage.py load_config {file.path}"
    if file.state in ("missing", "invalid"):
        return f"fix {file.path} (see the config view), then run manage.py load_config"
    return f"add [[{section}]] to {file.path} and run manage.py load_config"


def _none_ready(noun: str, items: Sequence[RouteEntry | SkillEntry | McpServerEntry | TeamEntry]) -> ViewStatus:
    """Blocked with every record's reasons (`route 'fast': OPENAI_API_KEY is not set`)."""
    reasons = []
    for item in items:
        name = f"{noun} {_key(item)!r}"
        text = "; ".join(item.reasons)
        reasons.append(text if text.startswith(name) else f"{name}: {text}")
    return ViewStatus(state="blocked", reasons=(f"no {noun} is ready", *reasons))


def _key(item: RouteEntry | SkillEntry | McpServerEntry | TeamEntry) -> str:
    return item.alias if isinstance(item, RouteEntry) else item.name


def _no_ready_route_reasons(facts: Facts) -> list[str]:
    """Which keys to set (or the replay provider to enable), then what else blocks a usable route."""
    providers = {provider.name: provider for provider in facts.config.providers}
    usable = [route for route in facts.config.routes if route.enabled and route.provider in providers]
    missing = sorted(
        {
            providers[route.provider].api_key_env
            for route in usable
            if providers[route.provider].enabled and providers[route.provider].credential == "missing"
        }
    )
    replay = [provider for provider in providers.values() if provider.kind == "replay"]
    fixes = [f"set {' or '.join(missing)}"] if missing else []
    if not replay:
        fixes.append("add a replay provider for offline use")
    elif not any(provider.enabled for provider in replay):
        fixes.append("enable the replay provider")
    reasons = [f"no enabled model route has a provider with credentials: {' or '.join(fixes)}"] if fixes else []
    # Routes whose provider is enabled and has its key, yet still cannot answer (e.g. invalid options).
    reasons += [
        f"route {route.alias!r}: {'; '.join(route.reasons)}"
        for route in usable
        if providers[route.provider].enabled and providers[route.provider].credential != "missing"
    ]
    return reasons or ["no model route is enabled: set enabled = true on a route and its provider"]


def chat_rule(facts: Facts) -> ViewStatus:
    """Blocked without a ready route; empty with no session yet; ready otherwise."""
    routes = facts.config.routes
    if not routes:
        return _blocked(f"no model route is configured: {_load_hint(facts, 'routes')}")
    if not any(route.status == "ready" for route in routes):
        return _blocked(*_no_ready_route_reasons(facts))
    default = next((route for route in routes if route.alias == facts.config.default_route), None)
    if default is None:
        return _blocked(
            f"no default route: set is_default = true on one route in {facts.file_path} "
            "and run manage.py load_config (new sessions use it)"
        )
    if default.status != "ready":
        return _blocked(
            f"the default route {default.alias!r} is {default.status}: {'; '.join(default.reasons)}; "
            "fix it or make a ready route the default"
        )
    if facts.sessions.total == 0:
        return _empty(f"no session yet: start one (POST /api/sessions/); it will use route {default.alias!r}")
    return _ready()


def model_rule(facts: Facts) -> ViewStatus:
    """Empty without routes; blocked when no route is ready; ready when one is."""
    routes = facts.config.routes
    if not routes:
        return _empty(f"no model route is configured: {_load_hint(facts, 'routes')}")
    if not any(route.status == "ready" for route in routes):
        return _none_ready("route", routes)
    return _ready()


def tools_rule(facts: Facts) -> ViewStatus:
    """Empty without tools; blocked when every tool is disabled; ready otherwise."""
    tools = facts.config.tools
    if not tools:
        return _empty(f"no tool is configured: {_load_hint(facts, 'tools')}")
    if not any(tool.enabled for tool in tools):
        return _blocked(f"every tool is disabled: set enabled = true on one in {facts.file_path}")
    return _ready()


def skills_rule(facts: Facts) -> ViewStatus:
    """Empty without skills; blocked when no skill is ready; ready when one is."""
    skills = facts.config.skills
    if not skills:
        return _empty(f"no skill is configured: {_load_hint(facts, 'skills')}")
    if not any(skill.status == "ready" for skill in skills):
        return _none_ready("skill", skills)
    return _ready()


def mcp_rule(facts: Facts) -> ViewStatus:
    """Empty without MCP servers; blocked when no server is ready; ready when one is."""
    servers = facts.config.mcp_servers
    if not servers:
        return _empty(f"no MCP server is configured: {_load_hint(facts, 'mcp_servers')}")
    if not any(server.status == "ready" for server in servers):
        return _none_ready("MCP server", servers)
    return _ready()


def memory_rule(facts: Facts) -> ViewStatus:
    """Empty while no tier holds anything; ready otherwise (memory is never blocked)."""
    memory = facts.memory
    if not (memory.messages or memory.daily_episodes or memory.long_term or memory.attachments):
        return _empty("nothing remembered yet: messages, daily episodes and memories appear as you chat")
    return _ready()


def team_rule(facts: Facts) -> ViewStatus:
    """Empty without teams; blocked when no team is ready; ready when one is."""
    teams = facts.config.teams
    if not teams:
        return _empty(f"no team is configured: {_load_hint(facts, 'teams')}")
    if not any(team.status == "ready" for team in teams):
        return _none_ready("team", teams)
    return _ready()


def tokens_rule(facts: Facts) -> ViewStatus:
    """Empty until the first usage is recorded; ready after."""
    if facts.telemetry.all_time.event_count == 0:
        return _empty("no token usage recorded yet: it appears after the first model reply")
    return _ready()


def config_rule(facts: Facts) -> ViewStatus:
    """Blocked when the file is missing, invalid, not loaded or out of date; empty when it defines nothing."""
    file = facts.config.file
    load = f"run manage.py load_config {file.path}"
    if file.state == "missing":
        return _blocked(f"the configuration file {file.path} does not exist: create it or set AGENTCHAT_CONFIG")
    if file.state == "invalid":
        shown = len(file.problems)
        more = f" (and {file.problem_count - shown} more)" if file.problem_count > shown else ""
        return _blocked(
            f"the configuration file {file.path} is invalid: fix these problems, then {load}{more}", *file.problems
        )
    if file.state == "not_loaded":
        return _blocked(f"the configuration file {file.path} was never loaded: {load}")
    if file.state == "out_of_date":
        return _blocked(f"the database differs from {file.path}: {load} (or update the file)", *file.differences)
    if file.state == "empty":
        return _empty(f"the configuration file {file.path} defines nothing: add providers and routes to it")
    return _ready()


ViewRule = Callable[[Facts], ViewStatus]
# One rule per view, in the order the response lists them. README.md ("Bootstrap") describes each.
VIEW_RULES: dict[str, ViewRule] = {
    "chat": chat_rule,
    "model": model_rule,
    "tools": tools_rule,
    "skills": skills_rule,
    "mcp": mcp_rule,
    "memory": memory_rule,
    "team": team_rule,
    "tokens": tokens_rule,
    "config": config_rule,
}


def migrate_reason(pending: Sequence[str]) -> str:
    shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
    return f"the database schema is not up to date: run manage.py migrate (pending: {shown})"


def view_states(facts: Facts) -> dict[str, ViewStatus]:
    """The state of every view; all are blocked while migrations are pending."""
    if facts.pending_migrations:
        return {name: _blocked(migrate_reason(facts.pending_migrations)) for name in VIEW_RULES}
    return {name: rule(facts) for name, rule in VIEW_RULES.items()}


# --- the composition ------------------------------------------------------------------------


def bootstrap_read() -> Bootstrap:
    """The whole bootstrap in 6 queries (19 after a configuration change), whatever the amount of data."""
    pending = pending_migrations()
    app = AppInfo(
        name=APP_NAME,
        version=app_version(),
        schema_version=SCHEMA_VERSION,
        database_vendor=connection.vendor,
        migrations_applied=not pending,
        pending_migrations=pending,
    )
    if pending:
        # The stores' tables may not exist yet: report the schema and nothing else.
        file = config_file_info(ConfigDocument())
        zero_usage = telemetry_zeros_today()
        facts = Facts(
            pending_migrations=pending,
            config=ConfigSection(file=file, default_route=None),
            sessions=SessionsSection(compaction_threshold_percent=compaction_threshold_percent()),
            memory=MemorySection(),
            telemetry=zero_usage,
        )
    else:
        stored = stored_config()
        report = readiness_report(stored)
        sessions, messages = sessions_section()
        facts = Facts(
            pending_migrations=pending,
            config=config_section(stored, report, config_file_info(stored)),
            sessions=sessions,
            memory=memory_section(messages),
            telemetry=telemetry_section(),
        )
    return Bootstrap(
        schema_version=SCHEMA_VERSION,
        app=app,
        config=facts.config,
        sessions=facts.sessions,
        memory=facts.memory,
        telemetry=facts.telemetry,
        views=view_states(facts),
    )


def telemetry_zeros_today() -> TelemetrySection:
    """Zeros for today (in the configured timezone), without touching the rollup tables."""
    from zoneinfo import ZoneInfo

    from django.conf import settings
    from django.utils import timezone

    zone = str(settings.AGENTCHAT_TIMEZONE)
    return TelemetrySection(timezone=zone, day=timezone.localdate(timezone.now(), ZoneInfo(zone)))


__all__ = ["VIEW_RULES", "Bootstrap", "bootstrap_read", "view_states"]
