"""The bootstrap's response, documented field by field, and its planned rendering.

A configuration entry's serializer is built from its contract (`core.config.contracts`): one
field per contract field the bootstrap shows, typed from the contract's annotation and read
from `entry.record`, then `status` and `reasons` (and a provider's `credential`). A field added
to a contract appears here without another declaration; `HIDDEN` names what the bootstrap leaves
to the configuration API (large texts, schemas and options).
"""

from __future__ import annotations

import datetime as dt
import functools
import typing
from collections.abc import Callable
from dataclasses import fields
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from core.config.api.serializers import McpProbeSerializer, ProbeSerializer
from core.config.contracts import CONTRACTS, Kind
from runtime.bootstrap.response import (
    VIEW_NAMES,
    AppInfo,
    Bootstrap,
    MemorySection,
    SessionsSection,
    ViewStatus,
    WorkersSection,
)
from telemetry.api.serializers import ModelUsageSerializer, UsageCountsSerializer

READINESS = ["ready", "blocked", "disabled"]
CREDENTIALS = ["present", "missing", "not_needed"]
VIEW_STATES = ["empty", "blocked", "ready"]
FILE_STATES = ["loaded", "not_loaded", "out_of_date", "empty", "missing", "invalid"]

# Contract fields the bootstrap leaves out (GET /api/config/<kind>/ has them).
HIDDEN: dict[Kind, tuple[str, ...]] = {
    Kind.PROVIDER: ("options",),
    Kind.TOOL: ("parameters",),
    Kind.SKILL: ("instructions", "instructions_path"),
    Kind.MCP_SERVER: ("args",),
    Kind.AGENT: ("instructions",),
}

# What each contract field means, by name (a name means the same in every kind that has it).
FIELD_HELP: dict[str, str] = {
    "name": "Unique name",
    "alias": "The name sessions use",
    "kind": "openai | anthropic | google | ollama | openai_compatible | replay",
    "base_url": "Endpoint override; empty for the kind's default",
    "api_key_env": "NAME of the variable holding the key (never its value)",
    "provider": "Its provider's name",
    "model_id": "The provider's model id",
    "context_window_tokens": "The model's context window, in tokens",
    "max_output_tokens": "Most tokens one reply may use",
    "price_input_per_mtok": "USD per million input tokens",
    "price_cached_input_per_mtok": "USD per million cached input tokens",
    "price_cache_write_per_mtok": "USD per million input tokens written to the prompt cache",
    "price_output_per_mtok": "USD per million output tokens",
    "is_default": "What a new session uses",
    "description": "What it does",
    "requires_approval": "The user confirms each call first",
    "builtin": "The built-in that runs it (current_time, memory_search, memory_remember, memory_forget)",
    "mcp": "The MCP server's tool that runs it, as server/tool",
    "client": "An API client posts its result (POST /api/runs/{id}/tool-results/)",
    "max_tool_rounds": "Most rounds of tool calls in one turn",
    "tools": "Names of the tools it may use",
    "transport": "stdio | streamable_http | sse",
    "command": "stdio: the program started",
    "url": "streamable_http / sse: the server's URL",
    "env_vars": "NAMES of the environment variables the server needs (never values)",
    "tool_allowlist": "The server's tools agents may use (empty: all)",
    "route": "Alias of the route it runs on",
    "skills": "Skills it uses",
    "mcp_servers": "MCP servers it uses",
    "lead": "The lead agent (one of the members)",
    "members": "Member agents, in order",
    "enabled": "False: kept in the database but not offered",
}


def _names(help_text: str, **kwargs: Any) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(), help_text=help_text, **kwargs)


def _hinted_field(name: str, hint: Any, **options: Any) -> serializers.Field[Any, Any, Any, Any]:
    """The serializer field for a value annotated `hint` (a contract's or a response section's field)."""
    if hint is str:
        return serializers.CharField(**options)
    if hint is bool:
        return serializers.BooleanField(**options)
    if hint is int:
        return serializers.IntegerField(**options)
    if set(typing.get_args(hint)) == {Decimal, type(None)}:
        return serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True, **options)
    if set(typing.get_args(hint)) == {dt.date, type(None)}:
        return serializers.DateField(allow_null=True, **options)
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, Ellipsis):
        return serializers.ListField(child=serializers.CharField(), **options)
    raise TypeError(f"the bootstrap has no serializer field for {name}: {hint!r}")


