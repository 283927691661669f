"""Contention: several OS processes append to the same session, the same run's trace and the same
usage rollup rows at the same moment. No error escapes, and no row is lost or duplicated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Sum

from core.conversation.services import run_create, session_create
from core.models import AgentSession, Message, ModelRoute, TraceEvent
from telemetry.models import UsageAllTime, UsageByDay, UsageBySession, UsageEvent
from telemetry.selectors import rollup_differences
from telemetry.services import usage_cost_pico_usd
from tests.fault.conftest import WAIT_SECONDS, LineReader, restart_connections, sqlite_checks, stop_if_running
from tests.owners import op_user
from tests.procs import run_manage, start_worker
from tests.workers.fault_contend import planned_write

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKERS = 4
WRITES_PER_WORKER = 40
TAGS = [f"w{n}" for n in range(WORKERS)]


def _expected_usage(route: ModelRoute) -> dict[str, int]:
    """The rollup counters the workers' reports must add up to, computed from what they were told to write."""
    plans = [planned_write(tag, n) for tag in TAGS for n in range(WRITES_PER_WORKER)]
    return {
        "event_count": len(plans),
        "priced_event_count": len(plans),
        "input_tokens": sum(p.input_tokens for p in plans),
        "cached_input_tokens": sum(p.cached_input_tokens for p in plans),
        "output_tokens": sum(p.output_tokens for p in plans),
        "reasoning_tokens": sum(p.reasoning_tokens for p in plans),
        "total_tokens": sum(p.input_tokens + p.output_tokens for p in plans),
        "cost_pico_usd": sum(
            usage_cost_pico_usd(
                input_tokens=p.input_tokens,
                cached_input_tokens=p.cached_input_tokens,
                output_tokens=p.output_tokens,
                price_input_per_mtok=route.price_input_per_mtok,
                price_cached_input_per_mtok=route.price_cached_input_per_mtok,
                price_output_per_mtok=route.price_output_per_mtok,
            )
            or 0
            for p in plans
        ),
    }


def test_concurrent_writers_to_one_session_and_one_rollup_lose_and_duplicate_nothing(
    main_route: ModelRoute, tmp_path: Path
) -> None:
    session = session_create(owner=op_user(), title="contended", route_alias=main_route.alias)
    run = run_create(session_id=session.id, status="running")
    go_file = tmp_path / "go"
    connection.close()

    workers = [
        start_worker(
            "tests.workers.fault_contend",
            [str(session.id), str(run.id), main_route.alias, tag, str(WRITES_PER_WORKER), str(go_file)],
        )
        for tag in TAGS
    ]
    try:
        readers = [LineReader(worker) for worker in workers]
        for reader in readers:
            reader.until("ready")
        go_file.touch()  # every worker is set up: they all start writing now
        for reader in readers:
            reader.until("done")
        outcomes = [worker.communicate(timeout=WAIT_SECONDS) for worker in workers]
    finally:
        for worker in workers:
            stop_if_running(worker)
    for worker, (_, stderr) in zip(workers, outcomes, strict=True):
        assert worker.returncode == 0, stderr
        assert "database is locked" not in stderr
        assert "Traceback" not in stderr

    # Each worker saw its own writes in order, with seqs and event indexes others did not get.
    acked: dict[str, list[tuple[int, int]]] = {}
    for tag, reader in zip(TAGS, readers, strict=True):
        acks = [line.split() for line in reader.seen if line.startswith("ack ")]
        assert [int(words[1]) for words in acks] == list(range(WRITES_PER_WORKER))
        acked[tag] = [(int(words[2]), int(words[3])) for words in acks]
        assert acked[tag] == sorted(acked[tag])
    total = WORKERS * WRITES_PER_WORKER
    assert sorted(seq for pairs in acked.values() for seq, _ in pairs) == list(range(1, total + 1))
    assert sorted(index for pairs in acked.values() for _, index in pairs) == list(range(2, total + 2))

    restart_connections()
    rows = list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "client_id", "token_count"))
    assert [seq for seq, _, _ in rows] == list(range(1, total + 1))
    stored_by_client = {client_id: (seq, tokens) for seq, client_id, tokens in rows}
    assert len(stored_by_client) == total
    for tag in TAGS:
        for n, (seq, _) in enumerate(acked[tag]):
            assert stored_by_client[f"{tag}-{n}"] == (seq, planned_write(tag, n).message_tokens)
    stored_session = AgentSession.objects.get(pk=session.pk)
    expected_tokens = sum(planned_write(tag, n).message_tokens for tag in TAGS for n in range(WRITES_PER_WORKER))
    assert (stored_session.last_seq, stored_session.message_count) == (total, total)
    assert stored_session.tokens_since_checkpoint == expected_tokens

    events = list(TraceEvent.objects.filter(run=run).order_by("index").values_list("index", "payload"))
    assert [index for index, _ in events] == list(range(1, total + 2))
    assert sorted(payload["text"] for _, payload in events[1:]) == sorted(
        f"{tag}:{n};" for tag in TAGS for n in range(WRITES_PER_WORKER)
    )
    run.refresh_from_db()
    assert run.event_count == total + 1

    request_ids = list(UsageEvent.objects.values_list("request_id", flat=True))
    assert sorted(request_ids) == sorted(f"{tag}-{n}" for tag in TAGS for n in range(WRITES_PER_WORKER))
    expected = _expected_usage(main_route)
    fields = list(expected)
    assert UsageBySession.objects.filter(session=session).values(*fields).get() == expected
    assert UsageAllTime.objects.values(*fields).get() == expected
    # One row per local day: the writes may straddle midnight, so the days together hold everything.
    assert UsageByDay.objects.aggregate(**{name: Sum(name) for name in fields}) == expected
    assert rollup_differences() == []
    if connection.vendor == "sqlite":
        checks = sqlite_checks()
        assert (checks.integrity, checks.foreign_key_violations) == (["ok"], [])

    reconcile = run_manage(["telemetry_reconcile"], timeout=60)
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
