"""The composition: each app read through its own selectors, then the view rules applied.

Queries, whatever the amount of data (pinned in tests/runtime/test_bootstrap.py):
  1   applied migrations (django_migrations; the migration files are read once per process)
  1   the configuration's and the statuses' version stamps (`core.config.selectors.config_stamps`)
      (+12 for `config_snapshot`, on the first request after the configuration changed;
       +2 for `route_health` and `mcp_health` after either stamp changed: what using the routes
       taught and each MCP server's last probe)
  1   the user's session counters and message total (`core.conversation.selectors.sessions_counts`)
  1   the most recent sessions, the columns shown (`sessions_recent`)
  1   the user's memory counts (`memory.selectors.memory_counts`)
  1   the user's telemetry today and all time (`telemetry.selectors.user_usage_overview`)
  1   live workers and the user's queued/running runs (`core.conversation.selectors.worker_status`)
The last `load_config` outcome is a file under var/ (`core.config.selectors.config_load_problems`),
read on every request without a query.
When migrations are pending the stores may not have their tables yet: only the first query runs,
and every view is blocked until `manage.py migrate`.
"""

from __future__ import annotations

import functools

from django.db import DatabaseError, connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from core.config.contracts import ConfigDocument, McpProbe, ReadinessReport, RouteHealth
from core.config.readiness import provider_credential, readiness_report
from core.config.selectors import (
    ConfigLoadProblems,
    ConfigStamps,
    config_load_problems,
    config_snapshot,
    config_stamps,
    mcp_health,
    route_health,
)
from core.conversation.selectors import (
    compaction_threshold_percent,
    sessions_counts,
    sessions_recent,
    worker_status,
)
from memory.selectors import memory_counts
from runtime.bootstrap.config_file import config_file_info
from runtime.bootstrap.entries import config_section
from runtime.bootstrap.response import (
    APP_NAME,
    RECENT_SESSIONS,
    SCHEMA_VERSION,
    AppInfo,
    Bootstrap,
    ConfigFileInfo,
    ConfigSection,
    MemorySection,
    SessionsSection,
    WorkersSection,
)
from runtime.bootstrap.rules import WORKER_LIVE_S, Facts, view_states
from telemetry.selectors import UsageCounts, UsageOverview, user_usage_overview

# --- migrations -----------------------------------------------------------------------------


@functools.cache
def _migration_nodes(alias: str) -> tuple[tuple[tuple[str, str], tuple[tuple[str, str], ...]], ...]:
    """Every migration on disk with what it replaces, in plan order (read once per process).

    Reading the files never queries the database (`MigrationLoader(None)`); which of them are
    applied is read on each call, so the answer is right right after `migrate`.
    """
    loader = MigrationLoader(None, ignore_no_migrations=True)
    ordered: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
    for key in loader.graph.leaf_nodes():
        for node in loader.graph.forwards_plan(key):
            ordered.setdefault(node, tuple(loader.disk_migrations[node].replaces))
    return tuple(ordered.items())


@functools.cache
def _node_names(alias: str) -> frozenset[tuple[str, str]]:
    """Every migration on disk, as (app, name)."""
    return frozenset(node for node, _ in _migration_nodes(alias))


def pending_migrations() -> tuple[str, ...]:
    """`app.name` of each migration not applied yet (one query on django_migrations)."""
    quote = connection.ops.quote_name
    table = quote(MigrationRecorder.Migration._meta.db_table)
    try:
        with connection.cursor() as cursor:
            # Read as SQL, like the recorder's own table check: the ORM would compile more than it reads.
            cursor.execute(f"SELECT {quote('app')}, {quote('name')} FROM {table}")  # noqa: S608  # nosec B608
            applied = set(cursor.fetchall())
    except DatabaseError:
        # No django_migrations table: nothing was ever migrated.
        applied = set()
    if applied.issuperset(_node_names(connection.alias)):
        return ()  # every migration recorded by its own name (the usual case): no walk
    pending = []
    for node, replaces in _migration_nodes(connection.alias):
        if node in applied or (replaces and all(tuple(item) in applied for item in replaces)):
            continue
        pending.append(f"{node[0]}.{node[1]}")
    return tuple(pending)


def app_version() -> str:
    from django.conf import settings

    return str(settings.SPECTACULAR_SETTINGS.get("VERSION", "0"))


# --- the stored configuration ---------------------------------------------------------------

# (configuration version stamp, the snapshot read at it). Reading the snapshot takes 12 queries
# (bench/RESULTS.md, "Bootstrap: what is kept"); every configuration service renews the
# version in the transaction that changes a record, so an equal version means an equal snapshot.
_snapshot: tuple[str, ConfigDocument] | None = None
# (both stamps, the routes' and MCP servers' health read at them): 2 queries saved per request
# (bench/RESULTS.md, "workload 4 at 3x"). The health is keyed by route alias and server name, which
# the configuration stamp covers; the statuses' stamp covers the status rows.
Health = tuple[dict[str, RouteHealth], dict[str, McpProbe]]
_health: tuple[ConfigStamps, Health] | None = None


def stored_config(stamps: ConfigStamps | None = None) -> ConfigDocument:
    """`config_snapshot()`, read again only when the configuration version changed (1 query otherwise,
    none with the `stamps` just read).

    The version is read before the snapshot: a write committed in between leaves a newer snapshot
    under the older version, which the next request's version replaces.
    """
    global _snapshot
    version = (stamps or config_stamps()).config
    kept = _snapshot
    if kept is not None and kept[0] == version:
        return kept[1]
    snapshot = config_snapshot()
    _snapshot = (version, snapshot)
    return snapshot