def _contract_field(name: str, hint: Any) -> serializers.Field[Any, Any, Any, Any]:
    """The serializer field for one contract field, read from `entry.record`."""
    return _hinted_field(name, hint, source=f"record.{name}", help_text=FIELD_HELP[name])


def section_serializer(
    section: type, help_texts: dict[str, str], **declared: Callable[[], serializers.Field[Any, Any, Any, Any]]
) -> type[serializers.Serializer[Any]]:
    """`<Section>Serializer`: a field per field of the response dataclass `section`, in its order, typed
    from its annotation and described by `help_texts`, or made by `declared` (nested serializers)."""
    hints = typing.get_type_hints(section)
    shown = {}
    for item in fields(section):  # made in order: DRF orders declared fields by when they were made
        made = declared.get(item.name)
        shown[item.name] = (
            made() if made else _hinted_field(item.name, hints[item.name], help_text=help_texts[item.name])
        )
    return type(f"{section.__name__}Serializer", (serializers.Serializer,), {**shown, "__module__": __name__})


def entry_serializer(kind: Kind) -> type[serializers.Serializer[Any]]:
    """`<Contract>Entry`: the contract's shown fields, then `credential` (providers), `status` and `reasons`."""
    contract = CONTRACTS[kind]
    hints = typing.get_type_hints(contract)
    declared: dict[str, Any] = {
        item.name: _contract_field(item.name, hints[item.name])
        for item in fields(contract)
        if item.name not in HIDDEN.get(kind, ())
    }
    if kind is Kind.PROVIDER:
        declared["credential"] = serializers.ChoiceField(
            choices=CREDENTIALS, help_text="Whether that variable is set: `present` | `missing` | `not_needed`"
        )
    if kind is Kind.ROUTE:
        declared["probe"] = ProbeSerializer(
            allow_null=True, help_text="The last probe (`manage.py check_providers`); null when never probed"
        )
    if kind is Kind.MCP_SERVER:
        declared["probe"] = McpProbeSerializer(
            allow_null=True, help_text="The last probe (`manage.py check_mcp`); null when never probed"
        )
    declared["status"] = serializers.ChoiceField(
        choices=READINESS, help_text="`ready`: usable now; `blocked`: see `reasons`; `disabled` in the configuration"
    )
    declared["reasons"] = _names("What to do so the record becomes ready; empty when it is ready")
    name = contract.__name__.removesuffix("Config") + "EntrySerializer"
    return type(name, (serializers.Serializer,), {**declared, "__module__": __name__})


ENTRY_SERIALIZERS = {kind: entry_serializer(kind) for kind in Kind}


AppInfoSerializer = section_serializer(
    AppInfo,
    {
        "name": "The application's name",
        "version": "The application's version",
        "schema_version": "Version of this response's shape",
        "database_vendor": "`sqlite` or `postgresql`",
        "migrations_applied": "True when every migration is applied",
        "pending_migrations": "`app.migration` of each migration not applied yet (run `manage.py migrate`)",
    },
)


class ConfigFileSerializer(serializers.Serializer[Any]):
    path = serializers.CharField(help_text="The configuration file (the AGENTCHAT_CONFIG setting)")
    state = serializers.ChoiceField(
        choices=FILE_STATES,
        help_text=(
            "`loaded`: every record of the file is in the database; `not_loaded`: the database holds no "
            "configuration; `out_of_date`: some records differ; `empty`: the file defines nothing; "
            "`missing`: no such file; `invalid`: not readable, not TOML, or fails validation"
        ),
    )
    problems = _names("The file's problems (`location: message`) when it is invalid, at most 20")
    problem_count = serializers.IntegerField(help_text="How many problems the file has in all")
    differences = _names("Records of the file that the database does not hold as written")


class LoadProblemSerializer(serializers.Serializer[Any]):
    location = serializers.CharField(help_text="Where in the file, such as `routes[0].provider`; empty for the file")
    message = serializers.CharField(help_text="What is wrong and how to fix it")


