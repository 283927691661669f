"""Writes to the conversation store: the only path by which sessions and messages change.

Seq allocation: the append locks the session row (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite
the connection's `BEGIN IMMEDIATE` already holds the database write lock), reads `last_seq`, inserts
`last_seq + 1` and bumps the counters with one UPDATE in the same transaction. Concurrent writers
therefore queue and the log has no gap and no duplicate; the unique constraint on (session, seq)
is the last line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.contracts import MAX_CONTENT_CHARS, MessagePart, estimate_tokens, parts_validate
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models import AgentSession, Message, MessageRole, ModelRoute, SessionStatus
from core.selectors.conversation import session_uuid

MAX_TITLE_CHARS = 200
MAX_CLIENT_ID_CHARS = 128


@dataclass(frozen=True)
class AppendResult:
    """The stored message, and whether this call created it (False for an idempotent retry)."""

    message: Message
    created: bool


def _route_resolve(route_alias: str | None) -> ModelRoute:
    if route_alias:
        route = ModelRoute.objects.filter(alias=route_alias).select_related("provider").first()
        if route is None:
            raise InvalidInputError.for_field(
                "route", f"no model route {route_alias!r}; use an alias from /api/config/routes/"
            )
        return route
    route = ModelRoute.objects.filter(is_default=True).select_related("provider").first()
    if route is None:
        raise InvalidInputError.for_field(
            "route", "no route given and no default route is configured; name a route or mark one as default"
        )
    return route


def session_create(*, title: str = "", route_alias: str | None = None) -> AgentSession:
    """Start a session on `route_alias` (or the default route)."""
    title = title.strip()
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidInputError.for_field("title", f"has {len(title)} characters; at most {MAX_TITLE_CHARS}")
    route = _route_resolve(route_alias)
    with transaction.atomic():
        return AgentSession.objects.create(title=title, route=route)


def _session_locked(session_id: UUID | str) -> AgentSession:
    """The session row, locked for the rest of the transaction."""
    try:
        return AgentSession.objects.select_for_update().get(pk=session_uuid(session_id))
    except AgentSession.DoesNotExist:
        raise NotFoundError.for_field("session", f"no session {session_id}") from None


def message_append(
    *,
    session_id: UUID | str,
    role: str,
    content: str = "",
    parts: list[MessagePart] | None = None,
    token_count: int | None = None,
    client_id: str | None = None,
) -> AppendResult:
    """Append one message with the next seq; a retry with the same `client_id` returns the stored one."""
    if role not in MessageRole.values:
        raise InvalidInputError.for_field("role", f"{role!r} is not a role; use one of {', '.join(MessageRole.values)}")
    if len(content) > MAX_CONTENT_CHARS:
        raise InvalidInputError.for_field(
            "content", f"has {len(content)} characters; at most {MAX_CONTENT_CHARS} are allowed"
        )
    checked_parts = parts_validate(parts)
    if not content and not checked_parts:
        raise InvalidInputError.for_field("content", "empty; give text content or at least one part")
    if token_count is not None and token_count < 0:
        raise InvalidInputError.for_field("token_count", "must be zero or more")
    if client_id is not None:
        client_id = client_id.strip()
        if not client_id or len(client_id) > MAX_CLIENT_ID_CHARS:
            raise InvalidInputError.for_field("client_id", f"must be 1 to {MAX_CLIENT_ID_CHARS} characters")
    estimated = token_count is None
    tokens = estimate_tokens(content, checked_parts) if token_count is None else token_count

    with transaction.atomic():
        session = _session_locked(session_id)
        if client_id is not None:
            existing = Message.objects.filter(session=session, client_id=client_id).first()
            if existing is not None:
                return AppendResult(message=existing, created=False)
        if session.status == SessionStatus.ARCHIVED:
            raise ConflictError.for_field("session", "is archived; unarchive it or start a new session")
        message = Message.objects.create(
            session=session,
            seq=session.last_seq + 1,
            role=role,
            content=content,
            parts=checked_parts,
            token_count=tokens,
            token_count_estimated=estimated,
            client_id=client_id,
        )
        AgentSession.objects.filter(pk=session.pk).update(
            last_seq=F("last_seq") + 1,
            message_count=F("message_count") + 1,
            tokens_since_checkpoint=F("tokens_since_checkpoint") + tokens,
            updated=timezone.now(),
        )
    return AppendResult(message=message, created=True)
