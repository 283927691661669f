"""Reads of the conversation store, with their joins applied and bounded by seq (or event index).

Context fullness: a session's `tokens_since_checkpoint` as a percentage of its route's
`context_window_tokens`. A session needs compaction when that percentage reaches
`settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT` (read at call time); the comparison is done in
integers (`tokens * 100 >= threshold * window`) both in SQL and in Python, so both agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db.models import F, QuerySet, Value
from django.db.models.lookups import GreaterThanOrEqual

from core.errors import InvalidInputError, NotFoundError
from core.models import AgentSession, Checkpoint, Message, Run, RunStatus, SessionStatus, TraceEvent, TraceEventType


def _uuid(value: UUID | str, *, field: str, noun: str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFoundError.for_field(field, f"no {noun} {value}") from None


def session_uuid(value: UUID | str) -> UUID:
    """`value` as a UUID; a malformed id is simply an unknown session."""
    return _uuid(value, field="session", noun="session")


def run_uuid(value: UUID | str) -> UUID:
    """`value` as a UUID; a malformed id is simply an unknown run."""
    return _uuid(value, field="run", noun="run")


# --- Sessions and the compaction signal -----------------------------------------------------


def compaction_threshold_percent() -> int:
    """The context fullness (in percent) at which a session needs compaction."""
    from django.conf import settings

    return int(settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT)


def context_fullness_percent(session: AgentSession) -> float:
    """How full the session's context is: tokens since the last compaction / the route's window, in %."""
    return round(session.tokens_since_checkpoint * 100 / session.route.context_window_tokens, 1)


def session_needs_compaction(session: AgentSession) -> bool:
    """True when the session is active and its context fullness reached the threshold."""
    window = session.route.context_window_tokens
    return session.status == SessionStatus.ACTIVE and (
        session.tokens_since_checkpoint * 100 >= compaction_threshold_percent() * window
    )


def _needs_compaction_condition() -> GreaterThanOrEqual[int]:
    # tokens * 100 >= threshold * window, evaluated by the database against the joined route.
    return GreaterThanOrEqual(
        F("tokens_since_checkpoint") * Value(100),
        F("route__context_window_tokens") * Value(compaction_threshold_percent()),
    )


def session_get(*, session_id: UUID | str) -> AgentSession:
    """One session with its route and provider, or NotFoundError."""
    try:
        return AgentSession.objects.select_related("route__provider").get(pk=session_uuid(session_id))
    except AgentSession.DoesNotExist:
        raise NotFoundError.for_field("session", f"no session {session_id}") from None


def sessions_list(*, status: str | None = None, needs_compaction: bool | None = None) -> QuerySet[AgentSession]:
    """Sessions (newest created first) with their route joined; optionally by status or compaction need."""
    queryset = AgentSession.objects.select_related("route").order_by("-created", "-id")
    if status is not None:
        if status not in SessionStatus.values:
            raise InvalidInputError.for_field(
                "status", f"{status!r} is not a session status; use one of {', '.join(SessionStatus.values)}"
            )
        queryset = queryset.filter(status=status)
    if needs_compaction is True:
        queryset = queryset.filter(_needs_compaction_condition(), status=SessionStatus.ACTIVE)
    elif needs_compaction is False:
        queryset = queryset.exclude(_needs_compaction_condition(), status=SessionStatus.ACTIVE)
    return queryset


def sessions_needing_compaction() -> QuerySet[AgentSession]:
    """Active sessions whose context fullness reached the threshold, fullest first (one SQL query)."""
    return (
        AgentSession.objects.select_related("route")
        .filter(_needs_compaction_condition(), status=SessionStatus.ACTIVE)
        .order_by("-tokens_since_checkpoint", "-id")
    )


def sessions_needing_compaction_count() -> int:
    """How many active sessions need compaction (one COUNT query)."""
    return AgentSession.objects.filter(_needs_compaction_condition(), status=SessionStatus.ACTIVE).count()


# --- Messages, checkpoints and restore ------------------------------------------------------


def checkpoint_latest(*, session_id: UUID | str) -> Checkpoint | None:
    """The session's newest checkpoint (an index seek on checkpoint_latest_idx)."""
    return Checkpoint.objects.filter(session_id=session_uuid(session_id)).order_by("-id").first()


