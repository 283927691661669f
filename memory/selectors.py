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

from core.conversation.selectors import OwnerScope, owned, session_uuid
from core.errors import NotFoundError
from core.models import AgentSession
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


def memory_counts(*, owner_id: int | None = None) -> MemoryCounts:
    """Counts per tier in one statement of scalar subqueries, each served by an index.

    long-term total: SQLite counts `memory_recent_idx` (narrower than the rows, which carry the
    text), PostgreSQL an index-only scan when the visibility map allows; pinned: the partial
    `memory_pinned_idx` (its condition is the query's); episodes and the latest day:
    `episode_recent_idx`; attachments: the content foreign-key index. Written as SQL because the
    ORM compiles one aggregate per table (three queries, each costing more to build than to run).
    With `owner_id`, one user's records only (attachments through their sessions).
    """
    quote = connection.ops.quote_name
    memories = quote(LongTermMemory._meta.db_table)
    episodes = quote(DailyEpisode._meta.db_table)
    attachments = quote(AttachmentSummary._meta.db_table)
    sessions = quote(AgentSession._meta.db_table)
    owned = owner = "" if owner_id is None else f"{quote('owner_id')} = %s"
    and_owned = f" AND {owned}" if owned else ""
    where_owned = f" WHERE {owned}" if owned else ""
    by_session = (
        f" WHERE {quote('session_id')} IN (SELECT {quote('id')} FROM {sessions} WHERE {owner})"  # noqa: S608  # nosec B608
        if owner
        else ""
    )
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {memories}{where_owned}), "  # noqa: S608  # nosec B608 (table names only)
        f"(SELECT COUNT(*) FROM {memories} WHERE {quote('pinned')}{and_owned}), "
        f"(SELECT COUNT(*) FROM {episodes}{where_owned}), "
        f"(SELECT MAX({quote('day')}) FROM {episodes}{where_owned}), "
        f"(SELECT COUNT(*) FROM {attachments}{by_session}), "
        f"(SELECT COUNT(DISTINCT {quote('content_id')}) FROM {attachments}{by_session})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [] if owner_id is None else [owner_id] * 6)
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
    *, owner: OwnerScope = None, kind: str | None = None, pinned: bool | None = None, key: str | None = None
) -> QuerySet[LongTermMemory]:
    """`owner`'s long-term memories, newest first, optionally filtered."""
    queryset = owned(LongTermMemory.objects.all(), owner)
    if kind is not None:
        queryset = queryset.filter(kind=kind)
    if pinned is not None:
        queryset = queryset.filter(pinned=pinned)
    if key is not None:
        queryset = queryset.filter(key=key)
    return queryset.order_by("-created", "-id")


def memory_get(*, memory_id: int, owner: OwnerScope = None) -> LongTermMemory:
    """One memory of `owner`, or NotFoundError (another user's too)."""
    try:
        return owned(LongTermMemory.objects.all(), owner).get(pk=memory_id)
    except LongTermMemory.DoesNotExist:
        raise NotFoundError.for_field("memory", f"no long-term memory {memory_id}") from None


def memories_pinned(*, owner_id: int, limit: int) -> list[LongTermMemory]:
    """The owner's pinned memories, most important first, then newest (memory_pinned_idx)."""
    pinned = LongTermMemory.objects.filter(owner_id=owner_id, pinned=True)
    return list(pinned.order_by("-importance", "-id")[:limit])


def episode_list(
    *,
    owner: OwnerScope = None,
    session_id: UUID | str | None = None,
    whole_day: bool | None = None,
    day_from: datetime.date | None = None,
    day_to: datetime.date | None = None,
    source: str | None = None,
) -> QuerySet[DailyEpisode]:
    """`owner`'s daily episodes, newest day first, optionally filtered."""
    queryset = owned(DailyEpisode.objects.all(), owner)
    if session_id is not None:
        queryset = queryset.filter(session_id=session_uuid(session_id))
    if whole_day is not None:
        queryset = queryset.filter(session__isnull=whole_day)
    if day_from is not None:
        queryset = queryset.filter(day__gte=day_from)
    if day_to is not None:
        queryset = queryset.filter(day__lte=day_to)
    if source is not None:
        queryset = queryset.filter(source=source)
    return queryset.order_by("-day", "-id")


def episode_get(*, episode_id: int, owner: OwnerScope = None) -> DailyEpisode:
    """One daily episode of `owner`, or NotFoundError (another user's too)."""
    try:
        return owned(DailyEpisode.objects.all(), owner).get(pk=episode_id)
    except DailyEpisode.DoesNotExist:
        raise NotFoundError.for_field("episode", f"no daily episode {episode_id}") from None


def episodes_recent(*, session_id: UUID | str, owner_id: int, limit: int) -> list[DailyEpisode]:
    """The session's episodes and its owner's whole-day ones, newest day first."""
    session_filter = Q(session_id=session_uuid(session_id)) | Q(session__isnull=True)
    return list(DailyEpisode.objects.filter(session_filter, owner_id=owner_id).order_by("-day", "-id")[:limit])


def attachment_list(
    *,
    owner: OwnerScope = None,
    session_id: UUID | str | None = None,
    message_id: int | None = None,
    sha256: str | None = None,
    kind: str | None = None,
) -> QuerySet[AttachmentSummary]:
    """Attachment references (of `owner`'s sessions) with their shared content, newest first, optionally filtered."""
    queryset = AttachmentSummary.objects.select_related("content", "message")
    if owner is not None:
        queryset = queryset.filter(session__owner_id=owner.pk)
    if session_id is not None:
        queryset = queryset.filter(session_id=session_uuid(session_id))
    if message_id is not None:
        queryset = queryset.filter(message_id=message_id)
    if sha256 is not None:
        queryset = queryset.filter(content__sha256=sha256.lower())
    if kind is not None:
        queryset = queryset.filter(kind=kind)
    return queryset.order_by("-created", "-id")


def attachment_get(*, attachment_id: int, owner: OwnerScope = None) -> AttachmentSummary:
    """One attachment reference (of a session of `owner`) with its content, or NotFoundError."""
    references = AttachmentSummary.objects.select_related("content", "message")
    if owner is not None:
        references = references.filter(session__owner_id=owner.pk)
    try:
        return references.get(pk=attachment_id)
    except AttachmentSummary.DoesNotExist:
        raise NotFoundError.for_field("attachment", f"no attachment {attachment_id}") from None