class LastLoadSerializer(serializers.Serializer[Any]):
    file = serializers.CharField(help_text="The file that `manage.py load_config` read")
    checked_at = serializers.CharField(
        help_text="When it ran (ISO 8601, UTC, ending in `Z`); empty when the load record is unreadable"
    )
    problems = LoadProblemSerializer(
        many=True, help_text="What it found wrong; empty after a clean load (a failed load changes nothing)"
    )


class ConfigSectionSerializer(serializers.Serializer[Any]):
    file = ConfigFileSerializer(help_text="The configuration file and whether the database holds it")
    default_route = serializers.CharField(allow_null=True, help_text="Alias of the default route; null if none")
    last_load = LastLoadSerializer(
        allow_null=True,
        help_text="The last `manage.py load_config` against this database; null if it never ran here",
    )
    providers = ENTRY_SERIALIZERS[Kind.PROVIDER](many=True, help_text="Providers by name")
    routes = ENTRY_SERIALIZERS[Kind.ROUTE](many=True, help_text="Model routes by alias")
    tools = ENTRY_SERIALIZERS[Kind.TOOL](many=True, help_text="Tools by name")
    skills = ENTRY_SERIALIZERS[Kind.SKILL](many=True, help_text="Skills by name")
    mcp_servers = ENTRY_SERIALIZERS[Kind.MCP_SERVER](many=True, help_text="MCP servers by name")
    agents = ENTRY_SERIALIZERS[Kind.AGENT](many=True, help_text="Agents by name")
    teams = ENTRY_SERIALIZERS[Kind.TEAM](many=True, help_text="Teams by name")


class RecentSessionSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(help_text="The session's id")
    title = serializers.CharField(help_text="Its title (or `session <id>`)")
    status = serializers.ChoiceField(choices=["active", "archived"], help_text="`active` or `archived`")
    route = serializers.CharField(help_text="Alias of its route")
    agent = serializers.CharField(allow_null=True, help_text="The agent it talks to (null: none)")
    team = serializers.CharField(allow_null=True, help_text="The team whose lead answers (null: none)")
    message_count = serializers.IntegerField(help_text="Messages in its log")
    last_activity = serializers.DateTimeField(help_text="When it last changed (UTC)")
    context_fullness_percent = serializers.FloatField(
        help_text="Tokens since its last checkpoint as a percentage of its route's context window"
    )
    needs_compaction = serializers.BooleanField(help_text="Active and at or over the compaction threshold")


SessionsSectionSerializer = section_serializer(
    SessionsSection,
    {
        "total": "Every session",
        "active": "Sessions not archived",
        "archived": "Archived sessions",
        "needing_compaction": "Active sessions at or over the compaction threshold",
        "compaction_threshold_percent": "The context fullness that needs compaction",
    },
    recent=lambda: RecentSessionSerializer(
        many=True, help_text="The 5 sessions with the latest activity, newest first"
    ),
)
MemorySectionSerializer = section_serializer(
    MemorySection,
    {
        "messages": "Raw history: every stored message",
        "daily_episodes": "Daily episode summaries",
        "long_term": "Long-term memories",
        "pinned": "Long-term memories pinned into every context",
        "attachments": "Attachment summaries",
        "latest_episode_day": "Day of the newest episode; null if none",
    },
)


class TelemetrySectionSerializer(serializers.Serializer[Any]):
    timezone = serializers.CharField(help_text="IANA timezone the day is cut in (AGENTCHAT_TIMEZONE)")
    day = serializers.DateField(help_text="Today in that timezone")
    today = UsageCountsSerializer(help_text="Usage today; zeros when none")
    all_time = UsageCountsSerializer(help_text="Usage since the beginning; zeros when none")
    by_model = ModelUsageSerializer(many=True, help_text="Per provider and model, most tokens first")


WorkersSectionSerializer = section_serializer(
    WorkersSection,
    {
        "live": "Worker processes whose heartbeat arrived in the last 30 s",
        "queued_runs": "Your turns waiting for a worker",
        "running_runs": "Your turns a worker is running",
    },
)


class ViewStatusSerializer(serializers.Serializer[ViewStatus]):
    state = serializers.ChoiceField(
        choices=VIEW_STATES,
        help_text="`empty`: usable, nothing to show yet; `blocked`: cannot be used, see `reasons`; `ready`",
    )
    reasons = _names("Sentences a person can act on; empty only when `ready`")


