"""The typed contracts of the configuration records.

One frozen dataclass per record. The TOML loader, the services, the API, the admin and the
readiness report all speak in these: references between records are by name (a route names
its provider, an agent its route, tools, skills and MCP servers, a team its lead and its
ordered members), never by database id, so a configuration file and the database compare
field by field.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Literal, TypeAlias

JsonObject: TypeAlias = Mapping[str, Any]


class Kind(enum.Enum):
    """The seven record kinds; the value is the TOML table name (and the location prefix)."""

    PROVIDER = "providers"
    ROUTE = "routes"
    TOOL = "tools"
    SKILL = "skills"
    MCP_SERVER = "mcp_servers"
    AGENT = "agents"
    TEAM = "teams"

    @property
    def label(self) -> str:
        """The singular noun used in messages (`provider 'openai' is used by routes: …`)."""
        return _LABELS[self]

    @property
    def key_field(self) -> str:
        """The field that names a record of this kind."""
        return "alias" if self is Kind.ROUTE else "name"


_LABELS = {
    Kind.PROVIDER: "provider",
    Kind.ROUTE: "route",
    Kind.TOOL: "tool",
    Kind.SKILL: "skill",
    Kind.MCP_SERVER: "MCP server",
    Kind.AGENT: "agent",
    Kind.TEAM: "team",
}


def _empty_object_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


class NamedContract:
    """What every record named by `name` (every kind but a route) shares: its name is its key."""

    name: str

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class ProviderConfig(NamedContract):
    """An LLM provider account; `api_key_env` is the NAME of the variable holding its key."""

    name: str
    kind: str
    base_url: str = ""
    api_key_env: str = ""
    enabled: bool = True
    options: JsonObject = field(default_factory=dict)


@dataclass(frozen=True)
class RouteConfig:
    """An alias for one provider model, with its limits and prices (USD per million tokens)."""

    alias: str
    provider: str
    model_id: str
    context_window_tokens: int
    max_output_tokens: int
    price_input_per_mtok: Decimal | None = None
    price_cached_input_per_mtok: Decimal | None = None
    price_cache_write_per_mtok: Decimal | None = None
    price_output_per_mtok: Decimal | None = None
    is_default: bool = False
    enabled: bool = True

    @property
    def key(self) -> str:
        return self.alias


# The tools Agent Chat runs itself (`runtime/tools/builtins.py` implements each). No shell tool.
BUILTIN_TOOLS = ("current_time", "memory_search", "memory_remember", "memory_forget")


@dataclass(frozen=True)
class ToolConfig(NamedContract):
    """A tool the agents may call; `parameters` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: JsonObject = field(default_factory=_empty_object_schema)
    requires_approval: bool = False
    enabled: bool = True
    # What runs it: one of BUILTIN_TOOLS, an MCP server's tool ("server/tool"), or an API client.
    builtin: str = ""
    mcp: str = ""
    client: bool = False

    @property
    def runner(self) -> str:
        """What runs the tool, in words ("" when nothing does)."""
        if self.builtin:
            return f"builtin {self.builtin}"
        if self.mcp:
            return f"mcp {self.mcp}"
        return "client" if self.client else ""


@dataclass(frozen=True)
class SkillConfig(NamedContract):
    """Instructions, inline or in a file inside the skills folder, and the tools they may use."""

    name: str
    description: str = ""
    instructions: str = ""
    instructions_path: str = ""
    tools: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class McpServerConfig(NamedContract):
    """How to reach an MCP server, the env var NAMES it needs and the tools it may expose."""

    name: str
    transport: str
    command: str = ""
    args: tuple[str, ...] = ()
    url: str = ""
    env_vars: tuple[str, ...] = ()
    tool_allowlist: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class AgentConfig(NamedContract):
    """A named agent: role instructions, its route, and the tools, skills and MCP servers it uses."""

    name: str
    route: str
    description: str = ""
    instructions: str = ""
    tools: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    mcp_servers: tuple[str, ...] = ()
    enabled: bool = True
    max_tool_rounds: int = 8


@dataclass(frozen=True)
class TeamConfig(NamedContract):
    """Agents working together: an ordered member list and a lead who is one of them."""

    name: str
    lead: str
    members: tuple[str, ...]
    description: str = ""
    enabled: bool = True


RecordConfig: TypeAlias = (
    ProviderConfig | RouteConfig | ToolConfig | SkillConfig | McpServerConfig | AgentConfig | TeamConfig
)

CONTRACTS: dict[Kind, type[RecordConfig]] = {
    Kind.PROVIDER: ProviderConfig,
    Kind.ROUTE: RouteConfig,
    Kind.TOOL: ToolConfig,
    Kind.SKILL: SkillConfig,
    Kind.MCP_SERVER: McpServerConfig,
    Kind.AGENT: AgentConfig,
    Kind.TEAM: TeamConfig,
}


def contract_fields(kind: Kind) -> tuple[str, ...]:
    """The fields of the kind's contract, in its order: what an admin form edits and the API shows."""
    return tuple(item.name for item in fields(CONTRACTS[kind]))


def kind_of(record: RecordConfig) -> Kind:
    """The kind a contract instance belongs to."""
    for kind, contract in CONTRACTS.items():
        if type(record) is contract:
            return kind
    raise TypeError(f"not a configuration contract: {type(record).__name__}")


