"""Reads of the memory tiers, with their joins applied, and the cheap counts the bootstrap shows.
Raw history stays core's message log: the context builder reads it through core's selectors
(`core.conversation.selectors.message_latest_user`, `messages_tail_chunk`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from uuid import UUID

from django.db import connection
from django.db.models import Q, QuerySet

from core.conversation.selectors import session_uuid
from core.lookups import filtered, row_get
from memory.models import AttachmentSummary, DailyEpisode, LongTermMemory


@dataclass(frozen=True)
class MemoryCounts:
    """How much each tier holds, for the bootstrap."""

    long_term: int
    pinned: int
    episodes: int
    latest_episode_day: datetime.date | None
    attachments: int
    attachment_contents: int


def memory_counts() -> MemoryCounts:
    """Counts per tier in one statement of scalar subqueries, each served by an index.

    long-term total: SQLite counts `memory_recent_idx` (narrower than the rows, which carry the
    text), PostgreSQL an index-only scan when the visibility map allows; pinned: the partial
    `memory_pinned_idx` (its condition is the query's); episodes and the latest day:
    `episode_recent_idx`; attachments: the content foreign-key index. Written as SQL because the
    ORM compiles one aggregate per table (three queries, each costing more to build than to run).
    """
    quote = connection.ops.quote_name
    memories = quote(LongTermMemory._meta.db_table)
    episodes = quote(DailyEpisode._meta.db_table)
    attachments = quote(AttachmentSummary._meta.db_table)
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {memories}), "  # noqa: S608  # nosec B608 (table names only)
        f"(SELECT COUNT(*) FROM {memories} WHERE {quote('pinned')}), "
        f"(SELECT COUNT(*) FROM {episodes}), "
        f"(SELECT MAX({quote('day')}) FROM {episodes}), "
        f"(SELECT COUNT(*) FROM {attachments}), "
        f"(SELECT COUNT(DISTINCT {quote('content_id')}) FROM {attachments})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        long_term, pinned, episode_count, latest, attachment_count, contents = cursor.fetchone()
    return MemoryCounts(
        long_term=int(long_term),
        pinned=int(pinned),
        episodes=int(episode_count),
        latest_episode_day=DailyEpisode._meta.get_field("day").to_python(latest),
        attachments=int(attachment_count),
        attachment_contents=int(contents),
    )


def memory_list(
    *, kind: str | None = None, pinned: bool | None = None, key: str | None = None
) -> QuerySet[LongTermMemory]:
    """Long-term memories, newest first, optionally filtered."""
    return filtered(LongTermMemory.objects.all(), kind=kind, pinned=pinned, key=key).order_by("-created", "-id")


def memory_get(*, memory_id: int) -> LongTermMemory:
    """One memory, or NotFoundError."""
    return row_get(LongTermMemory.objects.all(), "memory", f"no long-term memory {memory_id}", pk=memory_id)


def memories_pinned(*, limit: int) -> list[LongTermMemory]:
    """Pinned memories, most important first, then newest (memory_pinned_idx)."""
    return list(LongTermMemory.objects.filter(pinned=True).order_by("-importance", "-id")[:limit])


def episode_list(
    *,
    session_id: UUID | str | None = None,
    whole_day: bool | None = None,
    day_from: datetime.date | None = None,
    day_to: datetime.date | None = None,
    source: str | None = None,
) -> QuerySet[DailyEpisode]:
    """Daily episodes, newest day first, optionally filtered."""
    queryset = filtered(
        DailyEpisode.objects.all(),
        session_id=None if session_id is None else session_uuid(session_id),
        session__isnull=whole_day,
        day__gte=day_from,
        day__lte=day_to,
        source=source,
    )
    return queryset.order_by("-day", "-id")


def episode_get(*, episode_id: int) -> DailyEpisode:
    """One daily episode, or NotFoundError."""
    return row_get(DailyEpisode.objects.all(), "episode", f"no daily episode {episode_id}", pk=episode_id)


def episodes_recent(*, session_id: UUID | str, limit: int) -> list[DailyEpisode]:
    """The session's episodes and the whole-day ones, newest day first."""
    session_filter = Q(session_id=session_uuid(session_id)) | Q(session__isnull=True)
    return list(DailyEpisode.objects.filter(session_filter).order_by("-day", "-id")[:limit])


def attachment_list(
    *,
    session_id: UUID | str | None = None,
    message_id: int | None = None,
    sha256: str | None = None,
    kind: str | None = None,
) -> QuerySet[AttachmentSummary]:
    """Attachment references with their shared content, newest first, optionally filtered."""
    queryset = filtered(
        AttachmentSummary.objects.select_related("content", "message"),
        session_id=None if session_id is None else session_uuid(session_id),
        message_id=message_id,
        content__sha256=None if sha256 is None else sha256.lower(),
        kind=kind,
    )
    return queryset.order_by("-created", "-id")


def attachment_get(*, attachment_id: int) -> AttachmentSummary:
    """One attachment reference with its content, or NotFoundError."""
    queryset = AttachmentSummary.objects.select_related("content", "message")
    return row_get(queryset, "attachment", f"no attachment {attachment_id}", pk=attachment_id)
