"""`GET /api/bootstrap/`: the UI's first screen in one call, documented field by field.

The body is `runtime.bootstrap.build.bootstrap_read()` shaped by the serializers below. Every
response carries a strong `ETag` (a SHA-256 of the JSON body); a request whose `If-None-Match`
names it (alone, in a list, or weak `W/"…"`) gets `304 Not Modified` with no body.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from runtime.bootstrap.build import VIEW_NAMES, Bootstrap, ViewStatus, bootstrap_read
from telemetry.api.serializers import ModelUsageSerializer, UsageCountsSerializer

# The usage counters (UsageCounts, ModelUsage) are the telemetry API's own schema components.
READINESS = ["ready", "blocked", "disabled"]
CREDENTIALS = ["present", "missing", "not_needed"]
VIEW_STATES = ["empty", "blocked", "ready"]
FILE_STATES = ["loaded", "not_loaded", "out_of_date", "empty", "missing", "invalid"]


def _names(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(), help_text=help_text)


def _price(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True, help_text=help_text)


def _status() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=READINESS, help_text="`ready`: usable now; `blocked`: see `reasons`; `disabled` in the configuration"
    )


def _reasons() -> serializers.ListField:
    return _names("What to do so the record becomes ready; empty when it is ready")


def _enabled() -> serializers.BooleanField:
    return serializers.BooleanField(help_text="False: kept in the database but not offered")


class AppInfoSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="The application's name")
    version = serializers.CharField(help_text="The application's version")
    schema_version = serializers.IntegerField(help_text="Version of this response's shape")
    database_vendor = serializers.CharField(help_text="`sqlite` or `postgresql`")
    migrations_applied = serializers.BooleanField(help_text="True when every migration is applied")
    pending_migrations = _names("`app.migration` of each migration not applied yet (run `manage.py migrate`)")


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


class ProviderEntrySerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="Unique provider name")
    kind = serializers.CharField(help_text="openai | anthropic | google | ollama | openai_compatible | replay")
    base_url = serializers.CharField(help_text="Endpoint override; empty for the kind's default")
    api_key_env = serializers.CharField(help_text="NAME of the variable holding the key (never its value)")
    credential = serializers.ChoiceField(
        choices=CREDENTIALS, help_text="Whether that variable is set: `present` | `missing` | `not_needed`"
    )
    enabled = _enabled()
    status = _status()
    reasons = _reasons()


class RouteEntrySerializer(serializers.Serializer[Any]):
    alias = serializers.CharField(help_text="The name sessions use")
    provider = serializers.CharField(help_text="Its provider's name")
    model_id = serializers.CharField(help_text="The provider's model id")
    context_window_tokens = serializers.IntegerField(help_text="The model's context window, in tokens")
    max_output_tokens = serializers.IntegerField(help_text="Most tokens one reply may use")
    price_input_per_mtok = _price("USD per million input tokens")
    price_cached_input_per_mtok = _price("USD per million cached input tokens")
    price_output_per_mtok = _price("USD per million output tokens")
    is_default = serializers.BooleanField(help_text="What a new session uses")
    enabled = _enabled()
    status = _status()
    reasons = _reasons()


class ToolEntrySerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="Unique tool name")
    description = serializers.CharField(help_text="What the tool does")
    requires_approval = serializers.BooleanField(help_text="The user confirms each call first")
    enabled = _enabled()
    status = _status()
    reasons = _reasons()


class SkillEntrySerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="Unique skill name")
    description = serializers.CharField(help_text="What the skill is for")
    tools = _names("Names of the tools the skill may use")
    enabled = _enabled()
    status = _status()
    reasons = _reasons()


class McpServerEntrySerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="Unique MCP server name")
    transport = serializers.CharField(help_text="stdio | streamable_http | sse")
    command = serializers.CharField(help_text="stdio: the program started")
    url = serializers.CharField(help_text="streamable_http / sse: the server's URL")
    env_vars = _names("NAMES of the environment variables the server needs (never values)")
    tool_allowlist = _names("The server's tools agents may use (empty: all)")
    enabled = _enabled()
    status = _status()
    reasons = _reasons()


class AgentEntrySerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="Unique agent name")
    description = serializers.CharField(help_text="What the agent does")
    route = serializers.CharField(help_text="Alias of the route it runs on")
    tools = _names("Tools it may call")
    skills = _names("Skills it uses")
    mcp_servers = _names("MCP servers it uses")
    enabled = _enabled()
    status = _status()
    reasons = _reasons()


class TeamEntrySerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="Unique team name")
    description = serializers.CharField(help_text="What the team does")
    lead = serializers.CharField(help_text="The lead agent (one of the members)")
    members = _names("Member agents, in order")
    enabled = _enabled()
    status = _status()
    reasons = _reasons()


class ConfigSectionSerializer(serializers.Serializer[Any]):
    file = ConfigFileSerializer(help_text="The configuration file and whether the database holds it")
    default_route = serializers.CharField(allow_null=True, help_text="Alias of the default route; null if none")
    providers = ProviderEntrySerializer(many=True, help_text="Providers by name")
    routes = RouteEntrySerializer(many=True, help_text="Model routes by alias")
    tools = ToolEntrySerializer(many=True, help_text="Tools by name")
    skills = SkillEntrySerializer(many=True, help_text="Skills by name")
    mcp_servers = McpServerEntrySerializer(many=True, help_text="MCP servers by name")
    agents = AgentEntrySerializer(many=True, help_text="Agents by name")
    teams = TeamEntrySerializer(many=True, help_text="Teams by name")


class RecentSessionSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(help_text="The session's id")
    title = serializers.CharField(help_text="Its title (or `session <id>`)")
    status = serializers.ChoiceField(choices=["active", "archived"], help_text="`active` or `archived`")
    route = serializers.CharField(help_text="Alias of its route")
    message_count = serializers.IntegerField(help_text="Messages in its log")
    last_activity = serializers.DateTimeField(help_text="When it last changed (UTC)")
    context_fullness_percent = serializers.FloatField(
        help_text="Tokens since its last checkpoint as a percentage of its route's context window"
    )
    needs_compaction = serializers.BooleanField(help_text="Active and at or over the compaction threshold")


class SessionsSectionSerializer(serializers.Serializer[Any]):
    total = serializers.IntegerField(help_text="Every session")
    active = serializers.IntegerField(help_text="Sessions not archived")
    archived = serializers.IntegerField(help_text="Archived sessions")
    needing_compaction = serializers.IntegerField(help_text="Active sessions at or over the compaction threshold")
    compaction_threshold_percent = serializers.IntegerField(help_text="The context fullness that needs compaction")
    recent = RecentSessionSerializer(many=True, help_text="The 5 sessions with the latest activity, newest first")


class MemorySectionSerializer(serializers.Serializer[Any]):
    messages = serializers.IntegerField(help_text="Raw history: every stored message")
    daily_episodes = serializers.IntegerField(help_text="Daily episode summaries")
    long_term = serializers.IntegerField(help_text="Long-term memories")
    pinned = serializers.IntegerField(help_text="Long-term memories pinned into every context")
    attachments = serializers.IntegerField(help_text="Attachment summaries")
    latest_episode_day = serializers.DateField(allow_null=True, help_text="Day of the newest episode; null if none")


class TelemetrySectionSerializer(serializers.Serializer[Any]):
    timezone = serializers.CharField(help_text="IANA timezone the day is cut in (AGENTCHAT_TIMEZONE)")
    day = serializers.DateField(help_text="Today in that timezone")
    today = UsageCountsSerializer(help_text="Usage today; zeros when none")
    all_time = UsageCountsSerializer(help_text="Usage since the beginning; zeros when none")
    by_model = ModelUsageSerializer(many=True, help_text="Per provider and model, most tokens first")


class ViewStatusSerializer(serializers.Serializer[ViewStatus]):
    state = serializers.ChoiceField(
        choices=VIEW_STATES,
        help_text="`empty`: usable, nothing to show yet; `blocked`: cannot be used, see `reasons`; `ready`",
    )
    reasons = _names("Sentences a person can act on; empty only when `ready`")


class ViewsSerializer(serializers.Serializer[Any]):
    chat = ViewStatusSerializer(help_text="Chatting: needs a ready default route; empty without sessions")
    model = ViewStatusSerializer(help_text="Model routes: empty without routes, blocked when none is ready")
    tools = ViewStatusSerializer(help_text="Tools: empty without tools, blocked when all are disabled")
    skills = ViewStatusSerializer(help_text="Skills: empty without skills, blocked when none is ready")
    mcp = ViewStatusSerializer(help_text="MCP servers: empty without servers, blocked when none is ready")
    memory = ViewStatusSerializer(help_text="Memory: empty while no tier holds anything")
    team = ViewStatusSerializer(help_text="Teams: empty without teams, blocked when none is ready")
    tokens = ViewStatusSerializer(help_text="Token usage: empty until the first usage is recorded")
    config = ViewStatusSerializer(help_text="Configuration file: blocked when missing, invalid or not loaded")


class BootstrapSerializer(serializers.Serializer[Bootstrap]):
    schema_version = serializers.IntegerField(help_text="Version of this response's shape (also in `app`)")
    app = AppInfoSerializer(help_text="The application and its database")
    config = ConfigSectionSerializer(help_text="Every configuration record with its readiness")
    sessions = SessionsSectionSerializer(help_text="Session counters and the most recent sessions")
    memory = MemorySectionSerializer(help_text="How much each memory tier holds")
    telemetry = TelemetrySectionSerializer(help_text="Token usage and cost, today and all time")
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
def _bootstrap_shape() -> Shape:
    return shape_of(BootstrapSerializer())


def bootstrap_data(bootstrap: Bootstrap) -> dict[str, Any]:
    """The response body for `bootstrap`: what `BootstrapSerializer(bootstrap).data` gives, planned once."""
    data: dict[str, Any] = _bootstrap_shape()(bootstrap)
    return data


def etag_of(body: bytes) -> str:
    """A strong ETag for `body`."""
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-None-Match value (`*`, one tag, a list, weak `W/` tags) names `etag`."""
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith(("W/", "w/")):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