DEFAULT_COMPACTION_PROMPT = (
    "You keep the memory of a long conversation. Summarise the conversation below for your own later "
    "use: keep names, facts about the user, decisions, commitments, open questions and anything the "
    "user asked you to remember; drop greetings and small talk. If an earlier summary is given, fold "
    "it in: the result replaces it. Answer with the summary only."
)
DEFAULT_EPISODE_PROMPT = (
    "Write a short diary entry of this user's conversations during one day: what they worked on, what "
    "was decided and what is still open. Answer with the entry only."
)
DEFAULT_FACTS_PROMPT = (
    "From the exchange below, list durable facts about the user worth remembering in later "
    "conversations (preferences, circumstances, long-term goals), one per line as `key: fact`, where "
    "key is a short lowercase name such as `home_city`. Never include passwords, keys or tokens. "
    "Answer NONE when there is nothing durable."
)


@dataclass(frozen=True)
class MemoryConfig:
    """The `[memory]` table: how the model keeps the memory tiers (compaction, episodes, facts)."""

    keep_recent_messages: int = 6
    summary_route: str = ""
    extract_facts: bool = False
    compaction_prompt: str = DEFAULT_COMPACTION_PROMPT
    episode_prompt: str = DEFAULT_EPISODE_PROMPT
    facts_prompt: str = DEFAULT_FACTS_PROMPT


@dataclass(frozen=True)
class ConfigDocument:
    """A whole configuration: what a TOML file holds, or a snapshot of the database."""

    providers: tuple[ProviderConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    tools: tuple[ToolConfig, ...] = ()
    skills: tuple[SkillConfig, ...] = ()
    mcp_servers: tuple[McpServerConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    teams: tuple[TeamConfig, ...] = ()
    memory: MemoryConfig = field(default_factory=MemoryConfig)

    def records(self, kind: Kind) -> tuple[RecordConfig, ...]:
        """The records of one kind, in file (or name) order."""
        records: tuple[RecordConfig, ...] = getattr(self, kind.value)
        return records

    def count(self) -> int:
        return sum(len(self.records(kind)) for kind in Kind)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration, at a location such as `routes[0].provider`."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


ReadinessStatus: TypeAlias = Literal["ready", "blocked", "disabled"]
Credential: TypeAlias = Literal["present", "missing", "not_needed"]


@dataclass(frozen=True)
class ProbeResult:
    """The last probe of a route: a minimal real request through its adapter (`manage.py check_providers`)."""

    ok: bool
    code: str  # "" when ok; else the error code (`key_refused`, `model_not_found`, `provider_unreachable`, …)
    message: str
    model: str
    latency_ms: int | None
    probed_at: dt.datetime


@dataclass(frozen=True)
class RouteHealth:
    """What using a route taught (`RouteStatus`): the last probe, a refused key, a model the provider did not know."""

    probe: ProbeResult | None = None
    key_refused_env: str = ""
    key_refused_hmac: str = ""  # HMAC (keyed by SECRET_KEY) of the refused value, never the value
    model_missing: str = ""


@dataclass(frozen=True)
class McpProbe:
    """The last probe of an MCP server (`manage.py check_mcp`): its tools, or why it failed."""

    ok: bool
    tools: tuple[McpToolInfo, ...]
    error: str  # "" when ok; the reason, with the server's last stderr lines
    probed_at: dt.datetime

    @property
    def summary(self) -> str:
        """`ready: 7 tools` or `blocked: <the first line of the error>`."""
        if self.ok:
            return f"ready: {len(self.tools)} tool{'' if len(self.tools) == 1 else 's'}"
        return f"blocked: {self.error.splitlines()[0] if self.error else 'the probe failed'}"


@dataclass(frozen=True)
class McpToolInfo:
    """One tool an MCP server offered at its last probe (after its allowlist): `McpProbe.tools`."""

    name: str
    description: str

    @property
    def line(self) -> str:
        """`name: the description's first line`, as `manage.py check_mcp` prints it."""
        first = self.description.strip().splitlines()[0] if self.description.strip() else "(no description)"
        return f"{self.name}: {first}"


@dataclass(frozen=True)
class RecordReadiness:
    """Whether one record can be used now, and if not, what a person should do about it."""

    kind: Kind
    name: str
    status: ReadinessStatus
    reasons: tuple[str, ...] = ()
    # Routes only: the last probe (None: never probed).
    probe: ProbeResult | None = None
    # MCP servers only: the last probe (None: never probed, or not read).
    mcp_probe: McpProbe | None = None


@dataclass(frozen=True)
class ReadinessReport:
    """Readiness of every provider, route, MCP server, skill, agent and team."""

    providers: tuple[RecordReadiness, ...]
    routes: tuple[RecordReadiness, ...]
    mcp_servers: tuple[RecordReadiness, ...]
    agents: tuple[RecordReadiness, ...]
    teams: tuple[RecordReadiness, ...]
    default_route: str | None
    skills: tuple[RecordReadiness, ...] = ()

    def all(self) -> tuple[RecordReadiness, ...]:
        return (*self.providers, *self.routes, *self.mcp_servers, *self.skills, *self.agents, *self.teams)

    def blocked(self) -> tuple[RecordReadiness, ...]:
        return tuple(item for item in self.all() if item.status == "blocked")
