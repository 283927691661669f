"""Token usage: append-only events (the source of truth) and the rollups the UI reads.

Every provider usage report becomes one `UsageEvent`. In the same transaction
`telemetry.services` adds it to the rollups with one upsert each: the local day x provider x
model (`UsageByDay`, and per user `UsageByUserDay`), the session (`UsageBySession`), all time per
provider x model (`UsageAllTime`) and all time per user x purpose (`UsageByPurpose`). Readers
use only the rollups, so what they cost does not grow with the number of events;
`manage.py telemetry_reconcile` proves the rollups still equal the sums of the events.

Field names follow the OpenTelemetry GenAI usage conventions: `input_tokens`
(`gen_ai.usage.input_tokens`, cache reads and writes included), `cached_input_tokens`
(`gen_ai.usage.cache_read.input_tokens`, a part of the input), `cache_write_input_tokens`
(`gen_ai.usage.cache_creation.input_tokens`, a part of the input), `output_tokens`
(`gen_ai.usage.output_tokens`, reasoning included), `reasoning_tokens`
(`gen_ai.usage.reasoning.output_tokens`, a part of the output), `provider`
(`gen_ai.provider.name`), `model` (`gen_ai.response.model`).

"Not reported" is not zero: an event's token count is NULL when the provider did not report it
(Ollama reports no cached or reasoning counts; a stream cut before its usage chunk reports only
what arrived). Rollups sum the known values and count, per field, the events whose value was
unknown (`<field>_unknown_events`); an event's cost prices what is known and `cost_partial` says
when counts its price depends on were missing.

Cost is kept as an integer number of pico-dollars (USD x 10¹²): a price per million tokens has
at most six decimals, so tokens x price / 10⁶ is always a whole number of pico-dollars. Integers
add exactly on every backend, whereas SQLite would turn a DECIMAL column into a float. The
`cost` properties give the exact `Decimal`.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.models import AgentSession, ModelRoute, Run, RunPurpose

PICO_USD_PER_USD = 10**12


def pico_usd_to_decimal(value: int) -> Decimal:
    """`value` pico-dollars as an exact USD Decimal with 12 places."""
    return Decimal(value).scaleb(-12)


class UsageEvent(models.Model):
    """One provider usage report; corrected or deleted only through `telemetry.services`."""

    request_id = models.CharField(max_length=128, unique=True)
    occurred_at = models.DateTimeField()
    # The local day the event counts on, and the timezone it was cut in (AGENTCHAT_TIMEZONE at
    # recording time), so the daily rollup can be recomputed exactly whatever the setting says now.
    day = models.DateField()
    day_timezone = models.CharField(max_length=64)
    # Names, not foreign keys: history must outlive a provider or route removed from the config.
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    route = models.ForeignKey(ModelRoute, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # SET_NULL: deleting a session keeps its usage in the daily and all-time totals.
    # db_index=False: usage_event_session_idx starts with the session and serves the same lookups.
    session = models.ForeignKey(
        AgentSession,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_events",
        db_index=False,
    )
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage_events")
    # What the call was for: a chat turn or upkeep (compaction, episode, facts); the run's purpose.
    purpose = models.CharField(max_length=16, choices=RunPurpose.choices, default=RunPurpose.CHAT)
    # The agent the call ran as (a name, like the provider's: history outlives the agent); "" for none.
    agent = models.CharField(max_length=64, blank=True, default="")
    # Its own column: the event outlives its session. PROTECT, because deleting events anywhere but
    # `telemetry.services` would leave the rollups counting them.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="usage_events")
    # NULL: the provider did not report this count (unknown, never read as zero).
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_write_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    # input + output; NULL when either is unknown.
    total_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    # The route's prices (USD per million tokens) when the event was recorded; a correction
    # re-prices with these, never with today's prices.
    price_input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    price_cached_input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    price_output_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    price_cache_write_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    # NULL when a price the event needs is unknown (see telemetry.services.usage_cost_pico_usd).
    cost_pico_usd = models.PositiveBigIntegerField(null=True, blank=True)
    # True when the cost leaves out tokens whose count the provider did not report (a lower bound).
    cost_partial = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    corrected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = "usage event"
        indexes = [
            # GET /api/telemetry/usage/ and the admin changelist: newest first, cursor paginated.
            models.Index(fields=["-occurred_at", "-id"], name="usage_event_recent_idx"),
            # The same list filtered by session (?session=).
            models.Index(fields=["session", "-occurred_at", "-id"], name="usage_event_session_idx"),
            # The same list filtered by provider, or provider and model.
            models.Index(fields=["provider", "model", "-occurred_at", "-id"], name="usage_event_model_idx"),
            # The admin's day filter and the reconcile's per-day grouping.
            models.Index(fields=["day_timezone", "day"], name="usage_event_day_idx"),
        ]
        constraints = [
            # A NULL on either side leaves a check unknown, which passes: an unknown count bounds nothing.
            models.CheckConstraint(
                condition=Q(cached_input_tokens__lte=F("input_tokens")), name="usage_event_cached_le_input"
            ),
            models.CheckConstraint(
                condition=Q(cache_write_input_tokens__lte=F("input_tokens") - F("cached_input_tokens")),
                name="usage_event_cache_write_le_input",
            ),
            models.CheckConstraint(
                condition=Q(reasoning_tokens__lte=F("output_tokens")), name="usage_event_reasoning_le_output"
            ),
            models.CheckConstraint(
                condition=Q(total_tokens=F("input_tokens") + F("output_tokens"))
                | (Q(total_tokens__isnull=True) & (Q(input_tokens__isnull=True) | Q(output_tokens__isnull=True))),
                name="usage_event_total_sum",
            ),
        ]

    def __str__(self) -> str:
        total = "unknown" if self.total_tokens is None else self.total_tokens
        return f"{self.request_id}: {self.provider}/{self.model} {total} tokens"

    @property
    def cost(self) -> Decimal | None:
        """The exact cost in USD, or None when unpriced."""
        return None if self.cost_pico_usd is None else pico_usd_to_decimal(self.cost_pico_usd)


class UsageCounters(models.Model):
    """The counters every rollup keeps: events, priced events and the sum of each usage field.

    `cost_pico_usd` sums the costs of priced events only; `event_count - priced_event_count`
    events had no known price, and `partial_cost_event_count` priced events left out tokens the
    provider did not report, so a total with either is a lower bound. Each token sum covers the
    events that reported it; `<field>_unknown_events` counts the events that did not.
    """

    event_count = models.PositiveBigIntegerField(default=0)
    priced_event_count = models.PositiveBigIntegerField(default=0)
    partial_cost_event_count = models.PositiveBigIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    input_tokens_unknown_events = models.PositiveBigIntegerField(default=0)
    cached_input_tokens_unknown_events = models.PositiveBigIntegerField(default=0)
    cache_write_input_tokens_unknown_events = models.PositiveBigIntegerField(default=0)
    output_tokens_unknown_events = models.PositiveBigIntegerField(default=0)
    reasoning_tokens_unknown_events = models.PositiveBigIntegerField(default=0)
    total_tokens_unknown_events = models.PositiveBigIntegerField(default=0)
    cost_pico_usd = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(
                condition=Q(priced_event_count__lte=F("event_count")), name="%(class)s_priced_le_events"
            ),
        ]

    @property
    def cost(self) -> Decimal:
        """The exact sum of the priced events' costs in USD."""
        return pico_usd_to_decimal(self.cost_pico_usd)


