"""telemetry_reconcile: finds a tampered rollup, prints each difference, repairs in one transaction."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core.models import AgentSession, ModelRoute
from telemetry.models import UsageAllTime, UsageByDay, UsageBySession, UsageEvent
from telemetry.selectors import rollup_differences
from telemetry.services import usage_record, usage_rollups_rebuild
from tests.owners import op_user

pytestmark = pytest.mark.django_db

DAY = dt.datetime(2025, 6, 1, 9, tzinfo=dt.UTC)


def _reconcile(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("telemetry_reconcile", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


@pytest.mark.fault
def test_reconcile_detects_tampered_rollup_and_repair_fixes_it(usage_session: AgentSession) -> None:
    usage_record(
        owner=op_user(),
        request_id="a",
        route_alias="gpt",
        session_id=usage_session.id,
        input_tokens=100,
        occurred_at=DAY,
    )
    usage_record(
        owner=op_user(),
        request_id="b",
        route_alias="gpt",
        session_id=usage_session.id,
        output_tokens=7,
        occurred_at=DAY,
    )
    assert _reconcile() == (0, "every rollup equals the sums of its events\n")

    table = connection.ops.quote_name(UsageAllTime._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET input_tokens = input_tokens + 5, event_count = 9")
    code, output = _reconcile()
    assert code == 1
    assert output.splitlines() == [
        "differs: usage all time [provider=openai model=gpt-4o] event_count: stored 9, recomputed 2",
        "differs: usage all time [provider=openai model=gpt-4o] input_tokens: stored 105, recomputed 100",
        "2 rollup counter(s) differ from the events; run `manage.py telemetry_reconcile --repair` to rebuild them",
    ]

    code, output = _reconcile("--repair")
    assert code == 0
    assert output.splitlines() == [
        "fixed: usage all time [provider=openai model=gpt-4o] event_count: stored 9, recomputed 2",
        "fixed: usage all time [provider=openai model=gpt-4o] input_tokens: stored 105, recomputed 100",
        "rebuilt every rollup from the events; 2 difference(s) fixed",
    ]
    assert _reconcile() == (0, "every rollup equals the sums of its events\n")
    assert UsageAllTime.objects.get().input_tokens == 100


def test_reconcile_reports_missing_and_orphan_rows(usage_session: AgentSession) -> None:
    usage_record(
        owner=op_user(), request_id="a", route_alias="gpt", session_id=usage_session.id, input_tokens=3, occurred_at=DAY
    )
    UsageBySession.objects.all().delete()
    UsageByDay.objects.create(timezone="UTC", day=dt.date(2020, 1, 1), provider="ghost", model="m", event_count=1)
    differences = [str(d) for d in rollup_differences()]
    assert differences == [
        "usage by day [timezone=UTC day=2020-01-01 provider=ghost model=m] event_count: stored 1, recomputed 0",
        f"usage by session [session_id={usage_session.id}] event_count: stored 0, recomputed 1",
        f"usage by session [session_id={usage_session.id}] priced_event_count: stored 0, recomputed 1",
        f"usage by session [session_id={usage_session.id}] input_tokens: stored 0, recomputed 3",
        f"usage by session [session_id={usage_session.id}] total_tokens: stored 0, recomputed 3",
        f"usage by session [session_id={usage_session.id}] cost_pico_usd: stored 0, recomputed 7500000",
    ]
    assert len(usage_rollups_rebuild()) == 6
    assert rollup_differences() == []
    assert not UsageByDay.objects.filter(provider="ghost").exists()


def test_repair_rebuilds_rollups_of_bulk_created_events(priced_route: ModelRoute) -> None:
    UsageEvent.objects.bulk_create(
        UsageEvent(
            request_id=f"bulk-{n}",
            owner=op_user(),
            occurred_at=DAY,
            day=DAY.date(),
            day_timezone="UTC",
            provider="openai",
            model="gpt-4o",
            input_tokens=n,
            total_tokens=n,
            cost_pico_usd=n * 2_500_000 if n % 2 else None,
        )
        for n in range(1, 101)
    )
    # Day, user x day, all-time and user x purpose rows missing, 9 non-zero counters each: events, priced
    # events, input, total, cost, and the events with no cached, cache write, output or reasoning count
    # (left NULL: unknown).
    assert len(rollup_differences()) == 4 * 9
    usage_rollups_rebuild()
    total = UsageAllTime.objects.get()
    odd = sum(range(1, 101, 2))
    assert (total.event_count, total.priced_event_count, total.input_tokens) == (100, 50, 5050)
    assert total.cost_pico_usd == odd * 2_500_000
    assert rollup_differences() == []


def test_reconcile_with_no_events_passes(db: None) -> None:
    assert _reconcile() == (0, "every rollup equals the sums of its events\n")
