"""The conversation API: every endpoint's happy path, its 400/404/409 answers, and pinned query counts."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import DjangoAssertNumQueries, Settings
from rest_framework.test import APIClient

from core.conversation.services import (
    checkpoint_create,
    message_append,
    run_create,
    run_event_append,
    run_finish,
    session_archive,
    session_create,
)
from core.models import AgentSession, Checkpoint, Message, ModelRoute, Provider, Run, TraceEvent
from tests.owners import op_user

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def api(db: None) -> APIClient:
    """Signed in as an operator without a password (no hashing: these tests make many clients)."""
    client = APIClient()
    client.force_authenticate(user=User.objects.create(username="op", is_staff=True, is_superuser=True))
    return client


def _fill(session: AgentSession, count: int, *, tokens: int | None = None) -> None:
    for n in range(count):
        message_append(session_id=session.id, role="user", content=f"message {n + 1}", token_count=tokens)


def _error(response: Any) -> tuple[int, str, dict[str, list[str]]]:
    body = response.json()
    return response.status_code, body["detail"], body["fields"]


# --- Authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/sessions/"),
        ("post", "/api/sessions/"),
        ("get", f"/api/sessions/{UNKNOWN}/"),
        ("get", f"/api/sessions/{UNKNOWN}/messages/"),
        ("post", f"/api/sessions/{UNKNOWN}/archive/"),
        ("get", f"/api/sessions/{UNKNOWN}/restore/"),
        ("get", "/api/runs/"),
        ("get", f"/api/runs/{UNKNOWN}/events/"),
        ("get", f"/api/runs/{UNKNOWN}/text/"),
    ],
)
def test_every_endpoint_requires_authentication(anon_api: APIClient, method: str, url: str) -> None:
    response = getattr(anon_api, method)(url)
    assert (response.status_code, response["WWW-Authenticate"]) == (401, "Token")
    assert response.json()["code"] == "not_authenticated"


# --- Sessions -------------------------------------------------------------------------------


def test_create_session_on_default_route(api: APIClient, replay_route: ModelRoute) -> None:
    response = api.post("/api/sessions/", {"title": "  Trip  "})
    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Trip"
    assert body["route"] == "replay"
    assert body["status"] == "active"
    assert (body["message_count"], body["last_seq"], body["tokens_since_checkpoint"]) == (0, 0, 0)
    assert (body["context_window_tokens"], body["context_fullness_percent"], body["needs_compaction"]) == (
        8000,
        0.0,
        False,
    )
    assert (body["agent"], body["team"]) == (None, None)
    assert set(body) == {
        "id",
        "title",
        "route",
        "agent",
        "team",
        "status",
        "pinned",
        "tags",
        "message_count",
        "last_seq",
        "leaf",
        "tokens_since_checkpoint",
        "context_window_tokens",
        "context_fullness_percent",
        "needs_compaction",
        "created",
        "updated",
    }
    assert AgentSession.objects.get(pk=body["id"]).title == "Trip"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"route": "nope"}, "route", "no model route 'nope'; use an alias from /api/config/routes/"),
        ({"title": "x" * 201}, "title", "has 201 characters; at most 200 are allowed"),
        ({"title": ["x"]}, "title", "Not a valid string."),
        ({"colour": "red"}, "colour", "unknown field; this endpoint accepts title, route, agent, team"),
    ],
)
def test_create_session_rejects_bad_input(
    api: APIClient, replay_route: ModelRoute, body: dict[str, Any], field: str, message: str
) -> None:
    status, _, fields = _error(api.post("/api/sessions/", body))
    assert (status, fields) == (400, {field: [message]})
    assert not AgentSession.objects.exists()


@pytest.mark.parametrize("body", [[1, 2], "text", 5])
def test_json_bodies_that_are_not_objects_are_refused(api: APIClient, chat_session: AgentSession, body: Any) -> None:
    for url in ("/api/sessions/", f"/api/sessions/{chat_session.id}/messages/", "/api/runs/"):
        response = api.post(url, body, format="json")
        assert response.status_code == 400, url
        assert response.json()["code"] == "invalid"
        assert "Expected a dictionary" in response.json()["fields"]["non_field_errors"][0]
    assert not Message.objects.exists()


def test_malformed_json_is_a_400(api: APIClient, chat_session: AgentSession) -> None:
    response = api.generic(
        "POST", f"/api/sessions/{chat_session.id}/messages/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_retrieve_update_archive_unarchive(api: APIClient, chat_session: AgentSession) -> None:
    ModelRoute.objects.create(
        alias="big", provider=Provider.objects.get(), model_id="m", context_window_tokens=100, max_output_tokens=10
    )
    url = f"/api/sessions/{chat_session.id}/"
    assert api.get(url).json()["title"] == "test session"

    response = api.patch(url, {"title": "renamed", "route": "big"})
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["route"], response.json()["context_window_tokens"]) == (
        "renamed",
        "big",
        100,
    )

    assert api.post(f"{url}archive/").json()["status"] == "archived"
    assert _error(api.post(f"{url}archive/")) == (
        409,
        "session: is already archived",
        {"session": ["is already archived"]},
    )
    assert _error(api.patch(url, {"title": "x"}))[0] == 409
    assert api.post(f"{url}unarchive/").json()["status"] == "active"
    assert _error(api.post(f"{url}unarchive/"))[0] == 409
    assert api.put(url, {"title": "x"}).status_code == 405


def test_update_rejects_bad_route(api: APIClient, chat_session: AgentSession) -> None:
    status, _, fields = _error(api.patch(f"/api/sessions/{chat_session.id}/", {"route": "nope"}))
    assert (status, fields) == (400, {"route": ["no model route 'nope'; use an alias from /api/config/routes/"]})


@pytest.mark.parametrize("session_id", [UNKNOWN, "not-a-uuid", "123"])
def test_unknown_or_malformed_session_ids_are_404(api: APIClient, replay_route: ModelRoute, session_id: str) -> None:
    base = f"/api/sessions/{session_id}/"
    for response in (
        api.get(base),
        api.patch(base, {"title": "x"}),
        api.delete(base),
        api.post(f"{base}archive/"),
        api.post(f"{base}unarchive/"),
        api.get(f"{base}restore/"),
        api.get(f"{base}messages/"),
        api.post(f"{base}messages/", {"role": "user", "content": "x"}),
        api.get(f"{base}checkpoints/"),
        api.post(f"{base}checkpoints/", {"through_seq": 0, "reason": "manual"}),
    ):
        assert _error(response) == (404, f"session: no session {session_id}", {"session": [f"no session {session_id}"]})


def test_delete_session_removes_everything(api: APIClient, chat_session: AgentSession) -> None:
    _fill(chat_session, 3)
    checkpoint_create(session_id=chat_session.id, through_seq=2, reason="manual", summary="So far")
    run = run_create(session_id=chat_session.id, status="running")
    run_event_append(run_id=run.id, event_type="run_finished", payload={"status": "completed"})

    response = api.delete(f"/api/sessions/{chat_session.id}/")

    assert response.status_code == 200
    assert response.json() == {"messages": 3, "checkpoints": 1, "runs": 1, "events": 2}
    assert not AgentSession.objects.exists()
    assert (Message.objects.count(), Checkpoint.objects.count(), Run.objects.count(), TraceEvent.objects.count()) == (
        0,
        0,
        0,
        0,
    )
    assert api.get(f"/api/sessions/{chat_session.id}/").status_code == 404


def test_delete_with_an_open_run_is_a_conflict(api: APIClient, chat_session: AgentSession) -> None:
    run_create(session_id=chat_session.id)
    assert _error(api.delete(f"/api/sessions/{chat_session.id}/"))[0] == 409
    assert AgentSession.objects.filter(pk=chat_session.pk).exists()


def test_session_list_newest_first_with_filters(api: APIClient, replay_route: ModelRoute, settings: Settings) -> None:
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 50
    first = session_create(owner=op_user(), title="first")
    second = session_create(owner=op_user(), title="second")
    third = session_create(owner=op_user(), title="third")
    session_archive(session_id=second.id)
    _fill(third, 1, tokens=4_000)  # 50% of 8,000

    body = api.get("/api/sessions/").json()
    assert [s["title"] for s in body["results"]] == ["third", "second", "first"]
    assert body["results"][0]["context_fullness_percent"] == 50.0
    assert body["results"][0]["needs_compaction"] is True
    assert [s["title"] for s in api.get("/api/sessions/?status=archived").json()["results"]] == ["second"]
    assert [s["title"] for s in api.get("/api/sessions/?needs_compaction=true").json()["results"]] == ["third"]
    assert [s["id"] for s in api.get("/api/sessions/?needs_compaction=false").json()["results"]] == [
        str(second.id),
        str(first.id),
    ]
    page = api.get("/api/sessions/?page_size=2").json()
    assert [s["title"] for s in page["results"]] == ["third", "second"]
    assert [s["title"] for s in api.get(page["next"]).json()["results"]] == ["first"]


def test_session_list_rejects_bad_filters(api: APIClient, replay_route: ModelRoute) -> None:
    status, _, fields = _error(api.get("/api/sessions/?status=lost"))
    assert (status, fields) == (400, {"status": ['"lost" is not a valid choice.']})
    assert _error(api.get("/api/sessions/?colour=red"))[0] == 400
    assert api.get("/api/sessions/?cursor=garbage").status_code == 404


# --- Messages -------------------------------------------------------------------------------


def test_append_then_idempotent_retry(api: APIClient, chat_session: AgentSession) -> None:
    url = f"/api/sessions/{chat_session.id}/messages/"
    body = {"role": "user", "content": "  Hello  ", "client_id": "ui-1"}
    created = api.post(url, body)
    assert created.status_code == 201
    message = created.json()
    assert set(message) == {
        "id",
        "seq",
        "role",
        "content",
        "parts",
        "token_count",
        "token_count_estimated",
        "client_id",
        "created",
        "parent",
    }
    assert (message["seq"], message["content"], message["parts"], message["client_id"]) == (1, "  Hello  ", [], "ui-1")
    assert (message["token_count"], message["token_count_estimated"]) == (3, True)

    retry = api.post(url, body)
    assert retry.status_code == 200
    assert retry.json() == message
    assert Message.objects.count() == 1

    conflict = api.post(url, {**body, "content": "different"})
    assert conflict.status_code == 409
    assert conflict.json()["fields"] == {
        "client_id": [
            "'ui-1' already names message #1 with a different role, content, parts or parent; "
            "a retry must repeat the same message, a new message needs a new client_id"
        ]
    }


def test_append_with_parts_and_reported_tokens(api: APIClient, chat_session: AgentSession) -> None:
    parts = [{"type": "tool_call", "id": "c1", "name": "search", "arguments": {"q": "x"}}]
    response = api.post(
        f"/api/sessions/{chat_session.id}/messages/", {"role": "assistant", "parts": parts, "token_count": 12}
    )
    assert response.status_code == 201
    assert (response.json()["parts"], response.json()["token_count"], response.json()["token_count_estimated"]) == (
        parts,
        12,
        False,
    )
    assert api.get(f"/api/sessions/{chat_session.id}/").json()["tokens_since_checkpoint"] == 12


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"content": "x"}, {"role": ["This field is required."]}),
        (
            {"role": "robot", "content": "x"},
            {"role": ["'robot' is not a role; use one of system, user, assistant, tool"]},
        ),
        ({"role": "user"}, {"content": ["empty; give text content or at least one part"]}),
        (
            {"role": "user", "parts": [{"type": "x"}]},
            {"parts[0].type": ["'x' is not a part type; use one of tool_call, tool_result, attachment, reasoning"]},
        ),
        (
            {"role": "user", "content": "x" * 1_000_001},
            {"content": ["has 1000001 characters; at most 1000000 are allowed"]},
        ),
        ({"role": "user", "content": "x", "token_count": -1}, {"token_count": ["must be zero or more"]}),
        (
            {"role": "user", "content": "x", "seq": 5},
            {"seq": ["unknown field; this endpoint accepts role, content, parts, client_id, token_count, parent_seq"]},
        ),
    ],
)
def test_append_rejects_bad_input(
    api: APIClient, chat_session: AgentSession, body: dict[str, Any], fields: dict[str, list[str]]
) -> None:
    status, _, got = _error(api.post(f"/api/sessions/{chat_session.id}/messages/", body))
    assert (status, got) == (400, fields)
    assert not Message.objects.exists()


def test_append_to_archived_session_is_409(api: APIClient, chat_session: AgentSession) -> None:
    session_archive(session_id=chat_session.id)
    response = api.post(f"/api/sessions/{chat_session.id}/messages/", {"role": "user", "content": "late"})
    assert _error(response) == (
        409,
        "session: is archived; unarchive it or start a new session",
        {"session": ["is archived; unarchive it or start a new session"]},
    )
    assert not Message.objects.exists()


def test_message_list_pages_by_seq_with_after_seq(api: APIClient, chat_session: AgentSession) -> None:
    _fill(chat_session, 7)
    url = f"/api/sessions/{chat_session.id}/messages/"
    page = api.get(f"{url}?page_size=3").json()
    assert [m["seq"] for m in page["results"]] == [1, 2, 3]
    page = api.get(page["next"]).json()
    assert [m["seq"] for m in page["results"]] == [4, 5, 6]
    assert [m["seq"] for m in api.get(page["next"]).json()["results"]] == [7]
    assert [m["seq"] for m in api.get(f"{url}?after_seq=5").json()["results"]] == [6, 7]
    assert _error(api.get(f"{url}?after_seq=-1"))[2] == {
        "after_seq": ["Ensure this value is greater than or equal to 0."]
    }
    assert _error(api.get(f"{url}?after_seq=x"))[2] == {"after_seq": ["A valid integer is required."]}


# --- Checkpoints and restore ----------------------------------------------------------------


def test_checkpoints_create_list_and_restore(api: APIClient, chat_session: AgentSession) -> None:
    _fill(chat_session, 6, tokens=100)
    url = f"/api/sessions/{chat_session.id}/checkpoints/"
    first = api.post(url, {"through_seq": 2, "summary": "early", "state": {"step": 1}, "reason": "manual"})
    assert first.status_code == 201
    assert first.json()["parent"] is None
    second = api.post(url, {"through_seq": 4, "summary": "later", "state": {"step": 2}, "reason": "compaction"})
    assert second.status_code == 201
    body = second.json()
    assert set(body) == {"id", "parent", "through_seq", "summary", "state", "token_count", "reason", "created"}
    assert (body["parent"], body["through_seq"], body["state"], body["reason"]) == (
        first.json()["id"],
        4,
        {"step": 2},
        "compaction",
    )
    assert api.get(f"/api/sessions/{chat_session.id}/").json()["tokens_since_checkpoint"] == 200

    assert [c["through_seq"] for c in api.get(url).json()["results"]] == [4, 2]

    restored = api.get(f"/api/sessions/{chat_session.id}/restore/").json()
    assert set(restored) == {"checkpoint", "messages", "next"}
    assert restored["next"] is None
    assert restored["checkpoint"] == body
    assert [m["seq"] for m in restored["messages"]] == [5, 6]


def test_restore_without_checkpoint(api: APIClient, chat_session: AgentSession) -> None:
    _fill(chat_session, 2)
    restored = api.get(f"/api/sessions/{chat_session.id}/restore/").json()
    assert restored["checkpoint"] is None
    assert [m["seq"] for m in restored["messages"]] == [1, 2]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"through_seq": 9, "reason": "manual"},
            {"through_seq": ["9 is past the session's last message (#2); give a seq from 0 to 2"]},
        ),
        ({"through_seq": 1, "reason": "whim"}, {"reason": ['"whim" is not a valid choice.']}),
        ({"through_seq": 1, "reason": "manual", "state": [1]}, {"state": ["must be a JSON object"]}),
        ({"reason": "manual"}, {"through_seq": ["This field is required."]}),
        (
            {"through_seq": 1, "reason": "manual", "summary": "x" * 200_001},
            {"summary": ["has 200001 characters; at most 200000 are allowed"]},
        ),
        (
            {"through_seq": 1, "reason": "manual", "parent": 424242},
            {"parent": ["no checkpoint 424242 in this session"]},
        ),
    ],
)
def test_checkpoint_create_rejects_bad_input(
    api: APIClient, chat_session: AgentSession, body: dict[str, Any], fields: dict[str, list[str]]
) -> None:
    _fill(chat_session, 2)
    status, _, got = _error(api.post(f"/api/sessions/{chat_session.id}/checkpoints/", body))
    assert (status, got) == (400, fields)
    assert not Checkpoint.objects.exists()


def test_checkpoint_on_archived_session_is_409(api: APIClient, chat_session: AgentSession) -> None:
    session_archive(session_id=chat_session.id)
    response = api.post(f"/api/sessions/{chat_session.id}/checkpoints/", {"through_seq": 0, "reason": "manual"})
    assert response.status_code == 409


# --- Runs and events ------------------------------------------------------------------------


def test_run_lifecycle_over_the_api(api: APIClient, chat_session: AgentSession) -> None:
    created = api.post("/api/runs/", {"session": str(chat_session.id)})
    assert created.status_code == 201
    run = created.json()
    assert set(run) == {
        "id",
        "session",
        "route",
        "status",
        "error",
        "cancel_reason",
        "event_count",
        "created",
        "started_at",
        "finished_at",
        "message_seq",
        "purpose",
        "attempt",
        "cancel_requested_at",
        "lease_expires_at",
        "agent",
        "parent",
        "tool_call_id",
    }
    assert (run["session"], run["route"], run["status"], run["event_count"]) == (
        str(chat_session.id),
        "replay",
        "queued",
        0,
    )
    events_url = f"/api/runs/{run['id']}/events/"
    posted = [
        api.post(events_url, {"type": "run_started"}),
        api.post(events_url, {"type": "text_delta", "payload": {"text": "Hello"}}),
        api.post(events_url, {"type": "text_delta", "payload": {"text": ", world"}}),
        api.post(events_url, {"type": "usage", "payload": {"input_tokens": 5, "output_tokens": 2}}),
        api.post(events_url, {"type": "run_finished", "payload": {"status": "completed"}}),
    ]
    assert [r.status_code for r in posted] == [201] * 5
    assert [r.json()["index"] for r in posted] == [1, 2, 3, 4, 5]
    assert set(posted[0].json()) == {"index", "type", "payload", "created"}

    detail = api.get(f"/api/runs/{run['id']}/").json()
    assert (detail["status"], detail["event_count"]) == ("completed", 5)
    assert detail["finished_at"] is not None
    assert api.get(f"/api/runs/{run['id']}/text/").json() == {"run": run["id"], "text": "Hello, world"}
    page = api.get(f"{events_url}?page_size=2").json()
    assert [e["index"] for e in page["results"]] == [1, 2]
    assert [e["index"] for e in api.get(page["next"]).json()["results"]] == [3, 4]
    assert [e["type"] for e in api.get(f"{events_url}?after_index=3").json()["results"]] == ["usage", "run_finished"]

    late = api.post(events_url, {"type": "text_delta", "payload": {"text": "!"}})
    assert _error(late) == (
        409,
        "run: is completed; a finished run takes no more events",
        {"run": ["is completed; a finished run takes no more events"]},
    )
    assert _error(api.post(f"/api/runs/{run['id']}/cancel/", {"reason": "x"}))[0] == 409


def test_run_create_running_on_named_route(api: APIClient, chat_session: AgentSession) -> None:
    ModelRoute.objects.create(
        alias="alt", provider=Provider.objects.get(), model_id="m", context_window_tokens=100, max_output_tokens=10
    )
    body = api.post("/api/runs/", {"session": str(chat_session.id), "route": "alt", "status": "running"}).json()
    assert (body["route"], body["status"], body["event_count"]) == ("alt", "running", 1)
    assert body["started_at"] is not None


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        ({}, 400, {"session": ["This field is required."]}),
        ({"session": UNKNOWN}, 404, {"session": [f"no session {UNKNOWN}"]}),
        ({"session": "nope"}, 404, {"session": ["no session nope"]}),
        ({"session": "{sid}", "status": "completed"}, 400, {"status": ["'completed': a new run is queued or running"]}),
        ({"session": "{sid}", "status": "done"}, 400, {"status": ['"done" is not a valid choice.']}),
        (
            {"session": "{sid}", "route": "nope"},
            400,
            {"route": ["no model route 'nope'; use an alias from /api/config/routes/"]},
        ),
    ],
)
def test_run_create_rejects_bad_input(
    api: APIClient, chat_session: AgentSession, body: dict[str, str], status: int, fields: dict[str, list[str]]
) -> None:
    body = {key: value.replace("{sid}", str(chat_session.id)) for key, value in body.items()}
    got_status, _, got = _error(api.post("/api/runs/", body))
    assert (got_status, got) == (status, fields)
    assert not Run.objects.exists()


def test_run_on_archived_session_is_409(api: APIClient, chat_session: AgentSession) -> None:
    session_archive(session_id=chat_session.id)
    assert _error(api.post("/api/runs/", {"session": str(chat_session.id)}))[0] == 409


def test_event_contract_errors_are_400_with_paths(api: APIClient, chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    url = f"/api/runs/{run.id}/events/"
    assert _error(api.post(url, {"type": "tool_call", "payload": {"id": "c", "name": "n"}}))[2] == {
        "payload.arguments": ["required: an object"]
    }
    assert _error(api.post(url, {"type": "bogus"}))[2] == {"type": ['"bogus" is not a valid choice.']}
    assert _error(api.post(url, {"type": "text_delta", "payload": {"text": "x" * 200_001}}))[2] == {
        "payload.text": ["has 200001 characters; at most 200000 are allowed"]
    }
    run.refresh_from_db()
    assert run.event_count == 1


def test_queued_run_refuses_deltas_with_409(api: APIClient, chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id)
    response = api.post(f"/api/runs/{run.id}/events/", {"type": "text_delta", "payload": {"text": "x"}})
    assert _error(response)[0:2] == (409, "run: is queued; append run_started before text_delta (or cancel the run)")


def test_error_then_finish_over_the_api(api: APIClient, chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    url = f"/api/runs/{run.id}/events/"
    assert api.post(url, {"type": "error", "payload": {"message": "overloaded", "code": "529"}}).status_code == 201
    assert api.post(url, {"type": "run_finished", "payload": {"status": "completed"}}).status_code == 409
    assert api.post(url, {"type": "run_finished", "payload": {"status": "failed"}}).status_code == 201
    body = api.get(f"/api/runs/{run.id}/").json()
    assert (body["status"], body["error"]) == ("failed", "overloaded")


def test_cancel_records_reason_and_validates(api: APIClient, chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    assert _error(api.post(f"/api/runs/{run.id}/cancel/", {"reason": "r" * 2001}))[0] == 400
    response = api.post(f"/api/runs/{run.id}/cancel/", {"reason": "user pressed stop"})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_reason"]) == ("cancelled", "user pressed stop")


@pytest.mark.parametrize("run_id", [UNKNOWN, "not-a-uuid"])
def test_unknown_or_malformed_run_ids_are_404(api: APIClient, replay_route: ModelRoute, run_id: str) -> None:
    for response in (
        api.get(f"/api/runs/{run_id}/"),
        api.get(f"/api/runs/{run_id}/events/"),
        api.post(f"/api/runs/{run_id}/events/", {"type": "run_started"}),
        api.post(f"/api/runs/{run_id}/cancel/", {"reason": "x"}),
        api.get(f"/api/runs/{run_id}/text/"),
    ):
        assert _error(response) == (404, f"run: no run {run_id}", {"run": [f"no run {run_id}"]})


def test_run_list_filters(api: APIClient, chat_session: AgentSession) -> None:
    other = session_create(owner=op_user(), title="other")
    # One open chat run per session: the first is finished before the second opens.
    done = run_create(session_id=chat_session.id, status="running")
    run_finish(run_id=done.id, status="completed")
    queued = run_create(session_id=chat_session.id)
    elsewhere = run_create(session_id=other.id)
    assert [r["id"] for r in api.get("/api/runs/").json()["results"]] == [
        str(elsewhere.id),
        str(queued.id),
        str(done.id),
    ]
    by_session = api.get(f"/api/runs/?session={chat_session.id}").json()["results"]
    assert [r["id"] for r in by_session] == [str(queued.id), str(done.id)]
    by_status = api.get(f"/api/runs/?session={chat_session.id}&status=queued").json()["results"]
    assert [r["id"] for r in by_status] == [str(queued.id)]
    assert _error(api.get("/api/runs/?session=nope"))[2] == {"session": ["Must be a valid UUID."]}
    assert _error(api.get("/api/runs/?status=lost"))[2] == {"status": ['"lost" is not a valid choice.']}


# --- Pinned query counts: the same at 1 row and at 20 ---------------------------------------


@pytest.mark.parametrize("rows", [1, 20])
def test_list_endpoints_run_a_constant_number_of_queries(
    api: APIClient, replay_route: ModelRoute, django_assert_num_queries: DjangoAssertNumQueries, rows: int
) -> None:
    sessions = [session_create(owner=op_user(), title=f"s{n}") for n in range(rows)]
    session = sessions[0]
    _fill(session, rows)
    for through in range(1, rows + 1):
        checkpoint_create(session_id=session.id, through_seq=through, reason="manual", summary="So far")
    finished = []  # a session holds one open chat run at a time
    for _ in range(rows - 1):
        done = run_create(session_id=session.id, status="running")
        finished.append(run_finish(run_id=done.id, status="completed"))
    runs = [run_create(session_id=session.id, status="running"), *finished]
    for n in range(rows - 1):
        run_event_append(run_id=runs[0].id, event_type="text_delta", payload={"text": str(n)})

    # 1: sessions joined to their route (cursor page of page_size + 1 rows), 2: their tags.
    with django_assert_num_queries(2):
        assert len(api.get("/api/sessions/").json()["results"]) == rows
    # 1: the session (404 check), 2: the page of messages by seq.
    with django_assert_num_queries(2):
        assert len(api.get(f"/api/sessions/{session.id}/messages/").json()["results"]) == rows
    # 1: the session, 2: the page of checkpoints.
    with django_assert_num_queries(2):
        assert len(api.get(f"/api/sessions/{session.id}/checkpoints/").json()["results"]) == rows
    # 1: the session joined to its route, provider and latest checkpoint, 2: that checkpoint is on
    # the active path, 3: the path's messages after it, walked from the leaf.
    with django_assert_num_queries(3):
        api.get(f"/api/sessions/{session.id}/restore/")
    # 1: runs joined to their route.
    with django_assert_num_queries(1):
        assert len(api.get(f"/api/runs/?session={session.id}").json()["results"]) == rows
    # 1: the run (404 check), 2: the page of events by index.
    with django_assert_num_queries(2):
        assert len(api.get(f"/api/runs/{runs[0].id}/events/").json()["results"]) == rows
    # 1: the run, 2: the text_delta payloads in index order.
    with django_assert_num_queries(2):
        api.get(f"/api/runs/{runs[0].id}/text/")


def test_values_the_database_cannot_hold_are_400_not_500(api: APIClient, chat_session: AgentSession) -> None:
    messages_url = f"/api/sessions/{chat_session.id}/messages/"
    big = 2**40
    assert _error(api.post(messages_url, {"role": "user", "content": "x", "token_count": big}))[2] == {
        "token_count": [f"is {big}; at most 2147483647"]
    }
    assert _error(api.post(messages_url, {"role": "user", "content": "a\x00b"}))[2] == {
        "content": ["contains a NUL character (\\u0000); remove it"]
    }
    nul_part = [{"type": "tool_call", "id": "c", "name": "n", "arguments": {"q": "\x00"}}]
    assert _error(api.post(messages_url, {"role": "assistant", "parts": nul_part}))[2] == {
        "parts[0].arguments.q": ["contains a NUL character (\\u0000); remove it"]
    }
    assert _error(api.get(f"{messages_url}?after_seq={big}"))[2] == {
        "after_seq": ["Ensure this value is less than or equal to 2147483647."]
    }
    checkpoints_url = f"/api/sessions/{chat_session.id}/checkpoints/"
    assert _error(api.post(checkpoints_url, {"through_seq": 0, "reason": "manual", "parent": 2**70}))[2] == {
        "parent": ["must be a checkpoint id (a positive integer)"]
    }
    assert _error(api.post(checkpoints_url, {"through_seq": big, "reason": "manual"}))[2] == {
        "through_seq": [f"is {big}; at most 2147483647"]
    }
    assert _error(api.post(checkpoints_url, {"through_seq": 0, "reason": "manual", "state": {"k": "\x00"}}))[2] == {
        "state.k": ["contains a NUL character (\\u0000); remove it"]
    }
    run = run_create(session_id=chat_session.id, status="running")
    events_url = f"/api/runs/{run.id}/events/"
    assert _error(api.post(events_url, {"type": "text_delta", "payload": {"text": "\x00"}}))[2] == {
        "payload.text": ["contains a NUL character (\\u0000); remove it"]
    }
    assert _error(api.get(f"{events_url}?after_index={big}"))[0] == 400
    assert (Message.objects.count(), Checkpoint.objects.count(), TraceEvent.objects.count()) == (0, 0, 1)
