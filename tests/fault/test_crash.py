"""Crash: a writer streaming messages, usage events and trace events is killed with SIGKILL.

After the "restart" (every connection of this process closed and opened anew) every write the
worker acknowledged is there, the one in flight is either wholly there or wholly absent, the
counters and rollups agree with the rows, SQLite's own checks pass, and `recover_runs` marks the
open run `interrupted` exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection
from django.db.models import Sum

from core.conversation.services import INTERRUPTED_ERROR, session_create
from core.models import AgentSession, Message, ModelRoute, Run, TraceEvent
from telemetry.models import UsageAllTime, UsageByDay, UsageBySession, UsageEvent
from telemetry.selectors import rollup_differences
from telemetry.services import usage_cost_pico_usd
from tests.fault.conftest import (
    LineReader,
    db_snapshot,
    kill_hard,
    restart_connections,
    snapshot_changes,
    sqlite_checks,
    stop_if_running,
)
from tests.owners import op_user
from tests.procs import run_manage, start_worker
from tests.workers.fault_writer import round_usage

TAG = "crash"
# Bounds the writer should nobody kill it; the test kills it long before.
ROUNDS = 100_000


@dataclass(frozen=True)
class KillMoment:
    """Kill the writer right after its `count`-th `ack <kind>` line: the next write is then in flight."""

    kind: str
    count: int
    in_flight: str


MOMENTS = [
    pytest.param(KillMoment("message", 1, "the first usage event"), id="early"),
    pytest.param(KillMoment("message", 50, "a usage event"), id="mid-usage"),
    pytest.param(KillMoment("usage", 50, "a trace event"), id="mid-event"),
    pytest.param(KillMoment("event", 50, "a message"), id="mid-message"),
]


@dataclass(frozen=True)
class Acks:
    messages: list[tuple[int, str, int]]
    usage: list[str]
    events: list[int]


def _acks(lines: list[str]) -> Acks:
    messages: list[tuple[int, str, int]] = []
    usage: list[str] = []
    events: list[int] = []
    for line in lines:
        words = line.split()
        if words[:2] == ["ack", "message"]:
            messages.append((int(words[2]), words[3], int(words[4])))
        elif words[:2] == ["ack", "usage"]:
            usage.append(words[2])
        elif words[:2] == ["ack", "event"]:
            events.append(int(words[2]))
    return Acks(messages=messages, usage=usage, events=events)


def _kill_at(session: AgentSession, route: ModelRoute, moment: KillMoment) -> tuple[str, Acks]:
    connection.close()  # the worker gets the database to itself
    worker = start_worker("tests.workers.fault_writer", [str(session.id), route.alias, TAG, str(ROUNDS)])
    try:
        reader = LineReader(worker)
        run_id = reader.until("run ").split()[1]
        for _ in range(moment.count):
            reader.until(f"ack {moment.kind} ")
        kill_hard(worker)
        reader.drain()  # acks the worker printed before it died are durable writes too
    finally:
        stop_if_running(worker)
    return run_id, _acks(reader.seen)


def _assert_messages(session: AgentSession, acks: Acks) -> None:
    rows = list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "client_id", "token_count"))
    seqs = [seq for seq, _, _ in rows]
    assert seqs == list(range(1, len(rows) + 1)), "the log has a gap or a duplicate"
    # Every acknowledged append is there; at most the one in flight was committed without its ack.
    assert rows[: len(acks.messages)] == acks.messages
    assert len(acks.messages) <= len(rows) <= len(acks.messages) + 1
    assert [client_id for _, client_id, _ in rows] == [f"{TAG}-m{n}" for n in range(len(rows))]
    stored = AgentSession.objects.get(pk=session.pk)
    assert (stored.last_seq, stored.message_count) == (len(rows), len(rows))
    assert stored.tokens_since_checkpoint == sum(tokens for _, _, tokens in rows)


def _assert_usage(session: AgentSession, route: ModelRoute, run_id: str, acks: Acks) -> None:
    events = list(UsageEvent.objects.order_by("id"))
    request_ids = [event.request_id for event in events]
    assert request_ids[: len(acks.usage)] == acks.usage
    assert len(acks.usage) <= len(events) <= len(acks.usage) + 1
    assert request_ids == [f"{TAG}-{n}" for n in range(len(events))]
    assert {(str(event.session_id), str(event.run_id)) for event in events} <= {(str(session.id), run_id)}

    # What the rollups must hold, computed from what the worker was told to report.
    planned = [round_usage(request_id) for request_id in request_ids]
    expected = {
        "event_count": len(planned),
        "priced_event_count": len(planned),
        "input_tokens": sum(p["input_tokens"] for p in planned),
        "cached_input_tokens": sum(p["cached_input_tokens"] for p in planned),
        "output_tokens": sum(p["output_tokens"] for p in planned),
        "reasoning_tokens": sum(p["reasoning_tokens"] for p in planned),
        "total_tokens": sum(p["input_tokens"] + p["output_tokens"] for p in planned),
        "cost_pico_usd": sum(
            usage_cost_pico_usd(
                input_tokens=p["input_tokens"],
                cached_input_tokens=p["cached_input_tokens"],
                output_tokens=p["output_tokens"],
                price_input_per_mtok=route.price_input_per_mtok,
                price_cached_input_per_mtok=route.price_cached_input_per_mtok,
                price_output_per_mtok=route.price_output_per_mtok,
            )
            or 0
            for p in planned
        ),
    }
    fields = list(expected)
    if events:
        assert UsageBySession.objects.filter(session=session).values(*fields).get() == expected
        assert UsageAllTime.objects.filter(provider="replay", model="replay-1").values(*fields).get() == expected
        # The run may straddle midnight: the days together hold everything.
        days = UsageByDay.objects.filter(provider="replay", model="replay-1").aggregate(
            **{name: Sum(name) for name in fields}
        )
        assert days == expected
    else:
        assert not UsageBySession.objects.exists()
        assert not UsageAllTime.objects.exists()
        assert not UsageByDay.objects.exists()
    assert rollup_differences() == []


def _assert_trace(run_id: str, acks: Acks) -> None:
    run = Run.objects.get(pk=run_id)
    assert run.status == "running"  # what the crash left behind
    events = list(TraceEvent.objects.filter(run=run).order_by("index").values_list("index", "type", "payload"))
    assert [index for index, _, _ in events] == list(range(1, len(events) + 1))
    assert run.event_count == len(events)
    assert events[0] == (1, "run_started", {})
    deltas = events[1:]
    assert deltas == [(n + 2, "text_delta", {"text": f"<{n}>"}) for n in range(len(deltas))]
    assert acks.events == list(range(2, len(acks.events) + 2))
    assert len(acks.events) <= len(deltas) <= len(acks.events) + 1


@pytest.mark.fault
@pytest.mark.slow
@pytest.mark.persistence
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("moment", MOMENTS)
def test_killed_writer_leaves_every_acknowledged_write_and_nothing_half_written(
    main_route: ModelRoute, moment: KillMoment
) -> None:
    session = session_create(owner=op_user(), title="killed mid-stream", route_alias=main_route.alias)
    run_id, acks = _kill_at(session, main_route, moment)
    seen = {"message": len(acks.messages), "usage": len(acks.usage), "event": len(acks.events)}
    assert seen[moment.kind] >= moment.count

    restart_connections()
    _assert_messages(session, acks)
    _assert_usage(session, main_route, run_id, acks)
    _assert_trace(run_id, acks)
    if connection.vendor == "sqlite":
        checks = sqlite_checks()
        assert checks.integrity == ["ok"]
        assert checks.foreign_key_violations == []

    reconcile = run_manage(["telemetry_reconcile"], timeout=60)
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    assert reconcile.stdout.strip() == "every rollup equals the sums of its events"

    events_before = Run.objects.get(pk=run_id).event_count
    recovered = run_manage(["recover_runs"], timeout=60)
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines() == [
        "recover_runs: marked 1 run(s) interrupted (1 running, 0 queued)",
        f"  {run_id} (was running)",
    ]
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.error, run.event_count) == ("interrupted", INTERRUPTED_ERROR, events_before + 1)
    assert run.finished_at is not None
    last = TraceEvent.objects.filter(run=run).order_by("-index").values_list("index", "type", "payload").first()
    assert last == (events_before + 1, "run_finished", {"status": "interrupted"})

    again = run_manage(["recover_runs"], timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "recover_runs: no unfinished runs; nothing to do"
    assert Run.objects.get(pk=run_id).event_count == events_before + 1


@pytest.mark.fault
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_recover_runs_on_a_clean_database_changes_nothing_and_can_run_at_every_start(main_route: ModelRoute) -> None:
    session_create(owner=op_user(), title="idle", route_alias=main_route.alias)
    before = db_snapshot()
    connection.close()
    for _ in range(2):
        result = run_manage(["recover_runs"], timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "recover_runs: no unfinished runs; nothing to do"
        assert result.stderr == ""
    assert snapshot_changes(before, db_snapshot()) == []
