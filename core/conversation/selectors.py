"""Reads of the conversation store, with their joins applied and bounded by seq (or event index).

Context fullness: a session's `tokens_since_checkpoint` as a percentage of its route's
`context_window_tokens`. A session needs compaction when that percentage reaches
`settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT` (read at call time); the comparison is done in
integers (`tokens * 100 - threshold * window >= 0`), written once in `compaction_margin` and
evaluated by Python (`needs_compaction`) or by the database (`needs_compaction_condition`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload
from uuid import UUID
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, JSONField, Model, Q, QuerySet, Value
from django.db.models.base import ModelState
from django.db.models.expressions import Col, Combinable
from django.db.models.lookups import GreaterThanOrEqual
from django.utils.dateparse import parse_datetime

from core.errors import InvalidInputError, NotFoundError
from core.models import (
    AgentSession,
    Checkpoint,
    Message,
    MessageRole,
    ModelRoute,
    Provider,
    Run,
    RunStatus,
    SessionStatus,
    TraceEvent,
    TraceEventType,
)


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


# --- Fixed SQL for the per-turn paths -------------------------------------------------------
#
# Restore and append run on every turn, and compiling their queries through the ORM costs several
# times the database work. They run fixed SQL instead, built once per connection (`per_connection`).
# `ModelColumns` lists a model's columns for such a SELECT and turns a row back into an instance
# with the converters a queryset applies on that backend (SQLite's text datetimes, char(32) UUIDs
# and 0/1 booleans; JSON decoding on both), so the instance cannot be told apart from one read by
# `Model.objects.get(...)`; tests/core/test_conversation_fast_paths.py compares them field by field.

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]
M = TypeVar("M", bound=Model)
T = TypeVar("T")

_PER_CONNECTION: WeakKeyDictionary[BaseDatabaseWrapper, dict[str, Any]] = WeakKeyDictionary()


def per_connection(key: str, build: Callable[[BaseDatabaseWrapper], T]) -> tuple[BaseDatabaseWrapper, T]:
    """This thread's default connection and `build(connection)`, built once per connection."""
    db = connections[DEFAULT_DB_ALIAS]
    cache = _PER_CONNECTION.get(db)
    if cache is None:
        cache = _PER_CONNECTION[db] = {}
    if key not in cache:
        cache[key] = build(db)
    built: T = cache[key]
    return db, built


def instance_loaded(model: type[M], db_alias: str, values: dict[str, Any]) -> M:
    """An instance of `model` holding `values` (every concrete field's attname), marked as read from `db_alias`.

    Built the way unpickling builds one (`__dict__` filled), which skips `Model.__init__`'s per-field
    descriptor calls and init signals; no model of the conversation store has init signal receivers.
    """
    instance = model.__new__(model)
    state = ModelState()
    state.adding = False
    state.db = db_alias
    values["_state"] = state
    instance.__dict__ = values
    return instance


class ModelColumns(Generic[M]):
    """The concrete columns of `model` under table alias `alias` (minus `given`), read as the ORM reads them."""

    def __init__(self, model: type[M], alias: str, db: BaseDatabaseWrapper, given: Collection[str] = ()) -> None:
        self.model = model
        self.db = db
        self.read = [field for field in model._meta.concrete_fields if field.attname not in given]
        self.names = [field.attname for field in self.read]
        self.width = len(self.read)
        # In the order a queryset applies them: the backend's, then the field's own.
        self.converters: list[tuple[str, Col, Converter]] = []
        for field in self.read:
            column = field.get_col(alias)  # a foreign key's column reads as its target field
            for converter in (*db.ops.get_db_converters(column), *column.get_db_converters(db)):
                self.converters.append((field.attname, column, _cheaper(converter, field, db)))
        quote = db.ops.quote_name
        self.sql = ", ".join(f"{alias}.{quote(field.column)}" for field in self.read)

    def build(self, row: Sequence[Any], start: int = 0, given: Mapping[str, Any] | None = None) -> M:
        """The instance held in `row[start : start + self.width]`, plus the `given` field values."""
        values = dict(zip(self.names, row[start : start + self.width], strict=True))
        db = self.db
        for name, column, converter in self.converters:
            values[name] = converter(values[name], column, db)
        if given:
            values.update(given)
        return instance_loaded(self.model, db.alias, values)


