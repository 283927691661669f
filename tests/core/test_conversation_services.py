"""Sessions, checkpoints, restore, compaction and retention through the services and selectors."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import DjangoAssertNumQueries, Settings

from core.conversation.selectors import (
    context_fullness_percent,
    session_needs_compaction,
    session_restore,
    sessions_list,
    sessions_needing_compaction,
    sessions_needing_compaction_count,
)
from core.conversation.services import (
    checkpoint_create,
    message_append,
    run_cancel,
    run_create,
    run_event_append,
    session_archive,
    session_create,
    session_delete,
    session_unarchive,
    session_update,
)
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models import (
    AgentSession,
    Checkpoint,
    CheckpointReason,
    Message,
    ModelRoute,
    Provider,
    Run,
    SessionStatus,
    TraceEvent,
)
from tests.owners import op_user

pytestmark = pytest.mark.django_db


def _fill(session: AgentSession, count: int, *, tokens: int = 10) -> None:
    for n in range(count):
        message_append(session_id=session.id, role="user", content=f"message {n + 1}", token_count=tokens)


@pytest.fixture
def big_route(replay_route: ModelRoute) -> ModelRoute:
    return ModelRoute.objects.create(
        alias="big",
        provider=Provider.objects.get(name="replay"),
        model_id="replay-big",
        context_window_tokens=100_000,
        max_output_tokens=1_000,
    )


# --- Sessions -------------------------------------------------------------------------------


def test_session_update_renames_and_moves_route(chat_session: AgentSession, big_route: ModelRoute) -> None:
    updated = session_update(session_id=chat_session.id, title="  renamed  ", route_alias="big")
    assert (updated.title, updated.route.alias) == ("renamed", "big")
    chat_session.refresh_from_db()
    assert (chat_session.title, chat_session.route_id) == ("renamed", big_route.pk)


def test_session_update_rejects_unknown_or_disabled_route(chat_session: AgentSession, big_route: ModelRoute) -> None:
    with pytest.raises(InvalidInputError, match=r"^route: no model route 'nope'; use an alias from"):
        session_update(session_id=chat_session.id, route_alias="nope")
    ModelRoute.objects.filter(pk=big_route.pk).update(enabled=False)
    with pytest.raises(InvalidInputError, match=r"^route: route 'big' is disabled; enable it or pick another$"):
        session_update(session_id=chat_session.id, route_alias="big")
    with pytest.raises(InvalidInputError, match=r"^route: empty; give a route alias$"):
        session_update(session_id=chat_session.id, route_alias=" ")
    with pytest.raises(InvalidInputError, match=r"^title: has 201 characters; at most 200 are allowed$"):
        session_update(session_id=chat_session.id, title="x" * 201)
    chat_session.refresh_from_db()
    assert (chat_session.title, chat_session.route.alias) == ("test session", "replay")


def test_archive_and_unarchive_move_status_and_refuse_repeats(chat_session: AgentSession) -> None:
    assert session_archive(session_id=chat_session.id).status == SessionStatus.ARCHIVED
    with pytest.raises(ConflictError, match=r"^session: is already archived$"):
        session_archive(session_id=chat_session.id)
    with pytest.raises(ConflictError, match=r"^session: is archived; unarchive it or start a new session$"):
        session_update(session_id=chat_session.id, title="x")
    assert session_unarchive(session_id=chat_session.id).status == SessionStatus.ACTIVE
    with pytest.raises(ConflictError, match=r"^session: is already active$"):
        session_unarchive(session_id=chat_session.id)
    assert message_append(session_id=chat_session.id, role="user", content="back").record.seq == 1


def test_unknown_and_malformed_session_ids_are_not_found(replay_route: ModelRoute) -> None:
    with pytest.raises(NotFoundError, match=r"^session: no session not-a-uuid$"):
        session_archive(session_id="not-a-uuid")
    with pytest.raises(NotFoundError, match=r"^session: no session 00000000-0000-0000-0000-000000000001$"):
        session_delete(session_id="00000000-0000-0000-0000-000000000001")


def test_append_retry_with_different_content_is_a_conflict(chat_session: AgentSession) -> None:
    message_append(session_id=chat_session.id, role="user", content="first", client_id="c-1")
    with pytest.raises(ConflictError, match=r"^client_id: 'c-1' already names message #1 with a different"):
        message_append(session_id=chat_session.id, role="user", content="other", client_id="c-1")
    assert Message.objects.count() == 1


def test_idempotent_retry_succeeds_on_an_archived_session(chat_session: AgentSession) -> None:
    first = message_append(session_id=chat_session.id, role="user", content="sent", client_id="c-1")
    session_archive(session_id=chat_session.id)
    retry = message_append(session_id=chat_session.id, role="user", content="sent", client_id="c-1")
    assert (retry.created, retry.record.pk) == (False, first.record.pk)


def test_session_delete_removes_everything_in_one_go(chat_session: AgentSession, replay_route: ModelRoute) -> None:
    other = session_create(owner=op_user(), title="keep me", route_alias="replay")
    _fill(chat_session, 5)
    _fill(other, 2)
    first = checkpoint_create(session_id=chat_session.id, through_seq=2, reason="manual")
    checkpoint_create(session_id=chat_session.id, through_seq=4, reason="run_end")
    run = run_create(session_id=chat_session.id, status="running")
    run_event_append(run_id=run.id, event_type="text_delta", payload={"text": "hi"})
    run_cancel(run_id=run.id, reason="done testing")
    kept_run = run_create(session_id=other.id, status="running")

    result = session_delete(session_id=chat_session.id)

    assert (result.messages, result.checkpoints, result.runs, result.events) == (5, 2, 1, 3)
    assert not AgentSession.objects.filter(pk=chat_session.pk).exists()
    assert not Message.objects.filter(session_id=chat_session.pk).exists()
    assert not Checkpoint.objects.filter(pk=first.pk).exists()
    assert not Run.objects.filter(pk=run.pk).exists()
    assert not TraceEvent.objects.filter(run_id=run.pk).exists()
    # The other session is untouched.
    assert Message.objects.filter(session=other).count() == 2
    assert TraceEvent.objects.filter(run=kept_run).count() == 1


def test_session_delete_refuses_a_session_with_an_open_run(chat_session: AgentSession) -> None:
    _fill(chat_session, 1)
    run_create(session_id=chat_session.id)
    with pytest.raises(
        ConflictError, match=r"^session: has 1 unfinished run\(s\) \(queued or running\); cancel them first$"
    ):
        session_delete(session_id=chat_session.id)
    assert Message.objects.filter(session=chat_session).count() == 1


# --- Checkpoints ----------------------------------------------------------------------------


def test_checkpoint_parent_defaults_to_the_latest(chat_session: AgentSession) -> None:
    _fill(chat_session, 6)
    first = checkpoint_create(session_id=chat_session.id, through_seq=2, reason="manual", summary="s" * 40)
    second = checkpoint_create(session_id=chat_session.id, through_seq=4, reason="run_end", state={"step": 2})
    branch = checkpoint_create(session_id=chat_session.id, through_seq=3, reason="manual", parent_id=first.pk)
    assert (first.parent_id, second.parent_id, branch.parent_id) == (None, first.pk, first.pk)
    assert first.token_count == 10  # 40 characters of summary ≈ 10 tokens
    assert Checkpoint.objects.get(pk=second.pk).state == {"step": 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"through_seq": 4}, "through_seq: 4 is past the session's last message (#3); give a seq from 0 to 3"),
        ({"through_seq": -1}, "through_seq: must be an integer of 0 or more (the last seq covered)"),
        ({"through_seq": 3, "reason": "whim"}, "reason: 'whim' is not a reason; use one of manual, compaction"),
        ({"through_seq": 3, "state": ["a"]}, "state: must be a JSON object"),
        ({"through_seq": 3, "summary": "x" * 200_001}, "summary: has 200001 characters; at most 200000 are allowed"),
        ({"through_seq": 3, "token_count": -5}, "token_count: must be an integer of 0 or more"),
        ({"through_seq": 3, "parent_id": 999_999}, "parent: no checkpoint 999999 in this session"),
    ],
)
def test_checkpoint_create_rejects_bad_input(chat_session: AgentSession, kwargs: dict[str, Any], message: str) -> None:
    _fill(chat_session, 3)
    checkpoint_create(session_id=chat_session.id, through_seq=2, reason="manual")
    arguments: dict[str, Any] = {"reason": "manual", **kwargs}
    with pytest.raises(InvalidInputError) as caught:
        checkpoint_create(session_id=chat_session.id, **arguments)
    assert str(caught.value).startswith(message)
    assert Checkpoint.objects.count() == 1


def test_a_checkpoint_never_covers_less_than_the_parent_it_names(chat_session: AgentSession) -> None:
    _fill(chat_session, 3)
    parent = checkpoint_create(session_id=chat_session.id, through_seq=2, reason="manual")
    with pytest.raises(InvalidInputError) as caught:
        checkpoint_create(session_id=chat_session.id, through_seq=1, reason="manual", parent_id=parent.pk)
    assert str(caught.value).startswith(
        "through_seq: 1 is before the parent checkpoint's through_seq 2; a checkpoint covers"
    )
    # Without a named parent, the parent is the newest checkpoint on the path of #1: none.
    assert checkpoint_create(session_id=chat_session.id, through_seq=1, reason="manual").parent_id is None


def test_checkpoint_refused_on_archived_session(chat_session: AgentSession) -> None:
    session_archive(session_id=chat_session.id)
    with pytest.raises(ConflictError, match=r"^session: is archived"):
        checkpoint_create(session_id=chat_session.id, through_seq=0, reason="manual")


def test_restore_reads_only_the_tail(
    chat_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    _fill(chat_session, 50)
    checkpoint_create(session_id=chat_session.id, through_seq=10, reason="manual")
    latest = checkpoint_create(session_id=chat_session.id, through_seq=45, reason="compaction", summary="so far")
    # 1: the session joined to its route, provider and latest checkpoint, 2: that checkpoint is on
    # the active path, 3: the path's messages above #45, walked from the leaf.
    with django_assert_num_queries(3), CaptureQueriesContext(connection) as captured:
        restored = session_restore(session_id=chat_session.id)
    assert restored.checkpoint is not None
    assert restored.checkpoint.pk == latest.pk
    assert [m.seq for m in restored.messages] == [46, 47, 48, 49, 50]
    message_sql = captured.captured_queries[2]["sql"]
    assert 'FROM "core_message" m WHERE' in message_sql
    assert 'm."seq" > 45' in message_sql


def test_restore_without_checkpoint_returns_every_message(chat_session: AgentSession) -> None:
    _fill(chat_session, 3)
    restored = session_restore(session_id=chat_session.id)
    assert restored.checkpoint is None
    assert [m.seq for m in restored.messages] == [1, 2, 3]


# --- Compaction signal ----------------------------------------------------------------------


def test_compaction_signal_and_reset(chat_session: AgentSession, settings: Settings) -> None:
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 80
    _fill(chat_session, 7, tokens=1_000)  # 7,000 of 8,000 tokens: 87.5%
    chat_session.refresh_from_db()
    assert context_fullness_percent(chat_session) == 87.5
    assert session_needs_compaction(chat_session) is True
    assert list(sessions_needing_compaction()) == [chat_session]
    assert sessions_needing_compaction_count() == 1

    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 90  # read at call time
    assert sessions_needing_compaction_count() == 0
    assert session_needs_compaction(chat_session) is False
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 80

    # A manual checkpoint leaves the count; a compaction checkpoint resets it to the tail's tokens.
    checkpoint_create(session_id=chat_session.id, through_seq=3, reason="manual")
    assert sessions_needing_compaction_count() == 1
    checkpoint_create(session_id=chat_session.id, through_seq=5, reason=CheckpointReason.COMPACTION)
    chat_session.refresh_from_db()
    assert chat_session.tokens_since_checkpoint == 2_000  # messages 6 and 7
    assert context_fullness_percent(chat_session) == 25.0
    assert sessions_needing_compaction_count() == 0
    assert list(sessions_list(needs_compaction=False)) == [chat_session]


def test_compaction_threshold_is_exact_at_the_boundary(chat_session: AgentSession, settings: Settings) -> None:
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 80
    _fill(chat_session, 1, tokens=6_399)
    assert sessions_needing_compaction_count() == 0
    _fill(chat_session, 1, tokens=1)  # exactly 6,400 of 8,000 = 80%
    chat_session.refresh_from_db()
    assert session_needs_compaction(chat_session) is True
    assert sessions_needing_compaction_count() == 1
    session_archive(session_id=chat_session.id)  # an archived session is never listed
    assert sessions_needing_compaction_count() == 0


def test_sessions_needing_compaction_is_one_query(
    replay_route: ModelRoute, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    for n in range(3):
        session = session_create(owner=op_user(), title=f"s{n}")
        _fill(session, 1, tokens=7_000)
    # 1: sessions joined to their route, filtered by tokens * 100 >= threshold * window.
    with django_assert_num_queries(1):
        found = [(s.title, s.route.alias) for s in sessions_needing_compaction()]
    assert sorted(found) == [("s0", "replay"), ("s1", "replay"), ("s2", "replay")]