def _rollup_meta(
    name: str, *, key: list[str], key_name: str, order: list[str] | None = None
) -> type[UsageCounters.Meta]:
    """The Meta of a rollup whose rows are unique by `key`, the conflict target of its upsert.

    `name` is its name in the singular and the plural; `order` None leaves its rows unordered.
    """

    class Meta(UsageCounters.Meta):
        verbose_name = verbose_name_plural = name
        constraints = [*UsageCounters.Meta.constraints, models.UniqueConstraint(fields=key, name=key_name)]
        if order is not None:
            ordering = order

    return Meta


class DayCounters(UsageCounters):
    """The counters of one local day (cut in `timezone`) for one provider and model."""

    timezone = models.CharField(max_length=64)
    day = models.DateField()
    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)

    class Meta(UsageCounters.Meta):
        abstract = True


class UsageByDay(DayCounters):
    """Usage of one local day (cut in `timezone`) for one provider and model."""

    # The key also serves the summary's "timezone = ? AND day >= ?".
    Meta = _rollup_meta(
        "usage by day",
        key=["timezone", "day", "provider", "model"],
        key_name="usage_by_day_key",
        order=["-day", "provider", "model"],
    )

    def __str__(self) -> str:
        return f"{self.day} ({self.timezone}) {self.provider}/{self.model}: {self.total_tokens} tokens"


