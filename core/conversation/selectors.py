"""Reads of the conversation store, with their joins applied and bounded by seq (or event index).

Context fullness: a session's `tokens_since_checkpoint` as a percentage of its route's
`context_window_tokens`. A session needs compaction when that percentage reaches
`settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT` (read at call time); the comparison is done in
integers (`tokens * 100 - threshold * window >= 0`), written once in `compaction_margin` and
evaluated by Python (`needs_compaction`) or by the database (`needs_compaction_condition`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload
from uuid import UUID

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, JSONField, Model, Q, QuerySet, Value
from django.db.models.expressions import Col, Combinable
from django.db.models.lookups import GreaterThanOrEqual
from django.utils.dateparse import parse_datetime

from core.conversation.models import TERMINAL_RUN_STATUSES
from core.errors import InvalidInputError, NotFoundError
from core.models import (
    AgentProfile,
    AgentSession,
    Checkpoint,
    CheckpointReason,
    Message,
    MessageRole,
    ModelRoute,
    Provider,
    Run,
    RunPurpose,
    RunStatus,
    SessionStatus,
    Tag,
    Team,
    TraceEvent,
    TraceEventType,
    WorkerBeat,
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


# --- Fixed SQL for restore -----------------------------------------------------------------
#
# Restore runs on every turn, and compiling its joined head query through the ORM costs several
# times the database work, so it runs fixed SQL on Django's cursor. The statements are strings
# built once per database vendor (nothing cached refers to a connection). `ModelColumns` lists a
# model's columns for such a SELECT and turns a row back into an instance with the converters a
# queryset applies on that backend (SQLite's text datetimes, char(32) UUIDs and 0/1 booleans; JSON
# decoding on both) and `Model.from_db`, so the instance cannot be told apart from one read by
# `Model.objects.get(...)`; tests/core/test_conversation_fast_paths.py compares them field by field.

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]
M = TypeVar("M", bound=Model)


def select_list(model: type[Model], alias: str, db: BaseDatabaseWrapper) -> str:
    """The concrete columns of `model` under table alias `alias`, in field order, for a SELECT."""
    quote = db.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


class ModelColumns(Generic[M]):
    """Reads instances of `model` from rows holding its concrete columns in field order (see `select_list`).

    Built for one call on one connection: it holds that connection's converters, so it is never cached.
    """

    def __init__(self, model: type[M], alias: str, db: BaseDatabaseWrapper) -> None:
        self.model = model
        self.db = db
        fields = model._meta.concrete_fields
        self.names = [field.attname for field in fields]
        self.width = len(fields)
        self.converters = column_converters([(alias, field) for field in fields], db)

    def build(self, row: Sequence[Any], start: int = 0) -> M:
        """The instance held in `row[start : start + self.width]`, built by `Model.from_db`."""
        values = list(row[start : start + self.width])
        db = self.db
        for position, column, converter in self.converters:
            values[position] = converter(values[position], column, db)
        return self.model.from_db(db.alias, self.names, values)


def column_converters(
    columns: Sequence[tuple[str, Field[Any, Any]]], db: BaseDatabaseWrapper
) -> list[tuple[int, Col, Converter]]:
    """(position, column, converter) for a row holding `columns` (table alias, field) in order: each
    column's converters in the order a queryset applies them, the backend's, then the field's own."""
    converters: list[tuple[int, Col, Converter]] = []
    for position, (alias, field) in enumerate(columns):
        column = field.get_col(alias)  # a foreign key's column reads as its target field
        for converter in (*db.ops.get_db_converters(column), *column.get_db_converters(db)):
            converters.append((position, column, _cheaper(converter, field, db)))
    return converters


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


OwnerScope = AbstractBaseUser | None
"""Whose records a read or write may touch: one user's (the API passes `request.user`), or, with
None, every user's (the admin, system commands such as `recover_runs`, the runtime acting for the
session it was handed)."""


def owned(queryset: QuerySet[M], owner: OwnerScope) -> QuerySet[M]:
    """`queryset` narrowed to `owner`'s rows (the model's `owner` column); None leaves it whole."""
    return queryset if owner is None else queryset.filter(owner_id=owner.pk)


def session_get(*, session_id: UUID | str, owner: OwnerScope = None) -> AgentSession:
    """One session of `owner` with its route and provider, or NotFoundError (another user's too)."""
    try:
        sessions = AgentSession.objects.select_related("route__provider", "agent", "team")
        return owned(sessions, owner).get(pk=session_uuid(session_id))
    except AgentSession.DoesNotExist:
        raise NotFoundError.for_field("session", f"no session {session_id}") from None


SESSION_LIST_ORDER = ("-pinned", "-created", "-id")


def sessions_list(
    *,
    owner: OwnerScope = None,
    status: str | None = None,
    needs_compaction: bool | None = None,
    tag: str | None = None,
) -> QuerySet[AgentSession]:
    """`owner`'s sessions, pinned first then newest created, with route and tags; optionally by status,
    compaction need or one of the owner's tags (a name they have not used matches nothing)."""
    queryset = (
        owned(AgentSession.objects.select_related("route", "agent", "team"), owner)
        .prefetch_related("tags")
        .order_by(*SESSION_LIST_ORDER)
    )
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
    if tag is not None:
        # The tag is looked up among the owner's own, so another user's tag of the same name never matches.
        tags = Tag.objects.filter(name=" ".join(tag.split()))
        queryset = queryset.filter(tags__in=owned(tags, owner).values("pk"))
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


