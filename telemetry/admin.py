"""Admin for token telemetry: everything read-only (writes go through `telemetry.services`).

The events changelist must stay usable at millions of rows: no COUNT(*) (the paginator takes the
event count from the all-time rollup), filter choices read from the small rollup tables instead of
a DISTINCT over the events, and the totals above the list come from the rollups when nothing is
filtered (one aggregate over the filtered events otherwise). Its query count does not depend on
the number of rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from core.admin_base import ConditionFilter, ReadOnlyAdmin, SessionFilter, choice_conditions
from core.models import RunPurpose
from telemetry.models import (
    UsageAllTime,
    UsageByAgent,
    UsageByDay,
    UsageByPurpose,
    UsageBySession,
    UsageByUserDay,
    UsageCounters,
    UsageEvent,
)
from telemetry.selectors import TOKEN_FIELDS, UsageCounts, local_day, usage_all_time_totals, usage_events_totals


class RollupCountPaginator(Paginator[Any]):
    """Pages without COUNT(*): the number of events is read from the all-time rollup (exact unfiltered)."""

    @cached_property
    def count(self) -> int:
        return int(UsageAllTime.objects.aggregate(events=Sum("event_count"))["events"] or 0)


class DayFilter(admin.SimpleListFilter):
    """Today, yesterday or the last 7 days in AGENTCHAT_TIMEZONE, or `?day=YYYY-MM-DD`."""

    title = "day"
    parameter_name = "day"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Iterable[tuple[str, str]]:
        return [("today", "Today"), ("yesterday", "Yesterday"), ("7d", "Last 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        today, zone_name = local_day()
        events = queryset.filter(day_timezone=zone_name)
        if value == "today":
            return events.filter(day=today)
        if value == "yesterday":
            return events.filter(day=today - dt.timedelta(days=1))
        if value == "7d":
            return events.filter(day__gt=today - dt.timedelta(days=7), day__lte=today)
        try:
            return queryset.filter(day=dt.date.fromisoformat(value))
        except ValueError:
            return queryset.none()


class _RollupValueFilter(admin.SimpleListFilter):
    """The values of `parameter_name` that have usage (read from the all-time rollup, not the events)."""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        field = str(self.parameter_name)
        names = UsageAllTime.objects.order_by(field).values_list(field, flat=True)
        return [(name, name) for name in names.distinct()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{str(self.parameter_name): value}) if value else queryset


class ProviderFilter(_RollupValueFilter):
    title = parameter_name = "provider"


class ModelFilter(_RollupValueFilter):
    title = parameter_name = "model"


class UsageSessionFilter(SessionFilter):
    """The sessions with usage, most recently active first; any session works as `?session=<id>`."""

    def lookups(self, request: HttpRequest, model_admin: Any) -> Iterable[tuple[str, str]]:
        rows = UsageBySession.objects.select_related("session").order_by("-session__updated")[:20]
        return [(str(row.session_id), str(row.session)) for row in rows]


def usd_text(value: Decimal | None, *, partial: bool = False) -> str:
    """An exact USD amount without trailing zeros ("0", "0.00042"); "unpriced" when unknown; "at least …"
    when partial (a lower bound)."""
    if value is None:
        return "unpriced"
    text = format(value.normalize(), "f")
    return f"at least {text}" if partial else text


def _cost_partial(row: UsageEvent | UsageCounters) -> bool:
    if isinstance(row, UsageEvent):
        return row.cost_partial
    return row.priced_event_count < row.event_count or row.partial_cost_event_count > 0


@admin.display(description="cost (USD)")
def cost_usd(row: UsageEvent | UsageCounters) -> str:
    return usd_text(row.cost, partial=_cost_partial(row))


def _event_tokens(event: UsageEvent, name: str) -> str:
    value: int | None = getattr(event, name)
    return "unknown" if value is None else str(value)


def _rollup_tokens(row: UsageCounters, name: str) -> str:
    """A rollup's sum with the events that did not report it: "1200", "1200 (+2 unknown)", "unknown"."""
    value: int = getattr(row, name)
    unknown: int = getattr(row, f"{name}_unknown_events")
    if unknown and unknown == row.event_count:
        return "unknown"
    return f"{value} (+{unknown} unknown)" if unknown else str(value)


def _tokens_text(row: UsageEvent | UsageCounters, name: str) -> str:
    return _event_tokens(row, name) if isinstance(row, UsageEvent) else _rollup_tokens(row, name)


@admin.display(description="input tokens")
def input_tokens(row: UsageEvent | UsageCounters) -> str:
    return _tokens_text(row, "input_tokens")


