"""Reads of the conversation store, with their joins applied and bounded by seq."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from core.errors import NotFoundError
from core.models import AgentSession, Checkpoint, Message


def session_uuid(value: UUID | str) -> UUID:
    """`value` as a UUID; a malformed id is simply an unknown session."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFoundError.for_field("session", f"no session {value}") from None


def session_get(*, session_id: UUID | str) -> AgentSession:
    """One session with its route and provider, or NotFoundError."""
    try:
        return AgentSession.objects.select_related("route__provider").get(pk=session_uuid(session_id))
    except AgentSession.DoesNotExist:
        raise NotFoundError.for_field("session", f"no session {session_id}") from None


def checkpoint_latest(*, session_id: UUID | str) -> Checkpoint | None:
    """The session's newest checkpoint (an index seek on checkpoint_latest_idx)."""
    return Checkpoint.objects.filter(session_id=session_uuid(session_id)).order_by("-id").first()


def messages_after(*, session_id: UUID | str, after_seq: int, limit: int | None = None) -> QuerySet[Message]:
    """Messages with seq > `after_seq` in order; reads only the tail via the (session, seq) index."""
    queryset = Message.objects.filter(session_id=session_uuid(session_id), seq__gt=after_seq).order_by("seq")
    return queryset[:limit] if limit is not None else queryset


def messages_latest(*, session_id: UUID | str, limit: int) -> list[Message]:
    """The last `limit` messages in seq order (reads the tail backwards, then reverses)."""
    newest_first = list(Message.objects.filter(session_id=session_uuid(session_id)).order_by("-seq")[:limit])
    newest_first.reverse()
    return newest_first
