"""Reads of the memory tiers, with their joins applied, and the cheap counts the bootstrap shows.
Raw history stays core's message log: the context builder reads it through core's selectors
(`core.conversation.selectors.path_latest_user`, `path_page`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q, QuerySet

from core.conversation.selectors import OwnerScope, owned, session_uuid
from core.lookups import filtered, row_get
from memory.models import AttachmentContent, AttachmentSummary, DailyEpisode, LongTermMemory, MemoryTally


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

    Forgotten memories are not counted. long-term total: one account's is its `MemoryTally` row (a
    primary-key seek whatever it holds), everyone's a count; the pinned count is a range of
    `memory_owner_pinned_count_idx` (each pinned memory's row read for `forgotten_at`: pinned
    memories are few, since each goes into every context); episodes and the latest day:
    `episode_recent_idx`; attachments: the content foreign-key index. Written as SQL because the
    ORM compiles one aggregate per table (three queries, each costing more to build than to run).
    With `owner_id`, one user's records only: their attachments are the references to their own
    contents (a content's owner is the owner of every session that refers to it), so the count
    walks their attachments, not their sessions.
    """
    db = connections[DEFAULT_DB_ALIAS]
    key = (db.vendor, owner_id is not None)
    sql = _COUNTS_SQL.get(key) or _COUNTS_SQL.setdefault(key, _memory_counts_sql(db, owned=owner_id is not None))
    with db.cursor() as cursor:
        owners = [] if owner_id is None else [owner_id]
        cursor.execute(sql, [*owners, True, *owners * 4])
        long_term, pinned, episode_count, latest, attachment_count, contents = cursor.fetchone()
    return MemoryCounts(
        long_term=int(long_term),
        pinned=int(pinned),
        episodes=int(episode_count),
        latest_episode_day=_EPISODE_DAY.to_python(latest),
        attachments=int(attachment_count),
        attachment_contents=int(contents),
    )


_EPISODE_DAY = DailyEpisode._meta.get_field("day")
# The counting statement per (database vendor, one owner or all): SQL text only.
_COUNTS_SQL: dict[tuple[str, bool], str] = {}


def _memory_counts_sql(db: BaseDatabaseWrapper, *, owned: bool) -> str:
    quote = db.ops.quote_name
    memories = quote(LongTermMemory._meta.db_table)
    episodes = quote(DailyEpisode._meta.db_table)
    attachments = quote(AttachmentSummary._meta.db_table)
    contents = quote(AttachmentContent._meta.db_table)
    owner = f"{quote('owner_id')} = %s"
    and_owned = f" AND {owner}" if owned else ""
    where_owned = f" WHERE {owner}" if owned else ""
    # The attachment counts in one pass over the owner's references, reached from their contents.
    references = (
        f"{attachments} r INNER JOIN {contents} c ON c.{quote('id')} = r.{quote('content_id')} WHERE c.{owner}"
        if owned
        else attachments
    )
    # One account's total is its tally row (kept by the services), everyone's a count.
    tally = quote(MemoryTally._meta.db_table)
    remembered = f"{quote('forgotten_at')} IS NULL"
    long_term = (
        f"(SELECT COALESCE(MAX({quote('long_term')}), 0) FROM {tally} WHERE {owner})"  # noqa: S608  # nosec B608
        if owned
        else f"(SELECT COUNT(*) FROM {memories} WHERE {remembered})"  # noqa: S608  # nosec B608
    )
    return (
        f"SELECT {long_term}, "  # noqa: S608  # nosec B608 (table names only)
        f"(SELECT COUNT(*) FROM {memories} WHERE {quote('pinned')} = %s{and_owned} AND {remembered}), "
        f"(SELECT COUNT(*) FROM {episodes}{where_owned}), "
        f"(SELECT MAX({quote('day')}) FROM {episodes}{where_owned}), "
        f"a.n, a.contents FROM (SELECT COUNT(*) AS n, COUNT(DISTINCT {quote('content_id')}) AS contents "
        f"FROM {references}) a"
    )


def memory_list(
    *,
    owner: OwnerScope = None,
    kind: str | None = None,
    pinned: bool | None = None,
    key: str | None = None,
    forgotten: bool = False,
) -> QuerySet[LongTermMemory]:
    """`owner`'s long-term memories, newest first, optionally filtered; `forgotten`: only the forgotten ones."""
    queryset = filtered(owned(LongTermMemory.objects.all(), owner), kind=kind, pinned=pinned, key=key)
    return queryset.filter(forgotten_at__isnull=not forgotten).order_by("-created", "-id")


def memory_get(*, memory_id: int, owner: OwnerScope = None) -> LongTermMemory:
    """One memory of `owner`, or NotFoundError (another user's too)."""
    return row_get(
        owned(LongTermMemory.objects.all(), owner), "memory", f"no long-term memory {memory_id}", pk=memory_id
    )


def memories_pinned(*, owner_id: int, limit: int) -> list[LongTermMemory]:
    """The owner's pinned memories, most important first, then newest (memory_owner_pinned_idx)."""
    pinned = LongTermMemory.objects.filter(owner_id=owner_id, pinned=True, forgotten_at__isnull=True)
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
    queryset = filtered(
        owned(DailyEpisode.objects.all(), owner),
        session_id=None if session_id is None else session_uuid(session_id),
        session__isnull=whole_day,
        day__gte=day_from,
        day__lte=day_to,
        source=source,
    )
    return queryset.order_by("-day", "-id")


def episode_get(*, episode_id: int, owner: OwnerScope = None) -> DailyEpisode:
    """One daily episode of `owner`, or NotFoundError (another user's too)."""
    queryset = owned(DailyEpisode.objects.all(), owner)
    return row_get(queryset, "episode", f"no daily episode {episode_id}", pk=episode_id)


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
    queryset = filtered(
        AttachmentSummary.objects.select_related("content", "message"),
        session__owner_id=None if owner is None else owner.pk,
        session_id=None if session_id is None else session_uuid(session_id),
        message_id=message_id,
        content__sha256=None if sha256 is None else sha256.lower(),
        kind=kind,
    )
    return queryset.order_by("-created", "-id")


def attachment_get(*, attachment_id: int, owner: OwnerScope = None) -> AttachmentSummary:
    """One attachment reference (of a session of `owner`) with its content, or NotFoundError."""
    queryset = filtered(
        AttachmentSummary.objects.select_related("content", "message"),
        session__owner_id=None if owner is None else owner.pk,
    )
    return row_get(queryset, "attachment", f"no attachment {attachment_id}", pk=attachment_id)
