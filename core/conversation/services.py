"""Writes to the conversation store: the only path by which sessions, messages, checkpoints, runs and
trace events change.

Seq allocation: the append runs ONE `UPDATE … SET last_seq = last_seq + 1, leaf = last_seq + 1,
<counters> WHERE id = … AND status = 'active' RETURNING last_seq`, then inserts the message with that
seq, in the same transaction. A message appended without a parent goes under the session's leaf,
read (locked, on PostgreSQL) just before the UPDATE; either way the new message becomes the leaf.
The UPDATE takes the session's row lock on PostgreSQL (on SQLite the connection's
`BEGIN IMMEDIATE` already holds the database write lock), so concurrent writers queue and the log
has no gap and no duplicate; the unique constraint on (session, seq) is the last line of defence.
Both statements are fixed SQL run on Django's cursor inside `transaction.atomic` (the ORM cannot
say an UPDATE … RETURNING); the returned instance is built by `Message.from_db`. Trace event
indexes are allocated the same way from `Run.event_count` with the run row locked.

Run state machine (every run ends in exactly one terminal state; the trace records each move):

    queued ──run_started──▶ running ──run_finished{completed}──▶ completed
      │                       │  └──error … run_finished{failed}──▶ failed
      │                       ├──run_cancel(reason)──▶ cancelled
      └──(same three exits)   └──runs_recover (after a crash)──▶ interrupted

A queued run may also fail (error then run_finished{failed}), be cancelled or be interrupted.
Once a run is terminal every further event, finish or cancel is refused (ConflictError, 409).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import F
from django.utils import timezone

from core.config.selectors import agent_usable, team_usable
from core.config.selectors import route_resolve as _route_resolve
from core.conversation.contracts import (
    MAX_CONTENT_CHARS,
    MAX_EVENT_TEXT_CHARS,
    MessagePart,
    estimate_tokens,
    json_refuse_nul,
    parts_validate,
    trace_payload_validate,
)
from core.conversation.models import (
    OPEN_INVOCATION_STATUSES,
    OPEN_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    InvocationStatus,
    RunPurpose,
    ToolInvocation,
)
from core.conversation.selectors import (
    OwnerScope,
    checkpoint_on_path,
    owned,
    path_contains,
    path_tokens,
    run_cancel_requested,
    run_uuid,
    runs_queued_ids,
    session_get,
    session_uuid,
)
from core.conversation.workers import worker_alive, worker_identity
from core.errors import ConflictError, InvalidInputError, NotFoundError, chars_at_most
from core.models import (
    AgentProfile,
    AgentSession,
    Checkpoint,
    CheckpointReason,
    Message,
    MessageRole,
    ModelRoute,
    Run,
    RunStatus,
    SessionStatus,
    Tag,
    Team,
    TraceEvent,
    TraceEventType,
    WorkerBeat,
)

MAX_TITLE_CHARS = 200
MAX_CLIENT_ID_CHARS = 128
MAX_SUMMARY_CHARS = 200_000
MAX_STATE_CHARS = 5_000_000
MAX_REASON_CHARS = 2_000
# Message.token_count and Checkpoint.token_count are 32-bit columns; a larger count is refused, not a 500.
MAX_TOKEN_COUNT = 2**31 - 1
MAX_ROW_ID = 2**63 - 1
_ROLES = frozenset(MessageRole.values)
# The PostgreSQL channel on which every commit that adds trace events names its run (the stream hub listens).
RUN_EVENTS_CHANNEL = "agentchat_run_events"
INTERRUPTED_ERROR = "interrupted: the process running this run stopped before it finished"


RecordT = TypeVar("RecordT")


@dataclass(frozen=True)
class Written(Generic[RecordT]):
    """The stored record, and whether this call created it (False for a retry or an update)."""

    record: RecordT
    created: bool


@dataclass(frozen=True)
class SessionDeleteResult:
    """How many rows `session_delete` removed, per record."""

    messages: int
    checkpoints: int
    runs: int
    events: int


@dataclass(frozen=True)
class RecoverResult:
    """The runs `runs_recover` marked interrupted, by the status they were left in."""

    running: list[UUID] = field(default_factory=list)
    queued: list[UUID] = field(default_factory=list)
    # Running runs left alone: the process streaming them is alive on this host.
    alive: list[UUID] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.running) + len(self.queued)


# --- Sessions -------------------------------------------------------------------------------


def _title_clean(title: str) -> str:
    return chars_at_most("title", title.strip(), MAX_TITLE_CHARS)


TITLE_FROM_MESSAGE_CHARS = 80


# Inline Markdown a title drops, keeping the words: images and links keep their text, code spans their
# code; emphasis and strike-through markers go; a heading, quote or list marker at the start goes.
_MD_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_CODE = re.compile(r"`+([^`]*)`+")
_MD_EMPHASIS = re.compile(r"(\*{1,3}|~~)(?=\S)(.+?)(?<=\S)\1|(?<!\w)(_{1,3})(?=\S)(.+?)(?<=\S)\3(?!\w)")
_MD_RULE_ONLY = re.compile(r"[-*_=~#>`\s]*")  # a rule, a fence or a bare marker: no title in it
_MD_LINE_MARKER = re.compile(r"^(?:#{1,6}\s+|>\s*|[-*+]\s+(?:\[[ xX]\]\s+)?|\d{1,9}[.)]\s+)+")


def plain_title(line: str) -> str:
    """`line` without its inline Markdown (`hello **friend**` -> `hello friend`), whitespace collapsed;
    empty for a line of Markdown markers only (`---`, a code fence)."""
    if _MD_RULE_ONLY.fullmatch(line):
        return ""
    text = _MD_LINE_MARKER.sub("", " ".join(line.split()))
    text = _MD_IMAGE_OR_LINK.sub(r"\1", text)
    text = _MD_CODE.sub(r"\1", text)
    previous = None
    while previous != text:  # nested emphasis (`***a** b*`) unwraps one level a pass
        previous, text = text, _MD_EMPHASIS.sub(lambda found: found[2] or found[4], text)
    return " ".join(text.split())


def title_from_message(content: str) -> str:
    """A title from a message's first non-empty line as plain text (its Markdown dropped), cut at a word
    boundary to at most 80 characters (with …)."""
    line = next(filter(None, map(plain_title, content.splitlines())), "")
    if len(line) <= TITLE_FROM_MESSAGE_CHARS:
        return line
    cut = line[: TITLE_FROM_MESSAGE_CHARS - 1]
    space = cut.rfind(" ")
    if space >= TITLE_FROM_MESSAGE_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


@dataclass(frozen=True)
class _Binding:
    """Who a session talks to: an agent, a team (its lead answers), or neither; and the route that implies."""

    agent: AgentProfile | None
    team: Team | None

    @property
    def route(self) -> ModelRoute | None:
        if self.agent is not None:
            return self.agent.route
        return self.team.lead.route if self.team is not None else None


def _binding(agent_name: str | None, team_name: str | None) -> _Binding:
    """The agent or team named (each must exist, be enabled and ready); "" or None names neither."""
    if agent_name and team_name:
        raise InvalidInputError.for_field("team", "give an agent or a team, not both")
    return _Binding(
        agent=agent_usable(agent_name) if agent_name else None,
        team=team_usable(team_name) if team_name else None,
    )


def session_create(
    *,
    owner: AbstractBaseUser,
    title: str = "",
    route_alias: str | None = None,
    agent_name: str | None = None,
    team_name: str | None = None,
) -> AgentSession:
    """Start a session of `owner`, talking to an agent, a team (its lead answers) or neither.

    The route is `route_alias` when given, else the agent's (the team lead's), else the default route.
    """
    title = _title_clean(title)
    binding = _binding(agent_name, team_name)
    route = _route_resolve(route_alias) if route_alias or binding.route is None else binding.route
    with transaction.atomic():
        return AgentSession.objects.create(
            title=title, route=route, owner_id=owner.pk, agent=binding.agent, team=binding.team
        )


def _session_locked(session_id: UUID | str, owner: OwnerScope = None) -> AgentSession:
    """`owner`'s session row, locked for the rest of the transaction (another user's is not found)."""
    try:
        return owned(AgentSession.objects.select_for_update(), owner).get(pk=session_uuid(session_id))
    except AgentSession.DoesNotExist:
        raise NotFoundError.for_field("session", f"no session {session_id}") from None


def _refuse_archived(session: AgentSession) -> None:
    if session.status == SessionStatus.ARCHIVED:
        raise ConflictError.for_field("session", "is archived; unarchive it or start a new session")


MAX_TAG_CHARS = 48
MAX_TAGS_PER_SESSION = 20


def _tag_names_clean(tags: list[str]) -> list[str]:
    """Distinct, stripped tag names in the order given; each 1 to 48 printable characters."""
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidInputError.for_field("tags", "must be a list of tag names (strings)")
    names: list[str] = []
    for raw in tags:
        name = " ".join(raw.split())
        if not name or len(name) > MAX_TAG_CHARS or not name.isprintable():
            raise InvalidInputError.for_field(
                "tags", f"{raw[:60]!r} is not a tag name; give 1 to {MAX_TAG_CHARS} printable characters"
            )
        if name not in names:
            names.append(name)
    if len(names) > MAX_TAGS_PER_SESSION:
        raise InvalidInputError.for_field("tags", f"has {len(names)} tags; at most {MAX_TAGS_PER_SESSION} per session")
    return names


def session_update(
    *,
    session_id: UUID | str,
    owner: OwnerScope = None,
    title: str | None = None,
    route_alias: str | None = None,
    pinned: bool | None = None,
    tags: list[str] | None = None,
    agent_name: str | None = None,
    team_name: str | None = None,
) -> AgentSession:
    """Rename a session, move it to another route, pin it, set its tags (the session owner's own), or
    bind it to an agent or a team.

    An archived session keeps its title, route and binding, but may still be pinned and tagged. `tags`
    replaces the session's tags; names the owner has not used yet become new tags of theirs. Binding
    an agent (or team) unbinds the other and moves the session to its route unless `route_alias` is
    given; "" unbinds.
    """
    clean_title = _title_clean(title) if title is not None else None
    if route_alias is not None and not route_alias.strip():
        raise InvalidInputError.for_field("route", "empty; give a route alias")
    if pinned is not None and not isinstance(pinned, bool):
        raise InvalidInputError.for_field("pinned", "must be true or false")
    tag_names = _tag_names_clean(tags) if tags is not None else None
    rebinding = agent_name is not None or team_name is not None
    binding = _binding(agent_name, team_name) if rebinding else None
    route = _route_resolve(route_alias) if route_alias is not None else None
    if route is None and binding is not None:
        route = binding.route
    with transaction.atomic():
        session = _session_locked(session_id, owner)
        if clean_title is not None or route is not None or rebinding:
            _refuse_archived(session)
        changes: dict[str, Any] = {"updated": timezone.now()}
        if binding is not None:
            changes["agent"], changes["team"] = binding.agent, binding.team
        if clean_title is not None:
            changes["title"] = clean_title
        if route is not None:
            changes["route"] = route
        if pinned is not None:
            changes["pinned"] = pinned
        AgentSession.objects.filter(pk=session.pk).update(**changes)
        if tag_names is not None:
            session.tags.set(_tags_of(session.owner_id, tag_names))
    return session_get(session_id=session.pk)


def _tags_of(owner_id: int, names: list[str]) -> list[Tag]:
    """`owner_id`'s tags with these names, creating the missing ones (inside the caller's transaction)."""
    found = {tag.name: tag for tag in Tag.objects.filter(owner_id=owner_id, name__in=names)}
    missing = [Tag(owner_id=owner_id, name=name) for name in names if name not in found]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        found = {tag.name: tag for tag in Tag.objects.filter(owner_id=owner_id, name__in=names)}
    return [found[name] for name in names]


def _session_status_set(session_id: UUID | str, *, owner: OwnerScope, status: SessionStatus) -> AgentSession:
    with transaction.atomic():
        session = _session_locked(session_id, owner)
        if session.status == status:
            verb = "archived" if status == SessionStatus.ARCHIVED else "active"
            raise ConflictError.for_field("session", f"is already {verb}")
        AgentSession.objects.filter(pk=session.pk).update(status=status, updated=timezone.now())
    return session_get(session_id=session.pk)


def session_archive(*, session_id: UUID | str, owner: OwnerScope = None) -> AgentSession:
    """Archive a session: it keeps everything but takes no new messages, checkpoints or runs."""
    return _session_status_set(session_id, owner=owner, status=SessionStatus.ARCHIVED)


def session_unarchive(*, session_id: UUID | str, owner: OwnerScope = None) -> AgentSession:
    """Make an archived session active again."""
    return _session_status_set(session_id, owner=owner, status=SessionStatus.ACTIVE)


def _message_dependents_clear(session: AgentSession) -> None:
    """Delete (CASCADE) or detach (SET_NULL) the rows other apps keep pointing at this session's messages.

    core cannot import those apps (memory's attachment references, for one), so the relations are
    read from the model's metadata; each is one set-based statement over a subquery of the session's
    messages. A protecting relation with rows refuses the delete.
    """
    for relation in Message._meta.related_objects:
        field, holder = relation.field, relation.related_model
        if holder is Message:  # a message's children: the same session's, deleted by the same statement
            continue
        if isinstance(holder, str):  # only before the app registry resolves "app.Model" strings
            raise TypeError(f"unresolved relation {holder!r} to Message")
        dependents = holder._base_manager.filter(**{f"{field.name}__session": session})
        if relation.on_delete is models.CASCADE:
            dependents.delete()
        elif relation.on_delete is models.SET_NULL:
            dependents.update(**{field.name: None})
        elif dependents.exists():
            holders = holder._meta.verbose_name_plural
            raise ConflictError.for_field("session", f"its messages are referenced by {holders}; delete those first")


def session_delete(*, session_id: UUID | str, owner: OwnerScope = None) -> SessionDeleteResult:
    """Delete a session with its messages, checkpoints, runs and trace events, in one transaction.

    Each table is emptied with its own set-based DELETE (children first), so deleting a session of
    millions of messages never loads them into Python. A session with a queued or running run is
    refused: cancel the run first, so no runner keeps writing into a vanished session.
    """
    with transaction.atomic():
        session = _session_locked(session_id, owner)
        open_runs = Run.objects.filter(session=session, status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).count()
        if open_runs:
            raise ConflictError.for_field(
                "session", f"has {open_runs} unfinished run(s) (queued or running); cancel them first"
            )
        events, _ = TraceEvent.objects.filter(run__session=session).delete()
        _message_dependents_clear(session)
        # Nothing points at these messages any more: one DELETE, without the collector's SELECT of every row.
        messages = Message.objects.filter(session=session)._raw_delete(Message.objects.db)
        # Checkpoints point at their parent; detach them first so the delete is one statement per batch.
        Checkpoint.objects.filter(session=session, parent__isnull=False).update(parent=None)
        checkpoints, _ = Checkpoint.objects.filter(session=session).delete()
        runs, _ = Run.objects.filter(session=session).delete()
        AgentSession.objects.filter(pk=session.pk).delete()
    return SessionDeleteResult(messages=messages, checkpoints=checkpoints, runs=runs, events=events)


# --- Messages -------------------------------------------------------------------------------


def message_append(
    *,
    session_id: UUID | str,
    owner: OwnerScope = None,
    role: str,
    content: str = "",
    parts: list[MessagePart] | None = None,
    token_count: int | None = None,
    client_id: str | None = None,
    parent_seq: int | None = None,
) -> Written[Message]:
    """Append one message with the next seq; a retry with the same `client_id` returns the stored one.

    The message goes under message `parent_seq` (0: it starts a new root, as an edit of a first
    message does), or by default under the session's leaf; it becomes the session's leaf.
    A `client_id` reused for a different role, content, parts or given parent is a conflict, not a retry.
    With an `owner`, another user's session is not found (one more indexed read in the transaction).
    """
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidInputError.for_field("role", f"{role!r} is not a role; use one of {', '.join(MessageRole.values)}")
    if not isinstance(content, str):
        raise InvalidInputError.for_field("content", "must be a string")
    chars_at_most("content", content, MAX_CONTENT_CHARS)
    checked_parts = parts_validate(parts)
    json_refuse_nul(content, "content")
    json_refuse_nul(checked_parts, "parts")
    if not content and not checked_parts:
        raise InvalidInputError.for_field("content", "empty; give text content or at least one part")
    if token_count is not None and token_count < 0:
        raise InvalidInputError.for_field("token_count", "must be zero or more")
    if token_count is not None and token_count > MAX_TOKEN_COUNT:
        raise InvalidInputError.for_field("token_count", f"is {token_count}; at most {MAX_TOKEN_COUNT}")
    if client_id is not None:
        client_id = client_id.strip()
        if not client_id or len(client_id) > MAX_CLIENT_ID_CHARS:
            raise InvalidInputError.for_field("client_id", f"must be 1 to {MAX_CLIENT_ID_CHARS} characters")
    if parent_seq is not None and (not _is_int(parent_seq) or not 0 <= parent_seq <= MAX_TOKEN_COUNT):
        raise InvalidInputError.for_field("parent_seq", "must be a message seq of this session, or 0 for a new root")
    estimated = token_count is None
    tokens = estimate_tokens(content, checked_parts) if token_count is None else token_count
    pk = session_uuid(session_id)
    now = timezone.now()

    db = connections[DEFAULT_DB_ALIAS]
    sql = _append_sql(db)
    # The conversions `Model.save()` ends in (the backend's adapters for the UUID, the datetime and
    # the JSON); the other values are validated str/int/bool/None, which the ORM passes as they are.
    session_param = _SESSION_PK.get_db_prep_value(pk, db)
    now_param = db.ops.adapt_datetimefield_value(now)
    row = [session_param, 0, role, content, db.ops.adapt_json_value(checked_parts, _PARTS_ENCODER)]
    row += [tokens, estimated, client_id, now_param, None]
    with transaction.atomic(using=db.alias), db.cursor() as cursor:
        if owner is not None and not AgentSession.objects.filter(pk=pk, owner_id=owner.pk).exists():
            raise NotFoundError.for_field("session", f"no session {session_id}")
        given_parent = _parent_id(pk, parent_seq) if parent_seq is not None else None
        row[9] = _UNDER_LEAF if parent_seq is None else given_parent
        written = _append_rows(cursor, sql, pk, session_id, row, client_id)
    if isinstance(written, Message):
        if (written.role, written.content, written.parts) != (role, content, checked_parts) or (
            parent_seq is not None and written.parent_id != given_parent
        ):
            raise ConflictError.for_field(
                "client_id",
                f"{client_id!r} already names message #{written.seq} with a different role, content, "
                "parts or parent; a retry must repeat the same message, a new message needs a new client_id",
            )
        return Written(record=written, created=False)
    seq, message_id = written
    # Django builds the instance, as it does for a row it read (`_INSERT_FIELDS` order after the id).
    message = Message.from_db(
        db.alias,
        _MESSAGE_ATTNAMES,
        (message_id, pk, seq, role, content, checked_parts, tokens, estimated, client_id, now, row[9]),
    )
    return Written(record=message, created=True)


def _parent_id(pk: UUID, parent_seq: int) -> int | None:
    """The id of message `parent_seq` of the session (None for 0: a new root); unknown is a 400."""
    if parent_seq == 0:
        return None
    found = Message.objects.filter(session_id=pk, seq=parent_seq).values_list("id", flat=True).first()
    if found is None:
        raise InvalidInputError.for_field(
            "parent_seq", f"no message #{parent_seq} in this session; give the seq of one of its messages, or 0"
        )
    return found


def _append_rows(
    cursor: CursorWrapper,
    sql: _AppendSql,
    pk: UUID,
    session_id: UUID | str,
    row: list[Any],
    client_id: str | None,
) -> Message | tuple[int, int]:
    """In the caller's transaction: the message stored under `client_id`, or the new row's (seq, id).

    `row` is the INSERT's parameters (see `_INSERT_FIELDS`) with placeholders for the seq at [1] and
    the parent's id (or `_UNDER_LEAF`: the leaf's message) at [9].
    """
    session_param, tokens, now_param = row[0], row[5], row[8]
    if client_id is not None:
        existing = _append_retry(pk, session_id, client_id)
        if existing is not None:
            return existing
    leaf_id, untitled = _leaf_read(cursor, sql, session_param)
    if row[9] is _UNDER_LEAF:
        row[9] = leaf_id
    # Only a session still without a title takes one (from its first user message).
    title = title_from_message(row[3]) if untitled and row[2] == MessageRole.USER else ""
    params = [tokens, now_param, title, session_param, SessionStatus.ACTIVE.value]
    row[1] = seq = _seq_next(cursor, sql, session_id, params)
    cursor.execute(sql.insert, row)
    message_id = _returned(cursor)
    if row[9] != leaf_id:
        # The conversation moved to another branch: its fullness is that branch's, not the old one's plus this.
        _fullness_recount(pk, seq)
    return seq, message_id


def _fullness_recount(pk: UUID, leaf: int) -> None:
    """Set the session's `tokens_since_checkpoint` to its active path's tokens after the newest compaction on it.

    Runs when the active path changes other than by an append under the leaf (a branch switch, an
    edit, a regenerated reply): one walk of the path back to that compaction checkpoint.
    """
    compaction = checkpoint_on_path(
        session_id=pk, leaf=leaf, reasons=(CheckpointReason.COMPACTION,), with_summary=False
    )
    floor = compaction.through_seq if compaction is not None else 0
    tokens = path_tokens(session_id=pk, leaf=leaf, after_seq=floor)
    AgentSession.objects.filter(pk=pk).update(tokens_since_checkpoint=tokens)


def _leaf_read(cursor: CursorWrapper, sql: _AppendSql, session_param: Any) -> tuple[int | None, bool]:
    """With the session row locked: the id of its leaf message (None before the first) and whether
    it still has no title (False for an unknown session, which the seq allocation then refuses)."""
    cursor.execute(sql.leaf, [session_param])
    found = cursor.fetchone()
    if found is None:
        return None, False
    return (None if found[0] is None else int(found[0])), bool(found[1])


@dataclass(frozen=True)
class _AppendSql:
    """The two statements of `message_append` on one kind of database (fixed SQL, strings only).

    `advance` allocates the seq and bumps the counters in ONE statement (the ORM cannot return the
    updated value). On PostgreSQL it also takes the session's row lock, so concurrent appenders
    queue behind it; on SQLite the transaction's BEGIN IMMEDIATE already holds the database write
    lock. Its `status` condition makes an archived (or unknown) session update nothing, and the
    slow path then says why. `insert` writes the message and returns its id. `leaf` reads the id of
    the session's leaf message (the parent of a message appended under the leaf) and whether the
    session has no title yet, taking the session's row lock on PostgreSQL.
    """

    advance: str
    insert: str
    leaf: str


# Per database vendor (a handful of strings; nothing here refers to a connection).
_APPEND_SQL: dict[str, _AppendSql] = {}
_SESSION_PK = AgentSession._meta.pk
_PARTS_ENCODER = Message._meta.get_field("parts").encoder

_INSERT_FIELDS = (
    "session",
    "seq",
    "role",
    "content",
    "parts",
    "token_count",
    "token_count_estimated",
    "client_id",
    "created",
    "parent",
)
# Marks the INSERT's parent as "the session's leaf", resolved under the session's lock.
_UNDER_LEAF = object()
_MESSAGE_ATTNAMES = [field.attname for field in Message._meta.concrete_fields]


def _append_sql(db: BaseDatabaseWrapper) -> _AppendSql:
    """`message_append`'s statements in `db`'s dialect, built once per vendor."""
    built = _APPEND_SQL.get(db.vendor)
    if built is not None:
        return built
    q = db.ops.quote_name
    sessions = q(AgentSession._meta.db_table)
    messages = q(Message._meta.db_table)
    fields = {field.name: field for field in Message._meta.concrete_fields if not field.primary_key}
    if set(fields) != set(_INSERT_FIELDS) or _MESSAGE_ATTNAMES[1:] != [fields[name].attname for name in _INSERT_FIELDS]:
        # A field added to Message must be written (and returned) by message_append too.
        raise ImproperlyConfigured(f"message_append writes {_INSERT_FIELDS}; Message has {tuple(fields)}")
    columns = [str(fields[name].column) for name in _INSERT_FIELDS]
    built = _APPEND_SQL[db.vendor] = _AppendSql(
        advance=(
            f"UPDATE {sessions} SET {q('last_seq')} = {q('last_seq')} + 1,"  # noqa: S608  # nosec B608
            f" {q('message_count')} = {q('message_count')} + 1,"
            f" {q('leaf')} = {q('last_seq')} + 1,"
            f" {q('tokens_since_checkpoint')} = {q('tokens_since_checkpoint')} + %s, {q('updated')} = %s,"
            # A session without a title takes one from its first user message (the parameter is ''
            # for other roles, which leaves the title as it is).
            f" {q('title')} = CASE WHEN {q('title')} = '' THEN %s ELSE {q('title')} END"
            f" WHERE {q('id')} = %s AND {q('status')} = %s RETURNING {q('last_seq')}"
        ),
        insert=(
            f"INSERT INTO {messages} ({', '.join(q(column) for column in columns)})"  # noqa: S608  # nosec B608
            f" VALUES ({', '.join(['%s'] * len(columns))}) RETURNING {q('id')}"
        ),
        leaf=(
            f"SELECT m.{q('id')}, s.{q('title')} = '' FROM {sessions} s LEFT JOIN {messages} m"  # noqa: S608  # nosec B608
            f" ON m.{q('session_id')} = s.{q('id')} AND m.{q('seq')} = s.{q('leaf')} WHERE s.{q('id')} = %s"
            + (" FOR UPDATE OF s" if db.features.has_select_for_update_of else "")
        ),
    )
    return built


def _returned(cursor: CursorWrapper) -> int:
    """The single value a `RETURNING` statement gave back."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the statement returned no row")
    return int(row[0])


