"""The context builder's input: what the model should see next for a session, within a token budget.

`context_inputs(session_id=…, budget_tokens=…)` fills the budget in this priority, reading the
conversation along the session's active path (from its leaf, or from `leaf` when given, to the root):

1. pinned long-term memories (most important first, then newest; at most MAX_PINNED);
2. long-term memories relevant to the path's latest user message (full-text search for any of its words,
   best first; pinned ones are never repeated here; at most MAX_RELEVANT);
3. the summary of the newest checkpoint on the path that carries one (`compaction`, or `manual` with
   a summary; a `run_end` checkpoint marks a moment and never hides messages; a checkpoint on
   another branch never folds this one);
4. recent daily episodes, the session's and the whole-day ones, newest day first (at most MAX_EPISODES);
5. summaries of attachments referenced (attachment parts, by sha256) by the messages read in step 6,
   newest reference first (at most MAX_ATTACHMENTS);
6. the path's messages after that checkpoint, in order, trimmed from the OLDEST end to fit what is left.

Items of 1 to 5 are taken whole or not at all: one that does not fit in what remains is skipped
(counted in `skipped_items`) and the next, smaller one may still fit. Messages must stay a
contiguous tail, so step 6 stops at the first (newest-to-oldest) message that does not fit.
`total_tokens` never exceeds the budget, and the same stored state always gives the same bundle.

Token counts: a message's stored `token_count`; an episode's and an attachment content's stored
`token_count`; for a memory and a checkpoint summary, `core.conversation.contracts.estimate_tokens` of the text.

Reads are bounded: the path is walked from the leaf in chunks of TAIL_CHUNK only until the messages
read would fill the whole budget (or MAX_TAIL_MESSAGES, or the checkpoint is reached).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from django.db import models

from core.conversation.contracts import estimate_tokens
from core.conversation.selectors import (
    UNBOUNDED_BYTES,
    OwnerScope,
    checkpoint_on_path,
    path_latest_user,
    path_length,
    path_page,
    session_get,
)
from core.errors import InvalidInputError
from core.models import Message
from memory.models import AttachmentContent, LongTermMemory
from memory.search import MatchMode, memory_search
from memory.selectors import episodes_recent, memories_pinned

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MAX_BUDGET_TOKENS = 2_000_000
MAX_PINNED = 50
MAX_RELEVANT = 10
MAX_EPISODES = 7
MAX_ATTACHMENTS = 20
TAIL_CHUNK = 64
MAX_TAIL_MESSAGES = 2_000
# A context item built from a stored row.
T = TypeVar("T", bound="DataclassInstance")


@dataclass(frozen=True)
class ContextMemory:
    id: int
    kind: str
    key: str | None
    content: str
    importance: int
    pinned: bool
    token_count: int


@dataclass(frozen=True)
class ContextCheckpoint:
    id: int
    through_seq: int
    summary: str
    token_count: int


@dataclass(frozen=True)
class ContextEpisode:
    id: int
    day: datetime.date
    timezone: str
    session_id: UUID | None
    summary: str
    token_count: int


@dataclass(frozen=True)
class ContextAttachment:
    sha256: str
    name: str
    mime_type: str
    message_seq: int
    summary: str
    token_count: int


@dataclass(frozen=True)
class ContextMessage:
    seq: int
    role: str
    content: str
    parts: list[Any]
    token_count: int


@dataclass(frozen=True)
class ContextBundle:
    """Everything the context builder may send, in priority order, with the tokens each part costs."""

    session_id: UUID
    budget_tokens: int
    total_tokens: int
    pinned_memories: tuple[ContextMemory, ...]
    relevant_memories: tuple[ContextMemory, ...]
    checkpoint: ContextCheckpoint | None
    episodes: tuple[ContextEpisode, ...]
    attachments: tuple[ContextAttachment, ...]
    messages: tuple[ContextMessage, ...]
    skipped_items: int
    messages_omitted: int


class _Budget:
    def __init__(self, total: int) -> None:
        self.remaining = total
        self.used = 0
        self.skipped = 0

    def take(self, tokens: int) -> bool:
        if tokens > self.remaining:
            self.skipped += 1
            return False
        self.remaining -= tokens
        self.used += tokens
        return True


def budget_validate(value: object, *, field: str = "budget") -> int:
    """A budget is a whole number of tokens from 1 to MAX_BUDGET_TOKENS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BUDGET_TOKENS:
        raise InvalidInputError.for_field(
            field, f"{value!r} is out of range; give a whole number of tokens from 1 to {MAX_BUDGET_TOKENS}"
        )
    return value


def _from_row(item: type[T], row: models.Model, **given: Any) -> T:
    """`item` filled from `row`'s attributes of the same names, but for those `given`."""
    return item(**{f.name: given[f.name] if f.name in given else getattr(row, f.name) for f in fields(item)})


def _memory(memory: LongTermMemory) -> ContextMemory:
    return _from_row(ContextMemory, memory, token_count=estimate_tokens(memory.content))


