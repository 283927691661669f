"""message_append: seq allocation, counters, idempotency, archived refusal, concurrent processes."""

from __future__ import annotations

import pytest
from django.db import connection

from core.conversation.services import message_append, session_create
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models import AgentSession, Message, ModelRoute, SessionStatus
from tests.owners import op_user
from tests.procs import start_worker

pytestmark = pytest.mark.django_db


def test_append_allocates_consecutive_seqs_and_counts(chat_session: AgentSession) -> None:
    first = message_append(session_id=chat_session.id, role="user", content="hello there", token_count=3)
    second = message_append(session_id=chat_session.id, role="assistant", content="12345678")
    assert (first.record.seq, second.record.seq) == (1, 2)
    assert (first.record.token_count_estimated, second.record.token_count_estimated) == (False, True)
    assert second.record.token_count == 2  # 8 characters ≈ 2 tokens
    chat_session.refresh_from_db()
    assert (chat_session.last_seq, chat_session.message_count, chat_session.tokens_since_checkpoint) == (2, 2, 5)


def test_append_with_same_client_id_returns_stored_message(chat_session: AgentSession) -> None:
    first = message_append(session_id=chat_session.id, role="user", content="once", client_id="c-1")
    retry = message_append(session_id=chat_session.id, role="user", content="once", client_id="c-1")
    assert first.created is True
    assert retry.created is False
    assert retry.record.pk == first.record.pk
    assert Message.objects.filter(session=chat_session).count() == 1
    chat_session.refresh_from_db()
    assert chat_session.message_count == 1


def test_append_rejects_archived_session(chat_session: AgentSession) -> None:
    AgentSession.objects.filter(pk=chat_session.pk).update(status=SessionStatus.ARCHIVED)
    with pytest.raises(ConflictError, match=r"^session: is archived; unarchive it or start a new session$"):
        message_append(session_id=chat_session.id, role="user", content="late")
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "robot", "content": "x"}, "role: 'robot' is not a role; use one of system, user, assistant, tool"),
        ({"role": "user", "content": ""}, "content: empty; give text content or at least one part"),
        ({"role": "user", "content": "x", "token_count": -1}, "token_count: must be zero or more"),
        ({"role": "user", "content": "x", "client_id": " "}, "client_id: must be 1 to 128 characters"),
        ({"role": "tool", "parts": [{"type": "weird"}]}, "parts[0].type: 'weird' is not a part type"),
        ({"role": "tool", "parts": [{"type": "tool_result", "content": "ok"}]}, "parts[0].tool_call_id: required"),
        ({"role": "user", "parts": "nope"}, "parts: must be a list of part objects"),
    ],
)
def test_append_rejects_bad_input(chat_session: AgentSession, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        message_append(session_id=chat_session.id, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert not Message.objects.exists()


def test_append_accepts_typed_parts(chat_session: AgentSession) -> None:
    parts = [
        {"type": "tool_call", "id": "call_1", "name": "search", "arguments": {"q": "x"}},
        {"type": "attachment", "sha256": "a" * 64, "name": "notes.txt", "mime_type": "text/plain"},
    ]
    result = message_append(session_id=chat_session.id, role="assistant", parts=parts)  # type: ignore[arg-type]
    assert Message.objects.get(pk=result.record.pk).parts == parts


def test_append_to_unknown_session_is_not_found(replay_route: ModelRoute) -> None:
    with pytest.raises(NotFoundError, match=r"^session: no session 00000000-0000-0000-0000-000000000000$"):
        message_append(session_id="00000000-0000-0000-0000-000000000000", role="user", content="x")


def test_session_create_uses_default_route_and_rejects_unknown(replay_route: ModelRoute) -> None:
    assert session_create(owner=op_user(), title="  t  ").route_id == replay_route.pk
    with pytest.raises(InvalidInputError, match=r"^route: no model route 'nope'"):
        session_create(owner=op_user(), route_alias="nope")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_processes_append_gapless(replay_route: ModelRoute) -> None:
    session = session_create(owner=op_user(), title="contended", route_alias=replay_route.alias)
    connection.close()  # let the workers have the file to themselves while they start
    workers = [start_worker("tests.workers.append", [str(session.id), "60", f"w{n}"]) for n in range(4)]
    acked: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
        assert "database is locked" not in err
        acked.extend(int(line.split()[1]) for line in out.splitlines() if line.startswith("ack "))
    seqs = list(Message.objects.filter(session=session).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 241))
    assert sorted(acked) == seqs
    session.refresh_from_db()
    assert (session.last_seq, session.message_count) == (240, 240)