def _append_retry(pk: UUID, session_id: UUID | str, client_id: str) -> Message | None:
    """The message already stored under `client_id` (read under the session's lock), or None."""
    if not AgentSession.objects.select_for_update().filter(pk=pk).values_list("pk", flat=True):
        raise NotFoundError.for_field("session", f"no session {session_id}")
    return Message.objects.filter(session_id=pk, client_id=client_id).first()


def _seq_next(cursor: CursorWrapper, sql: _AppendSql, session_id: UUID | str, params: list[Any]) -> int:
    """Allocate the session's next seq and bump its counters; 404/409 when it is unknown/archived."""
    cursor.execute(sql.advance, params)
    row = cursor.fetchone()
    if row is None:
        # Nothing updated: say why (unknown, archived); if the session became active meanwhile,
        # the locked read below waited for that change, so the second UPDATE matches.
        _refuse_archived(_session_locked(session_id))
        cursor.execute(sql.advance, params)
        row = cursor.fetchone()
        if row is None:
            raise ConflictError.for_field("session", "changed while the message was appended; retry")
    return int(row[0])


def session_leaf_set(*, session_id: UUID | str, owner: OwnerScope = None, seq: int) -> AgentSession:
    """Switch the session to the branch that ends at message `seq`: it becomes the stored leaf.

    The active path (context, restore, fullness, the next turn) follows it from then on, across
    reloads and restarts. An archived session is read-only.
    """
    if not _is_int(seq) or not 1 <= seq <= MAX_TOKEN_COUNT:
        raise InvalidInputError.for_field("seq", "must be the seq of one of the session's messages (1 or more)")
    with transaction.atomic():
        session = _session_locked(session_id, owner)
        _refuse_archived(session)
        if not Message.objects.filter(session=session, seq=seq).exists():
            raise InvalidInputError.for_field(
                "seq", f"no message #{seq} in this session; give a seq from 1 to {session.last_seq}"
            )
        AgentSession.objects.filter(pk=session.pk).update(leaf=seq, updated=timezone.now())
        _fullness_recount(session.pk, seq)
    return session_get(session_id=session.pk)