def stored_health(stamps: ConfigStamps) -> Health:
    """`route_health()` and `mcp_health()`, read again only when either stamp changed (no query otherwise)."""
    global _health
    kept = _health
    if kept is not None and kept[0] == stamps:
        return kept[1]
    health = (route_health(), mcp_health())
    _health = (stamps, health)
    return health


# Per staff flag: (what the configuration section was built from, the section). Its entries (each
# route's adapter checked against its settings) are built again only when one of those changed; the
# response's shaping of an unchanged section is kept too (`serializers.bootstrap_data`).
_sections: dict[bool, tuple[tuple[object, ...], ConfigSection]] = {}


def config_section_kept(
    stored: ConfigDocument,
    report: ReadinessReport,
    file: ConfigFileInfo,
    last_load: ConfigLoadProblems | None,
    *,
    staff: bool,
) -> ConfigSection:
    """`config_section(stored, report, file, last_load)`, built again only when one of them changed or a
    provider's key variable was set or unset (the entries' `credential`)."""
    inputs = (report, file, last_load, tuple(provider_credential(provider) for provider in stored.providers))
    kept = _sections.get(staff)
    if kept is not None and kept[0][0] is stored and kept[0][1:] == inputs:
        return kept[1]
    section = config_section(stored, report, file, last_load)
    _sections[staff] = ((stored, *inputs), section)
    return section


def snapshot_forget() -> None:
    """Drop what is kept: for code that wrote the tables without the services (test fixtures)."""
    global _snapshot, _health
    _snapshot = None
    _health = None
    _sections.clear()


# --- sessions, memory, telemetry ------------------------------------------------------------


def sessions_section(owner_id: int) -> tuple[SessionsSection, int]:
    """The user's session counters and most recent sessions, plus their message total (for the memory section)."""
    counts = sessions_counts(owner_id=owner_id)
    recent = tuple(sessions_recent(limit=RECENT_SESSIONS, owner_id=owner_id))
    section = SessionsSection(
        total=counts.total,
        active=counts.active,
        archived=counts.total - counts.active,
        needing_compaction=counts.needing_compaction,
        compaction_threshold_percent=compaction_threshold_percent(),
        recent=recent,
    )
    return section, counts.messages


def memory_section(messages: int, owner_id: int) -> MemorySection:
    counts = memory_counts(owner_id=owner_id)
    return MemorySection(
        messages=messages,
        daily_episodes=counts.episodes,
        long_term=counts.long_term,
        pinned=counts.pinned,
        attachments=counts.attachments,
        latest_episode_day=counts.latest_episode_day,
    )


def telemetry_zeros_today() -> UsageOverview:
    """Zeros for today (in the configured timezone), without touching the rollup tables."""
    from zoneinfo import ZoneInfo

    from django.conf import settings
    from django.utils import timezone

    zone = str(settings.AGENTCHAT_TIMEZONE)
    day = timezone.localdate(timezone.now(), ZoneInfo(zone))
    return UsageOverview(timezone=zone, day=day, today=UsageCounts(), all_time=UsageCounts(), by_model=[])


# --- the whole bootstrap --------------------------------------------------------------------


def facts_read(pending: tuple[str, ...], owner_id: int, *, staff: bool = True) -> Facts:
    """Everything the view rules look at, counters of the user `owner_id`; with pending migrations, only the
    file and zeros. For a user who is not staff (`staff` False), readiness reasons name records only."""
    last_load = config_load_problems()  # a file under var/, not the database
    if pending:
        # The stores' tables may not exist yet: report the schema and nothing else.
        return Facts(
            pending_migrations=pending,
            config=ConfigSection(file=config_file_info(ConfigDocument()), default_route=None, last_load=last_load),
            sessions=SessionsSection(compaction_threshold_percent=compaction_threshold_percent()),
            memory=MemorySection(),
            telemetry=telemetry_zeros_today(),
        )
    stamps = config_stamps()
    stored = stored_config(stamps)
    health, mcp_probes = stored_health(stamps)
    sessions, messages = sessions_section(owner_id)
    return Facts(
        pending_migrations=pending,
        config=config_section_kept(
            stored,
            readiness_report(stored, redacted=not staff, health=health, mcp_probes=mcp_probes),
            config_file_info(stored),
            last_load,
            staff=staff,
        ),
        sessions=sessions,
        memory=memory_section(messages, owner_id),
        telemetry=user_usage_overview(owner_id=owner_id),
        workers=workers_section(owner_id),
    )


def workers_section(owner_id: int) -> WorkersSection:
    """Live workers (a heartbeat in the last 30 s) and the user's queued and running turns: 1 query."""
    from datetime import timedelta

    from django.utils import timezone

    status = worker_status(live_since=timezone.now() - timedelta(seconds=WORKER_LIVE_S), owner_id=owner_id)
    return WorkersSection(live=status.live_workers, queued_runs=status.queued_runs, running_runs=status.running_runs)


def bootstrap_read(*, owner_id: int, staff: bool = True) -> Bootstrap:
    """The whole bootstrap for the user `owner_id` (their own counters) in 7 queries (21 after a
    configuration change, 9 after a status change), whatever the amount of data."""
    pending = pending_migrations()
    facts = facts_read(pending, owner_id, staff=staff)
    return Bootstrap(
        schema_version=SCHEMA_VERSION,
        app=AppInfo(
            name=APP_NAME,
            version=app_version(),
            schema_version=SCHEMA_VERSION,
            database_vendor=connection.vendor,
            migrations_applied=not pending,
            pending_migrations=pending,
        ),
        config=facts.config,
        sessions=facts.sessions,
        memory=facts.memory,
        telemetry=facts.telemetry,
        workers=facts.workers,
        views=view_states(facts),
    )
