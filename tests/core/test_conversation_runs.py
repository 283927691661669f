"""Runs and their traces: the state machine, event contracts, text rebuild, cancel and recovery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.conversation.selectors import run_text, trace_events
from core.conversation.services import (
    INTERRUPTED_ERROR,
    run_cancel,
    run_create,
    run_event_append,
    run_finish,
    run_start,
    runs_recover,
    session_archive,
    session_create,
)
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models import AgentSession, ModelRoute, Provider, Run, RunStatus, TraceEvent
from tests.owners import op_user

pytestmark = pytest.mark.django_db


def _events(run: Run) -> list[tuple[int, str, dict[str, Any]]]:
    return list(TraceEvent.objects.filter(run=run).order_by("index").values_list("index", "type", "payload"))


def _status(run: Run) -> str:
    run.refresh_from_db()
    return run.status


def test_run_defaults_to_queued_on_the_sessions_route(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id)
    assert (run.status, run.route_id, run.started_at, run.event_count) == ("queued", chat_session.route_id, None, 0)


def test_run_can_name_another_route(chat_session: AgentSession) -> None:
    other = ModelRoute.objects.create(
        alias="other",
        provider=Provider.objects.get(name="replay"),
        model_id="m",
        context_window_tokens=10,
        max_output_tokens=5,
    )
    assert run_create(session_id=chat_session.id, route_alias="other").route_id == other.pk
    with pytest.raises(InvalidInputError, match=r"^route: no model route 'nope'"):
        run_create(session_id=chat_session.id, route_alias="nope")


def test_run_create_refuses_bad_status_and_archived_session(chat_session: AgentSession) -> None:
    with pytest.raises(InvalidInputError, match=r"^status: 'completed': a new run is queued or running$"):
        run_create(session_id=chat_session.id, status="completed")
    session_archive(session_id=chat_session.id)
    with pytest.raises(ConflictError, match=r"^session: is archived"):
        run_create(session_id=chat_session.id)
    assert not Run.objects.exists()


def test_completed_run_trace_in_order(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id)
    run_start(run_id=run.id)
    run_event_append(run_id=run.id, event_type="text_delta", payload={"text": "Hel"})
    run_event_append(
        run_id=run.id, event_type="tool_call", payload={"id": "c1", "name": "search", "arguments": {"q": "x"}}
    )
    run_event_append(run_id=run.id, event_type="tool_result", payload={"tool_call_id": "c1", "content": "ok"})
    run_event_append(run_id=run.id, event_type="text_delta", payload={"text": "lo, "})
    run_event_append(run_id=run.id, event_type="usage", payload={"input_tokens": 10, "output_tokens": 3})
    run_event_append(run_id=run.id, event_type="text_delta", payload={"text": "world"})
    last = run_event_append(run_id=run.id, event_type="run_finished", payload={"status": "completed"})
    assert last.index == 8
    run.refresh_from_db()
    assert (run.status, run.event_count, run.error) == ("completed", 8, "")
    assert run.started_at is not None
    assert run.finished_at is not None
    assert [(i, t) for i, t, _ in _events(run)] == [
        (1, "run_started"),
        (2, "text_delta"),
        (3, "tool_call"),
        (4, "tool_result"),
        (5, "text_delta"),
        (6, "usage"),
        (7, "text_delta"),
        (8, "run_finished"),
    ]
    assert run_text(run_id=run.id) == "Hello, world"
    assert [e.index for e in trace_events(run_id=run.id, after_index=6)] == [7, 8]


def test_error_then_finish_fails_the_run(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    run_event_append(run_id=run.id, event_type="error", payload={"message": "rate limited", "code": "429"})
    with pytest.raises(ConflictError, match=r"^run: reported an error; finish it as failed$"):
        run_event_append(run_id=run.id, event_type="run_finished", payload={"status": "completed"})
    run_event_append(run_id=run.id, event_type="run_finished", payload={"status": "failed"})
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "rate limited")
    assert [t for _, t, _ in _events(run)] == ["run_started", "error", "run_finished"]


def test_run_finish_failed_records_the_error_event(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    run_finish(run_id=run.id, status="failed", error="provider timed out")
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "provider timed out")
    assert _events(run)[1:] == [
        (2, "error", {"message": "provider timed out"}),
        (3, "run_finished", {"status": "failed"}),
    ]


def test_finish_rules(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id)
    with pytest.raises(ConflictError, match=r"^run: is queued; start it before completing it$"):
        run_finish(run_id=run.id, status="completed")
    with pytest.raises(ConflictError, match=r"^run: has no error recorded; append an error event"):
        run_finish(run_id=run.id, status="failed")
    with pytest.raises(InvalidInputError, match=r"^status: 'cancelled' cannot be set by finishing"):
        run_finish(run_id=run.id, status="cancelled")
    with pytest.raises(InvalidInputError, match=r"^error: a completed run has no error; finish it as failed$"):
        run_finish(run_id=run.id, status="completed", error="x")
    with pytest.raises(ConflictError, match=r"^run: is queued; append run_started before text_delta"):
        run_event_append(run_id=run.id, event_type="text_delta", payload={"text": "x"})
    # A queued run can fail before it starts (e.g. its provider refused the request).
    run_finish(run_id=run.id, status="failed", error="no credentials")
    run.refresh_from_db()
    assert (run.status, run.started_at is None, run.event_count) == ("failed", True, 2)


def test_start_twice_is_a_conflict(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    with pytest.raises(ConflictError, match=r"^run: is already running; only a queued run can start$"):
        run_start(run_id=run.id)
    with pytest.raises(ConflictError, match=r"^run: is already running"):
        run_event_append(run_id=run.id, event_type="run_started", payload={})


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled", "interrupted"])
def test_every_terminal_state_refuses_further_events(chat_session: AgentSession, terminal: str) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    if terminal == "completed":
        run_finish(run_id=run.id, status="completed")
    elif terminal == "failed":
        run_finish(run_id=run.id, status="failed", error="boom")
    elif terminal == "cancelled":
        run_cancel(run_id=run.id, reason="user pressed stop")
    else:
        runs_recover(before=timezone.now() + timedelta(seconds=1))
    run.refresh_from_db()
    assert run.status == terminal
    count = run.event_count
    message = rf"^run: is {terminal}; a finished run takes no more events$"
    with pytest.raises(ConflictError, match=message):
        run_event_append(run_id=run.id, event_type="text_delta", payload={"text": "late"})
    with pytest.raises(ConflictError, match=message):
        run_finish(run_id=run.id, status="completed")
    with pytest.raises(ConflictError, match=message):
        run_start(run_id=run.id)
    with pytest.raises(ConflictError, match=rf"^run: is {terminal}; only a queued or running run can be cancelled$"):
        run_cancel(run_id=run.id, reason="again")
    run.refresh_from_db()
    assert (run.status, run.event_count) == (terminal, count)
    assert _events(run)[-1][1:] == ("run_finished", {"status": terminal})


def test_cancel_records_the_reason(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id)
    with pytest.raises(InvalidInputError, match=r"^reason: empty; say why the run is cancelled$"):
        run_cancel(run_id=run.id, reason="  ")
    run_cancel(run_id=run.id, reason="  superseded by a newer question ")
    run.refresh_from_db()
    assert (run.status, run.cancel_reason) == ("cancelled", "superseded by a newer question")
    assert run.finished_at is not None


@pytest.mark.parametrize(
    ("event_type", "payload", "message"),
    [
        ("shout", {}, "type: 'shout' is not an event type; use one of run_started, text_delta"),
        ("text_delta", {}, "payload.text: required: a string"),
        ("text_delta", {"text": 5}, "payload.text: must be a string"),
        ("text_delta", ["x"], "payload: must be an object for a text_delta event"),
        ("tool_call", {"id": "c", "name": "n", "arguments": []}, "payload.arguments: must be an object"),
        ("tool_result", {"tool_call_id": "c", "content": "x", "is_error": "no"}, "payload.is_error: must be a boolean"),
        ("usage", {"input_tokens": -1, "output_tokens": 0}, "payload.input_tokens: must be an integer of 0 or more"),
        ("usage", {"input_tokens": True, "output_tokens": 0}, "payload.input_tokens: must be an integer of 0 or more"),
        ("error", {"message": " "}, "payload.message: must be a non-empty string"),
        ("run_finished", {"status": "done"}, "payload.status: must be one of completed, failed, cancelled"),
        (
            "run_started",
            {"extra": 1},
            "payload: unknown keys extra for a run_started event; it takes message_seq, regenerates_seq, "
            "worker_host, worker_pid, worker_start",
        ),
        ("run_started", {"worker_pid": -3}, "payload.worker_pid: must be an integer of 0 or more"),
        ("text_delta", {"text": "x" * 200_001}, "payload.text: has 200001 characters; at most 200000 are allowed"),
        ("run_finished", {"status": "cancelled"}, "status: 'cancelled' cannot be set by finishing"),
    ],
)
def test_event_payload_contracts(chat_session: AgentSession, event_type: str, payload: Any, message: str) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    with pytest.raises(InvalidInputError) as caught:
        run_event_append(run_id=run.id, event_type=event_type, payload=payload)
    assert str(caught.value).startswith(message)
    run.refresh_from_db()
    assert (run.status, run.event_count) == ("running", 1)


def test_usage_accepts_optional_counts(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    payload = {"input_tokens": 100, "output_tokens": 20, "cached_input_tokens": 50, "reasoning_tokens": 5}
    event = run_event_append(run_id=run.id, event_type="usage", payload=payload)
    assert TraceEvent.objects.get(pk=event.pk).payload == payload


def test_unknown_run_is_not_found(replay_route: ModelRoute) -> None:
    with pytest.raises(NotFoundError, match=r"^run: no run nope$"):
        run_event_append(run_id="nope", event_type="run_started")
    with pytest.raises(NotFoundError, match=r"^run: no run 00000000-0000-0000-0000-000000000000$"):
        run_cancel(run_id="00000000-0000-0000-0000-000000000000", reason="x")


def test_recover_marks_running_and_queued_interrupted_once(chat_session: AgentSession) -> None:
    done = run_create(session_id=chat_session.id, status="running")
    run_finish(run_id=done.id, status="completed")
    running = run_create(session_id=chat_session.id, status="running")
    # One open chat run per session: the queued one waits in a session of its own.
    queued = run_create(session_id=session_create(owner=op_user(), title="second").id)

    result = runs_recover(before=timezone.now() + timedelta(seconds=1))

    assert (result.running, result.queued, result.total) == ([running.pk], [queued.pk], 2)
    for run in (running, queued):
        run.refresh_from_db()
        assert (run.status, run.error) == ("interrupted", INTERRUPTED_ERROR)
        assert _events(run)[-1][1:] == ("run_finished", {"status": "interrupted"})
    assert _status(done) == RunStatus.COMPLETED
    assert runs_recover(before=timezone.now() + timedelta(seconds=1)).total == 0


def test_recover_leaves_runs_created_after_the_cutoff(chat_session: AgentSession) -> None:
    cutoff = timezone.now()
    run = run_create(session_id=chat_session.id, status="running")
    assert runs_recover(before=cutoff).total == 0
    assert _status(run) == RunStatus.RUNNING
