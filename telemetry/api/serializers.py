"""Serializers of the telemetry API: they parse and shape; the rules live in `telemetry.services`."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api.serializers import ReadOnlyModelSerializer
from telemetry.models import UsageEvent
from telemetry.selectors import TOKEN_FIELDS

COST_MAX_DIGITS = 32
COST_DECIMAL_PLACES = 12


class UsageRecordSerializer(serializers.Serializer[Any]):
    """One provider usage report (token counts are checked by the service, with exact messages)."""

    # Its fields are `usage_record`'s keywords (`route`, `session` and `run` as `…_alias` and `…_id`).
    request_id = serializers.CharField(max_length=128, help_text="Unique per report; a retry sends the same one")
    provider = serializers.CharField(
        max_length=64, required=False, help_text="A configured provider's name (default: the route's)"
    )
    model = serializers.CharField(
        max_length=200, required=False, help_text="The model the provider reported (default: the route's)"
    )
    route = serializers.CharField(
        max_length=64,
        required=False,
        allow_null=True,
        source="route_alias",
        help_text="Alias of the route the call used; prices the cost",
    )
    session = serializers.UUIDField(required=False, allow_null=True, source="session_id")
    run = serializers.UUIDField(
        required=False, allow_null=True, source="run_id", help_text="Must belong to `session` when both given"
    )
    input_tokens = serializers.IntegerField(
        default=0, allow_null=True, help_text="All input tokens, cache reads and writes included; null: not reported"
    )
    cached_input_tokens = serializers.IntegerField(
        default=0, allow_null=True, help_text="Input tokens read from the cache (part of input); null: not reported"
    )
    cache_write_input_tokens = serializers.IntegerField(
        default=0, allow_null=True, help_text="Input tokens written to the cache (part of input); null: not reported"
    )
    output_tokens = serializers.IntegerField(
        default=0, allow_null=True, help_text="All output tokens, reasoning included; null: not reported"
    )
    reasoning_tokens = serializers.IntegerField(
        default=0, allow_null=True, help_text="Reasoning tokens (part of output); null: not reported"
    )
    latency_ms = serializers.IntegerField(required=False, allow_null=True)
    occurred_at = serializers.DateTimeField(required=False, help_text="When the call finished (default: now)")


class UsageEventSerializer(ReadOnlyModelSerializer[UsageEvent]):
    """A stored usage event."""

    route: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="alias", read_only=True, allow_null=True
    )
    cost = serializers.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        read_only=True,
        allow_null=True,
        help_text="Exact USD; null when the route has no price",
    )
    cost_partial = serializers.BooleanField(
        read_only=True, help_text="The cost leaves out tokens the provider did not report: a lower bound"
    )

    class Meta:
        model = UsageEvent
        fields = [
            "id",
            "request_id",
            "occurred_at",
            "day",
            "day_timezone",
            "provider",
            "model",
            "route",
            "session",
            "run",
            *TOKEN_FIELDS,
            "cost",
            "cost_partial",
            "latency_ms",
            "created",
            "corrected_at",
        ]


class UsageListQuerySerializer(serializers.Serializer[Any]):
    session = serializers.CharField(required=False, help_text="Only this session's events (404 if unknown)")
    provider = serializers.CharField(required=False, help_text="Only this provider's events")
    model = serializers.CharField(required=False, help_text="Only this model's events")
    all = serializers.BooleanField(
        required=False, default=False, help_text="Every user's usage instead of yours (staff only; 403 otherwise)"
    )


class UsageSummaryQuerySerializer(serializers.Serializer[Any]):
    session = serializers.CharField(required=False, help_text="Also report this session's usage (404 if unknown)")
    all = serializers.BooleanField(
        required=False, default=False, help_text="Every user's usage instead of yours (staff only; 403 otherwise)"
    )


class UsageCountsSerializer(serializers.Serializer[Any]):
    """Summed usage; zeros when there is nothing to count. Each token sum covers the events that
    reported that count; `<field>_unknown_events` counts those that did not (null in the event)."""

    event_count = serializers.IntegerField()
    priced_event_count = serializers.IntegerField()
    unpriced_event_count = serializers.IntegerField(help_text="Events not in `cost`: their route had no price")
    partial_cost_event_count = serializers.IntegerField(
        help_text="Priced events whose cost leaves out tokens the provider did not report"
    )
    input_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    cache_write_input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    input_tokens_unknown_events = serializers.IntegerField(help_text="Events that did not report input_tokens")
    cached_input_tokens_unknown_events = serializers.IntegerField()
    cache_write_input_tokens_unknown_events = serializers.IntegerField()
    output_tokens_unknown_events = serializers.IntegerField()
    reasoning_tokens_unknown_events = serializers.IntegerField()
    total_tokens_unknown_events = serializers.IntegerField()
    cost = serializers.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, help_text="Exact USD of the priced events"
    )
    cost_partial = serializers.BooleanField(
        help_text="`cost` is a lower bound: some events had no price or did not report counts their price needs"
    )


class DayUsageSerializer(UsageCountsSerializer):
    day = serializers.DateField()


class AgentUsageSerializer(UsageCountsSerializer):
    agent = serializers.CharField(help_text="The agent's name (a team's lead and members each count apart)")


class SessionUsageSerializer(UsageCountsSerializer):
    session = serializers.UUIDField()


class ModelUsageSerializer(serializers.Serializer[Any]):
    provider = serializers.CharField()
    model = serializers.CharField()
    today = UsageCountsSerializer()
    all_time = UsageCountsSerializer()


class ProviderUsageSerializer(serializers.Serializer[Any]):
    provider = serializers.CharField()
    today = UsageCountsSerializer()
    all_time = UsageCountsSerializer()


class PurposeUsageSerializer(UsageCountsSerializer):
    purpose = serializers.CharField(help_text="chat, compaction, episode or facts")


class UsageSummarySerializer(serializers.Serializer[Any]):
    """Usage read from the rollups: today, all time, each of the last 7 and 30 local days, by model and provider."""

    timezone = serializers.CharField(help_text="The timezone days are cut in (AGENTCHAT_TIMEZONE)")
    day = serializers.DateField(help_text="Today in that timezone")
    today = UsageCountsSerializer()
    all_time = UsageCountsSerializer()
    last_7_days = DayUsageSerializer(many=True, help_text="Oldest first, every day present (zeros when idle)")
    last_30_days = DayUsageSerializer(many=True, help_text="Oldest first, every day present (zeros when idle)")
    by_model = ModelUsageSerializer(many=True)
    by_provider = ProviderUsageSerializer(many=True)
    by_agent = AgentUsageSerializer(many=True, help_text="All time, per agent the calls ran as, most tokens first")
    session = SessionUsageSerializer(allow_null=True, help_text="With ?session=: that session's usage")
    by_purpose = PurposeUsageSerializer(many=True, help_text="All time per purpose: chat turns and each kind of upkeep")
