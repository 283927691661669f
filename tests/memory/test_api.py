"""The memory API: every path, its 400/404/409 answers, search ordering, and pinned query counts."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from core.models import AgentSession, Message
from memory.models import AttachmentSummary, DailyEpisode, LongTermMemory
from memory.services import episode_upsert, memory_write
from tests.owners import op_user

pytestmark = pytest.mark.django_db

LONG_TERM = "/api/memory/long-term/"
EPISODES = "/api/memory/episodes/"
ATTACHMENTS = "/api/memory/attachments/"
SHA = "c" * 64


def context_url(session_id: object) -> str:
    return f"/api/sessions/{session_id}/context/"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", LONG_TERM),
        ("post", LONG_TERM),
        ("get", f"{LONG_TERM}1/"),
        ("patch", f"{LONG_TERM}1/"),
        ("put", f"{LONG_TERM}1/"),
        ("delete", f"{LONG_TERM}1/"),
        ("get", EPISODES),
        ("post", EPISODES),
        ("get", f"{EPISODES}1/"),
        ("get", ATTACHMENTS),
        ("post", ATTACHMENTS),
        ("get", f"{ATTACHMENTS}1/"),
        ("get", context_url("00000000-0000-0000-0000-000000000000")),
    ],
)
def test_every_path_requires_authentication(anon_api: APIClient, method: str, path: str) -> None:
    response = getattr(anon_api, method)(path)
    assert (response.status_code, response["WWW-Authenticate"]) == (401, "Token")
    assert response.json()["code"] == "not_authenticated"


# --- long-term memory ---------------------------------------------------------------------------


def test_create_then_same_key_updates_with_200(api: APIClient) -> None:
    created = api.post(LONG_TERM, {"kind": "preference", "content": "Metric units.", "key": "units", "pinned": True})
    assert created.status_code == 201
    body = created.json()
    assert {k: body[k] for k in ("kind", "content", "key", "importance", "pinned", "source_session")} == {
        "kind": "preference",
        "content": "Metric units.",
        "key": "units",
        "importance": 3,
        "pinned": True,
        "source_session": None,
    }
    again = api.post(LONG_TERM, {"kind": "preference", "content": "Imperial units.", "key": "units"})
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["content"], again.json()["pinned"]) == (
        body["id"],
        "Imperial units.",
        True,
    )
    assert LongTermMemory.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"content": "x"}, "kind", "This field is required."),
        ({"kind": "opinion", "content": "x"}, "kind", '"opinion" is not a valid choice.'),
        ({"kind": "fact", "content": "  "}, "content", "is empty; give some text"),
        (
            {"kind": "fact", "content": "x", "importance": 9},
            "importance",
            "9 is out of range; give a whole number from 1 to 5",
        ),
        (
            {"kind": "fact", "content": "x", "source_first_seq": 1, "source_last_seq": 1},
            "source_first_seq",
            "a message range needs a session; give the session the messages belong to",
        ),
    ],
)
def test_create_rejects_bad_input_with_field_details(
    api: APIClient, payload: dict[str, Any], field: str, message: str
) -> None:
    response = api.post(LONG_TERM, payload)
    assert response.status_code == 400
    assert response.json()["fields"] == {field: [message]}
    assert response.json()["code"] == "invalid"
    assert not LongTermMemory.objects.exists()


def test_create_with_unknown_source_session_is_404(api: APIClient) -> None:
    response = api.post(
        LONG_TERM, {"kind": "fact", "content": "x", "source_session": "00000000-0000-0000-0000-000000000000"}
    )
    assert response.status_code == 404
    assert response.json()["fields"] == {"source_session": ["no session 00000000-0000-0000-0000-000000000000"]}


def test_list_pages_newest_first_with_filters(
    api: APIClient, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    ids = [
        memory_write(owner=op_user(), kind="fact" if i % 2 else "preference", content=f"m{i}", pinned=i == 3).memory.pk
        for i in range(5)
    ]
    # One SELECT of the page (cursor pagination: no COUNT).
    with django_assert_num_queries(1):
        response = api.get(LONG_TERM, {"page_size": 2})
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [ids[4], ids[3]]
    assert response.json()["next"] is not None
    following = api.get(response.json()["next"])
    assert [row["id"] for row in following.json()["results"]] == [ids[2], ids[1]]
    assert [row["id"] for row in api.get(LONG_TERM, {"kind": "fact"}).json()["results"]] == [ids[3], ids[1]]
    assert [row["id"] for row in api.get(LONG_TERM, {"pinned": "true"}).json()["results"]] == [ids[3]]
    assert api.get(LONG_TERM, {"kind": "nope"}).json()["fields"] == {"kind": ['"nope" is not a valid choice.']}


def test_search_answers_best_match_first(api: APIClient, django_assert_num_queries: DjangoAssertNumQueries) -> None:
    weak = memory_write(owner=op_user(), kind="fact", content="tea " + " ".join(f"word{i}" for i in range(20))).memory
    strong = memory_write(owner=op_user(), kind="fact", content="tea tea tea").memory
    memory_write(owner=op_user(), kind="fact", content="coffee only")
    # The ranked full-text SELECT.
    with django_assert_num_queries(1):
        response = api.get(LONG_TERM, {"q": "TEA"})
    assert response.status_code == 200
    assert response.json()["next"] is None
    assert [row["id"] for row in response.json()["results"]] == [strong.pk, weak.pk]
    assert [row["id"] for row in api.get(LONG_TERM, {"q": "tea", "limit": "1"}).json()["results"]] == [strong.pk]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("", 0),
        ("   ", 0),
        ('"', 0),
        ("((", 0),
        ("tea OR", 0),  # "or" is a word the memory does not hold
        ("tea)", 1),
        ('"tea', 1),
        ("tea*", 1),
        ("NEAR(tea)", 0),
        ("'; DROP TABLE memory_longtermmemory; --", 0),
        ("*", 0),
    ],
)
def test_search_with_hostile_text_is_never_an_error(api: APIClient, query: str, found: int) -> None:
    memory_write(owner=op_user(), kind="fact", content="tea tea")
    response = api.get(LONG_TERM, {"q": query})
    assert response.status_code == 200
    assert len(response.json()["results"]) == found
    assert LongTermMemory.objects.count() == 1


def test_search_limit_is_validated(api: APIClient) -> None:
    response = api.get(LONG_TERM, {"q": "tea", "limit": "500"})
    assert response.status_code == 400
    assert response.json()["fields"] == {"limit": ["Ensure this value is less than or equal to 100."]}


def test_retrieve_patch_put_delete(api: APIClient) -> None:
    memory = memory_write(owner=op_user(), kind="fact", content="old", key="k1").memory
    url = f"{LONG_TERM}{memory.pk}/"
    assert api.get(url).json()["content"] == "old"
    patched = api.patch(url, {"pinned": True, "importance": 5})
    assert patched.status_code == 200
    assert (patched.json()["pinned"], patched.json()["importance"], patched.json()["key"]) == (True, 5, "k1")
    replaced = api.put(url, {"kind": "instruction", "content": "new"})
    assert replaced.status_code == 200
    assert {k: replaced.json()[k] for k in ("kind", "content", "key", "importance", "pinned")} == {
        "kind": "instruction",
        "content": "new",
        "key": None,
        "importance": 3,
        "pinned": False,
    }
    assert api.put(url, {"kind": "fact"}).json()["fields"] == {"content": ["This field is required."]}
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert api.delete(url).json() == {
        "detail": f"memory: no long-term memory {memory.pk}",
        "code": "not_found",
        "fields": {"memory": [f"no long-term memory {memory.pk}"]},
    }


def test_patch_to_a_taken_key_is_409_and_unknown_ids_are_404(api: APIClient) -> None:
    memory_write(owner=op_user(), kind="fact", content="a", key="taken")
    other = memory_write(owner=op_user(), kind="fact", content="b").memory
    response = api.patch(f"{LONG_TERM}{other.pk}/", {"key": "taken"})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert response.json()["fields"] == {
        "key": ["'taken' belongs to another memory; write to that key or choose another"]
    }
    assert api.patch(f"{LONG_TERM}999999/", {"pinned": True}).status_code == 404
    assert api.get(f"{LONG_TERM}abc/").status_code == 404
    assert api.put(f"{LONG_TERM}999999/", {"kind": "fact", "content": "x"}).status_code == 404


# --- episodes -----------------------------------------------------------------------------------


def test_episode_create_upsert_list_and_filters(
    api: APIClient, talked_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    created = api.post(
        EPISODES,
        {"day": "2025-02-01", "session": str(talked_session.id), "summary": "Day one.", "first_seq": 1, "last_seq": 2},
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["timezone"], body["source"], body["token_count"], body["session"]) == (
        "UTC",
        "manual",
        2,
        str(talked_session.id),
    )
    again = api.post(
        EPISODES,
        {"day": "2025-02-01", "session": str(talked_session.id), "summary": "Day one, redone.", "source": "compactor"},
    )
    assert (again.status_code, again.json()["id"], again.json()["first_seq"]) == (200, body["id"], None)
    whole = api.post(EPISODES, {"day": "2025-02-02", "summary": "Everything.", "timezone": "Europe/Paris"})
    assert (whole.status_code, whole.json()["session"], whole.json()["timezone"]) == (201, None, "Europe/Paris")

    # One SELECT of the page.
    with django_assert_num_queries(1):
        listed = api.get(EPISODES)
    assert [row["day"] for row in listed.json()["results"]] == ["2025-02-02", "2025-02-01"]
    assert [row["day"] for row in api.get(EPISODES, {"session": str(talked_session.id)}).json()["results"]] == [
        "2025-02-01"
    ]
    assert [row["day"] for row in api.get(EPISODES, {"whole_day": "true"}).json()["results"]] == ["2025-02-02"]
    assert [row["day"] for row in api.get(EPISODES, {"day_to": "2025-02-01"}).json()["results"]] == ["2025-02-01"]
    assert [
        row["day"] for row in api.get(EPISODES, {"day_from": "2025-02-02", "source": "manual"}).json()["results"]
    ] == ["2025-02-02"]
    assert api.get(f"{EPISODES}{body['id']}/").json()["summary"] == "Day one, redone."


def test_episode_errors(api: APIClient, talked_session: AgentSession) -> None:
    assert api.get(EPISODES, {"session": "nope"}).json()["fields"] == {"session": ["Must be a valid UUID."]}
    bad_zone = api.post(EPISODES, {"day": "2025-02-01", "summary": "x", "timezone": "Nowhere/City"})
    assert bad_zone.status_code == 400
    assert list(bad_zone.json()["fields"]) == ["timezone"]
    bad_day = api.post(EPISODES, {"day": "yesterday", "summary": "x"})
    assert list(bad_day.json()["fields"]) == ["day"]
    unknown = api.post(
        EPISODES, {"day": "2025-02-01", "summary": "x", "session": "00000000-0000-0000-0000-000000000000"}
    )
    assert unknown.status_code == 404
    assert api.get(f"{EPISODES}424242/").status_code == 404
    assert not DailyEpisode.objects.exists()


# --- attachments --------------------------------------------------------------------------------


def _payload(session: AgentSession, seq: int, **overrides: Any) -> dict[str, Any]:
    message = Message.objects.get(session=session, seq=seq)
    return {
        "session": str(session.id),
        "message": message.pk,
        "sha256": SHA,
        "kind": "file",
        "display_name": "report.pdf",
        "mime_type": "application/pdf",
        "size_bytes": 2048,
        "summary": "Quarterly report.",
        **overrides,
    }


def test_attachment_create_share_list_and_filters(
    api: APIClient, talked_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    first = api.post(ATTACHMENTS, _payload(talked_session, 1))
    assert first.status_code == 201
    body = first.json()
    assert {k: body[k] for k in ("message_seq", "sha256", "size_bytes", "summary", "token_count", "kind")} == {
        "message_seq": 1,
        "sha256": SHA,
        "size_bytes": 2048,
        "summary": "Quarterly report.",
        "token_count": 5,
        "kind": "file",
    }
    assert api.post(ATTACHMENTS, _payload(talked_session, 1)).status_code == 200
    shared = api.post(ATTACHMENTS, _payload(talked_session, 3, summary="ignored", display_name="copy.pdf"))
    assert (shared.status_code, shared.json()["summary"]) == (201, "Quarterly report.")
    # One SELECT of the page joined to the shared content and the message.
    with django_assert_num_queries(1):
        listed = api.get(ATTACHMENTS)
    assert [row["display_name"] for row in listed.json()["results"]] == ["copy.pdf", "report.pdf"]
    assert len(api.get(ATTACHMENTS, {"sha256": SHA.upper()}).json()["results"]) == 2
    assert len(api.get(ATTACHMENTS, {"session": str(talked_session.id), "kind": "url"}).json()["results"]) == 0
    assert api.get(f"{ATTACHMENTS}{body['id']}/").json()["display_name"] == "report.pdf"
    assert AttachmentSummary.objects.count() == 2


def test_attachment_errors(api: APIClient, talked_session: AgentSession) -> None:
    bad = api.post(ATTACHMENTS, _payload(talked_session, 1, sha256="nothex"))
    assert (bad.status_code, bad.json()["fields"]) == (
        400,
        {"sha256": ["must be 64 hex characters (the content's SHA-256)"]},
    )
    missing = api.post(ATTACHMENTS, {"session": str(talked_session.id)})
    assert missing.status_code == 400
    assert set(missing.json()["fields"]) == {"message", "sha256", "kind", "display_name", "mime_type", "size_bytes"}
    unknown_message = api.post(ATTACHMENTS, _payload(talked_session, 1, message=999999))
    assert unknown_message.status_code == 404
    api.post(ATTACHMENTS, _payload(talked_session, 1))
    conflict = api.post(ATTACHMENTS, _payload(talked_session, 2, size_bytes=1))
    assert (conflict.status_code, list(conflict.json()["fields"])) == (409, ["size_bytes"])
    assert api.get(f"{ATTACHMENTS}999999/").status_code == 404


# --- context ------------------------------------------------------------------------------------


def test_context_with_budget(
    api: APIClient, talked_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    memory_write(owner=op_user(), kind="instruction", content="Be brief.", pinned=True)  # 3 tokens
    episode_upsert(
        owner=op_user(), day=datetime.date(2025, 1, 1), timezone_name="UTC", summary="Yesterday.", source="manual"
    )
    # session_get, pinned memories, the path's latest user message, relevance search, the checkpoints
    # that may fold the path (none), recent episodes, one chunk of the path from the leaf, and (as the
    # budget left older messages unread) the count of the path's messages; then the session's latest
    # compaction run (why it failed, if it did).
    with django_assert_num_queries(9):
        response = api.get(context_url(talked_session.id), {"budget": 26})
    assert response.status_code == 200
    body = response.json()
    assert (body["budget_tokens"], body["total_tokens"], body["messages_omitted"]) == (26, 26, 2)
    assert [m["content"] for m in body["pinned_memories"]] == ["Be brief."]
    assert [e["summary"] for e in body["episodes"]] == ["Yesterday."]
    assert [m["seq"] for m in body["messages"]] == [3, 4]
    assert body["checkpoint"] is None


def test_context_default_budget_is_the_route_window_minus_output(api: APIClient, talked_session: AgentSession) -> None:
    response = api.get(context_url(talked_session.id))
    assert (response.status_code, response.json()["budget_tokens"]) == (200, 7_000)
    assert [m["seq"] for m in response.json()["messages"]] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("0", "0 is out of range; give a whole number of tokens from 1 to 2000000"),
        ("-3", "-3 is out of range; give a whole number of tokens from 1 to 2000000"),
        ("9999999", "9999999 is out of range; give a whole number of tokens from 1 to 2000000"),
        ("ten", "A valid integer is required."),
    ],
)
def test_context_budget_is_validated(api: APIClient, talked_session: AgentSession, budget: str, message: str) -> None:
    response = api.get(context_url(talked_session.id), {"budget": budget})
    assert response.status_code == 400
    assert response.json()["fields"] == {"budget": [message]}


def test_context_of_unknown_session_is_404(api: APIClient) -> None:
    response = api.get(context_url("00000000-0000-0000-0000-000000000000"), {"budget": 10})
    assert response.status_code == 404
    assert api.get("/api/sessions/not-a-uuid/context/").status_code == 404


def test_attachment_by_session_and_seq_from_a_message_response(api: APIClient, talked_session: AgentSession) -> None:
    """Everything the attachment endpoint asks for is handed out by the message API: `id` and `seq`."""
    listed = api.get(f"/api/sessions/{talked_session.id}/messages/").json()["results"]
    second = listed[1]
    assert {"id", "seq"} <= set(second)

    by_id = api.post(ATTACHMENTS, _payload(talked_session, 2, message=second["id"]))
    assert (by_id.status_code, by_id.json()["message"], by_id.json()["message_seq"]) == (201, second["id"], 2)
    payload = _payload(talked_session, 2, sha256="b" * 64)
    del payload["message"]
    by_seq = api.post(ATTACHMENTS, {**payload, "message_seq": second["seq"]})
    assert (by_seq.status_code, by_seq.json()["message"], by_seq.json()["message_seq"]) == (201, second["id"], 2)

    both = api.post(ATTACHMENTS, {**payload, "message": second["id"], "message_seq": 2})
    assert (both.status_code, list(both.json()["fields"])) == (400, ["message"])
    assert "both were given" in both.json()["fields"]["message"][0]
    neither = api.post(ATTACHMENTS, payload)
    assert (neither.status_code, list(neither.json()["fields"])) == (400, ["message"])
    unknown_seq = api.post(ATTACHMENTS, {**payload, "message_seq": 999})
    assert (unknown_seq.status_code, list(unknown_seq.json()["fields"])) == (404, ["message_seq"])
