"""Reads of token telemetry: summaries from the rollups only, and the event log.

Summaries read a bounded number of rollup rows (the last 30 local days x models, plus one row
per provider x model for all time) whatever the number of events, with a fixed number of
queries. Every counter is zero-filled: no events reads as zeros, never as missing.
The reconcile reads (`rollups_recomputed`, `rollup_differences`) are the only ones that scan
the events.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, TypedDict
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import BigIntegerField, Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.conversation.selectors import OwnerScope, owned, session_uuid
from core.errors import NotFoundError
from core.models import AgentSession
from telemetry.models import (
    UsageAllTime,
    UsageByAgent,
    UsageByDay,
    UsageByPurpose,
    UsageBySession,
    UsageByUserDay,
    UsageEvent,
    pico_usd_to_decimal,
)

# The counts a usage report gives (None: not reported); total_tokens is derived from them.
REPORTED_TOKEN_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
)
# The token counts of an event, each summed by the rollups (NULL in an event: not reported).
TOKEN_FIELDS = (*REPORTED_TOKEN_FIELDS, "total_tokens")
# Per token field, the rollup counter of the events that did not report it.
UNKNOWN_FIELDS = tuple(f"{name}_unknown_events" for name in TOKEN_FIELDS)
# Every counter a rollup row holds (the sums of the events it covers).
COUNTER_FIELDS = (
    "event_count",
    "priced_event_count",
    "partial_cost_event_count",
    *TOKEN_FIELDS,
    *UNKNOWN_FIELDS,
    "cost_pico_usd",
)
SUMMARY_DAYS = 30
RECENT_DAYS = 7


@dataclass(frozen=True)
class UsageCounts:
    """Summed usage; every field is zero when there is nothing to count.

    Each token sum covers the events that reported that count; `<field>_unknown_events` counts
    the events that did not, so a sum with unknown events is a lower bound.
    """

    event_count: int = 0
    priced_event_count: int = 0
    partial_cost_event_count: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    input_tokens_unknown_events: int = 0
    cached_input_tokens_unknown_events: int = 0
    cache_write_input_tokens_unknown_events: int = 0
    output_tokens_unknown_events: int = 0
    reasoning_tokens_unknown_events: int = 0
    total_tokens_unknown_events: int = 0
    cost_pico_usd: int = 0

    @classmethod
    def of(cls, row: Mapping[str, Any], prefix: str = "") -> UsageCounts:
        """The counters in `row` (keys `prefix + name`); a missing or NULL value counts as zero."""
        return cls(**{name: int(row.get(prefix + name) or 0) for name in COUNTER_FIELDS})

    @classmethod
    def total(cls, items: Iterable[UsageCounts]) -> UsageCounts:
        sums = dict.fromkeys(COUNTER_FIELDS, 0)
        for item in items:
            for name in COUNTER_FIELDS:
                sums[name] += getattr(item, name)
        return cls(**sums)

    def __add__(self, other: UsageCounts) -> UsageCounts:
        return UsageCounts.total((self, other))

    @property
    def unpriced_event_count(self) -> int:
        """Events whose route had no price for some of their tokens (not in `cost`)."""
        return self.event_count - self.priced_event_count

    @property
    def cost(self) -> Decimal:
        """The exact cost of the priced events in USD."""
        return pico_usd_to_decimal(self.cost_pico_usd)

    @property
    def cost_partial(self) -> bool:
        """True when `cost` is a lower bound: some events had no price, or counts their price needs were unknown."""
        return self.unpriced_event_count > 0 or self.partial_cost_event_count > 0

    def tokens_text(self, name: str) -> str:
        """One token sum as a person reads it: "1200", "1200 (+2 unknown)" (2 events did not report
        it), or "unknown" when no event reported it."""
        value: int = getattr(self, name)
        unknown: int = getattr(self, f"{name}_unknown_events")
        if unknown and unknown == self.event_count:
            return "unknown"
        return f"{value} (+{unknown} unknown)" if unknown else str(value)


@dataclass(frozen=True, kw_only=True)
class DayUsage(UsageCounts):
    """One local day's usage."""

    day: dt.date


@dataclass(frozen=True)
class ModelUsage:
    provider: str
    model: str
    today: UsageCounts
    all_time: UsageCounts


@dataclass(frozen=True)
class ProviderUsage:
    provider: str
    today: UsageCounts
    all_time: UsageCounts


