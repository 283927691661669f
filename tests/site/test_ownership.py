"""Each person's records are their own: another user's session, message, run, memory, episode,
attachment or usage is a 404 through the API (its existence is not revealed), lists and searches
show only one's own, and keys are unique per owner. Staff read only their own through the API.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from core.conversation.services import message_append, session_create
from core.models import AgentSession, Message, ModelRoute, Run, SessionStatus
from memory.context import context_inputs
from memory.models import DailyEpisode, LongTermMemory
from memory.services import memory_write
from telemetry.models import UsageEvent
from telemetry.selectors import rollup_differences
from tests.owners import op_user, plain_user

PIN = "my bank PIN is 4321"


def client_of(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def alice(db: None) -> User:
    return plain_user("alice")


@pytest.fixture
def bob(db: None) -> User:
    return plain_user("bob")


@pytest.fixture
def alice_session(replay_route: ModelRoute, alice: User) -> AgentSession:
    session = session_create(owner=alice, title="private", route_alias=replay_route.alias)
    message_append(session_id=session.pk, role="user", content=PIN)
    return session


def not_found(response: Any) -> None:
    assert response.status_code == 404, response.content
    assert b"4321" not in response.content


def test_reading_another_users_pin_message_is_not_found(alice_session: AgentSession, bob: User, alice: User) -> None:
    for reader in (client_of(bob), client_of(op_user())):  # staff read only their own through the API
        not_found(reader.get(f"/api/sessions/{alice_session.pk}/messages/"))
        not_found(reader.get(f"/api/sessions/{alice_session.pk}/"))
        not_found(reader.get(f"/api/sessions/{alice_session.pk}/restore/"))
        not_found(reader.get(f"/api/sessions/{alice_session.pk}/context/"))
        not_found(reader.get(f"/api/sessions/{alice_session.pk}/checkpoints/"))
        listed = reader.get("/api/sessions/")
        assert listed.status_code == 200
        assert listed.json()["results"] == []
    mine = client_of(alice).get(f"/api/sessions/{alice_session.pk}/messages/")
    assert [m["content"] for m in mine.json()["results"]] == [PIN]


def test_archiving_another_users_session_is_not_found_and_changes_nothing(
    alice_session: AgentSession, bob: User
) -> None:
    bob_api = client_of(bob)
    not_found(bob_api.post(f"/api/sessions/{alice_session.pk}/archive/"))
    not_found(bob_api.patch(f"/api/sessions/{alice_session.pk}/", {"title": "mine now"}, format="json"))
    not_found(bob_api.delete(f"/api/sessions/{alice_session.pk}/"))
    not_found(bob_api.post(f"/api/sessions/{alice_session.pk}/messages/", {"role": "user", "content": "hi"}))
    not_found(bob_api.post(f"/api/sessions/{alice_session.pk}/checkpoints/", {"through_seq": 1, "reason": "manual"}))
    not_found(bob_api.post(f"/api/sessions/{alice_session.pk}/turns/", {"text": "hello"}))
    not_found(bob_api.post("/api/runs/", {"session": str(alice_session.pk)}, format="json"))
    session = AgentSession.objects.get(pk=alice_session.pk)
    assert (session.status, session.title, session.message_count) == (SessionStatus.ACTIVE, "private", 1)
    assert list(Message.objects.filter(session=session).values_list("content", flat=True)) == [PIN]
    assert not Run.objects.exists()


def test_another_users_run_and_its_trace_are_not_found(alice_session: AgentSession, alice: User, bob: User) -> None:
    run_id = client_of(alice).post("/api/runs/", {"session": str(alice_session.pk)}, format="json").json()["id"]
    assert Run.objects.get(pk=run_id).owner_id == alice.pk
    bob_api = client_of(bob)
    not_found(bob_api.get(f"/api/runs/{run_id}/"))
    not_found(bob_api.get(f"/api/runs/{run_id}/text/"))
    not_found(bob_api.get(f"/api/runs/{run_id}/events/"))
    not_found(bob_api.post(f"/api/runs/{run_id}/events/", {"type": "run_started", "payload": {}}, format="json"))
    not_found(bob_api.post(f"/api/runs/{run_id}/cancel/", {"reason": "mine"}, format="json"))
    assert bob_api.get("/api/runs/").json()["results"] == []
    assert bob_api.get(f"/api/runs/?session={alice_session.pk}").json()["results"] == []
    assert Run.objects.get(pk=run_id).status == "queued"


def test_a_memory_key_reused_by_another_user_makes_a_second_memory(alice: User, bob: User) -> None:
    first = client_of(alice).post("/api/memory/long-term/", {"kind": "fact", "content": PIN, "key": "pin"})
    assert first.status_code == 201
    second = client_of(bob).post("/api/memory/long-term/", {"kind": "fact", "content": "Bob's note", "key": "pin"})
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    rows = LongTermMemory.objects.order_by("id").values_list("owner_id", "key", "content")
    assert list(rows) == [(alice.pk, "pin", PIN), (bob.pk, "pin", "Bob's note")]
    bob_api = client_of(bob)
    not_found(bob_api.get(f"/api/memory/long-term/{first.json()['id']}/"))
    not_found(bob_api.patch(f"/api/memory/long-term/{first.json()['id']}/", {"content": "x"}, format="json"))
    not_found(bob_api.delete(f"/api/memory/long-term/{first.json()['id']}/"))
    assert [m["content"] for m in bob_api.get("/api/memory/long-term/?q=bank PIN").json()["results"]] == []
    assert [m["content"] for m in bob_api.get("/api/memory/long-term/?key=pin").json()["results"]] == ["Bob's note"]
    assert LongTermMemory.objects.get(pk=first.json()["id"]).content == PIN


def test_episodes_are_unique_per_owner_and_day(alice: User, bob: User) -> None:
    day = {"day": "2025-01-02", "timezone": "UTC", "source": "manual"}
    assert client_of(alice).post("/api/memory/episodes/", {**day, "summary": "Alice's day"}).status_code == 201
    assert client_of(bob).post("/api/memory/episodes/", {**day, "summary": "Bob's day"}).status_code == 201
    assert DailyEpisode.objects.count() == 2
    assert [e["summary"] for e in client_of(bob).get("/api/memory/episodes/").json()["results"]] == ["Bob's day"]


def test_the_context_of_a_session_holds_only_its_owners_memories(
    alice_session: AgentSession, replay_route: ModelRoute, bob: User, alice: User
) -> None:
    memory_write(owner=alice, kind="fact", content=PIN, pinned=True)
    memory_write(owner=alice, kind="fact", content="the bank is downtown")
    bob_session = session_create(owner=bob, title="bob", route_alias=replay_route.alias)
    message_append(session_id=bob_session.pk, role="user", content="where is the bank?")
    bundle = context_inputs(session_id=bob_session.pk)
    assert (bundle.pinned_memories, bundle.relevant_memories) == ((), ())
    mine = context_inputs(session_id=alice_session.pk)
    assert [m.content for m in mine.pinned_memories] == [PIN]


def test_usage_is_per_user_and_staff_read_everyones(alice_session: AgentSession, alice: User, bob: User) -> None:
    recorded = client_of(alice).post(
        "/api/telemetry/usage/",
        {"request_id": "a-1", "route": "replay", "session": str(alice_session.pk), "input_tokens": 7},
        format="json",
    )
    assert recorded.status_code == 201, recorded.content
    assert UsageEvent.objects.get().owner_id == alice.pk
    bob_api = client_of(bob)
    assert bob_api.get("/api/telemetry/usage/").json()["results"] == []
    assert bob_api.get("/api/telemetry/summary/").json()["all_time"]["input_tokens"] == 0
    not_found(bob_api.get(f"/api/telemetry/summary/?session={alice_session.pk}"))
    refused = bob_api.get("/api/telemetry/summary/?all=true")
    assert refused.status_code == 403
    assert "Only staff read every user's usage" in refused.json()["detail"]
    taken = bob_api.post("/api/telemetry/usage/", {"request_id": "a-1", "route": "replay", "input_tokens": 7})
    assert taken.status_code == 409
    assert client_of(alice).get("/api/telemetry/summary/").json()["all_time"]["input_tokens"] == 7
    staff = client_of(op_user())
    assert staff.get("/api/telemetry/summary/").json()["all_time"]["input_tokens"] == 0
    assert staff.get("/api/telemetry/summary/?all=true").json()["all_time"]["input_tokens"] == 7
    assert len(staff.get("/api/telemetry/usage/?all=true").json()["results"]) == 1
    assert rollup_differences() == []


def test_bootstrap_counts_only_the_users_own_records_and_is_private(
    alice_session: AgentSession, alice: User, bob: User
) -> None:
    memory_write(owner=alice, kind="fact", content=PIN, pinned=True)
    day = dt.date(2025, 1, 1)
    from memory.services import episode_upsert

    episode_upsert(owner=alice, day=day, timezone_name="UTC", summary="a day", source="manual")
    theirs = client_of(alice).get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    ours = client_of(bob).get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert "private" in ours["Cache-Control"]
    assert (theirs.json()["sessions"]["total"], ours.json()["sessions"]["total"]) == (1, 0)
    assert ours.json()["sessions"]["recent"] == []
    assert (theirs.json()["memory"]["long_term"], ours.json()["memory"]["long_term"]) == (1, 0)
    assert (theirs.json()["memory"]["messages"], ours.json()["memory"]["messages"]) == (1, 0)
    assert ours.json()["memory"]["latest_episode_day"] is None
    assert theirs.json()["memory"]["latest_episode_day"] == "2025-01-01"
    assert theirs["ETag"] != ours["ETag"]
