"""A turn retried with its `client_id` never asks the model twice for the same message."""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from core.conversation.services import message_append, session_create
from core.errors import ConflictError
from core.models import AgentSession, Message, ModelRoute, Provider, ProviderKind, Run, RunStatus, TraceEvent
from runtime.turns import turn_execute, turn_run
from telemetry.models import UsageEvent
from tests.owners import op_user

pytestmark = pytest.mark.django_db


def roles(session: AgentSession) -> list[tuple[int, str]]:
    return list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "role"))


def written(session: AgentSession) -> tuple[int, int, int, int]:
    """Messages, runs, trace events and usage events of the session."""
    return (
        Message.objects.filter(session=session).count(),
        Run.objects.filter(session=session).count(),
        TraceEvent.objects.filter(run__session=session).count(),
        UsageEvent.objects.filter(session=session).count(),
    )


def test_retry_of_an_answered_turn_gets_the_same_run_and_writes_nothing(chat_session: AgentSession) -> None:
    first = turn_run(session_id=chat_session.pk, user_text="hello", client_id="ui-1")
    before = written(chat_session)
    again = turn_run(session_id=chat_session.pk, user_text="hello", client_id="ui-1")
    assert again.created is False
    assert again.run.pk == first.run.pk
    assert again.run.status == RunStatus.COMPLETED
    assert [m.pk for m in again.messages] == [m.pk for m in first.messages]
    assert again.text == first.text == "replay: hello"
    assert again.usage is not None
    assert first.usage is not None
    assert again.usage.pk == first.usage.pk
    assert again.finish_reason == "stop"
    assert written(chat_session) == before
    assert roles(chat_session) == [(1, "user"), (2, "assistant")]


def test_same_client_id_with_another_text_is_a_conflict(chat_session: AgentSession) -> None:
    turn_run(session_id=chat_session.pk, user_text="hello", client_id="ui-1")
    before = written(chat_session)
    with pytest.raises(ConflictError) as caught:
        turn_run(session_id=chat_session.pk, user_text="something else", client_id="ui-1")
    assert list(caught.value.fields) == ["client_id"]
    assert written(chat_session) == before


def test_retry_after_a_failed_turn_gets_the_failed_run_without_asking_again(chat_session: AgentSession) -> None:
    failed = turn_run(session_id=chat_session.pk, user_text="/error provider fell over", client_id="ui-2")
    assert failed.run.status == RunStatus.FAILED
    retried = turn_run(session_id=chat_session.pk, user_text="/error provider fell over", client_id="ui-2")
    assert retried.created is False
    assert retried.run.pk == failed.run.pk
    assert retried.run.status == RunStatus.FAILED
    assert retried.text == ""
    assert roles(chat_session) == [(1, "user")]
    assert Run.objects.filter(session=chat_session).count() == 1


def test_a_message_stored_without_a_run_runs_once_while_it_is_last(chat_session: AgentSession) -> None:
    # A message appended directly (no run names it) and still the session's last message.
    message_append(session_id=chat_session.pk, role="user", content="hi again", client_id="ui-3")
    result = turn_run(session_id=chat_session.pk, user_text="hi again", client_id="ui-3")
    assert result.created is True
    assert result.run.status == RunStatus.COMPLETED
    assert roles(chat_session) == [(1, "user"), (2, "assistant")]
    again = turn_run(session_id=chat_session.pk, user_text="hi again", client_id="ui-3")
    assert (again.created, again.run.pk) == (False, result.run.pk)
    assert Run.objects.filter(session=chat_session).count() == 1


def test_a_message_without_a_run_that_others_follow_is_a_conflict(chat_session: AgentSession) -> None:
    message_append(session_id=chat_session.pk, role="user", content="first", client_id="ui-5")
    message_append(session_id=chat_session.pk, role="user", content="second")
    with pytest.raises(ConflictError) as caught:
        turn_run(session_id=chat_session.pk, user_text="first", client_id="ui-5")
    assert "other messages already follow" in caught.value.fields["client_id"][0]
    assert Run.objects.filter(session=chat_session).count() == 0