def sessions_counts(*, owner_id: int | None = None) -> SessionCounts:
    """Every session, the active ones, those needing compaction and the message total, in one pass.

    The messages table is never scanned: each session keeps its exact `message_count`. The
    statement is fixed SQL (compiling the ORM's aggregate costs more than running it) whose
    compaction test is `needs_compaction_condition()` compiled by the ORM, once per database
    vendor and threshold: the rule stays written once. With `owner_id`, that user's sessions only.
    """
    db = connections[DEFAULT_DB_ALIAS]
    sql, params = _sessions_counts_sql(db, compaction_threshold_percent())
    if owner_id is not None:
        sql, params = f"{sql} WHERE {db.ops.quote_name('owner_id')} = %s", [*params, owner_id]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        total, active, needing, messages = cursor.fetchone()
    return SessionCounts(total=int(total), active=int(active), needing_compaction=int(needing), messages=int(messages))


@dataclass(frozen=True)
class RecentSession:
    """One of the sessions with the latest activity, as a list shows it (`sessions_recent`)."""

    id: UUID
    title: str  # its title, or `session <id>` (what str(session) gives)
    status: str
    route: str  # its route's alias
    # The agent the session talks to, or the team whose lead answers (None: neither).
    agent: str | None
    team: str | None
    message_count: int
    last_activity: datetime
    context_fullness_percent: float
    needs_compaction: bool


def sessions_recent(*, limit: int, owner_id: int | None = None) -> list[RecentSession]:
    """The `limit` sessions (of `owner_id`, or everyone's) with the latest activity, newest first.

    One query (per owner, a range of session_owner_recent_idx; across owners, a sort) reading only
    the columns shown, with the compaction rule applied (`fullness_percent`, `needs_compaction`).
    The same sessions as `AgentSession.objects.order_by("-updated", "-id")[:limit]`, read with
    fixed SQL into plain rows (tests/core/test_sessions_overview.py compares them).
    """
    db = connections[DEFAULT_DB_ALIAS]
    converters = column_converters(_RECENT_COLUMNS, db)
    threshold = compaction_threshold_percent()
    with db.cursor() as cursor:
        cursor.execute(_sessions_recent_sql(db, owned=owner_id is not None), [owner_id, limit][owner_id is None :])
        rows = cursor.fetchall()
    found = []
    for row in rows:
        values = list(row)
        for position, column, converter in converters:
            values[position] = converter(values[position], column, db)
        pk, title, status, route, agent, team, messages, updated, tokens, window = values
        found.append(
            RecentSession(
                id=pk,
                title=title or f"session {pk}",
                status=status,
                route=route,
                agent=agent,
                team=team,
                message_count=messages,
                last_activity=updated,
                context_fullness_percent=fullness_percent(tokens, window),
                needs_compaction=needs_compaction(status, tokens, window, threshold),
            )
        )
    return found


# What `sessions_recent` reads, in order: (table alias, field).
_RECENT_COLUMNS: list[tuple[str, Field[Any, Any]]] = [
    (alias, field)
    for alias, model, name in [
        ("s", AgentSession, "id"),
        ("s", AgentSession, "title"),
        ("s", AgentSession, "status"),
        ("r", ModelRoute, "alias"),
        ("a", AgentProfile, "name"),
        ("t", Team, "name"),
        ("s", AgentSession, "message_count"),
        ("s", AgentSession, "updated"),
        ("s", AgentSession, "tokens_since_checkpoint"),
        ("r", ModelRoute, "context_window_tokens"),
    ]
    for field in [model._meta.get_field(name)]
    if isinstance(field, Field)
]
# The statements hold SQL text only (nothing that refers to a connection), per vendor.
_RECENT_SQL: dict[tuple[str, bool], str] = {}
_COUNTS_SQL: dict[tuple[str, int], tuple[str, list[Any]]] = {}


def _sessions_recent_sql(db: BaseDatabaseWrapper, *, owned: bool) -> str:
    sql = _RECENT_SQL.get((db.vendor, owned))
    if sql is None:
        q = db.ops.quote_name
        columns = ", ".join(f"{alias}.{q(field.column)}" for alias, field in _RECENT_COLUMNS)
        where = f" WHERE s.{q('owner_id')} = %s" if owned else ""
        sql = _RECENT_SQL[(db.vendor, owned)] = (
            f"SELECT {columns} FROM {q(AgentSession._meta.db_table)} s"  # noqa: S608  # nosec B608
            f" INNER JOIN {q(ModelRoute._meta.db_table)} r ON r.{q('id')} = s.{q('route_id')}"
            f" LEFT OUTER JOIN {q(AgentProfile._meta.db_table)} a ON a.{q('id')} = s.{q('agent_id')}"
            f" LEFT OUTER JOIN {q(Team._meta.db_table)} t ON t.{q('id')} = s.{q('team_id')}{where}"
            f" ORDER BY s.{q('updated')} DESC, s.{q('id')} DESC LIMIT %s"
        )
    return sql


