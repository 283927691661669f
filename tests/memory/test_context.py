"""context_inputs: priority, budget (never exceeded, messages trimmed oldest first), determinism, bounded reads."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

import pytest
from pytest_django import DjangoAssertNumQueries

from core.conversation.services import checkpoint_create, message_append, session_create
from core.errors import InvalidInputError, NotFoundError
from core.models import AgentSession, Message
from memory.context import MAX_BUDGET_TOKENS, ContextBundle, context_inputs
from memory.services import attachment_record, episode_upsert, memory_write
from tests.owners import op_user

pytestmark = pytest.mark.django_db

SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.fixture
def rich_session(chat_session: AgentSession) -> AgentSession:
    """Ten messages (10 tokens each), a checkpoint through #4, memories, episodes and attachments."""
    session = chat_session
    for seq in range(1, 11):
        role = "user" if seq % 2 else "assistant"
        content = "what do I drink in the morning" if seq == 9 else f"message {seq}"
        parts = None
        if seq == 6:
            parts = [{"type": "attachment", "sha256": SHA_A, "name": "notes.txt", "mime_type": "text/plain"}]
        if seq == 8:
            parts = [
                {"type": "attachment", "sha256": SHA_B, "name": "photo.png", "mime_type": "image/png"},
                {"type": "attachment", "sha256": SHA_A, "name": "notes again.txt", "mime_type": "text/plain"},
            ]
        message_append(session_id=session.id, role=role, content=content, parts=parts, token_count=10)  # type: ignore[arg-type]
    checkpoint_create(session_id=session.id, through_seq=4, reason="manual", summary="Earlier: greetings." * 2)
    memory_write(owner=op_user(), kind="instruction", content="Answer briefly.", pinned=True, importance=5)  # 4 tokens
    memory_write(owner=op_user(), kind="fact", content="Name is Ada.", pinned=True, importance=2)  # 3 tokens
    memory_write(owner=op_user(), kind="preference", content="Drinks coffee every morning", key="drink")  # 7 tokens
    memory_write(owner=op_user(), kind="fact", content="Morning runs at seven")  # 6 tokens
    memory_write(owner=op_user(), kind="fact", content="Unrelated thing about boats")
    other = session_create(owner=op_user(), title="other")
    for day, session_id, summary in [
        (datetime.date(2025, 1, 1), session.id, "Session day one."),
        (datetime.date(2025, 1, 2), None, "Whole day two."),
        (datetime.date(2025, 1, 3), other.id, "Other session, never included."),
        (datetime.date(2025, 1, 3), session.id, "Session day three."),
    ]:
        episode_upsert(
            owner=op_user(), day=day, timezone_name="UTC", summary=summary, source="compactor", session_id=session_id
        )
    for seq, sha, summary in [(6, SHA_A, "Notes about the launch."), (8, SHA_B, "A photo of a cat.")]:
        attachment_record(
            session_id=session.id,
            message_id=Message.objects.get(session=session, seq=seq).pk,
            sha256=sha,
            kind="file",
            display_name="x",
            mime_type="text/plain",
            size_bytes=10,
            summary=summary,
        )
    session.refresh_from_db()
    return session


def test_everything_fits_in_priority_order(rich_session: AgentSession) -> None:
    bundle = context_inputs(session_id=rich_session.id, budget_tokens=10_000)
    assert [(m.content, m.token_count) for m in bundle.pinned_memories] == [("Answer briefly.", 4), ("Name is Ada.", 3)]
    assert [m.content for m in bundle.relevant_memories] == ["Drinks coffee every morning", "Morning runs at seven"]
    assert bundle.checkpoint is not None
    assert (bundle.checkpoint.through_seq, bundle.checkpoint.token_count) == (4, 10)
    assert [(e.day.isoformat(), e.summary) for e in bundle.episodes] == [
        ("2025-01-03", "Session day three."),
        ("2025-01-02", "Whole day two."),
        ("2025-01-01", "Session day one."),
    ]
    # Newest reference first, one per sha256; names and types come from the message's part.
    assert [(a.sha256, a.name, a.message_seq, a.summary) for a in bundle.attachments] == [
        (SHA_B, "photo.png", 8, "A photo of a cat."),
        (SHA_A, "notes again.txt", 8, "Notes about the launch."),
    ]
    assert [m.seq for m in bundle.messages] == [5, 6, 7, 8, 9, 10]
    parts: list[Sequence[Any]] = [
        bundle.pinned_memories,
        bundle.relevant_memories,
        [bundle.checkpoint],
        bundle.episodes,
        bundle.attachments,
        bundle.messages,
    ]
    assert bundle.total_tokens == sum(item.token_count for part in parts for item in part)
    assert bundle.total_tokens == 4 + 3 + 7 + 6 + 10 + 4 + 4 + 5 + 5 + 6 + 60
    assert (bundle.skipped_items, bundle.messages_omitted) == (0, 0)


def test_messages_are_trimmed_from_the_oldest_end(rich_session: AgentSession) -> None:
    without_messages = 4 + 3 + 7 + 6 + 10 + 4 + 4 + 5 + 5 + 6
    bundle = context_inputs(session_id=rich_session.id, budget_tokens=without_messages + 25)
    assert [m.seq for m in bundle.messages] == [9, 10]
    assert bundle.total_tokens == without_messages + 20
    assert bundle.messages_omitted == 4
    assert bundle.skipped_items == 0