@admin.display(description="cache read / write")
def cache_tokens(row: UsageEvent | UsageCounters) -> str:
    """The input read from and written to the prompt cache (both are parts of the input)."""
    return f"{_tokens_text(row, 'cached_input_tokens')} / {_tokens_text(row, 'cache_write_input_tokens')}"


@admin.display(description="output tokens")
def output_tokens(row: UsageEvent | UsageCounters) -> str:
    return _tokens_text(row, "output_tokens")


@admin.display(description="reasoning tokens")
def reasoning_tokens(row: UsageEvent | UsageCounters) -> str:
    return _tokens_text(row, "reasoning_tokens")


@admin.display(description="total tokens", ordering="total_tokens")
def total_tokens(row: UsageEvent | UsageCounters) -> str:
    return _tokens_text(row, "total_tokens")


# The token columns of the events and of every rollup; "unknown" where the provider did not report a count.
TOKEN_COLUMNS = (input_tokens, cache_tokens, output_tokens, reasoning_tokens, total_tokens)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin[UsageEvent]):
    list_display = (
        "occurred_at",
        "owner",
        # The provider is a filter, not a column: the model names it, and the row must fit 1,280 px.
        "model",
        "route",
        "session",
        *TOKEN_COLUMNS,
        cost_usd,
        "latency_ms",
    )
    list_filter = (DayFilter, ProviderFilter, ModelFilter, UsageSessionFilter)
    # A NULL token count is one the provider did not report.
    empty_value_display = "unknown"
    list_select_related = ("route", "session", "owner")
    search_fields = ("=request_id",)
    search_help_text = "Exact request id"
    ordering = ("-occurred_at", "-id")
    paginator = RollupCountPaginator

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data and "cl" in response.context_data:
            changelist = response.context_data["cl"]
            filtered = changelist.has_active_filters or bool(changelist.query)
            totals: UsageCounts = usage_events_totals(changelist.queryset) if filtered else usage_all_time_totals()
            response.context_data["usage_totals"] = totals
            response.context_data["usage_totals_cost"] = usd_text(totals.cost, partial=totals.cost_partial)
            response.context_data["usage_totals_tokens"] = [totals.tokens_text(name) for name in TOKEN_FIELDS]
            response.context_data["usage_totals_scope"] = "matching events" if filtered else "all time"
        return response


# A rollup's counters, the cost shown as an exact decimal without trailing zeros.
_COUNTER_COLUMNS = ("event_count", "priced_event_count", *TOKEN_COLUMNS, cost_usd)


@admin.register(UsageByDay)
class UsageByDayAdmin(ReadOnlyAdmin[UsageByDay]):
    list_display = ("day", "timezone", "provider", "model", *_COUNTER_COLUMNS)
    list_filter = ("timezone", "provider", "model")
    ordering = ("-day", "provider", "model")


@admin.register(UsageByUserDay)
class UsageByUserDayAdmin(ReadOnlyAdmin[UsageByUserDay]):
    list_display = ("day", "owner", "timezone", "provider", "model", *_COUNTER_COLUMNS)
    list_filter = ("timezone", "provider", "model")
    list_select_related = ("owner",)
    ordering = ("-day", "owner", "provider", "model")


@admin.register(UsageBySession)
class UsageBySessionAdmin(ReadOnlyAdmin[UsageBySession]):
    list_display = ("session", *_COUNTER_COLUMNS)
    list_select_related = ("session",)
    ordering = ("-total_tokens",)


class PurposeFilter(ConditionFilter):
    """Fixed choices: every purpose a run can have."""

    title = parameter_name = "purpose"
    conditions = choice_conditions("purpose", RunPurpose.choices)


@admin.register(UsageByPurpose)
class UsageByPurposeAdmin(ReadOnlyAdmin[UsageByPurpose]):
    list_display = ("purpose", "owner", *_COUNTER_COLUMNS)
    list_filter = (PurposeFilter,)
    list_select_related = ("owner",)
    ordering = ("owner", "purpose")


@admin.register(UsageByAgent)
class UsageByAgentAdmin(ReadOnlyAdmin[UsageByAgent]):
    list_display = ("agent", "owner", *_COUNTER_COLUMNS)
    list_filter = ("agent",)
    list_select_related = ("owner",)
    ordering = ("owner", "agent")


@admin.register(UsageAllTime)
class UsageAllTimeAdmin(ReadOnlyAdmin[UsageAllTime]):
    list_display = ("provider", "model", *_COUNTER_COLUMNS)
    ordering = ("provider", "model")