class OneObjectSchema(AutoSchema):
    """The bootstrap is the `list` action of its ViewSet but answers one object, not an array."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False


class BootstrapViewSet(viewsets.ViewSet):
    """The configuration, the counters and the state of every view, in one call."""

    schema = OneObjectSchema()

    @extend_schema(
        operation_id="bootstrap_retrieve",
        summary="Everything the UI needs for its first screen",
        parameters=[
            OpenApiParameter(
                name="If-None-Match",
                type=OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                required=False,
                description="An ETag from an earlier response: 304 when the body is unchanged",
            )
        ],
        responses={
            200: OpenApiResponse(BootstrapSerializer, description="The bootstrap; its strong ETag is in `ETag`"),
            304: OpenApiResponse(description="Not modified: If-None-Match names the current ETag; no body"),
        },
    )
    def list(self, request: Request) -> HttpResponseBase:
        data = bootstrap_data(bootstrap_read())
        body = JSONRenderer().render(data)
        etag = etag_of(body)
        headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Cookie, Authorization"}
        if etag_matches(request.headers.get("If-None-Match", ""), etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        renderer = getattr(request, "accepted_renderer", None)
        if type(renderer) is JSONRenderer and "indent" not in (request.accepted_media_type or ""):
            # Plain JSON asked for: the body the ETag was computed on is the response, rendered once.
            return HttpResponse(body, content_type=renderer.media_type, headers=headers)
        return Response(data, headers=headers)  # the browsable API, or JSON with an indent