def message_index_catch_up() -> int:
    """Index for search the messages written since the last catch-up; how many it indexed.

    On SQLite an append does not touch the full-text index (FTS5 would write an index segment at
    each commit); the search and the admin's search boxes call this first, so every message stored
    before a search is found by it, and one catch-up indexes many messages in one statement. The
    index holds exactly the messages whose id has a row in `core_message_fts_docsize`, and every
    message up to the largest such id (see migration `core/0023`): the messages above it are the
    ones to index. Nothing is written, and no write lock is taken, when there are none.
    PostgreSQL keeps its index as a generated column: nothing to do there.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "sqlite":
        return 0
    with db.cursor() as cursor:
        cursor.execute(_INDEX_BEHIND)
        if not cursor.fetchone()[0]:
            return 0
        with transaction.atomic(using=db.alias):
            # The write lock is held from here: a concurrent catch-up waits, then finds nothing left.
            cursor.execute(_INDEX_CATCH_UP)
            return int(cursor.rowcount)


_INDEXED_THROUGH = "(SELECT coalesce(max(id), 0) FROM core_message_fts_docsize)"
_INDEX_BEHIND = f"SELECT coalesce((SELECT max(id) FROM core_message), 0) > {_INDEXED_THROUGH}"  # noqa: S608  # nosec B608
_INDEX_CATCH_UP = (
    "INSERT INTO core_message_fts(rowid, content)"  # noqa: S608  # nosec B608
    f" SELECT id, content FROM core_message WHERE id > {_INDEXED_THROUGH} ORDER BY id"
)


# --- Checkpoints ----------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def checkpoint_create(
    *,
    session_id: UUID | str,
    owner: OwnerScope = None,
    through_seq: int,
    reason: str,
    summary: str = "",
    state: Mapping[str, Any] | None = None,
    token_count: int | None = None,
    parent_id: int | None = None,
) -> Checkpoint:
    """Record resumable state covering the path from message `through_seq` to the root (it refers, never copies).

    `through_seq` is the leaf it covers: 0, or a message on the session's active path. The parent is
    the newest checkpoint on that path unless `parent_id` names another of its checkpoints, which
    must lie on it too. A `compaction` checkpoint resets the session's `tokens_since_checkpoint` to
    the tokens of the active path's messages after `through_seq` (one walk over that tail).
    """
    if reason not in CheckpointReason.values:
        raise InvalidInputError.for_field(
            "reason", f"{reason!r} is not a reason; use one of {', '.join(CheckpointReason.values)}"
        )
    if not _is_int(through_seq) or through_seq < 0:
        raise InvalidInputError.for_field("through_seq", "must be an integer of 0 or more (the last seq covered)")
    if not isinstance(summary, str):
        raise InvalidInputError.for_field("summary", "must be a string")
    chars_at_most("summary", summary, MAX_SUMMARY_CHARS)
    if state is None:
        state = {}
    if not isinstance(state, Mapping):
        raise InvalidInputError.for_field("state", "must be a JSON object")
    state_size = len(json.dumps(state))
    if state_size > MAX_STATE_CHARS:
        raise InvalidInputError.for_field(
            "state", f"is {state_size} characters as JSON; at most {MAX_STATE_CHARS} are allowed"
        )
    if token_count is not None and (not _is_int(token_count) or token_count < 0):
        raise InvalidInputError.for_field("token_count", "must be an integer of 0 or more")
    if token_count is not None and token_count > MAX_TOKEN_COUNT:
        raise InvalidInputError.for_field("token_count", f"is {token_count}; at most {MAX_TOKEN_COUNT}")
    if parent_id is not None and (not _is_int(parent_id) or not 0 < parent_id <= MAX_ROW_ID):
        raise InvalidInputError.for_field("parent", "must be a checkpoint id (a positive integer)")
    if through_seq > MAX_TOKEN_COUNT:
        raise InvalidInputError.for_field("through_seq", f"is {through_seq}; at most {MAX_TOKEN_COUNT}")
    json_refuse_nul(summary, "summary")
    json_refuse_nul(state, "state")

    with transaction.atomic():
        session = _session_locked(session_id, owner)
        _refuse_archived(session)
        if through_seq > session.last_seq:
            raise InvalidInputError.for_field(
                "through_seq",
                f"{through_seq} is past the session's last message (#{session.last_seq}); "
                f"give a seq from 0 to {session.last_seq}",
            )
        if not path_contains(session_id=session.pk, leaf=session.leaf, seq=through_seq):
            raise InvalidInputError.for_field(
                "through_seq",
                f"message #{through_seq} is not on the active branch (which ends at #{session.leaf}); "
                "switch to its branch first, or give a seq on this one",
            )
        if parent_id is None:
            parent = checkpoint_on_path(session_id=session.pk, leaf=through_seq, reasons=None, with_summary=False)
        else:
            parent = Checkpoint.objects.filter(session=session, pk=parent_id).only("id", "through_seq").first()
            if parent is None:
                raise InvalidInputError.for_field("parent", f"no checkpoint {parent_id} in this session")
        if parent is not None and through_seq < parent.through_seq:
            raise InvalidInputError.for_field(
                "through_seq",
                f"{through_seq} is before the parent checkpoint's through_seq {parent.through_seq}; "
                f"a checkpoint covers at least what its parent covers",
            )
        if parent is not None and not path_contains(session_id=session.pk, leaf=through_seq, seq=parent.through_seq):
            raise InvalidInputError.for_field(
                "parent", f"checkpoint {parent.pk} covers another branch; give one on the path of #{through_seq}"
            )
        checkpoint = Checkpoint.objects.create(
            session=session,
            parent=parent,
            through_seq=through_seq,
            summary=summary,
            state=dict(state),
            token_count=estimate_tokens(summary) if token_count is None else token_count,
            reason=reason,
        )
        changes: dict[str, Any] = {"updated": timezone.now()}
        if reason == CheckpointReason.COMPACTION:
            changes["tokens_since_checkpoint"] = path_tokens(
                session_id=session.pk, leaf=session.leaf, after_seq=through_seq
            )
        AgentSession.objects.filter(pk=session.pk).update(**changes)
    return checkpoint


# --- Runs and their traces ------------------------------------------------------------------


def _run_locked(run_id: UUID | str, owner: OwnerScope = None) -> Run:
    """`owner`'s run row, locked for the rest of the transaction (it allocates the next event index)."""
    try:
        return owned(Run.objects.select_for_update(), owner).get(pk=run_uuid(run_id))
    except Run.DoesNotExist:
        raise NotFoundError.for_field("run", f"no run {run_id}") from None