def test_an_item_that_does_not_fit_is_skipped_whole_and_smaller_ones_still_fit(rich_session: AgentSession) -> None:
    bundle = context_inputs(session_id=rich_session.id, budget_tokens=6)
    # "Answer briefly." (4) fits, "Name is Ada." (3) does not; the 7- and 6-token memories do not either.
    assert [m.content for m in bundle.pinned_memories] == ["Answer briefly."]
    assert bundle.relevant_memories == ()
    assert bundle.checkpoint is None
    assert [e.summary for e in bundle.episodes] == []
    assert bundle.messages == ()
    assert bundle.total_tokens == 4
    assert bundle.messages_omitted == 6
    # Pinned, relevant, checkpoint, episodes; no attachment is looked up, because the tail read for a
    # 6-token budget stops at message #10, which refers to none.
    assert bundle.skipped_items == 1 + 2 + 1 + 3


@pytest.mark.parametrize("budget", [1, 3, 7, 8, 20, 33, 50, 64, 71, 90, 110, 118, 119, 120, 200])
def test_total_never_exceeds_the_budget(rich_session: AgentSession, budget: int) -> None:
    bundle = context_inputs(session_id=rich_session.id, budget_tokens=budget)
    assert bundle.total_tokens <= budget
    seqs = [m.seq for m in bundle.messages]
    assert seqs == list(range(11 - len(seqs), 11))  # always a contiguous tail ending at the newest


def test_same_state_gives_the_same_bundle(rich_session: AgentSession) -> None:
    first = context_inputs(session_id=rich_session.id, budget_tokens=80)
    second = context_inputs(session_id=rich_session.id, budget_tokens=80)
    assert first == second
    assert dataclasses.asdict(first) == dataclasses.asdict(second)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.total_tokens = 0  # type: ignore[misc]


def test_a_session_without_checkpoint_or_memories_gets_its_messages(talked_session: AgentSession) -> None:
    bundle = context_inputs(session_id=talked_session.id, budget_tokens=25)
    assert isinstance(bundle, ContextBundle)
    assert bundle.checkpoint is None
    assert [m.seq for m in bundle.messages] == [3, 4]
    assert (bundle.total_tokens, bundle.messages_omitted) == (20, 2)


def test_a_run_end_checkpoint_never_hides_messages(rich_session: AgentSession) -> None:
    # A run_end checkpoint newer than the manual one, through the whole log: it marks a moment only.
    checkpoint_create(session_id=rich_session.id, through_seq=10, reason="run_end", summary="Context reached 80%")
    bundle = context_inputs(session_id=rich_session.id, budget_tokens=MAX_BUDGET_TOKENS)
    assert bundle.checkpoint is not None
    assert bundle.checkpoint.through_seq == 4
    assert bundle.checkpoint.summary == "Earlier: greetings." * 2
    assert [m.seq for m in bundle.messages] == [5, 6, 7, 8, 9, 10]


def test_only_a_run_end_checkpoint_keeps_the_whole_log(talked_session: AgentSession) -> None:
    checkpoint_create(session_id=talked_session.id, through_seq=4, reason="run_end", summary="Context reached 80%")
    bundle = context_inputs(session_id=talked_session.id, budget_tokens=MAX_BUDGET_TOKENS)
    assert bundle.checkpoint is None
    assert [m.seq for m in bundle.messages] == [1, 2, 3, 4]
    assert bundle.messages_omitted == 0


def test_a_manual_checkpoint_without_summary_never_hides_messages(talked_session: AgentSession) -> None:
    checkpoint_create(session_id=talked_session.id, through_seq=3, reason="manual", summary="")
    bundle = context_inputs(session_id=talked_session.id, budget_tokens=MAX_BUDGET_TOKENS)
    assert bundle.checkpoint is None
    assert [m.seq for m in bundle.messages] == [1, 2, 3, 4]


def test_a_compaction_checkpoint_folds_what_it_covers(talked_session: AgentSession) -> None:
    checkpoint_create(session_id=talked_session.id, through_seq=2, reason="compaction", summary="Said hello twice.")
    checkpoint_create(session_id=talked_session.id, through_seq=3, reason="run_end", summary="Context reached 80%")
    bundle = context_inputs(session_id=talked_session.id, budget_tokens=MAX_BUDGET_TOKENS)
    assert bundle.checkpoint is not None
    assert (bundle.checkpoint.through_seq, bundle.checkpoint.summary) == (2, "Said hello twice.")
    assert [m.seq for m in bundle.messages] == [3, 4]


def test_reads_are_bounded_by_the_budget(
    chat_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    for index in range(300):
        message_append(session_id=chat_session.id, role="user", content=f"m{index}", token_count=5)
    # session_get, pinned memories, the path's latest user message, relevance search, the checkpoints
    # that may fold the path, recent episodes, ONE chunk of 64 messages walked from the leaf (64 * 5
    # tokens exceeds the budget), and the count of the path's messages for `messages_omitted`.
    with django_assert_num_queries(8):
        bundle = context_inputs(session_id=chat_session.id, budget_tokens=100)
    assert [m.seq for m in bundle.messages] == list(range(281, 301))
    # A larger budget reads more chunks, newest first, still never the whole log.
    with django_assert_num_queries(10):
        bundle = context_inputs(session_id=chat_session.id, budget_tokens=700)
    assert [m.seq for m in bundle.messages] == list(range(161, 301))


@pytest.mark.parametrize("budget", [0, -5, MAX_BUDGET_TOKENS + 1, True, 2.5])
def test_budget_is_validated(chat_session: AgentSession, budget: object) -> None:
    with pytest.raises(InvalidInputError, match=r"^budget_tokens: .* is out of range; give a whole number of tokens"):
        context_inputs(session_id=chat_session.id, budget_tokens=budget)  # type: ignore[arg-type]


def test_unknown_session_is_not_found(db: None) -> None:
    with pytest.raises(NotFoundError, match=r"^session: no session"):
        context_inputs(session_id="00000000-0000-0000-0000-000000000000", budget_tokens=10)