@dataclass(frozen=True, kw_only=True)
class AgentUsage(UsageCounts):
    """All-time usage of the calls made as one agent (by name)."""

    agent: str


@dataclass(frozen=True, kw_only=True)
class SessionUsage(UsageCounts):
    """One session's usage."""

    session: UUID


@dataclass(frozen=True)
class UsageOverview:
    """Today's and all-time usage, in total and by model (what the bootstrap shows)."""

    timezone: str
    day: dt.date
    today: UsageCounts
    all_time: UsageCounts
    by_model: list[ModelUsage]


@dataclass(frozen=True)
class UsageSummary(UsageOverview):
    """The overview plus each of the last 7 and 30 local days, by provider, and optionally one session."""

    last_7_days: list[DayUsage] = field(default_factory=list)
    last_30_days: list[DayUsage] = field(default_factory=list)
    by_provider: list[ProviderUsage] = field(default_factory=list)
    by_agent: list[AgentUsage] = field(default_factory=list)
    session: SessionUsage | None = None
    # All time per purpose: chat turns and each kind of upkeep (compaction, episode, facts).
    by_purpose: list[PurposeUsage] = field(default_factory=list)


@dataclass(frozen=True)
class PurposeUsage(UsageCounts):
    """All-time usage of one purpose."""

    purpose: str = ""


def _by_purpose(owner: OwnerScope) -> list[PurposeUsage]:
    """All-time usage per purpose, the owner's (None: everyone's) from `UsageByPurpose` (one query)."""
    rows = UsageByPurpose.objects.order_by()
    if owner is not None:
        rows = rows.filter(owner_id=owner.pk)
    sums = {name: Sum(name) for name in COUNTER_FIELDS}
    found = [
        PurposeUsage(purpose=row["purpose"], **asdict(UsageCounts.of(row)))
        for row in rows.values("purpose").annotate(**sums)
    ]
    return sorted(found, key=lambda item: (-item.total_tokens, item.purpose))


def local_day(moment: dt.datetime | None = None) -> tuple[dt.date, str]:
    """The local day `moment` (now when absent) falls on in AGENTCHAT_TIMEZONE, read at call time, and the
    zone's name: the day usage is counted on, in the events, the rollups, the summary and the admin."""
    from django.conf import settings

    zone_name: str = settings.AGENTCHAT_TIMEZONE
    return timezone.localdate(moment or timezone.now(), ZoneInfo(zone_name)), zone_name


class _Totals(TypedDict):
    today: UsageCounts
    all_time: UsageCounts


def _totals(items: list[ModelUsage]) -> _Totals:
    """Today's and all-time sums over models' usage."""
    return {
        "today": UsageCounts.total(item.today for item in items),
        "all_time": UsageCounts.total(item.all_time for item in items),
    }


def _overview(zone_name: str, today: dt.date, by_model: list[ModelUsage]) -> UsageOverview:
    return UsageOverview(timezone=zone_name, day=today, by_model=by_model, **_totals(by_model))


def _by_model(today_rows: Iterable[Mapping[str, Any]], all_time_rows: Iterable[Mapping[str, Any]]) -> list[ModelUsage]:
    today = {(row["provider"], row["model"]): UsageCounts.of(row) for row in today_rows}
    all_time = {(row["provider"], row["model"]): UsageCounts.of(row) for row in all_time_rows}
    keys = sorted(set(today) | set(all_time), key=lambda k: (-all_time.get(k, UsageCounts()).total_tokens, k))
    return [
        ModelUsage(
            provider=p, model=m, today=today.get((p, m), UsageCounts()), all_time=all_time.get((p, m), UsageCounts())
        )
        for p, m in keys
    ]


def _all_time_rows() -> list[dict[str, Any]]:
    return list(UsageAllTime.objects.order_by().values("provider", "model", *COUNTER_FIELDS))


def _user_all_time_rows(owner_id: int) -> list[dict[str, Any]]:
    """One user's all-time usage per provider x model: their daily rollup rows summed (one query)."""
    sums = {name: Sum(name) for name in COUNTER_FIELDS}
    rows = UsageByUserDay.objects.filter(owner_id=owner_id).order_by().values("provider", "model").annotate(**sums)
    return [dict(row) for row in rows]