def _sqlite_datetime(value: Any, expression: Any, db: BaseDatabaseWrapper) -> Any:
    """SQLite's `convert_datetimefield_value` without its per-row helper calls (same result).

    `db.timezone` is None unless USE_TZ, and Django resets it when the setting changes.
    """
    if value is not None:
        if not isinstance(value, datetime):
            value = parse_datetime(value)
        zone = db.timezone
        if zone is not None and value is not None and value.utcoffset() is None:
            value = value.replace(tzinfo=zone)
    return value


def _json_column(value: Any, expression: Any, db: BaseDatabaseWrapper) -> Any:
    """`JSONField.from_db_value` for a plain column with the default decoder; most messages have no parts."""
    if value is None:
        return None
    if value == "[]":
        return []
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _cheaper(converter: Converter, field: Field[Any, Any], db: BaseDatabaseWrapper) -> Converter:
    """An exact, cheaper equivalent of a converter that runs once per row (the one given otherwise)."""
    if db.vendor == "sqlite" and converter == getattr(db.ops, "convert_datetimefield_value", None):
        return _sqlite_datetime
    if isinstance(field, JSONField) and field.decoder is None and converter == field.from_db_value:
        return _json_column
    return converter


# --- Sessions and the compaction signal -----------------------------------------------------


def compaction_threshold_percent() -> int:
    """The context fullness (in percent) at which a session needs compaction."""
    from django.conf import settings

    return int(settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT)


def fullness_percent(tokens: int, window: int) -> float:
    """`tokens` since the last compaction as a percentage of a route's context `window`."""
    return round(tokens * 100 / window, 1)


@overload
def compaction_margin(tokens: int, window: int, threshold: int) -> int: ...


@overload
def compaction_margin(tokens: Combinable, window: Combinable, threshold: Combinable) -> Combinable: ...


def compaction_margin(tokens: Any, window: Any, threshold: Any) -> Any:
    """The compaction rule, written once: at or above 0 when `tokens` reached `threshold` % of `window`.

    The same arithmetic serves Python integers (`needs_compaction`) and ORM expressions
    (`needs_compaction_condition`, which the database evaluates), so both agree exactly.
    """
    return tokens * 100 - threshold * window


def needs_compaction(status: str, tokens: int, window: int, threshold: int) -> bool:
    """True for an active session whose context fullness reached `threshold` percent."""
    return status == SessionStatus.ACTIVE and compaction_margin(tokens, window, threshold) >= 0


def context_fullness_percent(session: AgentSession) -> float:
    """How full the session's context is: tokens since the last compaction / the route's window, in %."""
    return fullness_percent(session.tokens_since_checkpoint, session.route.context_window_tokens)


def session_needs_compaction(session: AgentSession) -> bool:
    """True when the session is active and its context fullness reached the threshold."""
    return needs_compaction(
        session.status,
        session.tokens_since_checkpoint,
        session.route.context_window_tokens,
        compaction_threshold_percent(),
    )


def needs_compaction_condition() -> Q:
    """`needs_compaction` as a filter on sessions, evaluated by the database against the joined route."""
    margin = compaction_margin(
        F("tokens_since_checkpoint"), F("route__context_window_tokens"), Value(compaction_threshold_percent())
    )
    return Q(GreaterThanOrEqual(margin, Value(0)), status=SessionStatus.ACTIVE)


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
        queryset = queryset.filter(needs_compaction_condition())
    elif needs_compaction is False:
        queryset = queryset.exclude(needs_compaction_condition())
    return queryset


def sessions_needing_compaction() -> QuerySet[AgentSession]:
    """Active sessions whose context fullness reached the threshold, fullest first (one SQL query)."""
    return (
        AgentSession.objects.select_related("route")
        .filter(needs_compaction_condition())
        .order_by("-tokens_since_checkpoint", "-id")
    )


def sessions_needing_compaction_count() -> int:
    """How many active sessions need compaction (one COUNT query)."""
    return AgentSession.objects.filter(needs_compaction_condition()).count()


