"""Upgrading a database with usage recorded before "not reported" existed: its zeros stay reported zeros.

The database is migrated back to before `0003_usage_unknown_and_cache_write`, filled through the
models of that time (events and the rollups that sum them), then migrated forward.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from telemetry.models import UsageAllTime, UsageByDay, UsageByUserDay, UsageEvent
from telemetry.selectors import rollup_differences

BEFORE = [("telemetry", "0002_owners")]
DAY = dt.date(2026, 11, 1)
# Two events as the old code recorded them: every count a reported number, zeros included.
EVENTS = [
    {"input_tokens": 1200, "cached_input_tokens": 0, "output_tokens": 40, "reasoning_tokens": 0},
    {"input_tokens": 300, "cached_input_tokens": 100, "output_tokens": 0, "reasoning_tokens": 0},
]


@pytest.fixture
def at_the_old_schema(transactional_db: None) -> Iterator[MigrationExecutor]:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    try:
        yield executor
    finally:
        MigrationExecutor(connection).migrate(latest)


def test_old_usage_keeps_its_zeros_and_cache_writes_become_unknown(at_the_old_schema: MigrationExecutor) -> None:
    apps = at_the_old_schema.loader.project_state(BEFORE).apps
    owner = apps.get_model("auth", "User").objects.create(username="before")
    where = {"provider": "openai", "model": "gpt-x"}
    sums = {name: sum(event[name] for event in EVENTS) for name in EVENTS[0]}
    sums["total_tokens"] = sums["input_tokens"] + sums["output_tokens"]
    for n, counts in enumerate(EVENTS):
        apps.get_model("telemetry", "UsageEvent").objects.create(
            request_id=f"old-{n}",
            occurred_at=dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC),
            day=DAY,
            day_timezone="UTC",
            owner=owner,
            total_tokens=counts["input_tokens"] + counts["output_tokens"],
            **where,
            **counts,
        )
    rollup = {"event_count": 2, "priced_event_count": 0, **sums}
    apps.get_model("telemetry", "UsageByDay").objects.create(timezone="UTC", day=DAY, **where, **rollup)
    apps.get_model("telemetry", "UsageByUserDay").objects.create(
        owner=owner, timezone="UTC", day=DAY, **where, **rollup
    )
    apps.get_model("telemetry", "UsageAllTime").objects.create(**where, **rollup)

    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    events = list(UsageEvent.objects.order_by("request_id"))
    for event, counts in zip(events, EVENTS, strict=True):
        assert {name: getattr(event, name) for name in counts} == counts  # 0 stays a reported 0
        assert event.total_tokens == counts["input_tokens"] + counts["output_tokens"]
        assert event.cache_write_input_tokens is None  # never counted before: unknown, not 0
        assert event.cost_partial is False
    for model in (UsageByDay, UsageByUserDay, UsageAllTime):
        row = model.objects.get()
        assert {name: getattr(row, name) for name in sums} == sums
        assert (row.cache_write_input_tokens, row.cache_write_input_tokens_unknown_events) == (0, 2)
        for name in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "total_tokens"):
            assert getattr(row, f"{name}_unknown_events") == 0
    assert rollup_differences() == []
