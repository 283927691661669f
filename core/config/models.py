"""Configuration records: what providers, routes, tools, skills, MCP servers and agents exist.

They are loaded from the operator's TOML file (or edited in the admin/API) through
`core.config.services`, which validates every field. Secrets are never stored: a provider
names the environment variable that holds its key.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GOOGLE = "google", "Google"
    OLLAMA = "ollama", "Ollama"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"
    REPLAY = "replay", "Replay (offline)"


class McpTransport(models.TextChoices):
    STDIO = "stdio", "stdio"
    STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
    SSE = "sse", "Server-sent events"


class NamedRecord(models.Model):
    """What every configuration record but a route has: a unique name, whether it is offered, and
    when it was created and last changed; listed by name."""

    name = models.SlugField(max_length=64, unique=True)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Provider(NamedRecord):
    """An LLM provider account; `api_key_env` is the NAME of the variable holding its key."""

    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    base_url = models.URLField(max_length=500, blank=True, default="")
    api_key_env = models.CharField(max_length=128, blank=True, default="")
    options = models.JSONField(default=dict, blank=True)

    class Meta(NamedRecord.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ProviderKind.values), name="provider_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ModelRoute(models.Model):
    """An alias sessions and the UI use for one provider model, with its limits and prices."""

    alias = models.SlugField(max_length=64, unique=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="routes")
    model_id = models.CharField(max_length=200)
    context_window_tokens = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    # USD per million tokens; empty means "no price known" (cost is then left empty).
    price_input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    price_cached_input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    # Writing input to the provider's prompt cache (Anthropic bills it apart); empty: the input price.
    price_cache_write_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    price_output_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    is_default = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["alias"]
        constraints = [
            # At most one default route.
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="route_single_default"),
            models.CheckConstraint(condition=Q(context_window_tokens__gt=0), name="route_context_window_positive"),
            models.CheckConstraint(condition=Q(max_output_tokens__gt=0), name="route_max_output_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.alias} ({self.model_id})"


class ToolSpec(NamedRecord):
    """A tool the agents may call; `parameters` is a JSON Schema object."""

    description = models.TextField(blank=True, default="")
    parameters = models.JSONField(default=dict, blank=True)
    requires_approval = models.BooleanField(default=False)
    # What runs it (exactly one, or the tool is blocked): a built-in's name, an MCP server's tool
    # ("server/tool"), or an API client that posts the result.
    builtin = models.CharField(max_length=64, blank=True, default="")
    mcp = models.CharField(max_length=200, blank=True, default="")
    client = models.BooleanField(default=False)


class SkillSpec(NamedRecord):
    """Instructions (inline, or a file inside the skills folder) and the tools they may use."""

    description = models.TextField(blank=True, default="")
    instructions = models.TextField(blank=True, default="")
    instructions_path = models.CharField(max_length=500, blank=True, default="")
    tools = models.ManyToManyField(ToolSpec, blank=True, related_name="skills")


class McpServerSpec(NamedRecord):
    """How to reach an MCP server: a stdio command or an HTTP URL, and the env var names it needs."""

    transport = models.CharField(max_length=32, choices=McpTransport.choices)
    command = models.CharField(max_length=500, blank=True, default="")
    args = models.JSONField(default=list, blank=True)
    url = models.URLField(max_length=500, blank=True, default="")
    env_vars = models.JSONField(default=list, blank=True)
    tool_allowlist = models.JSONField(default=list, blank=True)

    class Meta(NamedRecord.Meta):
        verbose_name = "MCP server"
        constraints = [
            models.CheckConstraint(condition=Q(transport__in=McpTransport.values), name="mcp_transport_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.transport})"


class AgentProfile(NamedRecord):
    """A named agent: role instructions, its model route, and what it may use."""

    description = models.TextField(blank=True, default="")
    instructions = models.TextField(blank=True, default="")
    route = models.ForeignKey(ModelRoute, on_delete=models.PROTECT, related_name="agents")
    tools = models.ManyToManyField(ToolSpec, blank=True, related_name="agents")
    skills = models.ManyToManyField(SkillSpec, blank=True, related_name="agents")
    mcp_servers = models.ManyToManyField(McpServerSpec, blank=True, related_name="agents")
    # How many rounds of tool calls one turn may take before it ends with that reason.
    max_tool_rounds = models.PositiveSmallIntegerField(default=8)

    class Meta(NamedRecord.Meta):
        verbose_name = "agent"


class Team(NamedRecord):
    """Agents that work together, with a lead who is one of its members."""

    description = models.TextField(blank=True, default="")
    lead = models.ForeignKey(AgentProfile, on_delete=models.PROTECT, related_name="teams_led")


class TeamMember(models.Model):
    """One agent's place in a team's ordered member list."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    agent = models.ForeignKey(AgentProfile, on_delete=models.PROTECT, related_name="memberships")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["team", "position"]
        constraints = [
            models.UniqueConstraint(fields=["team", "position"], name="team_member_position_unique"),
            models.UniqueConstraint(fields=["team", "agent"], name="team_member_agent_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.team_id}#{self.position}: {self.agent_id}"


class ConfigVersion(models.Model):
    """Two rows of fresh random stamps: row 1 written by every configuration service write that changes a
    record, row 2 by every service write of a route's or an MCP server's status.

    Readers that keep something derived from the configuration (the bootstrap's snapshot) compare
    these stamps instead of the records. Random, not a counter: a rolled-back write cannot make an
    older configuration look current again. Writes that bypass `core.config.services` leave them.
    """

    stamp = models.UUIDField(default=uuid.uuid4)

    def __str__(self) -> str:
        return f"configuration version {self.stamp}"


class MemorySettings(models.Model):
    """One row: the `[memory]` table of the configuration file (written only by `load_config`)."""

    keep_recent_messages = models.PositiveIntegerField(default=6)
    # A route alias (configuration refers by name); empty: each session's own route.
    summary_route = models.CharField(max_length=64, blank=True, default="")
    extract_facts = models.BooleanField(default=False)
    compaction_prompt = models.TextField()
    episode_prompt = models.TextField()
    facts_prompt = models.TextField()
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "memory settings"
        verbose_name_plural = "memory settings"

    def __str__(self) -> str:
        return "memory settings"


class RouteStatus(models.Model):
    """What the app learned about a route by using it: the last probe, a refused key, an unknown model.

    Written only by `core.config.services` (a probe, or a turn's answer), never by `load_config`:
    it is not configuration, so reloading the file keeps it. A refused key is kept as an HMAC of
    the variable's value (keyed by SECRET_KEY), never the value: readiness blocks the route while
    the variable still holds the value that was refused.
    """

    route = models.OneToOneField(ModelRoute, on_delete=models.CASCADE, primary_key=True, related_name="status")
    # The last probe; `probed_at` null: never probed.
    probe_ok = models.BooleanField(null=True, blank=True)
    probe_code = models.CharField(max_length=64, blank=True, default="")
    probe_message = models.TextField(blank=True, default="")
    probe_model = models.CharField(max_length=200, blank=True, default="")
    probe_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    probed_at = models.DateTimeField(null=True, blank=True)
    # A 401/403: the variable named at the time and the HMAC of the value it held.
    key_refused_env = models.CharField(max_length=128, blank=True, default="")
    key_refused_hmac = models.CharField(max_length=64, blank=True, default="")
    key_refused_at = models.DateTimeField(null=True, blank=True)
    # A 404 for the model: which model id the provider did not know.
    model_missing = models.CharField(max_length=200, blank=True, default="")
    model_missing_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "route status"
        verbose_name_plural = "route statuses"
        constraints = [
            models.CheckConstraint(
                condition=Q(key_refused_at__isnull=True) | ~Q(key_refused_hmac=""), name="route_status_refusal_has_hmac"
            ),
        ]

    def __str__(self) -> str:
        return f"status of route {self.route_id}"


class McpServerStatus(models.Model):
    """The last probe of an MCP server: its tools (after the allowlist) with their schemas, or why it failed.

    Written only by `core.config.services.mcp_probe_record` (`manage.py check_mcp`, the probe
    endpoint, or the first turn that needs the server), never by `load_config`: reloading the file
    keeps it. No row: never probed.
    """

    server = models.OneToOneField(McpServerSpec, on_delete=models.CASCADE, primary_key=True, related_name="status")
    ok = models.BooleanField()
    # [{"name", "description", "input_schema"}], in the server's order.
    tools = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")
    probed_at = models.DateTimeField()

    class Meta:
        verbose_name = "MCP server status"
        verbose_name_plural = "MCP server statuses"
        constraints = [
            models.CheckConstraint(condition=Q(ok=True) | ~Q(error=""), name="mcp_status_failure_has_error"),
        ]

    def __str__(self) -> str:
        return f"status of MCP server {self.server_id}"