# How a run that ends without finishing its tool calls answers each open one.
_INVOCATION_CLOSE = {
    RunStatus.CANCELLED: (InvocationStatus.CANCELLED, "cancelled: the run was cancelled before this call ran"),
    RunStatus.FAILED: (InvocationStatus.CANCELLED, "cancelled: the run failed before this call ran"),
    RunStatus.INTERRUPTED: (InvocationStatus.INTERRUPTED, "interrupted: the run stopped before this call ran"),
}


def _events_write(run: Run, events: list[tuple[str, dict[str, Any]]], **changes: Any) -> list[TraceEvent]:
    """Insert `events` at the run's next indexes and apply `changes` with one UPDATE (run row locked).

    A run that ends cancelled, failed or interrupted closes its open tool invocations in the same
    transaction: every call keeps exactly one result.
    """
    closing = _INVOCATION_CLOSE.get(changes.get("status", ""))
    if closing is not None:
        ToolInvocation.objects.filter(run_id=run.pk, status__in=OPEN_INVOCATION_STATUSES).update(
            status=closing[0], result=closing[1], is_error=True, finished_at=timezone.now()
        )
    written = [
        TraceEvent.objects.create(run=run, index=run.event_count + offset, type=event_type, payload=payload)
        for offset, (event_type, payload) in enumerate(events, start=1)
    ]
    Run.objects.filter(pk=run.pk).update(event_count=F("event_count") + len(events), **changes)
    run.event_count += len(events)
    _run_events_notify(run)
    for name, value in changes.items():
        setattr(run, name, value)
    return written