@dataclass(frozen=True)
class SessionCounts:
    """Session counters and the number of stored messages (summed from the exact per-session counters)."""

    total: int
    active: int
    needing_compaction: int
    messages: int


def sessions_counts() -> SessionCounts:
    """Every session, the active ones, those needing compaction and the message total, in one pass.

    The messages table is never scanned: each session keeps its exact `message_count`. The
    statement is fixed SQL (compiling the ORM's aggregate costs more than running it) whose
    compaction test is `needs_compaction_condition()` compiled by the ORM, once per connection
    and threshold: the rule stays written once.
    """
    db, plan = per_connection("sessions_overview", _SessionsOverviewPlan)
    sql, params = plan.counts_statement(compaction_threshold_percent())
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        total, active, needing, messages = cursor.fetchone()
    return SessionCounts(total=int(total), active=int(active), needing_compaction=int(needing), messages=int(messages))


def sessions_recent(*, limit: int) -> list[AgentSession]:
    """The `limit` sessions with the latest activity, newest first, route attached (one query on session_recent_idx).

    What `AgentSession.objects.select_related("route").order_by("-updated", "-id")[:limit]`
    returns, read with fixed SQL (tests/core/test_sessions_overview.py compares them).
    """
    db, plan = per_connection("sessions_overview", _SessionsOverviewPlan)
    with db.cursor() as cursor:
        cursor.execute(plan.recent_sql, [limit])
        return [plan.recent(row) for row in cursor.fetchall()]


class _SessionsOverviewPlan:
    """The statements of `sessions_counts` and `sessions_recent` for one connection."""

    def __init__(self, db: BaseDatabaseWrapper) -> None:
        self.db = db
        self.session = ModelColumns(AgentSession, "s", db)
        self.route = ModelColumns(ModelRoute, "r", db)
        self.session_route = AgentSession._meta.get_field("route")
        q = db.ops.quote_name
        self.recent_sql = (
            f"SELECT {self.session.sql}, {self.route.sql} FROM {q(AgentSession._meta.db_table)} s"  # noqa: S608  # nosec B608
            f" INNER JOIN {q(ModelRoute._meta.db_table)} r ON r.{q('id')} = s.{q('route_id')}"
            f" ORDER BY s.{q('updated')} DESC, s.{q('id')} DESC LIMIT %s"
        )
        self._counts: dict[int, tuple[str, list[Any]]] = {}

    def recent(self, row: Sequence[Any]) -> AgentSession:
        session = self.session.build(row)
        self.session_route.set_cached_value(session, self.route.build(row, self.session.width))
        return session

    def counts_statement(self, threshold: int) -> tuple[str, list[Any]]:
        """The counting statement and its parameters for `threshold` (compiled on first use)."""
        if threshold not in self._counts:
            query = AgentSession.objects.filter(needs_compaction_condition()).query
            compiler = query.get_compiler(connection=self.db)
            tables, table_params = compiler.get_from_clause()
            needs_sql, needs_params = compiler.compile(query.where)
            q = self.db.ops.quote_name
            table = q(AgentSession._meta.db_table)
            sql = (
                f"SELECT COUNT(*), COUNT(CASE WHEN {table}.{q('status')} = %s THEN 1 END), "  # noqa: S608  # nosec B608
                f"COUNT(CASE WHEN {needs_sql} THEN 1 END), COALESCE(SUM({table}.{q('message_count')}), 0) "
                f"FROM {' '.join(tables)}"
            )
            self._counts[threshold] = (sql, [SessionStatus.ACTIVE.value, *needs_params, *table_params])
        return self._counts[threshold]


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


def message_latest_user(*, session_id: UUID | str) -> Message | None:
    """The session's newest user message (walks the (session, seq) index backwards)."""
    return (
        Message.objects.filter(session_id=session_uuid(session_id), role=MessageRole.USER)
        .only("id", "seq", "content")
        .order_by("-seq")
        .first()
    )


