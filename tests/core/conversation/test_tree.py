"""Conversations as trees: parents, the stored leaf, the active path and what reads it, on both databases.

Regenerating a reply or editing a message appends a sibling; the session's leaf says which branch
the person is on, and everything that reads "the conversation" (restore, context, fullness, the
next turn) reads the path from that leaf to the root.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import DjangoAssertNumQueries
from rest_framework.test import APIClient

from core.conversation.selectors import (
    UNBOUNDED_BYTES,
    path_contains,
    path_page,
    session_get,
    session_restore,
)
from core.conversation.services import (
    checkpoint_create,
    message_append,
    session_leaf_set,
)
from core.errors import ConflictError, InvalidInputError
from core.models import AgentSession, Message
from memory.context import context_inputs

pytestmark = pytest.mark.django_db


def _say(session: AgentSession, role: str, content: str, parent_seq: int | None = None, tokens: int = 10) -> Message:
    return message_append(
        session_id=session.pk, role=role, content=content, token_count=tokens, parent_seq=parent_seq
    ).record


def _branched(session: AgentSession) -> None:
    """1 user → 2 assistant → 3 user "a" → 4 reply; 5 user "b" is an edit of 3 (sibling), 6 its reply."""
    _say(session, "user", "hello")
    _say(session, "assistant", "hi")
    _say(session, "user", "branch a")
    _say(session, "assistant", "reply a")
    _say(session, "user", "branch b", parent_seq=2)
    _say(session, "assistant", "reply b")


def _parents(session: AgentSession) -> dict[int, int | None]:
    by_id = dict(Message.objects.filter(session=session).values_list("id", "seq"))
    rows = Message.objects.filter(session=session).values_list("seq", "parent_id")
    return {seq: by_id.get(parent) if parent else None for seq, parent in rows}


def test_appends_chain_under_the_leaf_and_move_it(chat_session: AgentSession) -> None:
    for text in ("one", "two", "three"):
        _say(chat_session, "user", text)
    assert _parents(chat_session) == {1: None, 2: 1, 3: 2}
    assert session_get(session_id=chat_session.pk).leaf == 3


def test_an_append_under_another_parent_is_a_sibling_and_the_new_leaf_with_seq_gapless(
    chat_session: AgentSession,
) -> None:
    _branched(chat_session)
    assert _parents(chat_session) == {1: None, 2: 1, 3: 2, 4: 3, 5: 2, 6: 5}
    session = session_get(session_id=chat_session.pk)
    assert (session.leaf, session.last_seq, session.message_count) == (6, 6, 6)
    # An edit of the first message is a second root.
    assert _say(chat_session, "user", "hello again", parent_seq=0).parent_id is None


@pytest.mark.fault
def test_an_unknown_parent_is_refused_and_nothing_is_written(chat_session: AgentSession) -> None:
    _say(chat_session, "user", "one")
    with pytest.raises(InvalidInputError) as caught:
        _say(chat_session, "user", "two", parent_seq=9)
    assert caught.value.fields == {
        "parent_seq": ["no message #9 in this session; give the seq of one of its messages, or 0"]
    }
    assert Message.objects.filter(session=chat_session).count() == 1


def test_a_client_id_retry_under_another_parent_is_a_conflict(chat_session: AgentSession) -> None:
    _say(chat_session, "user", "one")
    _say(chat_session, "user", "two")
    first = message_append(session_id=chat_session.pk, role="user", content="x", client_id="c1", parent_seq=1)
    again = message_append(session_id=chat_session.pk, role="user", content="x", client_id="c1", parent_seq=1)
    assert (again.created, again.record.pk) == (False, first.record.pk)
    with pytest.raises(ConflictError):
        message_append(session_id=chat_session.pk, role="user", content="x", client_id="c1", parent_seq=2)


def test_the_path_reads_only_the_active_branch(chat_session: AgentSession) -> None:
    _branched(chat_session)
    page = path_page(session_id=chat_session.pk, start_seq=6)
    assert [m.seq for m in page.messages] == [1, 2, 5, 6]
    session_leaf_set(session_id=chat_session.pk, seq=4)
    assert [m.seq for m in session_restore(session_id=chat_session.pk).messages] == [1, 2, 3, 4]
    assert path_contains(session_id=chat_session.pk, leaf=4, seq=3)
    assert not path_contains(session_id=chat_session.pk, leaf=4, seq=5)


def test_path_pages_walk_back_from_the_leaf_with_a_cursor(chat_session: AgentSession) -> None:
    for n in range(1, 8):
        _say(chat_session, "user", f"m{n}")
    first = path_page(session_id=chat_session.pk, start_seq=7, limit=3)
    assert ([m.seq for m in first.messages], first.next_before_seq) == ([5, 6, 7], 5)
    second = path_page(session_id=chat_session.pk, start_seq=5, before=True, limit=3)
    assert ([m.seq for m in second.messages], second.next_before_seq) == ([2, 3, 4], 2)
    last = path_page(session_id=chat_session.pk, start_seq=2, before=True, limit=3)
    assert ([m.seq for m in last.messages], last.next_before_seq) == ([1], None)
    floored = path_page(session_id=chat_session.pk, start_seq=7, after_seq=5, limit=3)
    assert ([m.seq for m in floored.messages], floored.next_before_seq) == ([6, 7], None)


def _deep(session: AgentSession, depth: int) -> None:
    rows = [
        Message(session=session, seq=seq, role="user", content=f"m{seq}", token_count=1) for seq in range(1, depth + 1)
    ]
    Message.objects.bulk_create(rows, batch_size=500)
    ids = dict(Message.objects.filter(session=session).values_list("seq", "id"))
    updated = [Message(id=ids[seq], parent_id=ids[seq - 1]) for seq in range(2, depth + 1)]
    Message.objects.bulk_update(updated, ["parent"], batch_size=500)
    AgentSession.objects.filter(pk=session.pk).update(last_seq=depth, message_count=depth, leaf=depth)


@pytest.mark.parametrize("depth", [60, 3_000])
def test_the_last_50_messages_of_the_path_take_one_query_at_any_depth(
    chat_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries, depth: int
) -> None:
    _deep(chat_session, depth)
    # 1: the recursive walk from the leaf, 51 steps at most, with the page's byte window.
    with django_assert_num_queries(1):
        page = path_page(session_id=chat_session.pk, start_seq=depth, limit=50, budget_bytes=UNBOUNDED_BYTES)
    assert [m.seq for m in page.messages] == list(range(depth - 49, depth + 1))
    assert page.next_before_seq == depth - 49


def test_a_branch_switch_is_stored_and_survives_a_reload(api: APIClient, chat_session: AgentSession) -> None:
    """Open WebUI #29299 (children never persisted, branches gone after a reload) and LibreChat #3278
    (the selected sibling forgotten) cannot happen: the tree and the leaf are rows, read back fresh."""
    _branched(chat_session)
    answer = api.post(f"/api/sessions/{chat_session.pk}/leaf/", {"seq": 4}, format="json")
    assert (answer.status_code, answer.json()["leaf"]) == (200, 4)
    # A reload: every read below is a fresh query of the stored rows.
    assert AgentSession.objects.get(pk=chat_session.pk).leaf == 4
    assert api.get(f"/api/sessions/{chat_session.pk}/").json()["leaf"] == 4
    path = api.get(f"/api/sessions/{chat_session.pk}/path/").json()
    assert ([m["seq"] for m in path["results"]], path["next"]) == ([1, 2, 3, 4], None)
    siblings = api.get(f"/api/sessions/{chat_session.pk}/messages/5/siblings/").json()
    assert (siblings["position"], siblings["count"]) == (2, 2)
    assert [(s["seq"], s["leaf"]) for s in siblings["siblings"]] == [(3, 4), (5, 6)]


@pytest.mark.fault
def test_a_leaf_switch_refuses_an_unknown_message_with_the_field(api: APIClient, chat_session: AgentSession) -> None:
    _say(chat_session, "user", "one")
    answer = api.post(f"/api/sessions/{chat_session.pk}/leaf/", {"seq": 7}, format="json")
    assert answer.status_code == 400
    assert answer.json()["fields"] == {"seq": ["no message #7 in this session; give a seq from 1 to 1"]}
    assert api.post(f"/api/sessions/{chat_session.pk}/leaf/", {"seq": 2**40}, format="json").status_code == 400
    assert api.get(f"/api/sessions/{chat_session.pk}/messages/{2**40}/siblings/").status_code == 404


def test_path_pages_over_the_api_follow_next(api: APIClient, chat_session: AgentSession) -> None:
    for n in range(1, 6):
        _say(chat_session, "user", f"m{n}")
    body = api.get(f"/api/sessions/{chat_session.pk}/path/?page_size=2").json()
    seqs = [m["seq"] for m in body["results"]]
    while body["next"]:
        body = api.get(body["next"]).json()
        seqs = [m["seq"] for m in body["results"]] + seqs
    assert seqs == [1, 2, 3, 4, 5]


def test_a_checkpoint_on_another_branch_never_folds_this_one(chat_session: AgentSession) -> None:
    _branched(chat_session)  # leaf 6, branch b
    session_leaf_set(session_id=chat_session.pk, seq=4)
    checkpoint_create(session_id=chat_session.pk, through_seq=3, reason="compaction", summary="branch a so far")
    on_a = context_inputs(session_id=chat_session.pk, budget_tokens=10_000)
    assert on_a.checkpoint is not None
    assert on_a.checkpoint.summary == "branch a so far"
    assert [m.seq for m in on_a.messages] == [4]
    assert session_get(session_id=chat_session.pk).tokens_since_checkpoint == 10

    session_leaf_set(session_id=chat_session.pk, seq=6)
    on_b = context_inputs(session_id=chat_session.pk, budget_tokens=10_000)
    assert on_b.checkpoint is None
    assert [m.content for m in on_b.messages] == ["hello", "hi", "branch b", "reply b"]
    assert on_b.messages_omitted == 0
    restored = session_restore(session_id=chat_session.pk)
    assert (restored.checkpoint, [m.seq for m in restored.messages]) == (None, [1, 2, 5, 6])
    # Fullness follows the branch: branch b has no compaction, so all four messages count.
    assert session_get(session_id=chat_session.pk).tokens_since_checkpoint == 40


@pytest.mark.fault
def test_a_checkpoint_off_the_active_branch_is_refused(chat_session: AgentSession) -> None:
    _branched(chat_session)
    with pytest.raises(InvalidInputError) as caught:
        checkpoint_create(session_id=chat_session.pk, through_seq=4, reason="manual", summary="s")
    assert "not on the active branch" in caught.value.fields["through_seq"][0]


def test_restore_reads_the_newest_page_of_the_active_path(
    chat_session: AgentSession, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    _branched(chat_session)
    checkpoint_create(session_id=chat_session.pk, through_seq=2, reason="compaction", summary="greetings")
    # 1: the session, route, provider and newest summary checkpoint; 2: that checkpoint is on the
    # path; 3: the page walked from the leaf down to the checkpoint.
    with django_assert_max_num_queries(3):
        restored = session_restore(session_id=chat_session.pk)
    assert restored.checkpoint is not None
    assert ([m.seq for m in restored.messages], restored.next_before_seq) == ([5, 6], None)


def test_the_context_query_count_does_not_grow_with_depth(chat_session: AgentSession) -> None:
    counts = []
    for depth in (60, 600):
        AgentSession.objects.filter(pk=chat_session.pk).update(leaf=0, last_seq=0, message_count=0)
        Message.objects.filter(session=chat_session)._raw_delete(Message.objects.db)
        _deep(chat_session, depth)
        with CaptureQueriesContext(connection) as captured:
            bundle = context_inputs(session_id=chat_session.pk, budget_tokens=30)
        counts.append(len(captured.captured_queries))
        assert [m.seq for m in bundle.messages] == list(range(depth - 29, depth + 1))
    assert counts[0] == counts[1]


def test_the_append_api_takes_a_parent(api: APIClient, chat_session: AgentSession) -> None:
    url = f"/api/sessions/{chat_session.pk}/messages/"
    api.post(url, {"role": "user", "content": "one"}, format="json")
    api.post(url, {"role": "user", "content": "two"}, format="json")
    answer = api.post(url, {"role": "user", "content": "two again", "parent_seq": 1}, format="json")
    assert answer.status_code == 201
    assert answer.json()["parent"] == Message.objects.get(session=chat_session, seq=1).pk
    refused = api.post(url, {"role": "user", "content": "x", "parent_seq": 9}, format="json")
    assert (refused.status_code, refused.json()["fields"]) == (
        400,
        {"parent_seq": ["no message #9 in this session; give the seq of one of its messages, or 0"]},
    )
    assert api.get(f"/api/sessions/{chat_session.pk}/").json()["leaf"] == 3