class ViewsSerializer(serializers.Serializer[Any]):
    chat = ViewStatusSerializer(
        help_text="Chatting: needs a ready default route and a live worker; empty without sessions"
    )
    model = ViewStatusSerializer(help_text="Model routes: empty without routes, blocked when none is ready")
    tools = ViewStatusSerializer(help_text="Tools: empty without tools, blocked when all are disabled")
    skills = ViewStatusSerializer(help_text="Skills: empty without skills, blocked when none is ready")
    mcp = ViewStatusSerializer(
        help_text="MCP servers: empty without servers, blocked when none is ready (never probed included); "
        "ready when one is, with `MCP server 'name': ready: N tools` per ready server"
    )
    memory = ViewStatusSerializer(help_text="Memory: empty while no tier holds anything")
    team = ViewStatusSerializer(help_text="Teams: empty without teams, blocked when none is ready")
    tokens = ViewStatusSerializer(help_text="Token usage: empty until the first usage is recorded")
    config = ViewStatusSerializer(
        help_text="Configuration: blocked while the last load failed, or the file is missing, invalid or not loaded"
    )


class BootstrapSerializer(serializers.Serializer[Bootstrap]):
    schema_version = serializers.IntegerField(help_text="Version of this response's shape (also in `app`)")
    app = AppInfoSerializer(help_text="The application and its database")
    config = ConfigSectionSerializer(help_text="Every configuration record with its readiness")
    sessions = SessionsSectionSerializer(help_text="Session counters and the most recent sessions")
    memory = MemorySectionSerializer(help_text="How much each memory tier holds")
    telemetry = TelemetrySectionSerializer(help_text="Token usage and cost, today and all time")
    workers = WorkersSectionSerializer(help_text="Worker liveness and your queue depth")
    views = ViewsSerializer(help_text=f"The state of each view: {', '.join(VIEW_NAMES)}")


Shape = Callable[[Any], Any]


def shape_of(field: serializers.Field[Any, Any, Any, Any]) -> Shape:
    """A function returning what `field.to_representation(value)` returns, planned once.

    DRF walks every nested serializer's fields (`_readable_fields`, `get_attribute`) on each
    call; for the bootstrap's ~300 fields that walk costs more than the values. The plan keeps
    DRF's meaning: each value is read from its `source` (a key of a dict, else an attribute),
    None stays None, and every leaf is the declared field's own `to_representation`.
    """
    if isinstance(field, serializers.ListSerializer):
        if field.child is None:
            raise TypeError(f"{field!r} has no child serializer")
        child = shape_of(field.child)
        return lambda items: [child(item) for item in items]
    if isinstance(field, serializers.Serializer):
        parts = [
            (name, tuple(item.source_attrs), shape_of(item))
            for name, item in field.fields.items()
            if not item.write_only
        ]

        def shape(instance: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, attrs, convert in parts:
                value = instance
                for attr in attrs:
                    value = value[attr] if isinstance(value, dict) else getattr(value, attr)
                out[name] = None if value is None else convert(value)
            return out

        return shape
    if isinstance(field, serializers.ListField):
        item = shape_of(field.child)
        return lambda items: [None if value is None else item(value) for value in items]
    return field.to_representation


@functools.cache
def _section_shapes() -> dict[str, Shape]:
    """The shape of each of the response's sections (`BootstrapSerializer`'s fields), planned once."""
    return {name: shape_of(field) for name, field in BootstrapSerializer().fields.items()}


# Per section: (its last value, that value shaped). A section equal to the last one (the same object
# for an unchanged configuration section, `compose.config_section_kept`) is shaped already: shaping is a
# pure function of the value, and comparing frozen dataclasses costs less than DRF's fields.
_shaped: dict[str, tuple[object, Any]] = {}


def bootstrap_data(bootstrap: Bootstrap) -> dict[str, Any]:
    """The response body for `bootstrap`: what `BootstrapSerializer(bootstrap).data` gives, planned once.

    Each section's data is kept while the section is unchanged; nothing mutates it.
    """
    data: dict[str, Any] = {}
    for name, shape in _section_shapes().items():
        value = getattr(bootstrap, name)
        kept = _shaped.get(name)
        if kept is None or not (kept[0] is value or kept[0] == value):
            kept = _shaped[name] = (value, shape(value))
        data[name] = kept[1]
    return data