def checkpoints_list(*, session_id: UUID | str) -> QuerySet[Checkpoint]:
    """A session's checkpoints, newest first (checkpoint_latest_idx)."""
    return Checkpoint.objects.filter(session_id=session_uuid(session_id)).order_by("-id")


def messages_after(*, session_id: UUID | str, after_seq: int, limit: int | None = None) -> QuerySet[Message]:
    """Messages with seq > `after_seq` in order; reads only the tail via the (session, seq) index."""
    queryset = Message.objects.filter(session_id=session_uuid(session_id), seq__gt=after_seq).order_by("seq")
    return queryset[:limit] if limit is not None else queryset


def messages_latest(*, session_id: UUID | str, limit: int) -> list[Message]:
    """The last `limit` messages in seq order (reads the tail backwards, then reverses)."""
    newest_first = list(Message.objects.filter(session_id=session_uuid(session_id)).order_by("-seq")[:limit])
    newest_first.reverse()
    return newest_first


@dataclass(frozen=True)
class Restore:
    """What a runtime needs to resume a session: its latest checkpoint and the messages after it."""

    session: AgentSession
    checkpoint: Checkpoint | None
    messages: list[Message]


def session_restore(*, session_id: UUID | str) -> Restore:
    """The latest checkpoint plus only the messages after its `through_seq` (all of them without one).

    Three queries whatever the session's length: the session, the latest checkpoint (index seek),
    and `seq > through_seq` on the (session, seq) index, so older messages are never read.
    """
    session = session_get(session_id=session_id)
    checkpoint = checkpoint_latest(session_id=session.pk)
    after_seq = checkpoint.through_seq if checkpoint is not None else 0
    return Restore(
        session=session,
        checkpoint=checkpoint,
        messages=list(messages_after(session_id=session.pk, after_seq=after_seq)),
    )


# --- Runs and traces ------------------------------------------------------------------------


def run_get(*, run_id: UUID | str) -> Run:
    """One run with its route, or NotFoundError."""
    try:
        return Run.objects.select_related("route").get(pk=run_uuid(run_id))
    except Run.DoesNotExist:
        raise NotFoundError.for_field("run", f"no run {run_id}") from None


def runs_list(*, session_id: UUID | str | None = None, status: str | None = None) -> QuerySet[Run]:
    """Runs newest first with their route joined; optionally of one session and/or in one status."""
    queryset = Run.objects.select_related("route").order_by("-created", "-id")
    if session_id is not None:
        try:
            queryset = queryset.filter(session_id=UUID(str(session_id)))
        except ValueError:
            raise InvalidInputError.for_field("session", f"{session_id!r} is not a session id (a UUID)") from None
    if status is not None:
        if status not in RunStatus.values:
            raise InvalidInputError.for_field(
                "status", f"{status!r} is not a run status; use one of {', '.join(RunStatus.values)}"
            )
        queryset = queryset.filter(status=status)
    return queryset


def trace_events(*, run_id: UUID | str, after_index: int = 0) -> QuerySet[TraceEvent]:
    """A run's events with index > `after_index`, in order (the (run, index) unique index)."""
    return TraceEvent.objects.filter(run_id=run_uuid(run_id), index__gt=after_index).order_by("index")


def run_text(*, run_id: UUID | str) -> str:
    """The streamed reply rebuilt: the `text` of the run's `text_delta` events concatenated in index order."""
    deltas = (
        TraceEvent.objects.filter(run_id=run_uuid(run_id), type=TraceEventType.TEXT_DELTA)
        .order_by("index")
        .values_list("payload", flat=True)
    )
    return "".join(str(payload.get("text", "")) for payload in deltas.iterator(chunk_size=2_000))
