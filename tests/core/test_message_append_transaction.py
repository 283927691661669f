"""`message_append` outside any transaction: the path every real caller takes.

The append runs its statements on Django's cursor inside `transaction.atomic()`, which opens a
transaction of its own there (BEGIN IMMEDIATE on SQLite). These tests run without the test's own
transaction, so they exercise that path: the same rows, the same errors (Django's), a rollback of
everything on any failure, and every statement in Django's query log and execute wrappers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from core.conversation import services as conversation
from core.conversation.services import message_append, session_archive
from core.errors import ConflictError, NotFoundError
from core.models import AgentSession, Message

pytestmark = pytest.mark.django_db(transaction=True)

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def _first_words(captured: CaptureQueriesContext) -> list[str]:
    return [
        " ".join(query["sql"].split()[:2]) if query["sql"].startswith("BEGIN") else query["sql"].split()[0]
        for query in captured.captured_queries
    ]


def _begin() -> str:
    """How a transaction of its own starts in the query log on this database."""
    return "BEGIN IMMEDIATE" if connection.vendor == "sqlite" else "BEGIN"


def _counters(session: AgentSession) -> tuple[int, int, int]:
    stored = AgentSession.objects.get(pk=session.pk)
    return stored.last_seq, stored.message_count, stored.tokens_since_checkpoint


def test_outside_a_transaction_the_append_is_one_transaction_of_its_own(chat_session: AgentSession) -> None:
    assert connection.get_autocommit()
    assert not connection.in_atomic_block
    message_append(session_id=chat_session.id, role="user", content="warm up")
    # 1: BEGIN (IMMEDIATE on SQLite: the write lock from the start), 2: SELECT the leaf's message
    # (the parent; FOR UPDATE on PostgreSQL), 3: UPDATE the counters and leaf RETURNING the seq,
    # 4: INSERT the message RETURNING its id, 5: COMMIT.
    with CaptureQueriesContext(connection) as captured:
        result = message_append(session_id=chat_session.id, role="user", content="counted", token_count=7)
    assert _first_words(captured) == [_begin(), "SELECT", "UPDATE", "INSERT", "COMMIT"]
    assert not connection.in_atomic_block
    assert result.record.seq == 2
    stored = Message.objects.get(pk=result.record.pk)
    fields = [field.attname for field in Message._meta.concrete_fields]
    assert {name: getattr(result.record, name) for name in fields} == {name: getattr(stored, name) for name in fields}
    assert result.record._state.adding is False
    assert _counters(chat_session)[:2] == (2, 2)


def test_a_retry_reads_under_the_lock_and_writes_nothing(chat_session: AgentSession) -> None:
    first = message_append(session_id=chat_session.id, role="user", content="once", client_id="c-1")
    with CaptureQueriesContext(connection) as captured:
        retry = message_append(session_id=chat_session.id, role="user", content="once", client_id="c-1")
    # BEGIN, the session row (FOR UPDATE on PostgreSQL), the message with this client_id, COMMIT.
    assert _first_words(captured) == [_begin(), "SELECT", "SELECT", "COMMIT"]
    assert (retry.created, retry.record.pk, retry.record.seq) == (False, first.record.pk, 1)
    with pytest.raises(ConflictError, match=r"^client_id: 'c-1' already names message #1 with a different"):
        message_append(session_id=chat_session.id, role="user", content="changed", client_id="c-1")
    assert _counters(chat_session)[:2] == (1, 1)
    assert not connection.in_atomic_block


def test_unknown_and_archived_sessions_are_refused_and_leave_no_transaction_open(chat_session: AgentSession) -> None:
    with pytest.raises(NotFoundError, match=rf"^session: no session {UNKNOWN}$"):
        message_append(session_id=UNKNOWN, role="user", content="x")
    session_archive(session_id=chat_session.id)
    with pytest.raises(ConflictError, match=r"^session: is archived; unarchive it or start a new session$"):
        message_append(session_id=chat_session.id, role="user", content="x")
    assert Message.objects.count() == 0
    assert _counters(chat_session) == (0, 0, 0)
    if connection.vendor == "sqlite":
        assert not connection.connection.in_transaction
    # The connection is still good for the next write.
    AgentSession.objects.filter(pk=chat_session.pk).update(status="active")
    assert message_append(session_id=chat_session.id, role="user", content="after").record.seq == 1


def test_a_database_error_after_the_counters_moved_rolls_them_back(chat_session: AgentSession) -> None:
    message_append(session_id=chat_session.id, role="user", content="one", token_count=5)
    # A row squatting on seq 2 (written around the service): the INSERT of seq 2 hits the unique constraint.
    squatter = Message.objects.get(seq=1)
    Message.objects.bulk_create([Message(session=chat_session, seq=2, role="user", content="squat", token_count=1)])
    with pytest.raises(IntegrityError):
        message_append(session_id=chat_session.id, role="user", content="two", token_count=9)
    assert _counters(chat_session) == (1, 1, 5)
    assert list(Message.objects.order_by("seq").values_list("seq", "content")) == [(1, squatter.content), (2, "squat")]
    if connection.vendor == "sqlite":
        assert not connection.connection.in_transaction


def test_any_exception_between_the_statements_rolls_everything_back(
    chat_session: AgentSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_append(session_id=chat_session.id, role="user", content="one", token_count=5)

    allocate = conversation._seq_next

    def allocate_then_fail(*args: Any) -> int:
        allocate(*args)  # the counters move and the seq is taken…
        raise RuntimeError("stopped between the UPDATE and the INSERT")  # …and the INSERT never runs

    monkeypatch.setattr(conversation, "_seq_next", allocate_then_fail)
    with pytest.raises(RuntimeError, match="between the UPDATE and the INSERT"):
        message_append(session_id=chat_session.id, role="user", content="two", token_count=9)
    monkeypatch.undo()
    assert _counters(chat_session) == (1, 1, 5)
    assert Message.objects.count() == 1
    assert message_append(session_id=chat_session.id, role="user", content="two").record.seq == 2


def test_inside_an_atomic_block_the_append_joins_it(chat_session: AgentSession) -> None:
    def give_up() -> None:
        with transaction.atomic():
            assert connection.in_atomic_block
            message_append(session_id=chat_session.id, role="user", content="kept?")
            raise RuntimeError("caller gave up")

    with CaptureQueriesContext(connection) as captured, pytest.raises(RuntimeError, match="caller gave up"):
        give_up()
    words = _first_words(captured)
    assert words[:2] == [_begin(), "SAVEPOINT"]
    assert words[-1] == "ROLLBACK"
    assert Message.objects.count() == 0
    assert _counters(chat_session) == (0, 0, 0)


def test_with_autocommit_turned_off_the_append_stays_in_the_callers_transaction(chat_session: AgentSession) -> None:
    transaction.set_autocommit(False)
    try:
        assert not connection.get_autocommit()
        # The caller's transaction is open (its first write began it) when the append runs in it.
        AgentSession.objects.filter(pk=chat_session.pk).update(title="renamed")
        message_append(session_id=chat_session.id, role="user", content="not yet")
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    assert Message.objects.count() == 0
    assert _counters(chat_session) == (0, 0, 0)
    assert AgentSession.objects.get(pk=chat_session.pk).title == chat_session.title


def test_every_statement_runs_on_djangos_cursor_inside_an_atomic_block(chat_session: AgentSession) -> None:
    seen: list[tuple[str, bool]] = []

    def watch(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        seen.append((sql.split()[0], context["connection"].in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        message_append(session_id=chat_session.id, role="user", content="watched")
        message_append(session_id=chat_session.id, role="user", content="keyed", client_id="k-1")
        message_append(session_id=chat_session.id, role="user", content="keyed", client_id="k-1")
    # An execute wrapper sees exactly the statements Django's cursor runs: all of them, each in the
    # service's atomic block (the first: leaf, UPDATE, INSERT; the second: lock, lookup, leaf, UPDATE,
    # INSERT; the retry: lock, lookup). On SQLite, Django's BEGIN IMMEDIATE opening each block passes too.
    begins = [entry for entry in seen if entry[0] == "BEGIN"]
    assert begins == ([("BEGIN", False)] * 3 if connection.vendor == "sqlite" else [])
    assert [entry for entry in seen if entry[0] != "BEGIN"] == [
        ("SELECT", True),
        ("UPDATE", True),
        ("INSERT", True),
        ("SELECT", True),
        ("SELECT", True),
        ("SELECT", True),
        ("UPDATE", True),
        ("INSERT", True),
        ("SELECT", True),
        ("SELECT", True),
    ]
    assert list(Message.objects.order_by("seq").values_list("content", flat=True)) == ["watched", "keyed"]


def test_statements_are_not_logged_when_django_logs_none(chat_session: AgentSession) -> None:
    assert not connection.queries_logged
    before = len(connection.queries_log)
    message_append(session_id=chat_session.id, role="user", content="quiet")
    assert len(connection.queries_log) == before