def _sessions_counts_sql(db: BaseDatabaseWrapper, threshold: int) -> tuple[str, list[Any]]:
    """The counting statement and its parameters for `threshold` (compiled on first use)."""
    key = (db.vendor, threshold)
    if key not in _COUNTS_SQL:
        query = AgentSession.objects.filter(needs_compaction_condition()).query
        compiler = query.get_compiler(connection=db)
        tables, table_params = compiler.get_from_clause()
        needs_sql, needs_params = compiler.compile(query.where)
        q = db.ops.quote_name
        table = q(AgentSession._meta.db_table)
        sql = (
            f"SELECT COUNT(*), COUNT(CASE WHEN {table}.{q('status')} = %s THEN 1 END), "  # noqa: S608  # nosec B608
            f"COUNT(CASE WHEN {needs_sql} THEN 1 END), COALESCE(SUM({table}.{q('message_count')}), 0) "
            f"FROM {' '.join(tables)}"
        )
        _COUNTS_SQL[key] = (sql, [SessionStatus.ACTIVE.value, *needs_params, *table_params])
    return _COUNTS_SQL[key]


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


# Message pages are bounded by count AND by bytes, so one response never carries the whole log.
MESSAGE_PAGE_MAX_COUNT = 500
MESSAGE_PAGE_DEFAULT_COUNT = 100
# What a message's other fields (ids, seq, role, counts, dates) take in a JSON page, at most.
MESSAGE_OVERHEAD_BYTES = 256


def message_page_bytes() -> int:
    """The byte budget of one page of messages (`settings.AGENTCHAT_MESSAGE_PAGE_BYTES`, read at call time)."""
    return int(settings.AGENTCHAT_MESSAGE_PAGE_BYTES)


def message_size_bytes(message: Message) -> int:
    """What `message` counts against a page's byte budget: its content and parts in UTF-8, plus the overhead.

    The measure the SQL of `messages_page` takes on the stored row: the parts as the database holds
    their JSON text (SQLite: Django's `json.dumps`, non-ASCII escaped; PostgreSQL: jsonb's text, UTF-8).
    """
    vendor = connections[message._state.db or DEFAULT_DB_ALIAS].vendor
    parts = json.dumps(message.parts, ensure_ascii=vendor != "postgresql")
    return len(message.content.encode()) + len(parts.encode()) + MESSAGE_OVERHEAD_BYTES


@dataclass(frozen=True)
class MessagePage:
    """Messages in seq order, and the `after_seq` of the next page (None when the log ends here)."""

    messages: list[Message]
    next_after_seq: int | None


@dataclass(frozen=True)
class _PageSql:
    """The bounded tail read for one database vendor (strings only; see `_page_sql`)."""

    select: str


_PAGE_SQL: dict[str, _PageSql] = {}


def _page_sql(db: BaseDatabaseWrapper) -> _PageSql:
    """`seq > after` on the (session, seq) index, at most N rows, cut where the running size passes the budget.

    The innermost SELECT reads at most N rows of the session's tail; a window sums their sizes in seq
    order; a row is kept while the sum is within the budget, and the first row always (a message
    larger than the whole budget is a page of its own).
    """
    built = _PAGE_SQL.get(db.vendor)
    if built is not None:
        return built
    q = db.ops.quote_name
    if db.vendor == "postgresql":
        size = f"OCTET_LENGTH(m.{q('content')}) + COALESCE(OCTET_LENGTH(m.{q('parts')}::text), 0)"
    else:
        size = f"LENGTH(CAST(m.{q('content')} AS BLOB)) + COALESCE(LENGTH(CAST(m.{q('parts')} AS BLOB)), 0)"
    columns_a = select_list(Message, "a", db)
    built = _PAGE_SQL[db.vendor] = _PageSql(
        select=(
            f"SELECT {select_list(Message, 'b', db)} FROM ("  # noqa: S608  # nosec B608
            f"SELECT {columns_a}, a.size, SUM(a.size) OVER (ORDER BY a.{q('seq')} ROWS UNBOUNDED PRECEDING) AS running"
            f" FROM (SELECT {select_list(Message, 'm', db)}, {size} + {MESSAGE_OVERHEAD_BYTES} AS size"
            f" FROM {q(Message._meta.db_table)} m WHERE m.{q('session_id')} = %s AND m.{q('seq')} > %s"
            f" ORDER BY m.{q('seq')} LIMIT %s) a"
            f") b WHERE b.running <= %s OR b.running = b.size ORDER BY b.{q('seq')}"
        )
    )
    return built


def _page_read(
    cursor: Any, db: BaseDatabaseWrapper, pk: UUID, after_seq: int, last_seq: int, limit: int | None, budget: int | None
) -> MessagePage:
    count = min(limit or MESSAGE_PAGE_MAX_COUNT, MESSAGE_PAGE_MAX_COUNT)
    budget = message_page_bytes() if budget is None else budget
    session_param = AgentSession._meta.pk.get_db_prep_value(pk, db)
    cursor.execute(_page_sql(db).select, [session_param, after_seq, count, budget])
    reader = ModelColumns(Message, "b", db)
    messages = [reader.build(row) for row in cursor.fetchall()]
    end = messages[-1].seq if messages else after_seq
    return MessagePage(messages=messages, next_after_seq=end if messages and end < last_seq else None)


