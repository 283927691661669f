"""Shapes of the configuration records in the API.

Output serializers read stored records (relations by name, never ids) and add what a client
needs to act: a provider's `credential` (`present` | `missing` | `not_needed`, never a value)
and the readiness of providers, routes and MCP servers. Input serializers document the request
bodies; the bodies themselves are checked by `core.config.validation`, the same code that checks
the TOML file and the admin forms, so every path rejects the same things with the same messages.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.config.contracts import Credential, ProbeResult, ReadinessReport, RecordReadiness
from core.config.models import (
    AgentProfile,
    McpServerSpec,
    ModelRoute,
    Provider,
    SkillSpec,
    Team,
    ToolSpec,
)
from core.config.readiness import (
    env_is_set,
    mcp_server_readiness,
    provider_credential,
    provider_readiness,
)
from core.config.selectors import mcp_server_config, provider_config, stored_route_readiness

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


class ProviderSerializer(serializers.ModelSerializer[Provider]):
    credential = serializers.SerializerMethodField()
    readiness = serializers.SerializerMethodField()

    class Meta:
        model = Provider
        fields = [
            "name",
            "kind",
            "base_url",
            "api_key_env",
            "enabled",
            "options",
            "credential",
            "readiness",
            "created",
            "updated",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=CREDENTIALS))
    def get_credential(self, obj: Provider) -> Credential:
        return provider_credential(provider_config(obj))

    @extend_schema_field(ReadinessSerializer)
    def get_readiness(self, obj: Provider) -> dict[str, Any]:
        return _readiness(provider_readiness(provider_config(obj)))


class RouteSerializer(serializers.ModelSerializer[ModelRoute]):
    provider: serializers.SlugRelatedField[Provider] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    readiness = serializers.SerializerMethodField()

    class Meta:
        model = ModelRoute
        fields = [
            "alias",
            "provider",
            "model_id",
            "context_window_tokens",
            "max_output_tokens",
            "price_input_per_mtok",
            "price_cached_input_per_mtok",
            "price_cache_write_per_mtok",
            "price_output_per_mtok",
            "is_default",
            "enabled",
            "readiness",
            "created",
            "updated",
        ]

    @extend_schema_field(ReadinessSerializer)
    def get_readiness(self, obj: ModelRoute) -> dict[str, Any]:
        return _readiness(stored_route_readiness(obj))


class ToolSerializer(serializers.ModelSerializer[ToolSpec]):
    class Meta:
        model = ToolSpec
        fields = [
            "name",
            "description",
            "parameters",
            "requires_approval",
            "builtin",
            "mcp",
            "client",
            "enabled",
            "created",
            "updated",
        ]


class SkillSerializer(serializers.ModelSerializer[SkillSpec]):
    tools: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True
    )

    class Meta:
        model = SkillSpec
        fields = ["name", "description", "instructions", "instructions_path", "tools", "enabled", "created", "updated"]


class McpServerSerializer(serializers.ModelSerializer[McpServerSpec]):
    env = serializers.SerializerMethodField()
    readiness = serializers.SerializerMethodField()

    class Meta:
        model = McpServerSpec
        fields = [
            "name",
            "transport",
            "command",
            "args",
            "url",
            "env_vars",
            "tool_allowlist",
            "enabled",
            "env",
            "readiness",
            "created",
            "updated",
        ]

    @extend_schema_field(serializers.DictField(child=serializers.ChoiceField(choices=["present", "missing"])))
    def get_env(self, obj: McpServerSpec) -> dict[str, str]:
        """Whether each variable the server needs is set (never its value)."""
        return {name: "present" if env_is_set(name) else "missing" for name in obj.env_vars}

    @extend_schema_field(ReadinessSerializer)
    def get_readiness(self, obj: McpServerSpec) -> dict[str, Any]:
        return _readiness(mcp_server_readiness(mcp_server_config(obj)))


class AgentSerializer(serializers.ModelSerializer[AgentProfile]):
    route: serializers.SlugRelatedField[ModelRoute] = serializers.SlugRelatedField(slug_field="alias", read_only=True)
    tools: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True
    )
    skills: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True
    )
    mcp_servers: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True
    )

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