def _read_tail(session_id: UUID, after_seq: int, leaf: int, budget_tokens: int) -> tuple[list[Message], bool]:
    """The path's messages above `after_seq` from `leaf`, newest first, until they would fill the whole budget.

    Also whether the walk stopped before the floor (older messages of the path remain unread).
    """
    tail: list[Message] = []
    tokens = 0
    start, before = leaf, False
    while tokens <= budget_tokens and len(tail) < MAX_TAIL_MESSAGES:
        page = path_page(
            session_id=session_id,
            start_seq=start,
            before=before,
            after_seq=after_seq,
            limit=TAIL_CHUNK,
            budget_bytes=UNBOUNDED_BYTES,
        )
        for message in reversed(page.messages):
            tail.append(message)
            tokens += message.token_count
            if tokens > budget_tokens or len(tail) == MAX_TAIL_MESSAGES:
                return tail, message is not page.messages[0] or page.next_before_seq is not None
        if page.next_before_seq is None:
            return tail, False
        start, before = page.next_before_seq, True
    return tail, True


def _attachments(tail: list[Message], owner_id: int) -> list[ContextAttachment]:
    """Summaries (the session owner's own) of the contents the tail refers to, newest first, one per sha256."""
    refs: dict[str, tuple[dict[str, Any], int]] = {}
    for message in tail:
        for part in message.parts if isinstance(message.parts, list) else []:
            if isinstance(part, dict) and part.get("type") == "attachment" and part.get("sha256") not in refs:
                refs[str(part.get("sha256"))] = (part, message.seq)
            if len(refs) == MAX_ATTACHMENTS:
                break
        if len(refs) == MAX_ATTACHMENTS:
            break
    if not refs:
        return []
    contents = {
        content.sha256: content
        for content in AttachmentContent.objects.filter(owner_id=owner_id, sha256__in=list(refs))
        .exclude(summary="")
        .only("sha256", "summary", "token_count")
    }
    found: list[ContextAttachment] = []
    for sha256, (part, seq) in refs.items():
        content = contents.get(sha256)
        if content is not None:
            found.append(
                ContextAttachment(
                    sha256=sha256,
                    name=str(part.get("name", "")),
                    mime_type=str(part.get("mime_type", "")),
                    message_seq=seq,
                    summary=content.summary,
                    token_count=content.token_count,
                )
            )
    return found


def _path_after(session_id: UUID, leaf: int, after_seq: int, tail: list[Message], unread: bool) -> int:
    """How many messages the path holds after `after_seq`: those read, or (when some were left unread) a count walk."""
    if not unread:
        return len(tail)
    return path_length(session_id=session_id, leaf=leaf, after_seq=after_seq)


def context_inputs(
    *, session_id: UUID | str, owner: OwnerScope = None, budget_tokens: int | None = None, leaf: int | None = None
) -> ContextBundle:
    """The bundle for `session_id` within `budget_tokens`, in the module's documented priority.

    The conversation is the path from message `leaf` (default: the session's stored leaf) to the root.
    Without a budget: the session route's context window minus its maximum output (at least 1).
    Memories and episodes are the session owner's only; with `owner`, another user's session is not found.
    """
    if budget_tokens is not None:
        budget_tokens = budget_validate(budget_tokens, field="budget_tokens")
    session = session_get(session_id=session_id, owner=owner)
    leaf = session.leaf if leaf is None else leaf
    if budget_tokens is None:
        window = session.route.context_window_tokens - session.route.max_output_tokens
        budget_tokens = min(max(window, 1), MAX_BUDGET_TOKENS)
    budget = _Budget(budget_tokens)

    pinned = tuple(
        m
        for m in map(_memory, memories_pinned(owner_id=session.owner_id, limit=MAX_PINNED))
        if budget.take(m.token_count)
    )

    relevant: tuple[ContextMemory, ...] = ()
    latest_user = path_latest_user(session_id=session.pk, leaf=leaf)
    if latest_user is not None and latest_user.content:
        hits = memory_search(
            latest_user.content, MAX_RELEVANT, owner_id=session.owner_id, mode=MatchMode.ANY, include_pinned=False
        )
        relevant = tuple(m for m in (_memory(hit.memory) for hit in hits) if budget.take(m.token_count))

    checkpoint = checkpoint_on_path(session_id=session.pk, leaf=leaf)
    context_checkpoint: ContextCheckpoint | None = None
    if checkpoint is not None and checkpoint.summary:
        candidate = _from_row(ContextCheckpoint, checkpoint, token_count=estimate_tokens(checkpoint.summary))
        if budget.take(candidate.token_count):
            context_checkpoint = candidate

    episodes = tuple(
        episode
        for episode in (
            _from_row(ContextEpisode, row)
            for row in episodes_recent(session_id=session.pk, owner_id=session.owner_id, limit=MAX_EPISODES)
        )
        if budget.take(episode.token_count)
    )

    after_seq = checkpoint.through_seq if checkpoint is not None else 0
    tail, unread = _read_tail(session.pk, after_seq, leaf, budget_tokens)
    attachments = tuple(a for a in _attachments(tail, session.owner_id) if budget.take(a.token_count))

    kept: list[ContextMessage] = []
    for message in tail:
        if message.token_count > budget.remaining:
            break
        budget.take(message.token_count)
        parts = list(message.parts) if isinstance(message.parts, list) else []
        kept.append(_from_row(ContextMessage, message, parts=parts))
    kept.reverse()

    return ContextBundle(
        session_id=session.pk,
        budget_tokens=budget_tokens,
        total_tokens=budget.used,
        pinned_memories=pinned,
        relevant_memories=relevant,
        checkpoint=context_checkpoint,
        episodes=episodes,
        attachments=attachments,
        messages=tuple(kept),
        skipped_items=budget.skipped,
        messages_omitted=_path_after(session.pk, leaf, after_seq, tail, unread) - len(kept),
    )