def messages_page(
    *, session: AgentSession, after_seq: int = 0, limit: int | None = None, budget_bytes: int | None = None
) -> MessagePage:
    """One page of `session`'s messages with seq > `after_seq`, in seq order (one query).

    At most `limit` (and never more than MESSAGE_PAGE_MAX_COUNT) messages, and no more than
    `budget_bytes` (default `message_page_bytes()`) by `message_size_bytes`, except that the first
    message is always returned, however large. `next_after_seq` continues where the page stopped.
    """
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        return _page_read(cursor, db, session.pk, after_seq, session.last_seq, limit, budget_bytes)


@dataclass(frozen=True)
class Restore:
    """What a runtime needs to resume a session: the checkpoint that folds its active path and the newest page after it.

    `messages` end at the session's leaf, in seq order. `next_before_seq` is None when they are the
    path's whole tail after the checkpoint; otherwise the older part is read with
    `path_page(start_seq=next_before_seq, before=True, after_seq=<the checkpoint's through_seq>)`
    (the API: the session's path).
    """

    session: AgentSession
    checkpoint: Checkpoint | None
    messages: list[Message]
    next_before_seq: int | None


def session_restore(
    *, session_id: UUID | str, owner: OwnerScope = None, limit: int | None = None, budget_bytes: int | None = None
) -> Restore:
    """The checkpoint on the active path plus the newest page (see `path_page`) of that path after its `through_seq`.

    Three queries whatever the session's length or depth: the session joined to its route, provider
    and latest summary checkpoint (an index seek); the test that this checkpoint lies on the active
    path (a walk over the messages after it); one bounded walk of the path from the leaf. A newest
    checkpoint on another branch costs one more test per older candidate. Fixed SQL (see
    `ModelColumns`): restore runs on every turn.
    """
    pk = session_uuid(session_id)
    db = connections[DEFAULT_DB_ALIAS]
    head = _restore_head(db)
    with db.cursor() as cursor:
        cursor.execute(head.sql, [AgentSession._meta.pk.get_db_prep_value(pk, db)])
        row = cursor.fetchone()
        if row is None:
            raise NotFoundError.for_field("session", f"no session {session_id}")
        session, checkpoint = _RestoreHead(db).read(row)
    if owner is not None and session.owner_id != owner.pk:
        raise NotFoundError.for_field("session", f"no session {session_id}")
    if checkpoint is not None and not path_contains(session_id=pk, leaf=session.leaf, seq=checkpoint.through_seq):
        checkpoint = checkpoint_on_path(session_id=pk, leaf=session.leaf)
        if checkpoint is not None:
            _CHECKPOINT_SESSION.set_cached_value(checkpoint, session)
    after_seq = checkpoint.through_seq if checkpoint is not None else 0
    page = path_page(session_id=pk, start_seq=session.leaf, after_seq=after_seq, limit=limit, budget_bytes=budget_bytes)
    for message in page.messages:
        _MESSAGE_SESSION.set_cached_value(message, session)
    return Restore(session=session, checkpoint=checkpoint, messages=page.messages, next_before_seq=page.next_before_seq)


_MESSAGE_SESSION = Message._meta.get_field("session")
_CHECKPOINT_SESSION = Checkpoint._meta.get_field("session")


@dataclass(frozen=True)
class _HeadSql:
    sql: str


_HEAD_SQL: dict[str, _HeadSql] = {}


def _restore_head(db: BaseDatabaseWrapper) -> _HeadSql:
    """The session joined to its route, provider and latest checkpoint, for one database vendor."""
    built = _HEAD_SQL.get(db.vendor)
    if built is not None:
        return built
    q = db.ops.quote_name
    checkpoints = q(Checkpoint._meta.db_table)
    columns = ", ".join(
        select_list(model, alias, db)
        for model, alias in ((AgentSession, "s"), (ModelRoute, "r"), (Provider, "p"), (Checkpoint, "c"))
    )
    # The latest checkpoint that folds history (see SUMMARY_CHECKPOINT_REASONS) is found by the
    # correlated subquery: an index seek on (session, id), walking back past `run_end` marks.
    summary_reasons = ", ".join(f"'{reason.value}'" for reason in SUMMARY_CHECKPOINT_REASONS)
    built = _HEAD_SQL[db.vendor] = _HeadSql(
        sql=(
            f"SELECT {columns} FROM {q(AgentSession._meta.db_table)} s"  # noqa: S608  # nosec B608
            f" INNER JOIN {q(ModelRoute._meta.db_table)} r ON r.{q('id')} = s.{q('route_id')}"
            f" INNER JOIN {q(Provider._meta.db_table)} p ON p.{q('id')} = r.{q('provider_id')}"
            f" LEFT OUTER JOIN {checkpoints} c ON c.{q('id')} = (SELECT c2.{q('id')} FROM {checkpoints} c2"
            f" WHERE c2.{q('session_id')} = s.{q('id')} AND c2.{q('reason')} IN ({summary_reasons})"
            f" AND c2.{q('summary')} <> '' ORDER BY c2.{q('id')} DESC LIMIT 1)"
            f" WHERE s.{q('id')} = %s"
        )
    )
    return built