class UsageByUserDay(DayCounters):
    """Usage of one account on one local day (cut in `timezone`) for one provider and model.

    The per-user twin of `UsageByDay`: a user's "today" is an index seek, their all-time total
    the sum of their rows (a few per active day).
    """

    # PROTECT like the events it sums: it goes only with them, through `telemetry.services`.
    # No index of its own: the key (owner, timezone, day, provider, model) leads with it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)

    # The key also serves a user's "owner = ? AND timezone = ? AND day >= ?".
    Meta = _rollup_meta(
        "usage by user and day",
        key=["owner", "timezone", "day", "provider", "model"],
        key_name="usage_by_user_day_key",
        order=["owner", "-day", "provider", "model"],
    )

    def __str__(self) -> str:
        scope = f"user {self.owner_id} {self.day} ({self.timezone})"
        return f"{scope} {self.provider}/{self.model}: {self.total_tokens} tokens"


class UsageBySession(UsageCounters):
    """Usage of one session; it goes with the session (its events stay in the other rollups)."""

    session = models.OneToOneField(AgentSession, on_delete=models.CASCADE, primary_key=True, related_name="usage")

    class Meta(UsageCounters.Meta):
        verbose_name = "usage by session"
        verbose_name_plural = "usage by session"

    def __str__(self) -> str:
        return f"session {self.session_id}: {self.total_tokens} tokens"


class UsageByPurpose(UsageCounters):
    """All-time usage of one account for one purpose (chat, compaction, episode, facts)."""

    # PROTECT like the events it sums. No index of its own: the key (owner, purpose) leads with it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    purpose = models.CharField(max_length=16, choices=RunPurpose.choices)

    # The key also serves the summary's "owner = ?" (a user's few rows).
    Meta = _rollup_meta("usage by purpose", key=["owner", "purpose"], key_name="usage_by_purpose_key")

    def __str__(self) -> str:
        return f"user {self.owner_id} {self.purpose}: {self.total_tokens} tokens"


class UsageByAgent(UsageCounters):
    """All-time usage of one account's calls made as one agent (a team's lead and members each count)."""

    # PROTECT like the events it sums. No index of its own: the key (owner, agent) leads with it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    agent = models.CharField(max_length=64)

    # The key also serves a user's "owner = ?" (the summary's by_agent).
    Meta = _rollup_meta(
        "usage by agent", key=["owner", "agent"], key_name="usage_by_agent_key", order=["owner", "agent"]
    )

    def __str__(self) -> str:
        return f"user {self.owner_id} as {self.agent}: {self.total_tokens} tokens"


class UsageAllTime(UsageCounters):
    """All-time usage of one provider and model; the all-time total is the sum of these few rows."""

    provider = models.CharField(max_length=64)
    model = models.CharField(max_length=200)

    Meta = _rollup_meta(
        "usage all time", key=["provider", "model"], key_name="usage_all_time_key", order=["provider", "model"]
    )

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}: {self.total_tokens} tokens"