def usage_all_time_totals() -> UsageCounts:
    """All-time usage in total; one query on the all-time rollup."""
    return UsageCounts.total(UsageCounts.of(row) for row in _all_time_rows())


def _overview_sql() -> str:
    """Today's rows of the daily rollup, then every all-time row, each tagged: one statement."""
    quote = connection.ops.quote_name

    def columns(model: type[UsageByDay] | type[UsageAllTime]) -> str:
        column = {field.name: field.column for field in model._meta.concrete_fields}
        return ", ".join(quote(column[name]) for name in ("provider", "model", *COUNTER_FIELDS))

    day = {field.name: field.column for field in UsageByDay._meta.concrete_fields}
    return (
        f"SELECT 1, {columns(UsageByDay)} FROM {quote(UsageByDay._meta.db_table)} "  # noqa: S608  # nosec B608
        f"WHERE {quote(day['timezone'])} = %s AND {quote(day['day'])} = %s "
        f"UNION ALL SELECT 0, {columns(UsageAllTime)} FROM {quote(UsageAllTime._meta.db_table)}"
    )


def usage_overview() -> UsageOverview:
    """Today's and all-time usage, by model: one query on the rollups (today's rows are a seek on
    the daily rollup's unique (timezone, day, provider, model) index; all time has a row per model).

    Written as SQL: the ORM would compile two querysets (or a union) costing more than running them.
    """
    today, zone_name = local_day()
    names = ("provider", "model", *COUNTER_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(_overview_sql(), [zone_name, connection.ops.adapt_datefield_value(today)])
        rows = cursor.fetchall()
    today_rows = [dict(zip(names, row[1:], strict=True)) for row in rows if row[0] == 1]
    all_time_rows = [dict(zip(names, row[1:], strict=True)) for row in rows if row[0] == 0]
    return _overview(zone_name, today, _by_model(today_rows, all_time_rows))


@functools.cache
def _user_overview_sql(vendor: str) -> str:
    """A user's rows of today in their daily rollup, then their all-time sums per model, each tagged
    (the SQL text for the connection of `vendor`, built once)."""
    quote = connection.ops.quote_name
    column = {field.name: field.column for field in UsageByUserDay._meta.concrete_fields}
    table = quote(UsageByUserDay._meta.db_table)
    names = ", ".join(quote(column[name]) for name in ("provider", "model"))
    today = ", ".join(quote(column[name]) for name in COUNTER_FIELDS)
    sums = ", ".join(f"SUM({quote(column[name])})" for name in COUNTER_FIELDS)
    owner = f"{quote(column['owner'])} = %s"
    return (
        f"SELECT 1, {names}, {today} FROM {table} "  # noqa: S608  # nosec B608
        f"WHERE {owner} AND {quote(column['timezone'])} = %s AND {quote(column['day'])} = %s "
        f"UNION ALL SELECT 0, {names}, {sums} FROM {table} WHERE {owner} GROUP BY {names}"
    )


def user_usage_overview(*, owner_id: int) -> UsageOverview:
    """One user's today and all-time usage by model, from their daily rollup only: one query (today's
    rows are a seek on the (owner, timezone, day, …) key; all time sums the user's rows)."""
    today, zone_name = local_day()
    names = ("provider", "model", *COUNTER_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(
            _user_overview_sql(connection.vendor),
            [owner_id, zone_name, connection.ops.adapt_datefield_value(today), owner_id],
        )
        rows = cursor.fetchall()
    today_rows = [dict(zip(names, row[1:], strict=True)) for row in rows if row[0] == 1]
    all_time_rows = [dict(zip(names, row[1:], strict=True)) for row in rows if row[0] == 0]
    return _overview(zone_name, today, _by_model(today_rows, all_time_rows))


def session_usage(*, session_id: UUID | str, owner: OwnerScope = None) -> SessionUsage:
    """One session's usage (zeros before its first event), or NotFoundError (another user's too); one query."""
    pk = session_uuid(session_id)
    row = (
        owned(AgentSession.objects.all(), owner)
        .filter(pk=pk)
        .values("pk", *(f"usage__{name}" for name in COUNTER_FIELDS))
        .first()
    )
    if row is None:
        raise NotFoundError.for_field("session", f"no session {session_id}")
    return SessionUsage(session=pk, **asdict(UsageCounts.of(row, prefix="usage__")))


def usage_summary(*, owner: OwnerScope = None, session_id: UUID | str | None = None) -> UsageSummary:
    """`owner`'s usage (None: everyone's) today, all time, per day for the last 30 local days, by model
    and provider; rollups only (`UsageByUserDay` for one user, `UsageByDay`/`UsageAllTime` for all).

    Four queries (five with a session), whatever the number of events: the days, all time, the agents,
    the purposes.
    """
    today, zone_name = local_day()
    first_day = today - dt.timedelta(days=SUMMARY_DAYS - 1)
    window = {"timezone": zone_name, "day__gte": first_day, "day__lte": today}
    days_of = (
        UsageByDay.objects.filter(**window)
        if owner is None
        else UsageByUserDay.objects.filter(owner_id=owner.pk, **window)
    )
    day_rows = list(days_of.values("day", "provider", "model", *COUNTER_FIELDS))
    all_time_rows = _all_time_rows() if owner is None else _user_all_time_rows(owner.pk)
    by_model = _by_model((row for row in day_rows if row["day"] == today), all_time_rows)
    per_day: dict[dt.date, list[UsageCounts]] = {}
    for row in day_rows:
        per_day.setdefault(row["day"], []).append(UsageCounts.of(row))
    days = [
        DayUsage(day=day, **asdict(UsageCounts.total(per_day.get(day, []))))
        for day in (first_day + dt.timedelta(days=offset) for offset in range(SUMMARY_DAYS))
    ]
    providers: dict[str, list[ModelUsage]] = {}
    for item in by_model:
        providers.setdefault(item.provider, []).append(item)
    by_provider = [ProviderUsage(provider=name, **_totals(items)) for name, items in providers.items()]
    by_provider.sort(key=lambda item: (-item.all_time.total_tokens, item.provider))
    return UsageSummary(
        **vars(_overview(zone_name, today, by_model)),
        last_7_days=days[-RECENT_DAYS:],
        last_30_days=days,
        by_provider=by_provider,
        by_agent=agent_usage(owner=owner),
        session=None if session_id is None else session_usage(session_id=session_id, owner=owner),
        by_purpose=_by_purpose(owner),
    )


def agent_usage(*, owner: OwnerScope = None) -> list[AgentUsage]:
    """`owner`'s (None: everyone's) all-time usage per agent, most tokens first; one query on the agent rollup."""
    rows = (
        owned(UsageByAgent.objects.all(), owner)
        .order_by()
        .values("agent")
        .annotate(**{name: Sum(name) for name in COUNTER_FIELDS})
    )
    usages = [AgentUsage(agent=row["agent"], **asdict(UsageCounts.of(row))) for row in rows]
    return sorted(usages, key=lambda item: (-item.total_tokens, item.agent))


def usage_events(
    *,
    owner: OwnerScope = None,
    session_id: UUID | str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> QuerySet[UsageEvent]:
    """`owner`'s events newest first, optionally of one session (NotFoundError if unknown), provider and model."""
    events = owned(UsageEvent.objects.select_related("route"), owner).order_by("-occurred_at", "-id")
    if session_id is not None:
        pk = session_uuid(session_id)
        if not owned(AgentSession.objects.all(), owner).filter(pk=pk).exists():
            raise NotFoundError.for_field("session", f"no session {session_id}")
        events = events.filter(session_id=pk)
    if provider:
        events = events.filter(provider=provider)
    if model:
        events = events.filter(model=model)
    return events


def _sums() -> dict[str, Any]:
    # The unknown counts come first: once a sum is named like its field, later references to that
    # name would mean the sum. SUM skips NULLs (the known values); the NULLs are counted apart.
    out: dict[str, Any] = {
        unknown: Count("id", filter=Q(**{f"{name}__isnull": True}))
        for name, unknown in zip(TOKEN_FIELDS, UNKNOWN_FIELDS, strict=True)
    }
    out["event_count"] = Count("id")
    out["priced_event_count"] = Count("cost_pico_usd")
    out["partial_cost_event_count"] = Count("id", filter=Q(cost_partial=True))
    for name in (*TOKEN_FIELDS, "cost_pico_usd"):
        out[name] = Coalesce(Sum(name), 0, output_field=BigIntegerField())
    return out


def usage_events_totals(events: QuerySet[UsageEvent]) -> UsageCounts:
    """The summed usage of `events` in one aggregate query."""
    return UsageCounts.of(events.order_by().aggregate(**_sums()))


# --- Reconciliation ---------------------------------------------------------------------------

RollupKey = tuple[tuple[str, Any], ...]
RollupModel = (
    type[UsageByDay]
    | type[UsageByUserDay]
    | type[UsageBySession]
    | type[UsageByAgent]
    | type[UsageAllTime]
    | type[UsageByPurpose]
)
# The event fields each rollup groups by, and the rollup field each one fills.
ROLLUP_KEYS: dict[RollupModel, tuple[tuple[str, str], ...]] = {
    UsageByDay: (("day_timezone", "timezone"), ("day", "day"), ("provider", "provider"), ("model", "model")),
    UsageByUserDay: (
        ("owner_id", "owner_id"),
        ("day_timezone", "timezone"),
        ("day", "day"),
        ("provider", "provider"),
        ("model", "model"),
    ),
    UsageBySession: (("session_id", "session_id"),),
    UsageByAgent: (("owner_id", "owner_id"), ("agent", "agent")),
    UsageAllTime: (("provider", "provider"), ("model", "model")),
    UsageByPurpose: (("owner_id", "owner_id"), ("purpose", "purpose")),
}
Rollups = dict[RollupModel, dict[RollupKey, dict[str, int]]]


@dataclass(frozen=True)
class RollupDifference:
    """One counter of one rollup row that does not equal the sum of its events."""

    rollup: str
    key: str
    field: str
    stored: int
    recomputed: int

    def __str__(self) -> str:
        return f"{self.rollup} [{self.key}] {self.field}: stored {self.stored}, recomputed {self.recomputed}"


def rollups_recomputed() -> Rollups:
    """Every rollup row as the events say it should be (one GROUP BY per rollup over all events)."""
    result: Rollups = {}
    for model, key_map in ROLLUP_KEYS.items():
        source = [event_field for event_field, _ in key_map]
        events = UsageEvent.objects.order_by()
        if model is UsageBySession:
            events = events.filter(session__isnull=False)
        if model is UsageByAgent:
            events = events.exclude(agent="")
        rows = events.values(*source).annotate(**_sums())
        result[model] = {
            tuple((target, row[src]) for src, target in key_map): {name: int(row[name]) for name in COUNTER_FIELDS}
            for row in rows
        }
    return result


def rollups_stored() -> Rollups:
    """Every stored rollup row, keyed like `rollups_recomputed`."""
    result: Rollups = {}
    for model, key_map in ROLLUP_KEYS.items():
        targets = [target for _, target in key_map]
        rows = model._default_manager.order_by().values(*targets, *COUNTER_FIELDS)
        result[model] = {
            tuple((target, row[target]) for target in targets): {name: int(row[name]) for name in COUNTER_FIELDS}
            for row in rows
        }
    return result


def rollup_differences(*, recomputed: Rollups | None = None) -> list[RollupDifference]:
    """Each stored counter that differs from the recomputed one (a missing row counts as zeros)."""
    recomputed = rollups_recomputed() if recomputed is None else recomputed
    stored = rollups_stored()
    zeros = dict.fromkeys(COUNTER_FIELDS, 0)
    differences: list[RollupDifference] = []
    for model in ROLLUP_KEYS:
        want, have = recomputed[model], stored[model]
        for key in sorted(set(want) | set(have), key=str):
            expected, actual = want.get(key, zeros), have.get(key, zeros)
            label = " ".join(f"{name}={value}" for name, value in key)
            differences.extend(
                RollupDifference(
                    rollup=str(model._meta.verbose_name),
                    key=label,
                    field=name,
                    stored=actual[name],
                    recomputed=expected[name],
                )
                for name in COUNTER_FIELDS
                if actual[name] != expected[name]
            )
    return differences


__all__ = [
    "COUNTER_FIELDS",
    "UNKNOWN_FIELDS",
    "AgentUsage",
    "DayUsage",
    "ModelUsage",
    "ProviderUsage",
    "PurposeUsage",
    "RollupDifference",
    "SessionUsage",
    "UsageCounts",
    "UsageOverview",
    "UsageSummary",
    "agent_usage",
    "rollup_differences",
    "rollups_recomputed",
    "rollups_stored",
    "session_usage",
    "usage_all_time_totals",
    "usage_events",
    "usage_events_totals",
    "usage_overview",
    "usage_summary",
    "user_usage_overview",
]
