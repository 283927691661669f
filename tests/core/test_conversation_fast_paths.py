"""The fixed-SQL paths of the conversation store: message_append and session_restore.

Both run fixed SQL on Django's cursor (they run on every turn; the append's UPDATE … RETURNING is
beyond the ORM), so these tests hold them to what the ORM would have produced: the same rows, the
same counters, and instances equal field by field to ones read back through `Model.objects`, on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import DjangoAssertNumQueries

from core.conversation.selectors import session_restore
from core.conversation.services import checkpoint_create, message_append, session_archive, session_create
from core.errors import ConflictError, NotFoundError
from core.models import AgentSession, Checkpoint, Message, ModelRoute, SessionStatus
from tests.owners import op_user

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-0000-0000-000000000000"
UNICODE_PARTS: list[Any] = [
    {
        "type": "tool_call",
        "id": "call_é1",
        "name": "recherche",
        "arguments": {
            "q": "café «noir» 中文 🚀",
            "quote": 'say "hi"\n\tthen \\ leave',
            "nested": {"list": [1, 2.5, True, None, "ü"], "empty": {}},
        },
    },
    {"type": "tool_result", "tool_call_id": "call_é1", "content": "résultat: ✓", "is_error": False},
    {"type": "attachment", "sha256": "b" * 64, "name": "notes ✎ 2026.txt", "mime_type": "text/plain"},
]


def _fields(instance: Model) -> dict[str, Any]:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def _assert_same_as_orm(instance: Model) -> None:
    """`instance` holds exactly what the ORM reads for its row, and is marked as loaded from the database."""
    stored = type(instance)._base_manager.get(pk=instance.pk)
    assert _fields(instance) == _fields(stored)
    assert instance._state.adding is False
    assert instance._state.db == "default"
    for name, value in _fields(instance).items():
        assert type(value) is type(getattr(stored, name)), name
        if isinstance(value, datetime):
            assert value.utcoffset() is not None
            assert value.utcoffset() == getattr(stored, name).utcoffset()


# --- message_append -------------------------------------------------------------------------


def test_append_writes_the_exact_row_and_counters(chat_session: AgentSession) -> None:
    before = AgentSession.objects.get(pk=chat_session.pk).updated
    first = message_append(session_id=chat_session.id, role="user", content="hello there", token_count=3)
    second = message_append(session_id=str(chat_session.id), role="tool", content="", parts=UNICODE_PARTS)

    assert (first.created, second.created) == (True, True)
    assert [(m.seq, m.role, m.token_count, m.token_count_estimated) for m in Message.objects.order_by("seq")] == [
        (1, "user", 3, False),
        (2, "tool", second.record.token_count, True),
    ]
    assert second.record.token_count > 0
    for result in (first, second):
        _assert_same_as_orm(result.record)
    assert first.record.session_id == chat_session.pk
    assert first.record.client_id is None
    session = AgentSession.objects.get(pk=chat_session.pk)
    assert (session.last_seq, session.message_count, session.tokens_since_checkpoint) == (
        2,
        2,
        3 + second.record.token_count,
    )
    assert session.updated == second.record.created
    assert session.updated > before
    assert session.status == SessionStatus.ACTIVE


def test_append_json_parts_round_trip_with_unicode(chat_session: AgentSession) -> None:
    result = message_append(session_id=chat_session.id, role="assistant", parts=UNICODE_PARTS, content="ünï ✓")
    stored = Message.objects.get(pk=result.record.pk)
    assert stored.parts == UNICODE_PARTS
    assert result.record.parts == UNICODE_PARTS
    assert stored.content == result.record.content == "ünï ✓"
    # Restore reads the same JSON back through its own row reader.
    assert session_restore(session_id=chat_session.id).messages[0].parts == UNICODE_PARTS


def test_append_created_is_aware_utc_and_matches_the_stored_value(chat_session: AgentSession) -> None:
    result = message_append(session_id=chat_session.id, role="user", content="when")
    created = result.record.created
    assert created.utcoffset() is not None
    assert created.astimezone(UTC) == Message.objects.get(pk=result.record.pk).created
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


def test_append_runs_three_statements_in_one_transaction(
    chat_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    message_append(session_id=chat_session.id, role="user", content="warm up")
    # 1: SAVEPOINT (the service's transaction.atomic inside the test's transaction),
    # 2: SELECT the leaf's message id, the new message's parent (takes the row lock on PostgreSQL),
    # 3: UPDATE the session's counters and leaf … RETURNING the new last_seq,
    # 4: INSERT the message … RETURNING its id, 5: RELEASE SAVEPOINT.
    with django_assert_num_queries(5) as captured:
        message_append(session_id=chat_session.id, role="user", content="counted")
    statements = [query["sql"].split()[0] for query in captured.captured_queries]
    assert statements == ["SAVEPOINT", "SELECT", "UPDATE", "INSERT", "RELEASE"]


def test_append_with_client_id_adds_the_locked_lookup(
    chat_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    message_append(session_id=chat_session.id, role="user", content="warm up")
    # 1: SAVEPOINT, 2: the session row (FOR UPDATE on PostgreSQL), 3: the message with this
    # client_id (none yet), 4: the leaf's message id, 5: UPDATE the counters RETURNING the seq,
    # 6: INSERT the message, 7: RELEASE.
    with django_assert_num_queries(7) as captured:
        message_append(session_id=chat_session.id, role="user", content="once", client_id="c-1")
    lock_sql = captured.captured_queries[1]["sql"]
    assert lock_sql.endswith(" FOR UPDATE") == (connection.vendor == "postgresql")
    # A retry: 1: SAVEPOINT, 2: the session row, 3: the stored message, 4: RELEASE; nothing written.
    with django_assert_num_queries(4):
        retry = message_append(session_id=chat_session.id, role="user", content="once", client_id="c-1")
    assert retry.created is False


def test_append_retry_returns_the_stored_message_as_the_orm_reads_it(chat_session: AgentSession) -> None:
    first = message_append(
        session_id=chat_session.id, role="tool", content="r", parts=UNICODE_PARTS, client_id="  retry-1 "
    )
    retry = message_append(
        session_id=chat_session.id, role="tool", content="r", parts=UNICODE_PARTS, client_id="retry-1"
    )
    assert first.record.client_id == "retry-1"
    assert (first.created, retry.created) == (True, False)
    assert _fields(retry.record) == _fields(first.record)
    _assert_same_as_orm(retry.record)
    session = AgentSession.objects.get(pk=chat_session.pk)
    assert (session.last_seq, session.message_count) == (1, 1)


def test_append_reusing_client_id_for_other_content_is_a_conflict(chat_session: AgentSession) -> None:
    message_append(session_id=chat_session.id, role="user", content="first", client_id="c-9")
    with pytest.raises(ConflictError) as caught:
        message_append(session_id=chat_session.id, role="user", content="second", client_id="c-9")
    assert str(caught.value) == (
        "client_id: 'c-9' already names message #1 with a different role, content, parts or parent; a retry must "
        "repeat the same message, a new message needs a new client_id"
    )
    assert caught.value.fields == {"client_id": [str(caught.value).removeprefix("client_id: ")]}
    assert list(Message.objects.values_list("content", flat=True)) == ["first"]
    assert AgentSession.objects.get(pk=chat_session.pk).last_seq == 1


def test_append_to_archived_session_is_a_conflict_and_writes_nothing(chat_session: AgentSession) -> None:
    message_append(session_id=chat_session.id, role="user", content="before")
    session_archive(session_id=chat_session.id)
    archived = AgentSession.objects.get(pk=chat_session.pk)
    for client_id in (None, "new-1"):
        with pytest.raises(ConflictError, match=r"^session: is archived; unarchive it or start a new session$"):
            message_append(session_id=chat_session.id, role="user", content="late", client_id=client_id)
    assert Message.objects.count() == 1
    after = AgentSession.objects.get(pk=chat_session.pk)
    assert (after.last_seq, after.message_count, after.tokens_since_checkpoint, after.updated) == (
        archived.last_seq,
        archived.message_count,
        archived.tokens_since_checkpoint,
        archived.updated,
    )


def test_retry_into_archived_session_still_returns_the_stored_message(chat_session: AgentSession) -> None:
    first = message_append(session_id=chat_session.id, role="user", content="sent", client_id="c-2")
    session_archive(session_id=chat_session.id)
    retry = message_append(session_id=chat_session.id, role="user", content="sent", client_id="c-2")
    assert (retry.created, retry.record.pk) == (False, first.record.pk)


@pytest.mark.parametrize("client_id", [None, "c-3"])
@pytest.mark.parametrize("session_id", [UNKNOWN, "not-a-uuid", UNKNOWN.replace("-", "")])
def test_append_to_unknown_session_is_not_found(
    replay_route: ModelRoute, session_id: str, client_id: str | None
) -> None:
    with pytest.raises(NotFoundError) as caught:
        message_append(session_id=session_id, role="user", content="x", client_id=client_id)
    assert str(caught.value) == f"session: no session {session_id}"
    assert caught.value.fields == {"session": [f"no session {session_id}"]}
    assert not Message.objects.exists()


def test_each_session_keeps_its_own_seq(replay_route: ModelRoute) -> None:
    one, two = session_create(owner=op_user(), title="one"), session_create(owner=op_user(), title="two")
    seqs = [
        message_append(session_id=session.id, role="user", content="x").record.seq
        for session in (one, two, one, one, two)
    ]
    assert seqs == [1, 1, 2, 3, 2]
    counts = dict(AgentSession.objects.values_list("title", "message_count"))
    assert counts == {"one": 3, "two": 2}


# --- session_restore ------------------------------------------------------------------------


def _filled(session: AgentSession, count: int) -> None:
    for n in range(count):
        parts = UNICODE_PARTS if n % 3 == 0 else None
        message_append(
            session_id=session.id, role="tool" if parts else "user", content=f"m{n + 1}", parts=parts, client_id=None
        )


def test_restore_reads_instances_equal_to_the_orm(chat_session: AgentSession) -> None:
    _filled(chat_session, 12)
    checkpoint_create(session_id=chat_session.id, through_seq=4, reason="manual", summary="So far")
    latest = checkpoint_create(
        session_id=chat_session.id, through_seq=7, reason="compaction", summary="so far ✎ ✓", state={"k": ["ü", 1]}
    )
    restored = session_restore(session_id=str(chat_session.id))

    assert restored.checkpoint is not None
    assert restored.checkpoint.pk == latest.pk
    assert [m.seq for m in restored.messages] == [8, 9, 10, 11, 12]
    for instance in [restored.session, restored.session.route, restored.session.route.provider]:
        _assert_same_as_orm(instance)
    _assert_same_as_orm(restored.checkpoint)
    for message in restored.messages:
        _assert_same_as_orm(message)
    assert restored.checkpoint.state == {"k": ["ü", 1]}
    assert restored.messages[2].parts == UNICODE_PARTS  # seq 10 carries parts
    assert restored.messages[0].parts == []


def test_restore_runs_three_queries_and_reads_only_the_tail(
    chat_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    _filled(chat_session, 50)
    checkpoint_create(session_id=chat_session.id, through_seq=45, reason="manual", summary="So far")
    # 1: the session joined to its route, provider and latest checkpoint (a correlated index seek),
    # 2: that checkpoint lies on the active path (a walk from the leaf down to #45),
    # 3: the path's messages above #45, walked from the leaf.
    with django_assert_num_queries(3) as captured:
        restored = session_restore(session_id=chat_session.id)
    assert [m.seq for m in restored.messages] == [46, 47, 48, 49, 50]
    tail_sql = captured.captured_queries[2]["sql"]
    assert "WITH RECURSIVE" in tail_sql
    assert '"seq" > 45' in tail_sql
    # The joins are already applied: reading the route, provider and the checkpoint's session costs nothing.
    with CaptureQueriesContext(connection) as after:
        assert restored.session.route.provider.name == "replay"
        assert restored.checkpoint is not None
        assert restored.checkpoint.session is restored.session
    assert len(after.captured_queries) == 0


def test_restore_without_checkpoint_returns_every_message(chat_session: AgentSession) -> None:
    _filled(chat_session, 3)
    restored = session_restore(session_id=chat_session.id)
    assert restored.checkpoint is None
    assert [m.seq for m in restored.messages] == [1, 2, 3]
    assert restored.session.pk == chat_session.pk


def test_restore_of_a_fully_checkpointed_session_has_no_messages(chat_session: AgentSession) -> None:
    _filled(chat_session, 4)
    checkpoint_create(session_id=chat_session.id, through_seq=4, reason="compaction", summary="All four, summed up")
    restored = session_restore(session_id=chat_session.id)
    assert restored.checkpoint is not None
    assert restored.checkpoint.through_seq == 4
    assert restored.messages == []


def test_restore_never_folds_history_behind_a_run_end_checkpoint(chat_session: AgentSession) -> None:
    _filled(chat_session, 4)
    checkpoint_create(session_id=chat_session.id, through_seq=2, reason="compaction", summary="The first two")
    checkpoint_create(session_id=chat_session.id, through_seq=4, reason="run_end", summary="Context reached 80%")
    checkpoint_create(session_id=chat_session.id, through_seq=4, reason="manual")  # no summary: a mark only
    restored = session_restore(session_id=chat_session.id)
    assert restored.checkpoint is not None
    assert (restored.checkpoint.reason, restored.checkpoint.through_seq) == ("compaction", 2)
    assert [m.seq for m in restored.messages] == [3, 4]


def test_restore_with_only_a_run_end_checkpoint_returns_every_message(chat_session: AgentSession) -> None:
    _filled(chat_session, 3)
    checkpoint_create(session_id=chat_session.id, through_seq=3, reason="run_end", summary="Context reached 80%")
    restored = session_restore(session_id=chat_session.id)
    assert restored.checkpoint is None
    assert [m.seq for m in restored.messages] == [1, 2, 3]


def test_restore_of_an_empty_archived_session(chat_session: AgentSession) -> None:
    session_archive(session_id=chat_session.id)
    restored = session_restore(session_id=chat_session.id)
    assert (restored.checkpoint, restored.messages, restored.session.status) == (None, [], SessionStatus.ARCHIVED)


@pytest.mark.parametrize("session_id", [UNKNOWN, "not-a-uuid"])
def test_restore_of_unknown_session_is_not_found(replay_route: ModelRoute, session_id: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        session_restore(session_id=session_id)
    assert str(caught.value) == f"session: no session {session_id}"


def test_restore_reads_only_its_own_session(replay_route: ModelRoute) -> None:
    mine, other = session_create(owner=op_user(), title="mine"), session_create(owner=op_user(), title="other")
    _filled(other, 5)
    checkpoint_create(session_id=other.id, through_seq=2, reason="manual", summary="So far")
    _filled(mine, 2)
    restored = session_restore(session_id=mine.id)
    assert restored.checkpoint is None
    assert [(m.session_id, m.seq) for m in restored.messages] == [(mine.pk, 1), (mine.pk, 2)]
    assert Checkpoint.objects.filter(session=other).count() == 1
