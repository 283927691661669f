"""The typed bootstrap response: what `bootstrap_read()` returns and `serializers.py` shapes.

A configuration entry is the record's own contract (`core.config.contracts`) with its readiness
beside it: the record's fields are declared once, in the contract, never copied here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from core.config.contracts import (
    AgentConfig,
    Credential,
    McpProbe,
    McpServerConfig,
    ProbeResult,
    ProviderConfig,
    ReadinessStatus,
    RecordConfig,
    RouteConfig,
    SkillConfig,
    TeamConfig,
    ToolConfig,
)
from core.config.selectors import ConfigLoadProblems
from core.conversation.selectors import RecentSession
from runtime.providers.base import Status
from telemetry.selectors import UsageOverview

APP_NAME = "Agent Chat"
# Bump when a field is removed or changes meaning; adding a field keeps the version.
SCHEMA_VERSION = 1
RECENT_SESSIONS = 5
# Problems listed for an invalid configuration file (the count says how many there are in all).
MAX_FILE_PROBLEMS = 20

ViewState = Literal["empty", "blocked", "ready"]
FileState = Literal["loaded", "not_loaded", "out_of_date", "empty", "missing", "invalid"]
ViewStatus = Status[ViewState]
VIEW_NAMES = ("chat", "model", "tools", "skills", "mcp", "memory", "team", "tokens", "config")

R = TypeVar("R", bound=RecordConfig)


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
class Entry(Generic[R]):
    """One stored configuration record (its contract) and whether it can be used now."""

    record: R
    status: ReadinessStatus
    reasons: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.record.key


@dataclass(frozen=True)
class ProviderEntry(Entry[ProviderConfig]):
    """A provider also says whether the variable it names holds a key (never the key)."""

    credential: Credential


@dataclass(frozen=True)
class RouteEntry(Entry[RouteConfig]):
    """A route also shows its last probe (None: never probed)."""

    probe: ProbeResult | None = None


@dataclass(frozen=True)
class McpServerEntry(Entry[McpServerConfig]):
    """An MCP server also shows its last probe: its tools, or why it failed (None: never probed)."""

    probe: McpProbe | None = None


@dataclass(frozen=True)
class ConfigSection:
    file: ConfigFileInfo
    default_route: str | None
    # The last `manage.py load_config` against this database (core's own record); None if it never ran.
    last_load: ConfigLoadProblems | None = None
    providers: tuple[ProviderEntry, ...] = ()
    routes: tuple[RouteEntry, ...] = ()
    tools: tuple[Entry[ToolConfig], ...] = ()
    skills: tuple[Entry[SkillConfig], ...] = ()
    mcp_servers: tuple[McpServerEntry, ...] = ()
    agents: tuple[Entry[AgentConfig], ...] = ()
    teams: tuple[Entry[TeamConfig], ...] = ()


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
class WorkersSection:
    live: int = 0
    queued_runs: int = 0
    running_runs: int = 0


@dataclass(frozen=True)
class Bootstrap:
    """The whole `GET /api/bootstrap/` response."""

    schema_version: int
    app: AppInfo
    config: ConfigSection
    sessions: SessionsSection
    memory: MemorySection
    telemetry: UsageOverview  # telemetry's own overview: today and all time, by model
    workers: WorkersSection
    views: dict[str, ViewStatus]