class _RestoreHead:
    """How to read the head row of `session_restore` on one connection (built per call)."""

    session_route = AgentSession._meta.get_field("route")
    route_provider = ModelRoute._meta.get_field("provider")
    checkpoint_session = Checkpoint._meta.get_field("session")

    def __init__(self, db: BaseDatabaseWrapper) -> None:
        self.session = ModelColumns(AgentSession, "s", db)
        self.route = ModelColumns(ModelRoute, "r", db)
        self.provider = ModelColumns(Provider, "p", db)
        self.checkpoint = ModelColumns(Checkpoint, "c", db)

    def read(self, row: Sequence[Any]) -> tuple[AgentSession, Checkpoint | None]:
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


def run_get(*, run_id: UUID | str, owner: OwnerScope = None) -> Run:
    """One run of `owner` with its route, or NotFoundError (another user's too)."""
    try:
        return owned(Run.objects.select_related("route", "message", "agent"), owner).get(pk=run_uuid(run_id))
    except Run.DoesNotExist:
        raise NotFoundError.for_field("run", f"no run {run_id}") from None


def runs_list(
    *,
    owner: OwnerScope = None,
    session_id: UUID | str | None = None,
    status: str | None = None,
    purpose: str | None = RunPurpose.CHAT,
) -> QuerySet[Run]:
    """`owner`'s runs newest first with their route joined; optionally of one session and/or in one status.

    Chat turns only unless `purpose` names an upkeep purpose (None: every purpose).
    """
    queryset = owned(Run.objects.select_related("route", "message", "agent"), owner).order_by("-created", "-id")
    if purpose is not None:
        queryset = queryset.filter(purpose=purpose)
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


def compaction_failure(*, session_id: UUID | str) -> str:
    """Why the session's latest compaction failed, or "" when it succeeded (or none ran); one query
    (`run_session_created_idx`)."""
    latest = (
        Run.objects.filter(session_id=session_uuid(session_id), purpose=RunPurpose.COMPACTION)
        .order_by("-created")
        .values_list("status", "error")
        .first()
    )
    if latest is None or latest[0] not in (RunStatus.FAILED, RunStatus.INTERRUPTED):
        return ""
    return str(latest[1])


def trace_events(*, run_id: UUID | str, after_index: int = 0) -> QuerySet[TraceEvent]:
    """A run's events with index > `after_index`, in order (the (run, index) unique index)."""
    return TraceEvent.objects.filter(run_id=run_uuid(run_id), index__gt=after_index).order_by("index")


def run_events_after(*, run_id: UUID | str, after: int, limit: int) -> list[TraceEvent]:
    """At most `limit` of a run's events with index > `after`, in order: one seek on the (run, index) index."""
    return list(trace_events(run_id=run_id, after_index=after)[:limit])


@dataclass(frozen=True)
class RunProgress:
    """How far a run has got: its stored event count and whether it has ended."""

    event_count: int
    finished: bool


def runs_progress(*, run_ids: Iterable[UUID]) -> dict[UUID, RunProgress]:
    """The progress of each of `run_ids` that exists, in one query (the stream hub's poll on SQLite)."""
    rows = Run.objects.filter(pk__in=list(run_ids)).values_list("pk", "event_count", "status")
    return {pk: RunProgress(count, status in TERMINAL_RUN_STATUSES) for pk, count, status in rows}


def run_text(*, run_id: UUID | str) -> str:
    """The streamed reply rebuilt: the `text` of the run's `text_delta` events concatenated in index order."""
    deltas = (
        TraceEvent.objects.filter(run_id=run_uuid(run_id), type=TraceEventType.TEXT_DELTA)
        .order_by("index")
        .values_list("payload", flat=True)
    )
    return "".join(str(payload.get("text", "")) for payload in deltas.iterator(chunk_size=2_000))


# --- Which run answers a message; which checkpoint folds history ----------------------------


def run_for_message(*, session_id: UUID | str, message_seq: int) -> Run | None:
    """The newest run for the user message `message_seq` (the run's message), or None."""
    return (
        Run.objects.filter(message__session_id=session_uuid(session_id), message__seq=message_seq)
        .select_related("route")
        .order_by("-created", "-id")
        .first()
    )


# --- Workers: liveness and the queue ----------------------------------------------------------


@dataclass(frozen=True)
class WorkerStatus:
    """Worker liveness and queue depth, as the bootstrap shows them."""

    live_workers: int
    queued_runs: int
    running_runs: int


def worker_status(*, live_since: datetime, owner_id: int | None = None) -> WorkerStatus:
    """How many workers beat since `live_since`, and the open runs (of `owner_id`) by status: 1 query.

    Fixed SQL (the bootstrap reads it on every request, and compiling the ORM's count and filtered
    aggregate cost several times running them): the live workers are a scalar subquery on
    `worker_beat_recent_idx`, the runs a range of the open-run index.
    """
    db = connections[DEFAULT_DB_ALIAS]
    sql = _worker_status_sql(db, owned=owner_id is not None)
    params: list[Any] = [db.ops.adapt_datetimefield_value(live_since), RunStatus.QUEUED, RunStatus.RUNNING]
    params += [RunStatus.QUEUED, RunStatus.RUNNING, *([] if owner_id is None else [owner_id])]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        live, queued, running = cursor.fetchone()
    return WorkerStatus(live_workers=int(live), queued_runs=int(queued or 0), running_runs=int(running or 0))


