"""Several OS processes record usage into the same rollup rows at once: the rollups stay exact."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from core.conversation.services import session_create
from core.models import ModelRoute
from telemetry.models import UsageAllTime, UsageByDay, UsageBySession, UsageEvent
from telemetry.selectors import rollup_differences
from tests.owners import op_user
from tests.procs import run_manage, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.fault, pytest.mark.django_db(transaction=True)]

WORKERS = 4
EVENTS_PER_WORKER = 75


def _run_workers(route: ModelRoute, tags: list[str]) -> list[tuple[str, bool]]:
    session = session_create(owner=op_user(), title="contended", route_alias=route.alias)
    connection.close()  # let the workers have the database to themselves while they start
    workers = [
        start_worker("tests.workers.usage", [route.alias, str(session.id), str(EVENTS_PER_WORKER), tag]) for tag in tags
    ]
    acked: list[tuple[str, bool]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        assert "database is locked" not in err
        acked.extend(
            (line.split()[1], line.split()[2] == "True") for line in out.splitlines() if line.startswith("ack ")
        )
    return acked


def _assert_rollups_equal_events() -> None:
    events = list(
        UsageEvent.objects.values_list("input_tokens", "cached_input_tokens", "output_tokens", "cost_pico_usd")
    )
    total = UsageAllTime.objects.get()
    day = UsageByDay.objects.get()
    session = UsageBySession.objects.get()
    for row in (total, day, session):
        assert row.event_count == len(events)
        # The workers report every count (none unknown); a NULL would count 0 in the sum.
        assert row.input_tokens == sum(e[0] or 0 for e in events)
        assert row.cached_input_tokens == sum(e[1] or 0 for e in events)
        assert row.output_tokens == sum(e[2] or 0 for e in events)
        assert row.input_tokens_unknown_events == sum(e[0] is None for e in events)
        assert row.cost == sum((Decimal(e[3] or 0).scaleb(-12) for e in events), Decimal(0))
    assert rollup_differences() == []


def test_concurrent_processes_keep_rollups_exact(priced_route: ModelRoute) -> None:
    acked = _run_workers(priced_route, [f"w{n}" for n in range(WORKERS)])
    assert len(acked) == WORKERS * EVENTS_PER_WORKER
    assert all(created for _, created in acked)
    assert UsageEvent.objects.count() == WORKERS * EVENTS_PER_WORKER
    _assert_rollups_equal_events()
    result = run_manage(["telemetry_reconcile"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "every rollup equals the sums of its events"


def test_concurrent_retries_of_the_same_request_ids_count_once(priced_route: ModelRoute) -> None:
    acked = _run_workers(priced_route, ["same", "same"])
    assert len(acked) == 2 * EVENTS_PER_WORKER
    created = sorted(request_id for request_id, was_created in acked if was_created)
    assert created == sorted(f"same-{n}" for n in range(EVENTS_PER_WORKER))
    assert UsageEvent.objects.count() == EVENTS_PER_WORKER
    _assert_rollups_equal_events()