def messages_tail_chunk(*, session_id: UUID | str, after_seq: int, before_seq: int, limit: int) -> list[Message]:
    """Up to `limit` messages with after_seq < seq < before_seq, newest first (a keyset step down the log)."""
    return list(
        Message.objects.filter(session_id=session_uuid(session_id), seq__gt=after_seq, seq__lt=before_seq).order_by(
            "-seq"
        )[:limit]
    )


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

    Two queries whatever the session's length: the session joined to its route, provider and latest
    checkpoint (an index seek), then `seq > through_seq` on the (session, seq) index, so older
    messages are never read. Fixed SQL (see `ModelColumns`): restore runs on every turn.
    """
    pk = session_uuid(session_id)
    db, plan = per_connection("session_restore", _RestorePlan)
    with db.cursor() as cursor:
        cursor.execute(plan.head_sql, [plan.session_pk.get_db_prep_value(pk, db)])
        row = cursor.fetchone()
        if row is None:
            raise NotFoundError.for_field("session", f"no session {session_id}")
        session, checkpoint = plan.head(row)
        after_seq = checkpoint.through_seq if checkpoint is not None else 0
        cursor.execute(plan.tail_sql, [plan.session_pk.get_db_prep_value(pk, db), after_seq])
        given = {"session_id": session.pk}
        messages = [plan.message.build(row, 0, given) for row in cursor.fetchall()]
    return Restore(session=session, checkpoint=checkpoint, messages=messages)


class _RestorePlan:
    """The two statements of `session_restore` for one connection, and how to read their rows."""

    def __init__(self, db: BaseDatabaseWrapper) -> None:
        self.session_pk = AgentSession._meta.pk
        self.session = ModelColumns(AgentSession, "s", db)
        self.route = ModelColumns(ModelRoute, "r", db)
        self.provider = ModelColumns(Provider, "p", db)
        self.checkpoint = ModelColumns(Checkpoint, "c", db)
        self.message = ModelColumns(Message, "m", db, given=("session_id",))
        self.session_route = AgentSession._meta.get_field("route")
        self.route_provider = ModelRoute._meta.get_field("provider")
        self.checkpoint_session = Checkpoint._meta.get_field("session")
        q = db.ops.quote_name
        checkpoints = q(Checkpoint._meta.db_table)
        columns = (self.session, self.route, self.provider, self.checkpoint)
        # The latest checkpoint is found by the correlated subquery (an index seek on session, id).
        self.head_sql = (
            f"SELECT {', '.join(c.sql for c in columns)} FROM {q(AgentSession._meta.db_table)} s"  # noqa: S608  # nosec B608
            f" INNER JOIN {q(ModelRoute._meta.db_table)} r ON r.{q('id')} = s.{q('route_id')}"
            f" INNER JOIN {q(Provider._meta.db_table)} p ON p.{q('id')} = r.{q('provider_id')}"
            f" LEFT OUTER JOIN {checkpoints} c ON c.{q('id')} = (SELECT c2.{q('id')} FROM {checkpoints} c2"
            f" WHERE c2.{q('session_id')} = s.{q('id')} ORDER BY c2.{q('id')} DESC LIMIT 1)"
            f" WHERE s.{q('id')} = %s"
        )
        self.tail_sql = (
            f"SELECT {self.message.sql} FROM {q(Message._meta.db_table)} m"  # noqa: S608  # nosec B608
            f" WHERE m.{q('session_id')} = %s AND m.{q('seq')} > %s ORDER BY m.{q('seq')}"
        )

    def head(self, row: Sequence[Any]) -> tuple[AgentSession, Checkpoint | None]:
        """The session (route and provider attached, as `select_related` would) and its latest checkpoint."""
        at = 0
        session = self.session.build(row, at)
        at += self.session.width
        route = self.route.build(row, at)
        at += self.route.width
        provider = self.provider.build(row, at)
        at += self.provider.width
        self.route_provider.set_cached_value(route, provider)
        self.session_route.set_cached_value(session, route)
        if row[at] is None:  # the checkpoint's id: NULL when the session has none
            return session, None
        checkpoint = self.checkpoint.build(row, at)
        self.checkpoint_session.set_cached_value(checkpoint, session)
        return session, checkpoint


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
