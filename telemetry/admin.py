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
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from telemetry.models import UsageAllTime, UsageByDay, UsageBySession, UsageEvent
from telemetry.selectors import UsageCounts, usage_all_time_totals, usage_events_totals

_M = TypeVar("_M", bound=models.Model)

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin
    _Paginator = Paginator[Any]
else:  # ModelAdmin and Paginator are generic only in the type stubs
    _Paginator = Paginator

    class _ModelAdmin(admin.ModelAdmin, Generic[_M]):
        """`ModelAdmin[Model]` at run time, as the stubs declare it."""


class RollupCountPaginator(_Paginator):
    """Pages without COUNT(*): the number of events is read from the all-time rollup (exact unfiltered)."""

    @cached_property
    def count(self) -> int:
        return int(UsageAllTime.objects.aggregate(events=Sum("event_count"))["events"] or 0)


class _ReadOnlyAdmin(_ModelAdmin[_M]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False


def _local_today() -> tuple[dt.date, str]:
    from django.conf import settings

    zone_name: str = settings.AGENTCHAT_TIMEZONE
    return timezone.localdate(timezone.now(), ZoneInfo(zone_name)), zone_name


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
        today, zone_name = _local_today()
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


class ProviderFilter(admin.SimpleListFilter):
    """Providers that have usage (read from the all-time rollup, not the events)."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Iterable[tuple[str, str]]:
        names = UsageAllTime.objects.order_by("provider").values_list("provider", flat=True).distinct()
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(provider=self.value()) if self.value() else queryset


class ModelFilter(admin.SimpleListFilter):
    """Models that have usage (read from the all-time rollup, not the events)."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Iterable[tuple[str, str]]:
        names = UsageAllTime.objects.order_by("model").values_list("model", flat=True).distinct()
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(model=self.value()) if self.value() else queryset


class SessionFilter(admin.SimpleListFilter):
    """The 20 most recently active sessions with usage; any session works as `?session=<id>`."""

    title = "session"
    parameter_name = "session"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Iterable[tuple[str, str]]:
        rows = UsageBySession.objects.select_related("session").order_by("-session__updated")[:20]
        return [(str(row.session_id), str(row.session)) for row in rows]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(session_id=value)
        except ValidationError:  # a malformed id in the URL selects nothing
            return queryset.none()


def usd_text(value: Decimal | None) -> str:
    """An exact USD amount without trailing zeros ("0", "0.00042"); "unpriced" when unknown."""
    return "unpriced" if value is None else format(value.normalize(), "f")


@admin.display(description="cost (USD)")
def cost_usd(row: UsageEvent | UsageByDay | UsageBySession | UsageAllTime) -> str:
    return usd_text(row.cost)


@admin.register(UsageEvent)
class UsageEventAdmin(_ReadOnlyAdmin[UsageEvent]):
    list_display = (
        "occurred_at",
        "provider",
        "model",
        "route",
        "session",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "total_tokens",
        cost_usd,
        "latency_ms",
    )
    list_filter = (DayFilter, ProviderFilter, ModelFilter, SessionFilter)
    list_select_related = ("route", "session")
    search_fields = ("=request_id",)
    search_help_text = "Exact request id"
    ordering = ("-occurred_at", "-id")
    show_full_result_count = False
    paginator = RollupCountPaginator
    list_per_page = 100

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data and "cl" in response.context_data:
            changelist = response.context_data["cl"]
            filtered = changelist.has_active_filters or bool(changelist.query)
            totals: UsageCounts = usage_events_totals(changelist.queryset) if filtered else usage_all_time_totals()
            response.context_data["usage_totals"] = totals
            response.context_data["usage_totals_cost"] = usd_text(totals.cost)
            response.context_data["usage_totals_scope"] = "matching events" if filtered else "all time"
        return response


_COUNTER_COLUMNS = (
    "event_count",
    "priced_event_count",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    cost_usd,
)


@admin.register(UsageByDay)
class UsageByDayAdmin(_ReadOnlyAdmin[UsageByDay]):
    list_display = ("day", "timezone", "provider", "model", *_COUNTER_COLUMNS)
    list_filter = ("timezone", "provider", "model")
    ordering = ("-day", "provider", "model")


@admin.register(UsageBySession)
class UsageBySessionAdmin(_ReadOnlyAdmin[UsageBySession]):
    list_display = ("session", *_COUNTER_COLUMNS)
    list_select_related = ("session",)
    ordering = ("-total_tokens",)


@admin.register(UsageAllTime)
class UsageAllTimeAdmin(_ReadOnlyAdmin[UsageAllTime]):
    list_display = ("provider", "model", *_COUNTER_COLUMNS)
    ordering = ("provider", "model")
