"""`core/0016_run_worker_fields` keeps the data: runs get their message from `run_started`, and a
session with more than one open run keeps its newest open and the others end `interrupted`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core.models import RunStatus, TraceEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.persistence]

BEFORE = [("core", "0009_owners")]
AFTER = [("core", "0016_run_worker_fields")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.fixture
def old_apps() -> Iterator[Any]:
    apps = migrate(BEFORE)
    try:
        yield apps
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_upgrade_backfills_the_message_and_ends_extra_open_runs_interrupted(old_apps: Any) -> None:
    user = old_apps.get_model("auth", "User").objects.create(username="op-upgrade")
    provider = old_apps.get_model("core", "Provider").objects.create(name="replay-up", kind="replay")
    route = old_apps.get_model("core", "ModelRoute").objects.create(
        alias="up", provider=provider, model_id="replay-1", context_window_tokens=8_000, max_output_tokens=100
    )
    session = old_apps.get_model("core", "AgentSession").objects.create(route=route, owner=user, last_seq=2)
    message_model = old_apps.get_model("core", "Message")
    first = message_model.objects.create(session=session, seq=1, role="user", content="one")
    message_model.objects.create(session=session, seq=2, role="user", content="two")
    run_model, event_model = old_apps.get_model("core", "Run"), old_apps.get_model("core", "TraceEvent")
    answered = run_model.objects.create(
        session=session, route=route, owner=user, status="running", event_count=1, started_at=timezone.now()
    )
    event_model.objects.create(run=answered, index=1, type="run_started", payload={"message_seq": 1})
    older_open = run_model.objects.create(session=session, route=route, owner=user, status="queued")
    run_model.objects.filter(pk=older_open.pk).update(created="2020-01-01T00:00:00Z")
    # Read back with the models as they stand at AFTER (later migrations add columns of their own).
    run_after = migrate(AFTER).get_model("core", "Run")
    kept = run_after.objects.get(pk=answered.pk)
    assert (kept.status, kept.message_id, kept.purpose, kept.attempt) == (RunStatus.RUNNING, first.pk, "chat", 1)
    ended = run_after.objects.get(pk=older_open.pk)
    assert ended.status == RunStatus.INTERRUPTED
    assert ended.error == ("interrupted: another run of this session was open when runs became one per session")
    assert ended.finished_at is not None
    assert list(TraceEvent.objects.filter(run_id=ended.pk).values_list("index", "type", "payload")) == [
        (1, "run_finished", {"status": "interrupted"})
    ]
    assert ended.event_count == 1