def test_run_started_names_the_message_and_the_worker(chat_session: AgentSession) -> None:
    import os

    result = turn_run(session_id=chat_session.pk, user_text="hello", client_id="ui-6")
    started = TraceEvent.objects.get(run=result.run, index=1)
    assert started.type == "run_started"
    assert started.payload["message_seq"] == 1
    assert started.payload["worker_pid"] == os.getpid()
    assert started.payload["worker_host"]


def test_turn_api_retry_answers_200_with_the_same_run(api: APIClient, chat_session: AgentSession) -> None:
    url = f"/api/sessions/{chat_session.pk}/turns/"
    first = api.post(url, {"text": "hi", "client_id": "ui-4"}, format="json")
    assert first.status_code == 202, first.json()
    turn_execute(run_id=first.json()["run"]["id"])  # what a worker does with the queued run
    again = api.post(url, {"text": "hi", "client_id": "ui-4"}, format="json")
    assert again.status_code == 200, again.json()
    assert again.json()["run"]["id"] == first.json()["run"]["id"]
    assert again.json()["run"]["status"] == "completed"
    assert again.json()["message"] == first.json()["message"]
    other = api.post(url, {"text": "not hi", "client_id": "ui-4"}, format="json")
    assert other.status_code == 409
    assert other.json()["code"] == "conflict"
    assert list(other.json()["fields"]) == ["client_id"]
    assert roles(chat_session) == [(1, "user"), (2, "assistant")]


@pytest.fixture
def slow_session(db: None) -> AgentSession:
    """A session whose replay provider pauses before its first text chunk, long enough to retry meanwhile."""
    provider = Provider.objects.create(
        name="slow-replay", kind=ProviderKind.REPLAY, options={"pause_at_chunk": 0, "pause_ms": 4000}
    )
    route = ModelRoute.objects.create(
        alias="slow", provider=provider, model_id="replay-1", context_window_tokens=8_000, max_output_tokens=1_000
    )
    return session_create(owner=op_user(), title="slow", route_alias=route.alias)


def _execute_in_thread(run_id: str, out: dict[str, Any]) -> None:
    try:
        out["status"] = turn_execute(run_id=UUID(run_id)).run.status
    finally:
        connection.close()


@pytest.mark.fault
@pytest.mark.django_db(transaction=True)
def test_retry_while_the_first_attempt_streams_never_runs_the_model_twice(
    operator: User, slow_session: AgentSession
) -> None:
    url = f"/api/sessions/{slow_session.pk}/turns/"
    body = {"text": "hello", "client_id": "ui-race"}
    client = APIClient()
    client.force_authenticate(user=operator)
    accepted = client.post(url, body, format="json")
    assert accepted.status_code == 202, accepted.json()
    first: dict[str, Any] = {}
    worker = threading.Thread(target=_execute_in_thread, args=(accepted.json()["run"]["id"], first))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not Run.objects.filter(session=slow_session, status=RunStatus.RUNNING).exists():
            assert time.monotonic() < deadline, "the first attempt never opened its run"
            assert worker.is_alive(), f"the first attempt ended early: {first}"
            time.sleep(0.02)
        retry = client.post(url, body, format="json")
        conflict = client.post(url, {"text": "other", "client_id": "ui-race"}, format="json")
    finally:
        worker.join(timeout=60)
    assert retry.status_code == 200, retry.json()
    assert retry.json()["run"]["status"] == "running"
    assert retry.json()["message"]["seq"] == 1
    assert conflict.status_code == 409, conflict.json()
    assert first["status"] == RunStatus.COMPLETED
    assert accepted.json()["run"]["id"] == retry.json()["run"]["id"]
    # One model call: one run, one reply, one usage event.
    assert Run.objects.filter(session=slow_session).count() == 1
    assert roles(slow_session) == [(1, "user"), (2, "assistant")]
    assert UsageEvent.objects.filter(session=slow_session).count() == 1