_WORKER_STATUS_SQL: dict[tuple[str, bool], str] = {}


def _worker_status_sql(db: BaseDatabaseWrapper, *, owned: bool) -> str:
    sql = _WORKER_STATUS_SQL.get((db.vendor, owned))
    if sql is None:
        q = db.ops.quote_name
        status = q("status")
        sql = _WORKER_STATUS_SQL[(db.vendor, owned)] = (
            f"SELECT (SELECT COUNT(*) FROM {q(WorkerBeat._meta.db_table)} "  # noqa: S608  # nosec B608
            f"WHERE {q('beat_at')} >= %s), "
            f"COUNT(CASE WHEN {status} = %s THEN 1 END), COUNT(CASE WHEN {status} = %s THEN 1 END) "
            f"FROM {q(Run._meta.db_table)} WHERE {status} IN (%s, %s)" + (f" AND {q('owner_id')} = %s" if owned else "")
        )
    return sql


def runs_queued_ids(*, created_before: datetime) -> list[UUID]:
    """Ids of chat turns (runs answering a message) still queued since before `created_before`, oldest first."""
    return list(
        Run.objects.filter(status=RunStatus.QUEUED, created__lt=created_before, message__isnull=False)
        .order_by("created", "id")
        .values_list("pk", flat=True)
    )


def run_cancel_requested(*, run_id: UUID | str) -> bool:
    """Whether a cancel was asked for the run (its lease holder's cancel-watch reads this)."""
    return Run.objects.filter(pk=run_uuid(run_id), cancel_requested_at__isnull=False).exists()


def runs_open_count(*, owner_id: int) -> int:
    """How many runs of `owner_id` are queued or running."""
    return Run.objects.filter(owner_id=owner_id, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).count()


# A checkpoint folds the messages it covers only when it carries a real summary: a `compaction`
# (or a `manual` one with a summary). A `run_end` checkpoint marks a moment and never hides messages.
SUMMARY_CHECKPOINT_REASONS = (CheckpointReason.COMPACTION, CheckpointReason.MANUAL)


# --- The conversation tree: the active path, siblings -----------------------------------------
#
# A session's messages form a tree (`Message.parent`); the active path is the chain from the
# session's `leaf` up to the root. Every read of "the conversation" walks it with a recursive CTE
# from a starting message towards the root, one primary-key seek per step, stopped after N steps
# (or at a floor seq): reading the newest N messages of the path costs the same at any depth.
# Along a path seqs only fall (a child is always appended after its parent), so "the path after
# seq S" is "the path's messages with seq > S" and a walk can stop there.


@dataclass(frozen=True)
class PathPage:
    """Up to N messages of an active path in seq order, ending at the page's start, and the cursor to older ones.

    `next_before_seq` is the seq to read the older messages before (None when the path, or the
    part of it above the floor, ends here).
    """

    messages: list[Message]
    next_before_seq: int | None


_PATH_SQL: dict[tuple[str, bool], str] = {}
# A budget that never cuts (the walk's step count does): reads that are bounded by tokens, not bytes.
UNBOUNDED_BYTES = 2**62


def _path_sql(db: BaseDatabaseWrapper, *, before: bool) -> str:
    """The path walk from message `seq` (or from its parent, `before`) towards the root, for one vendor.

    Parameters: session, seq, floor, steps, floor, steps, budget. The walk takes one step more than
    asked for, so the outer count tells whether older messages remain; a window sums the sizes in
    walk order (newest first) and keeps rows while within the byte budget, the first row always.
    """
    key = (db.vendor, before)
    built = _PATH_SQL.get(key)
    if built is not None:
        return built
    q = db.ops.quote_name
    table = q(Message._meta.db_table)
    if before:
        anchor = (
            f"m.{q('id')} = (SELECT p.{q('parent_id')} FROM {table} p"  # noqa: S608  # nosec B608
            f" WHERE p.{q('session_id')} = %s AND p.{q('seq')} = %s)"
        )
    else:
        anchor = f"m.{q('session_id')} = %s AND m.{q('seq')} = %s"
    if db.vendor == "postgresql":
        size = f"OCTET_LENGTH(m.{q('content')}) + COALESCE(OCTET_LENGTH(m.{q('parts')}::text), 0)"
    else:
        size = f"LENGTH(CAST(m.{q('content')} AS BLOB)) + COALESCE(LENGTH(CAST(m.{q('parts')} AS BLOB)), 0)"
    built = _PATH_SQL[key] = (
        f"WITH RECURSIVE path (id, parent_id, depth) AS ("  # noqa: S608  # nosec B608
        f"SELECT m.{q('id')}, m.{q('parent_id')}, 1 FROM {table} m WHERE {anchor} AND m.{q('seq')} > %s"
        f" UNION ALL SELECT m.{q('id')}, m.{q('parent_id')}, path.depth + 1 FROM {table} m"
        f" INNER JOIN path ON m.{q('id')} = path.parent_id WHERE path.depth <= %s AND m.{q('seq')} > %s)"
        f" SELECT {select_list(Message, 'b', db)}, b.walked FROM ("
        f"SELECT {select_list(Message, 'a', db)}, a.depth,"
        f" SUM(a.size) OVER (ORDER BY a.depth ROWS UNBOUNDED PRECEDING) AS running, COUNT(*) OVER () AS walked"
        f" FROM (SELECT {select_list(Message, 'm', db)}, path.depth, {size} + {MESSAGE_OVERHEAD_BYTES} AS size"
        f" FROM path INNER JOIN {table} m ON m.{q('id')} = path.id) a"
        f") b WHERE b.depth <= %s AND (b.running <= %s OR b.depth = 1) ORDER BY b.{q('seq')}"
    )
    return built


