"""Shapes of the configuration records in the API.

Output serializers read stored records (relations by name, never ids) and add what a client
needs to act: a provider's `credential` (`present` | `missing` | `not_needed`, never a value)
and the readiness of providers, routes and MCP servers. Input serializers document the request
bodies; the bodies themselves are checked by `core.config.validation`, the same code that checks
the TOML file and the admin forms, so every path rejects the same things with the same messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.config.contracts import Credential, Kind, ProbeResult, ReadinessReport, RecordReadiness, contract_fields
from core.config.models import AgentProfile, McpServerSpec, ModelRoute, Provider, SkillSpec, Team, ToolSpec
from core.config.readiness import (
    env_is_set,
    mcp_server_readiness,
    provider_credential,
    provider_readiness,
)
from core.config.selectors import mcp_server_config, provider_config, stored_route_readiness

_M = TypeVar("_M", bound=models.Model)

STATUSES = ["ready", "blocked", "disabled"]
CREDENTIALS = ["present", "missing", "not_needed"]


class ReadinessSerializer(serializers.Serializer[RecordReadiness]):
    status = serializers.ChoiceField(choices=STATUSES)
    reasons = serializers.ListField(child=serializers.CharField())


def _readiness(state: RecordReadiness) -> dict[str, Any]:
    return {"status": state.status, "reasons": list(state.reasons)}


class ProbeSerializer(serializers.Serializer[ProbeResult]):
    """A route's last probe (`manage.py check_providers`, `POST /api/config/routes/{alias}/probe/`)."""

    ok = serializers.BooleanField(help_text="Whether the model answered a minimal request")
    code = serializers.CharField(help_text='"" when ok; else the error code (`key_refused`, `model_not_found`, …)')
    message = serializers.CharField(help_text="What the provider said (for users who are not staff: which records)")
    model = serializers.CharField(help_text="The model id probed")
    latency_ms = serializers.IntegerField(allow_null=True, help_text="How long the request took")
    probed_at = serializers.DateTimeField()


class McpToolInfoSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="The tool's name on its server")
    description = serializers.CharField(help_text="What the server says it does")


class McpProbeSerializer(serializers.Serializer[Any]):
    """An MCP server's last probe (`manage.py check_mcp`, `POST /api/config/mcp-servers/{name}/probe/`)."""

    ok = serializers.BooleanField(help_text="Whether the server started, completed the handshake and listed its tools")
    summary = serializers.CharField(help_text="`ready: 7 tools` or `blocked: <reason>`")
    tools = McpToolInfoSerializer(many=True, help_text="Its tools (after the allowlist); empty when it failed")
    error = serializers.CharField(
        help_text='"" when ok; else why, with the server\'s last stderr lines (empty for users who are not staff)'
    )
    probed_at = serializers.DateTimeField()


class RecordReadinessSerializer(ReadinessSerializer):
    kind = serializers.SerializerMethodField()
    name = serializers.CharField()

    def get_kind(self, obj: RecordReadiness) -> str:
        return obj.kind.value


class RouteReadinessSerializer(RecordReadinessSerializer):
    probe = ProbeSerializer(allow_null=True, help_text="The last probe; null when never probed")


class ReadinessReportSerializer(serializers.Serializer[ReadinessReport]):
    default_route = serializers.CharField(allow_null=True)
    providers = RecordReadinessSerializer(many=True)
    routes = RouteReadinessSerializer(many=True)
    mcp_servers = RecordReadinessSerializer(many=True)
    agents = RecordReadinessSerializer(many=True)
    teams = RecordReadinessSerializer(many=True)


# --- output -----------------------------------------------------------------------------------

# The records shown with their readiness, and how a stored one's is worked out (the API and the admin).
_STORED_READINESS: dict[type[models.Model], Callable[[Any], RecordReadiness]] = {
    Provider: lambda obj: provider_readiness(provider_config(obj)),
    ModelRoute: stored_route_readiness,
    McpServerSpec: lambda obj: mcp_server_readiness(mcp_server_config(obj)),
}


def stored_readiness(obj: models.Model) -> RecordReadiness:
    """The readiness of a stored provider, route or MCP server."""
    return _STORED_READINESS[type(obj)](obj)


def record_fields(kind: Kind, *extra: str) -> list[str]:
    """An output's fields: the kind's contract, then what the API adds, then when it was created and changed."""
    return [*contract_fields(kind), *extra, "created", "updated"]


def _names() -> serializers.SlugRelatedField[Any]:
    """A many-to-many relation shown as the names of the related records."""
    return serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)


# A stored record with its readiness (`status`, `reasons`). No docstring: drf-spectacular would
# give it to every subclass's schema component as its description.
class ReadyRecordSerializer(serializers.ModelSerializer[_M]):
    readiness = serializers.SerializerMethodField()

    @extend_schema_field(ReadinessSerializer)
    def get_readiness(self, obj: _M) -> dict[str, Any]:
        return _readiness(stored_readiness(obj))


class ProviderSerializer(ReadyRecordSerializer[Provider]):
    credential = serializers.SerializerMethodField()

    class Meta:
        model = Provider
        fields = record_fields(Kind.PROVIDER, "credential", "readiness")

    @extend_schema_field(serializers.ChoiceField(choices=CREDENTIALS))
    def get_credential(self, obj: Provider) -> Credential:
        return provider_credential(provider_config(obj))


class RouteSerializer(ReadyRecordSerializer[ModelRoute]):
    provider: serializers.SlugRelatedField[Provider] = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ModelRoute
        fields = record_fields(Kind.ROUTE, "readiness")


class ToolSerializer(serializers.ModelSerializer[ToolSpec]):
    class Meta:
        model = ToolSpec
        fields = record_fields(Kind.TOOL)


class SkillSerializer(serializers.ModelSerializer[SkillSpec]):
    tools: serializers.SlugRelatedField[Any] = _names()

    class Meta:
        model = SkillSpec
        fields = record_fields(Kind.SKILL)


class McpServerSerializer(ReadyRecordSerializer[McpServerSpec]):
    env = serializers.SerializerMethodField()

    class Meta:
        model = McpServerSpec
        fields = record_fields(Kind.MCP_SERVER, "env", "readiness")

    @extend_schema_field(serializers.DictField(child=serializers.ChoiceField(choices=["present", "missing"])))
    def get_env(self, obj: McpServerSpec) -> dict[str, str]:
        """Whether each variable the server needs is set (never its value)."""
        return {name: "present" if env_is_set(name) else "missing" for name in obj.env_vars}


class AgentSerializer(serializers.ModelSerializer[AgentProfile]):
    route: serializers.SlugRelatedField[ModelRoute] = serializers.SlugRelatedField(slug_field="alias", read_only=True)
    tools: serializers.SlugRelatedField[Any] = _names()
    skills: serializers.SlugRelatedField[Any] = _names()
    mcp_servers: serializers.SlugRelatedField[Any] = _names()

    class Meta:
        model = AgentProfile
        fields = [
            "name",
            "description",
            "instructions",
            "route",
            "tools",
            "skills",
            "mcp_servers",
            "enabled",
            "created",
            "updated",
        ]


class TeamSerializer(serializers.ModelSerializer[Team]):
    lead: serializers.SlugRelatedField[AgentProfile] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    members = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["name", "description", "lead", "members", "enabled", "created", "updated"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_members(self, obj: Team) -> list[str]:
        """Member agent names in team order."""
        return [member.agent.name for member in obj.members.all()]