def _run_finish(run: Run, status: str, **changes: Any) -> None:
    """End `run` with `status`: `run_finished{status}` as its last event, `changes` on its row
    (`finished_at` defaults to now)."""
    changes.setdefault("finished_at", timezone.now())
    _events_write(run, [(TraceEventType.RUN_FINISHED, {"status": status})], status=status, **changes)


def _run_events_notify(run: Run) -> None:
    """On PostgreSQL, tell the stream hubs (LISTEN `RUN_EVENTS_CHANNEL`) that the run has new events.

    NOTIFY is transactional: PostgreSQL delivers it when this transaction commits and drops it on
    rollback, so a listener never wakes before the rows are visible, and no crash between the commit
    and a separate NOTIFY can lose it (what `transaction.on_commit` would leave open). SQLite has no
    NOTIFY: its hub polls the runs it watches instead.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [RUN_EVENTS_CHANNEL, str(run.pk)])


def _refuse_terminal(run: Run) -> None:
    if run.status in TERMINAL_RUN_STATUSES:
        raise ConflictError.for_field("run", f"is {run.status}; a finished run takes no more events")


def _start(run: Run, payload: dict[str, Any] | None = None) -> list[TraceEvent]:
    if run.status != RunStatus.QUEUED:
        raise ConflictError.for_field("run", f"is already {run.status}; only a queued run can start")
    started = (TraceEventType.RUN_STARTED, payload or {})
    return _events_write(run, [started], status=RunStatus.RUNNING, started_at=timezone.now())


def _finish(run: Run, status: str, error: str) -> list[TraceEvent]:
    """Move an open run to `status` (completed or failed), recording the error event first when given."""
    if status not in (RunStatus.COMPLETED, RunStatus.FAILED):
        raise InvalidInputError.for_field(
            "status",
            f"{status!r} cannot be set by finishing; use completed or failed "
            "(cancel a run with its reason; recover_runs marks crashed runs interrupted)",
        )
    if status == RunStatus.COMPLETED:
        if error:
            raise InvalidInputError.for_field("error", "a completed run has no error; finish it as failed")
        if run.status == RunStatus.QUEUED:
            raise ConflictError.for_field("run", "is queued; start it before completing it")
        if run.error:
            raise ConflictError.for_field("run", "reported an error; finish it as failed")
        open_calls = list(
            ToolInvocation.objects.filter(run_id=run.pk, status__in=OPEN_INVOCATION_STATUSES).values_list(
                "call_id", flat=True
            )
        )
        if open_calls:
            raise ConflictError.for_field(
                "run", f"has tool calls without a result ({', '.join(open_calls)}); answer them before completing it"
            )
    events: list[tuple[str, dict[str, Any]]] = []
    if error:
        events.append((TraceEventType.ERROR, {"message": error}))
    elif status == RunStatus.FAILED and not run.error:
        raise ConflictError.for_field("run", "has no error recorded; append an error event (or give one) first")
    events.append((TraceEventType.RUN_FINISHED, {"status": status}))
    return _events_write(run, events, status=status, error=run.error or error, finished_at=timezone.now())


def _error_clean(error: str) -> str:
    return chars_at_most("error", error.strip(), MAX_EVENT_TEXT_CHARS)


def run_create(
    *,
    session_id: UUID | str,
    owner: OwnerScope = None,
    route_alias: str | None = None,
    status: str = RunStatus.QUEUED,
    message: Message | None = None,
    purpose: str = RunPurpose.CHAT,
    attempt: int = 1,
    agent: AgentProfile | None = None,
    parent: Run | None = None,
    tool_call_id: str = "",
) -> Run:
    """Open a run (one model turn) on an active session of `owner`, `queued` or already `running`.

    The route defaults to the session's, the agent to the session's (a team's lead) and the run's
    owner is the session's. A run created `running` starts its trace with `run_started`. A session
    holds at most one open chat run: a second is a ConflictError naming the open one. A `delegate`
    run names its `parent` (an open run of the same session) and the parent's `tool_call_id`.
    """
    if status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise InvalidInputError.for_field("status", f"{status!r}: a new run is queued or running")
    if (purpose == RunPurpose.DELEGATE) != (parent is not None) or (parent is not None and not tool_call_id):
        raise InvalidInputError.for_field("parent", "a delegate run, and only one, names its parent run and tool call")
    route = _route_resolve(route_alias) if route_alias else None
    with transaction.atomic():
        session = _session_locked(session_id, owner)
        _refuse_archived(session)
        if purpose == RunPurpose.CHAT:
            _refuse_open_chat_run(session)
        if parent is not None:
            _refuse_closed_parent(parent, session)
        run = Run.objects.create(
            session=session,
            route=route or session.route,
            owner_id=session.owner_id,
            message=message,
            purpose=purpose,
            attempt=attempt,
            agent_id=agent.pk if agent is not None else _session_agent_id(session),
            parent=parent,
            tool_call_id=tool_call_id,
        )
        if status == RunStatus.RUNNING:
            _start(run)
    return run


UPKEEP_PURPOSES = (RunPurpose.COMPACTION, RunPurpose.EPISODE, RunPurpose.FACTS)


def upkeep_run_open(
    *,
    owner: AbstractBaseUser,
    purpose: str,
    route: ModelRoute,
    lease_owner: str,
    lease_ms: int,
    session_id: UUID | str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> Run:
    """Open an upkeep run (compaction, episode, facts) `running` under `lease_owner`'s lease.

    A compaction or facts run belongs to one of `owner`'s active sessions; an episode run to `owner`
    alone. A second open compaction of the same session, or episode run of the same owner, is a
    ConflictError (a unique constraint decides, so two workers racing open one run).
    """
    if purpose not in UPKEEP_PURPOSES:
        raise InvalidInputError.for_field(
            "purpose", f"{purpose!r} is not an upkeep purpose; use one of {', '.join(UPKEEP_PURPOSES)}"
        )
    if (purpose == RunPurpose.EPISODE) != (session_id is None):
        raise InvalidInputError.for_field(
            "session", "an episode run has no session; a compaction or facts run needs one"
        )
    checked = dict(trace_payload_validate(TraceEventType.RUN_STARTED, payload or worker_identity()))
    try:
        with transaction.atomic():
            session = None
            if session_id is not None:
                session = _session_locked(session_id, owner)
                _refuse_archived(session)
            now = timezone.now()
            run = Run.objects.create(
                session=session,
                route=route,
                owner_id=owner.pk,
                purpose=purpose,
                status=RunStatus.RUNNING,
                started_at=now,
                lease_owner=lease_owner,
                lease_expires_at=now + timedelta(milliseconds=lease_ms),
            )
            _events_write(run, [(TraceEventType.RUN_STARTED, checked)])
    except IntegrityError:
        scope = f"session {session_id}" if session_id is not None else "this user"
        raise ConflictError.for_field(
            "run", f"a {purpose} run of {scope} is already open; it will do the work"
        ) from None
    return run


def _session_agent_id(session: AgentSession) -> int | None:
    """The agent a session's turns run as: its agent, or its team's lead."""
    if session.team_id is None:
        return session.agent_id
    lead: int | None = Team.objects.filter(pk=session.team_id).values_list("lead_id", flat=True).first()
    return lead


def _refuse_closed_parent(parent: Run, session: AgentSession) -> None:
    """A child run opens only under a running run of the same session (the parent row is locked)."""
    status = Run.objects.select_for_update().filter(pk=parent.pk, session=session).values_list("status", flat=True)
    found = status.first()
    if found != RunStatus.RUNNING:
        state = "not a run of this session" if found is None else f"{found}"
        raise ConflictError.for_field("parent", f"run {parent.pk} is {state}; delegate only from a running run")


def _children_cancel(run: Run, reason: str) -> None:
    """End the open runs delegated from `run` (and theirs) `cancelled`, inside the caller's transaction."""
    _children_end(run, RunStatus.CANCELLED, reason)


def _children_end(run: Run, status: str, why: str) -> list[UUID]:
    """End the open runs delegated from `run` (and theirs) with it, inside the caller's transaction: `cancelled`
    with the parent's reason, or `interrupted` (a parent interrupted or failed) with the parent's error."""
    ended: list[UUID] = []
    for child in Run.objects.select_for_update().filter(parent=run, status__in=OPEN_RUN_STATUSES).order_by("created"):
        ended += _children_end(child, status, why)
        if status == RunStatus.CANCELLED:
            fields = {"cancel_reason": f"its parent run was cancelled: {why}"[:MAX_REASON_CHARS]}
        else:
            fields = {"error": child.error or f"interrupted with its parent run: {why}"[:MAX_EVENT_TEXT_CHARS]}
        _run_finish(child, status, **fields)
        ended.append(child.pk)
    return ended


def _refuse_open_chat_run(session: AgentSession) -> None:
    """ConflictError naming the session's open chat run, if it has one (the session row is locked)."""
    open_run = (
        Run.objects.filter(session=session, purpose=RunPurpose.CHAT, status__in=OPEN_RUN_STATUSES)
        .values_list("pk", "status")
        .first()
    )
    if open_run is not None:
        run_id, status = open_run
        raise ConflictError.for_field(
            "session",
            f"has an open run {run_id} ({status}); wait for it to finish (GET /api/runs/{run_id}/), "
            f"or cancel it (POST /api/runs/{run_id}/cancel/) before sending another turn",
        )


def run_start(*, run_id: UUID | str, owner: OwnerScope = None) -> Run:
    """Move a queued run to `running`, recording `run_started`."""
    with transaction.atomic():
        run = _run_locked(run_id, owner)
        _refuse_terminal(run)
        _start(run)
    return run


def run_event_append(
    *, run_id: UUID | str, owner: OwnerScope = None, event_type: str, payload: Mapping[str, Any] | None = None
) -> TraceEvent:
    """Append one event at the run's next index; `run_started` and `run_finished` move the run's state.

    An `error` event records the run's error; the run then finishes with `run_finished{failed}`.
    Any event after the run is terminal is refused (ConflictError).
    """
    checked = dict(trace_payload_validate(event_type, payload))
    json_refuse_nul(checked, "payload")
    with transaction.atomic():
        run = _run_locked(run_id, owner)
        _refuse_terminal(run)
        if event_type == TraceEventType.RUN_STARTED:
            return _start(run, checked)[-1]
        if event_type == TraceEventType.RUN_FINISHED:
            return _finish(run, str(checked["status"]), "")[-1]
        if run.status == RunStatus.QUEUED and event_type != TraceEventType.ERROR:
            raise ConflictError.for_field(
                "run", f"is queued; append run_started before {event_type} (or cancel the run)"
            )
        changes: dict[str, Any] = {}
        if event_type == TraceEventType.ERROR and not run.error:
            changes["error"] = str(checked["message"])
        return _events_write(run, [(event_type, checked)], **changes)[-1]


STATE_EVENT_TYPES = (TraceEventType.RUN_STARTED, TraceEventType.RUN_FINISHED)


def run_events_append(
    *, run_id: UUID | str, owner: OwnerScope = None, events: Sequence[tuple[str, Mapping[str, Any] | None]]
) -> Run:
    """Append `events` in order at the run's next indexes, in ONE transaction; the run as it is now.

    For a runner's batched writes (the turn's coalescer): content events only, the state moves
    (`run_started`, `run_finished`) go through `run_event_append` / `run_finish`. Every payload is
    checked before anything is written; a run that is terminal (cancelled meanwhile) or still
    queued refuses the whole batch (ConflictError), so a batch is written whole or not at all.
    """
    checked: list[tuple[str, dict[str, Any]]] = []
    for position, (event_type, payload) in enumerate(events):
        if event_type in STATE_EVENT_TYPES:
            raise InvalidInputError.for_field(
                f"events[{position}].type", f"{event_type} moves the run's state; append it with run_event_append"
            )
        value = dict(trace_payload_validate(event_type, payload, field=f"events[{position}].payload"))
        json_refuse_nul(value, f"events[{position}].payload")
        checked.append((event_type, value))
    with transaction.atomic():
        run = _run_locked(run_id, owner)
        _refuse_terminal(run)
        if run.status == RunStatus.QUEUED and checked:
            raise ConflictError.for_field("run", "is queued; append run_started before its events (or cancel the run)")
        if checked:
            changes: dict[str, Any] = {}
            errors = [payload["message"] for event_type, payload in checked if event_type == TraceEventType.ERROR]
            if errors and not run.error:
                changes["error"] = str(errors[0])
            _events_write(run, checked, **changes)
    return run


def run_finish(*, run_id: UUID | str, owner: OwnerScope = None, status: str, error: str = "") -> Run:
    """End an open run as `completed`, or `failed` with `error` (or the error event already recorded)."""
    error = _error_clean(error)
    with transaction.atomic():
        run = _run_locked(run_id, owner)
        _refuse_terminal(run)
        if status == RunStatus.FAILED:
            _children_end(run, RunStatus.INTERRUPTED, error or run.error or "its parent run failed")
        _finish(run, status, error)
    return run


def _run_cancellable(run_id: UUID | str, owner: OwnerScope) -> Run:
    """The run, locked in the caller's transaction; a 409 when it has already ended."""
    run = _run_locked(run_id, owner)
    if run.status in TERMINAL_RUN_STATUSES:
        raise ConflictError.for_field("run", f"is {run.status}; only a queued or running run can be cancelled")
    return run


def run_cancel(*, run_id: UUID | str, owner: OwnerScope = None, reason: str) -> Run:
    """Cancel a queued or running run, recording why; the trace ends with `run_finished{cancelled}`."""
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise InvalidInputError.for_field("reason", "empty; say why the run is cancelled")
    chars_at_most("reason", reason, MAX_REASON_CHARS)
    with transaction.atomic():
        run = _run_cancellable(run_id, owner)
        _children_cancel(run, reason)
        _run_finish(run, RunStatus.CANCELLED, cancel_reason=reason)
    return run


def runs_recover(*, before: datetime | None = None) -> RecoverResult:
    """Mark runs a crash left `running` or `queued` (created before `before`, default now) as `interrupted`.

    Meant to run at every start, before any runner is serving: a run from an earlier process cannot
    still be progressing, and a queued run is owned by the process that queued it, so neither would
    ever finish. Each gets `run_finished{interrupted}` as its last event. A second call finds nothing.
    A running run whose `run_started` names a worker process still alive on this host is left alone
    (`core.conversation.workers`): another server may be streaming it.
    """
    cutoff = before or timezone.now()
    result = RecoverResult()
    with transaction.atomic():
        stuck = list(
            Run.objects.select_for_update()
            .filter(status__in=(RunStatus.RUNNING, RunStatus.QUEUED), created__lt=cutoff)
            .order_by("created", "id")
        )
        started = dict(
            TraceEvent.objects.filter(
                run__in=[run.pk for run in stuck if run.status == RunStatus.RUNNING], type=TraceEventType.RUN_STARTED
            ).values_list("run_id", "payload")
        )
        now = timezone.now()
        ended: set[UUID] = set()
        for run in stuck:
            if run.pk in ended:
                continue  # ended with its parent, earlier in this pass
            if run.parent_id is not None and run.parent_id in result.alive:
                result.alive.append(run.pk)  # a delegated run lives in its parent's process
                continue
            if run.status == RunStatus.RUNNING and run.parent_id is None and worker_alive(started.get(run.pk) or {}):
                result.alive.append(run.pk)
                continue
            (result.running if run.status == RunStatus.RUNNING else result.queued).append(run.pk)
            children = _children_end(run, RunStatus.INTERRUPTED, run.error or INTERRUPTED_ERROR)
            result.running.extend(children)
            ended.update(children)
            _run_finish(run, RunStatus.INTERRUPTED, error=run.error or INTERRUPTED_ERROR, finished_at=now)
    return result


# --- Worker leases: the run's lease is the source of truth for who runs it ---------------------

LEASE_EXPIRED_ERROR = "interrupted: the worker running this run stopped renewing its lease ({owner})"
CANCEL_REQUESTED_REASON = "cancelled on request"


def _interrupt(run: Run, error: str) -> None:
    """End `run` interrupted, and its open children with it (in the caller's transaction)."""
    _children_end(run, RunStatus.INTERRUPTED, run.error or error)
    _run_finish(run, RunStatus.INTERRUPTED, error=run.error or error, lease_owner="", lease_expires_at=None)


def run_claim(*, run_id: UUID | str, lease_owner: str, lease_ms: int, payload: Mapping[str, Any]) -> Run | None:
    """Start a queued run under `lease_owner`'s lease (`run_started` with `payload`); None if not queued.

    A run `awaiting_approval` whose tool calls are all decided (approved, denied, answered) is taken
    the same way: its turn resumes. A run whose cancel was requested while it waited is cancelled
    instead (and None returned).
    """
    checked = dict(trace_payload_validate(TraceEventType.RUN_STARTED, payload))
    with transaction.atomic():
        run = _run_locked(run_id)
        if run.status == RunStatus.AWAITING_APPROVAL:
            waiting = (InvocationStatus.AWAITING_APPROVAL, InvocationStatus.AWAITING_RESULT)
            if ToolInvocation.objects.filter(run_id=run.pk, status__in=waiting).exists():
                return None
        elif run.status != RunStatus.QUEUED:
            return None
        if run.cancel_requested_at is not None:
            _run_finish(run, RunStatus.CANCELLED, cancel_reason=run.cancel_reason or CANCEL_REQUESTED_REASON)
            return None
        now = timezone.now()
        _events_write(
            run,
            [(TraceEventType.RUN_STARTED, checked)],
            status=RunStatus.RUNNING,
            started_at=run.started_at or now,
            lease_owner=lease_owner,
            lease_expires_at=now + timedelta(milliseconds=lease_ms),
        )
    return run


def run_await_tools(*, run_id: UUID | str, lease_owner: str, calls: Sequence[Mapping[str, Any]]) -> Run | None:
    """Park a running run `awaiting_approval` on `calls` (a `tools_pending` event names them); the lease goes.

    No worker holds it while it waits: an approval, a client's result or the approval timeout
    makes it claimable again (`run_claim`). None when the run is no longer this worker's.
    """
    payload = dict(trace_payload_validate(TraceEventType.TOOLS_PENDING, {"calls": [dict(call) for call in calls]}))
    with transaction.atomic():
        run = _run_locked(run_id)
        if run.status != RunStatus.RUNNING or run.lease_owner != lease_owner:
            return None
        _events_write(
            run,
            [(TraceEventType.TOOLS_PENDING, payload)],
            status=RunStatus.AWAITING_APPROVAL,
            lease_owner="",
            lease_expires_at=None,
        )
    return run


@dataclass(frozen=True)
class LeaseState:
    """What a heartbeat learned: whether the lease is still ours, and whether a cancel was asked."""

    held: bool
    cancel_requested: bool


def run_lease_renew(*, run_id: UUID | str, lease_owner: str, lease_ms: int) -> LeaseState:
    """Extend `lease_owner`'s lease on a running run by `lease_ms` (one UPDATE), and read its cancel flag."""
    expires = timezone.now() + timedelta(milliseconds=lease_ms)
    run = Run.objects.filter(pk=run_uuid(run_id))
    held = bool(run.filter(lease_owner=lease_owner, status=RunStatus.RUNNING).update(lease_expires_at=expires))
    # A run this connection cannot see (its creating transaction is still open) is not lost.
    held = held or not run.exists()
    return LeaseState(held=held, cancel_requested=run_cancel_requested(run_id=run_id))


def run_lease_release(*, run_id: UUID | str, lease_owner: str) -> None:
    """Drop `lease_owner`'s lease (the run is finished, or the worker lets it go)."""
    Run.objects.filter(pk=run_uuid(run_id), lease_owner=lease_owner).update(lease_owner="", lease_expires_at=None)


def run_cancel_request(*, run_id: UUID | str, owner: OwnerScope = None, reason: str = "") -> Run:
    """Ask an open run to stop. With a live lease only `cancel_requested_at` (and the reason) is set:
    its holder ends it, keeping every streamed character. Without one the run is cancelled here."""
    reason = (reason.strip() if isinstance(reason, str) else "") or CANCEL_REQUESTED_REASON
    chars_at_most("reason", reason, MAX_REASON_CHARS)
    with transaction.atomic():
        run = _run_cancellable(run_id, owner)
        now = timezone.now()
        live = run.status == RunStatus.RUNNING and run.lease_expires_at is not None and run.lease_expires_at > now
        # Delegated runs hold no lease of their own: they end now, which stops the member's stream.
        _children_cancel(run, reason)
        if live:
            if run.cancel_requested_at is None:
                Run.objects.filter(pk=run.pk).update(cancel_requested_at=now, cancel_reason=reason)
                run.cancel_requested_at, run.cancel_reason = now, reason
            return run
        _run_finish(
            run,
            RunStatus.CANCELLED,
            cancel_reason=reason,
            cancel_requested_at=run.cancel_requested_at or now,
            finished_at=now,
            lease_owner="",
            lease_expires_at=None,
        )
    return run


def run_interrupt(*, run_id: UUID | str, error: str, lease_owner: str | None = None) -> Run | None:
    """End an open run `interrupted`, recording why; with `lease_owner`, only while that worker holds it.

    None when the run is already terminal (or held by another worker): someone else ended it first.
    """
    error = _error_clean(error)
    with transaction.atomic():
        run = _run_locked(run_id)
        if run.status in TERMINAL_RUN_STATUSES or (lease_owner is not None and run.lease_owner != lease_owner):
            return None
        _interrupt(run, error)
    return run


def run_retry(*, run_id: UUID | str, owner: OwnerScope = None) -> Run:
    """A new queued attempt for a failed or interrupted chat run's message (no second user message)."""
    with transaction.atomic():
        previous = _run_locked(run_id, owner)
        if previous.status not in (RunStatus.FAILED, RunStatus.INTERRUPTED):
            raise ConflictError.for_field(
                "run", f"is {previous.status}; only a failed or interrupted run can be retried"
            )
        if previous.purpose != RunPurpose.CHAT or previous.message_id is None:
            raise ConflictError.for_field("run", "answers no user message; only a chat turn's run can be retried")
        session = _session_locked(previous.chat_session_id)
        message = Message.objects.get(pk=previous.message_id)
        if message.seq != session.last_seq:
            raise ConflictError.for_field(
                "run",
                f"answers message #{message.seq}, which other messages already follow; send a new turn instead",
            )
        return run_create(session_id=session.pk, message=message, purpose=RunPurpose.CHAT, attempt=previous.attempt + 1)


def runs_lease_expired_interrupt(*, now: datetime | None = None) -> list[UUID]:
    """End `interrupted` every running run whose lease expired (its worker died), saying which worker."""
    now = now or timezone.now()
    ended: list[UUID] = []
    expired = Run.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now).values_list("pk", "lease_owner")
    for run_id, owner in list(expired):
        with transaction.atomic():
            run = _run_locked(run_id)
            if run.status != RunStatus.RUNNING or run.lease_expires_at is None or run.lease_expires_at >= now:
                continue
            _interrupt(run, LEASE_EXPIRED_ERROR.format(owner=owner or "unknown worker"))
            ended.append(run.pk)
    return ended


def runs_queue_expired_interrupt(*, older_than: datetime) -> list[UUID]:
    """End `interrupted` the chat turns still queued since before `older_than` (no worker took them in time)."""
    ended: list[UUID] = []
    for run_id in runs_queued_ids(created_before=older_than):
        with transaction.atomic():
            run = _run_locked(run_id)
            if run.status != RunStatus.QUEUED:
                continue
            _interrupt(
                run,
                f"interrupted: no worker took this run in time (queued since {run.created:%Y-%m-%d %H:%M:%S} UTC)",
            )
            ended.append(run.pk)
    return ended


def worker_beat(*, worker_id: str, host: str, pid: int, started_at: datetime, current_run_id: UUID | None) -> None:
    """Record a worker's heartbeat (one row per worker)."""
    WorkerBeat.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "host": host,
            "pid": pid,
            "started_at": started_at,
            "beat_at": timezone.now(),
            "current_run_id": current_run_id,
        },
    )


def worker_forget(*, worker_id: str) -> None:
    """Remove a worker's heartbeat row (it stopped cleanly)."""
    WorkerBeat.objects.filter(worker_id=worker_id).delete()