def path_page(
    *,
    session_id: UUID | str,
    start_seq: int,
    before: bool = False,
    after_seq: int = 0,
    limit: int | None = None,
    budget_bytes: int | None = None,
) -> PathPage:
    """The newest messages of the path from message `start_seq` (or from its parent, `before`) to the root.

    One query.

    Only messages with seq > `after_seq` (a checkpoint's floor); at most `limit` (never more than
    MESSAGE_PAGE_MAX_COUNT unless `budget_bytes` is UNBOUNDED_BYTES) and within `budget_bytes`
    (default `message_page_bytes()`) by `message_size_bytes`, the newest always. In seq order.
    """
    count = limit or MESSAGE_PAGE_MAX_COUNT
    if budget_bytes != UNBOUNDED_BYTES:
        count = min(count, MESSAGE_PAGE_MAX_COUNT)
    budget = message_page_bytes() if budget_bytes is None else budget_bytes
    db = connections[DEFAULT_DB_ALIAS]
    session_param = AgentSession._meta.pk.get_db_prep_value(session_uuid(session_id), db)
    params = [session_param, start_seq, after_seq, count, after_seq, count, budget]
    with db.cursor() as cursor:
        cursor.execute(_path_sql(db, before=before), params)
        rows = cursor.fetchall()
    reader = ModelColumns(Message, "b", db)
    messages = [reader.build(row) for row in rows]
    walked = int(rows[0][reader.width]) if rows else 0
    more = walked > len(messages)
    return PathPage(messages=messages, next_before_seq=messages[0].seq if more else None)


def _walk_sql(db: BaseDatabaseWrapper, select: str, step: str) -> str:
    """A path walk from message (session, seq) towards the root while `step` holds for the row just walked."""
    q = db.ops.quote_name
    table = q(Message._meta.db_table)
    columns = f"m.{q('id')}, m.{q('parent_id')}, m.{q('seq')}, m.{q('role')}, m.{q('token_count')}"
    return (
        f"WITH RECURSIVE path (id, parent_id, seq, role, token_count) AS ("  # noqa: S608  # nosec B608
        f"SELECT {columns} FROM {table} m WHERE m.{q('session_id')} = %s AND m.{q('seq')} = %s"
        f" UNION ALL SELECT {columns} FROM {table} m INNER JOIN path ON m.{q('id')} = path.parent_id"
        f" WHERE {step}) {select}"
    )


def _walk_one(sql: str, params: list[Any]) -> Any:
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def _session_param(session_id: UUID | str) -> Any:
    return AgentSession._meta.pk.get_db_prep_value(session_uuid(session_id), connections[DEFAULT_DB_ALIAS])


def path_contains(*, session_id: UUID | str, leaf: int, seq: int) -> bool:
    """True when message `seq` lies on the path from message `leaf` to the root (0, the empty start, always does).

    One query that walks from the leaf only while the seqs stay above `seq`.
    """
    if seq == 0:
        return True
    if seq > leaf:
        return False
    db = connections[DEFAULT_DB_ALIAS]
    sql = _walk_sql(db, "SELECT COUNT(*) FROM path WHERE seq = %s", "path.seq > %s")
    return bool(_walk_one(sql, [_session_param(session_id), leaf, seq, seq]))


def path_tokens(*, session_id: UUID | str, leaf: int, after_seq: int) -> int:
    """The tokens of the path's messages from `leaf` down to (not including) `after_seq`, summed in one query."""
    if leaf <= after_seq:
        return 0
    db = connections[DEFAULT_DB_ALIAS]
    step = f"m.{db.ops.quote_name('seq')} > %s"
    sql = _walk_sql(db, "SELECT COALESCE(SUM(token_count), 0) FROM path WHERE seq > %s", step)
    return int(_walk_one(sql, [_session_param(session_id), leaf, after_seq, after_seq]) or 0)


def path_length(*, session_id: UUID | str, leaf: int, after_seq: int = 0) -> int:
    """How many messages the path from `leaf` holds above `after_seq` (one walk over them)."""
    if leaf <= after_seq:
        return 0
    db = connections[DEFAULT_DB_ALIAS]
    step = f"m.{db.ops.quote_name('seq')} > %s"
    return int(
        _walk_one(_walk_sql(db, "SELECT COUNT(*) FROM path", step), [_session_param(session_id), leaf, after_seq])
    )


def path_latest_user(*, session_id: UUID | str, leaf: int) -> Message | None:
    """The newest user message on the path from `leaf` (one query: a walk that stops at the first one)."""
    if leaf == 0:
        return None
    db = connections[DEFAULT_DB_ALIAS]
    q = db.ops.quote_name
    select = (
        f"SELECT m.{q('id')}, m.{q('seq')}, m.{q('content')} FROM path"  # noqa: S608  # nosec B608
        f" INNER JOIN {q(Message._meta.db_table)} m ON m.{q('id')} = path.id WHERE path.role = %s"
    )
    with db.cursor() as cursor:
        cursor.execute(
            _walk_sql(db, select, "path.role <> %s"),
            [_session_param(session_id), leaf, MessageRole.USER.value, MessageRole.USER.value],
        )
        row = cursor.fetchone()
    # Built as `.only("id", "seq", "content")` would read it (the other fields deferred).
    return None if row is None else Message.from_db(db.alias, ["id", "seq", "content"], row)


def checkpoint_on_path(
    *,
    session_id: UUID | str,
    leaf: int,
    reasons: Sequence[str] | None = SUMMARY_CHECKPOINT_REASONS,
    with_summary: bool = True,
) -> Checkpoint | None:
    """The newest checkpoint whose `through_seq` lies on the path from `leaf`: by default the one that folds that path.

    By default only checkpoints that may fold history (SUMMARY_CHECKPOINT_REASONS, with a summary);
    `reasons=None, with_summary=False` takes any. Candidates are read newest first and each is
    tested with `path_contains`: the newest is normally on the branch, and its test walks only the
    messages after it (what compaction bounds).
    """
    candidates = Checkpoint.objects.filter(session_id=session_uuid(session_id)).order_by("-id")
    if reasons is not None:
        candidates = candidates.filter(reason__in=list(reasons))
    if with_summary:
        candidates = candidates.exclude(summary="")
    tested: dict[int, bool] = {}
    for checkpoint in candidates.iterator(chunk_size=20):
        through = checkpoint.through_seq
        if through not in tested:
            tested[through] = path_contains(session_id=session_id, leaf=leaf, seq=through)
        if tested[through]:
            return checkpoint
    return None


@dataclass(frozen=True)
class Siblings:
    """The children of one parent in seq order, the message's place among them, each one's newest descendant."""

    message: Message
    siblings: list[Message]
    position: int
    # Per sibling seq: the newest message of its subtree (the leaf to switch to, to see that branch).
    leaves: dict[int, int]


# Seqs are 32-bit columns: a larger one names no message.
MAX_SEQ = 2**31 - 1


def message_seq(value: int) -> int:
    """A seq from a URL: one past the column's range is simply no message (404), never a database error."""
    if not 1 <= value <= MAX_SEQ:
        raise NotFoundError.for_field("seq", f"no message #{value}")
    return value


def message_get(*, session_id: UUID | str, owner: OwnerScope = None, seq: int) -> Message:
    """Message `seq` of `owner`'s session (the session's owner is checked), or NotFoundError."""
    session = session_get(session_id=session_id, owner=owner)
    found = Message.objects.filter(session=session, seq=seq).first()
    if found is None:
        raise NotFoundError.for_field("seq", f"no message #{seq} in session {session.pk}")
    found.session = session
    return found


def message_siblings(*, session_id: UUID | str, owner: OwnerScope = None, seq: int) -> Siblings:
    """Message `seq` among its siblings (`2 of 3`): the (session, parent) index, then one walk down their subtrees."""
    message = message_get(session_id=session_id, owner=owner, seq=seq)
    siblings = list(Message.objects.filter(session_id=message.session_id, parent_id=message.parent_id).order_by("seq"))
    db = connections[DEFAULT_DB_ALIAS]
    q = db.ops.quote_name
    table = q(Message._meta.db_table)
    ids = [sibling.pk for sibling in siblings]
    marks = ", ".join(["%s"] * len(ids))
    sql = (
        f"WITH RECURSIVE tree (root, id, seq) AS ("  # noqa: S608  # nosec B608
        f"SELECT m.{q('id')}, m.{q('id')}, m.{q('seq')} FROM {table} m WHERE m.{q('id')} IN ({marks})"
        f" UNION ALL SELECT tree.root, m.{q('id')}, m.{q('seq')} FROM {table} m"
        f" INNER JOIN tree ON m.{q('session_id')} = %s AND m.{q('parent_id')} = tree.id)"
        f" SELECT root, MAX(seq) FROM tree GROUP BY root"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [*ids, _session_param(message.session_id)])
        newest = {int(root): int(top) for root, top in cursor.fetchall()}
    return Siblings(
        message=message,
        siblings=siblings,
        position=[sibling.pk for sibling in siblings].index(message.pk) + 1,
        leaves={sibling.seq: newest[sibling.pk] for sibling in siblings},
    )


def sibling_seqs(*, session_id: UUID | str, messages: Sequence[Message]) -> dict[int, list[int]]:
    """Per message of `messages` (one path of a session), the seqs of it and its siblings in order; one
    query on the (session, parent) index. The chat page's `2/3` reads it."""
    parents = {message.parent_id for message in messages}
    rows = Message.objects.filter(session_id=session_uuid(session_id))
    has_root = None in parents
    condition = Q(parent_id__in=[p for p in parents if p is not None]) | (Q(parent__isnull=True) if has_root else Q())
    by_parent: dict[int | None, list[int]] = {}
    for parent_id, seq in rows.filter(condition).order_by("seq").values_list("parent_id", "seq"):
        by_parent.setdefault(parent_id, []).append(seq)
    return {message.seq: by_parent.get(message.parent_id, [message.seq]) for message in messages}
