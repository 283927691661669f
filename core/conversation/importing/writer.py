"""Store one imported conversation tree as a session, in one transaction (the service of every importer).

Messages are written with one `executemany` INSERT instead of `message_append`: the tree, its seqs
and the source's timestamps are known whole, ids are taken up front (the table's next rowids under
SQLite's write lock; the identity sequence on PostgreSQL) so each row names its parent's id, and
`created` (an `auto_now_add` the ORM would overwrite) keeps the source's time. The full-text index
follows on both databases (its triggers and generated column see every INSERT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from core.config.models import ModelRoute
from core.conversation.contracts import MAX_CONTENT_CHARS, estimate_tokens, parts_validate
from core.conversation.importing.models import ImportedConversation
from core.conversation.importing.shapes import Conversation, ConversationSkippedError, SessionExtras, Tree, tree_order
from core.conversation.models import OPEN_RUN_STATUSES as OPEN_RUNS
from core.conversation.models import AgentSession, Checkpoint, CheckpointReason, Message, MessageRole, SessionStatus
from core.conversation.services import (
    MAX_TITLE_CHARS,
    _fullness_recount,
    _tag_names_clean,
    _tags_of,
    title_from_message,
)
from core.errors import InvalidInputError

# Every column of the table: a column added to `Message` must get its value below (a KeyError otherwise).
_COLUMNS = tuple(field.column for field in Message._meta.concrete_fields)


_ROLES = frozenset(MessageRole.values)


@dataclass(frozen=True)
class Outcome:
    """What became of one conversation: `session` is None when it was skipped (or a dry run)."""

    title: str
    source_id: str
    imported: bool
    reason: str
    messages: int
    branches: int
    session: str | None = None
    # Imported before and grown since: `messages` are the new ones, appended to `session`.
    updated: bool = False

    @property
    def verdict(self) -> str:
        """`imported`, `updated` or `skipped` (the report's `outcome`)."""
        return ("updated" if self.updated else "imported") if self.imported else "skipped"

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "source_id": self.source_id,
            "outcome": self.verdict,
            "reason": self.reason,
            "messages": self.messages,
            "branches": self.branches,
            "session": self.session,
        }


def _title(conversation: Conversation, tree: Tree) -> str:
    title = " ".join(conversation.title.split())[:MAX_TITLE_CHARS]
    if title:
        return title
    first_user = next((node for node in tree.nodes if node.role == MessageRole.USER), None)
    return title_from_message(first_user.content) if first_user is not None else ""


def _checked(tree: Tree) -> None:
    for node in tree.nodes:
        if node.role not in _ROLES:
            raise ConversationSkippedError(
                f"message {node.id!r}: role {node.role!r} is not one of {', '.join(MessageRole.values)}"
            )
        if len(node.content) > MAX_CONTENT_CHARS:
            raise ConversationSkippedError(f"message {node.id!r}: content is over {MAX_CONTENT_CHARS} characters")
        if not node.parts:
            continue
        try:
            parts_validate(node.parts)
        except InvalidInputError as error:
            raise ConversationSkippedError(f"message {node.id!r}: {error}") from None


def _ids_take(count: int) -> list[int]:
    """`count` new message ids, inside the caller's transaction."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('core_message', 'id')) FROM generate_series(1, %s)", [count]
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite: the transaction began IMMEDIATE, so no other writer can take these rowids meanwhile.
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM core_message")
        top = int(cursor.fetchone()[0])
        return list(range(top + 1, top + 1 + count))


def _messages_insert(session: AgentSession, tree: Tree, *, stored_ids: Sequence[int] = ()) -> int:
    """Insert the tree's messages (seq = position + 1) but the first `len(stored_ids)`, stored already with
    those ids; answers the tokens of the inserted ones on the active path."""
    first = len(stored_ids)
    if len(tree.nodes) == first:
        return 0
    ids = [*stored_ids, *_ids_take(len(tree.nodes) - first)]
    parts_field = cast("Field[Any, Any]", Message._meta.get_field("parts"))
    no_parts = parts_field.get_db_prep_value([], connection)
    adapt_time = connection.ops.adapt_datetimefield_value
    now = timezone.now()
    session_key = AgentSession._meta.pk.get_db_prep_value(session.pk, connection)
    rows: list[tuple[Any, ...]] = []
    tokens: dict[int, int] = {}
    for index in range(first, len(tree.nodes)):
        node = tree.nodes[index]
        count = node.token_count if node.token_count is not None else estimate_tokens(node.content, node.parts)
        tokens[index] = count
        parent = tree.parents[index]
        values = {
            "id": ids[index],
            "session_id": session_key,
            "seq": index + 1,
            "role": node.role,
            "content": node.content,
            "parts": parts_field.get_db_prep_value(node.parts, connection) if node.parts else no_parts,
            "token_count": count,
            "token_count_estimated": node.token_count_estimated,
            "client_id": node.client_id,
            "created": adapt_time(node.created or now),
            "parent_id": ids[parent] if parent is not None else None,
        }
        rows.append(tuple(values[column] for column in _COLUMNS))
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Message._meta.db_table)} ({', '.join(quote(column) for column in _COLUMNS)}) "  # noqa: S608  # nosec B608 (names only)
        f"VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    path_tokens = 0
    step: int | None = tree.leaf
    while step is not None:
        path_tokens += tokens.get(step, 0)
        step = tree.parents[step]
    return path_tokens


def _message_sources(conversation: Conversation, tree: Tree) -> list[list[str]]:
    """Per message in seq order: [source message id, model slug]."""
    extras = conversation.extras
    if extras is not None and extras.message_source_ids is not None:
        return [[source_id, node.model] for source_id, node in zip(extras.message_source_ids, tree.nodes, strict=False)]
    return [[node.id, node.model] for node in tree.nodes]


def _checkpoints_create(session: AgentSession, extras: SessionExtras) -> None:
    made: list[Checkpoint] = []
    for record in extras.checkpoints:
        checkpoint = Checkpoint.objects.create(
            session=session,
            parent=made[record.parent] if record.parent is not None else None,
            through_seq=record.through_seq,
            summary=record.summary,
            state=record.state,
            token_count=record.token_count,
            reason=record.reason,
        )
        if record.created is not None:
            Checkpoint.objects.filter(pk=checkpoint.pk).update(created=record.created)
        made.append(checkpoint)


def _extras_checked(conversation: Conversation, tree: Tree) -> None:
    extras = conversation.extras
    if extras is None:
        return
    if extras.status not in SessionStatus.values:
        raise ConversationSkippedError(f"status: {extras.status!r} is not one of {', '.join(SessionStatus.values)}")
    for index, record in enumerate(extras.checkpoints):
        if record.reason not in CheckpointReason.values:
            raise ConversationSkippedError(f"checkpoints[{index}].reason: {record.reason!r} is not a reason")
        if not 0 <= record.through_seq <= len(tree.nodes):
            raise ConversationSkippedError(
                f"checkpoints[{index}].through_seq: {record.through_seq} is not a message's seq"
            )
        if record.parent is not None and not 0 <= record.parent < index:
            raise ConversationSkippedError(f"checkpoints[{index}].parent: must name an earlier checkpoint of the list")


def _key(conversation: Conversation) -> tuple[str, str]:
    """The idempotency key: the first source's (format, id), kept through Agent Chat's own export."""
    extras = conversation.extras
    return extras.origin if extras is not None and extras.origin else (conversation.source, conversation.source_id)


def conversation_import(
    *, owner: AbstractBaseUser, conversation: Conversation, default_route: ModelRoute, dry_run: bool = False
) -> Outcome:
    """Store `conversation` as a session of `owner` (all or nothing); an Outcome says why it was skipped otherwise.

    Keyed per owner by (format, source id): a conversation already imported is skipped, naming its session,
    unless it grew since (`_grown`): then its new messages are appended to that session.
    """
    _, source_id = _key(conversation)
    try:
        tree = tree_order(conversation)
        _checked(tree)
        _extras_checked(conversation, tree)
        tags = _tag_names_clean(conversation.tags)
    except ConversationSkippedError as skipped:
        return Outcome(conversation.title, source_id, False, skipped.reason, 0, 0)
    except InvalidInputError as error:
        return Outcome(conversation.title, source_id, False, str(error), 0, 0)
    title = _title(conversation, tree)
    reason = f"{tree.dropped} message(s) under a missing parent left out" if tree.dropped else ""
    try:
        return _stored(owner, conversation, tree, default_route, dry_run=dry_run, title=title, reason=reason, tags=tags)
    except IntegrityError:  # the same conversation stored meanwhile by another import of this owner
        return Outcome(title, source_id, False, "imported meanwhile by another import", 0, 0)


def _stored(
    owner: AbstractBaseUser,
    conversation: Conversation,
    tree: Tree,
    default_route: ModelRoute,
    *,
    dry_run: bool,
    title: str,
    reason: str,
    tags: list[str],
) -> Outcome:
    source, source_id = _key(conversation)
    with transaction.atomic():
        known = ImportedConversation.objects.filter(owner_id=owner.pk, source=source, source_id=source_id).first()
        if known is not None:
            return _grown(known, conversation, tree, dry_run=dry_run, title=title)
        if dry_run:
            return Outcome(title, source_id, True, reason, len(tree.nodes), tree.branches)
        session = _session_create(owner=owner, conversation=conversation, default_route=default_route, title=title)
        path_tokens = _messages_insert(session, tree)
        extras = conversation.extras
        created = conversation.created or min((n.created for n in tree.nodes if n.created), default=None)
        AgentSession.objects.filter(pk=session.pk).update(
            message_count=len(tree.nodes),
            last_seq=len(tree.nodes),
            leaf=tree.leaf + 1,
            tokens_since_checkpoint=(
                extras.tokens_since_checkpoint
                if extras is not None and extras.tokens_since_checkpoint is not None
                else path_tokens
            ),
            created=created or session.created,
            updated=conversation.updated or created or session.updated,
        )
        if tags:
            session.tags.set(_tags_of(owner.pk, tags))
        if extras is not None:
            _checkpoints_create(session, extras)
        ImportedConversation.objects.create(
            owner_id=owner.pk,
            source=source,
            source_id=source_id,
            session=session,
            message_sources=_message_sources(conversation, tree),
        )
    return Outcome(title, source_id, True, reason, len(tree.nodes), tree.branches, str(session.pk))


def _grown(
    known: ImportedConversation, conversation: Conversation, tree: Tree, *, dry_run: bool, title: str
) -> Outcome:
    """A conversation imported before, again (in `_stored`'s transaction): when the source only grew (its
    earlier messages the same ids, roles and text, in the same order), the new tail is appended to the
    session, seqs and parents following on; otherwise it is skipped with the reason."""
    already = f"already imported as session {known.session_id}"
    stored = [str(row[0]) for row in known.message_sources]
    sources = _message_sources(conversation, tree)
    if [row[0] for row in sources] == stored:
        return Outcome(title, known.source_id, False, already, 0, 0)
    new = len(sources) - len(stored)
    edited = Outcome(
        title,
        known.source_id,
        False,
        f"{already}, and its earlier messages changed in the source since (edited or removed): the session "
        "was left as it was; delete it to import the conversation afresh",
        0,
        0,
    )
    if new <= 0 or [row[0] for row in sources[: len(stored)]] != stored:
        return edited
    session = AgentSession.objects.select_for_update().get(pk=known.session_id)
    refused = _append_refused(session, imported=len(stored))
    if refused:
        reason = f"{already}, {refused}; its {_new_messages(new)} were not added"
        return Outcome(title, known.source_id, False, reason, 0, 0)
    rows = list(Message.objects.filter(session_id=session.pk).order_by("seq").values_list("id", "role", "content"))
    earlier = [(node.role, node.content) for node in tree.nodes[: len(stored)]]
    if [(role, content) for _, role, content in rows] != earlier:
        return edited
    if dry_run:
        return Outcome(title, known.source_id, True, f"would be updated, {_new_messages(new)}", new, 0, updated=True)
    _messages_insert(session, tree, stored_ids=[pk for pk, _, _ in rows])
    AgentSession.objects.filter(pk=session.pk).update(
        message_count=F("message_count") + new,
        last_seq=len(tree.nodes),
        leaf=tree.leaf + 1,
        updated=conversation.updated or timezone.now(),
    )
    _fullness_recount(session.pk, tree.leaf + 1)
    ImportedConversation.objects.filter(pk=known.pk).update(message_sources=sources)
    return Outcome(
        title, known.source_id, True, f"updated, {_new_messages(new)}", new, 0, str(session.pk), updated=True
    )


def _new_messages(count: int) -> str:
    return f"{count} new message{'' if count == 1 else 's'}"


def _append_refused(session: AgentSession, *, imported: int) -> str:
    """Why new source messages cannot follow on in `session` (locked): "" when they can."""
    if session.last_seq != imported:
        return "which was continued here since it was imported"
    if session.status != SessionStatus.ACTIVE:
        return "which is archived: unarchive it and import again"
    if session.runs.filter(status__in=OPEN_RUNS).exists():
        return "which has a run in progress: import again once it ends"
    return ""


def _session_create(
    *, owner: AbstractBaseUser, conversation: Conversation, default_route: ModelRoute, title: str
) -> AgentSession:
    extras = conversation.extras
    route = default_route
    if extras is not None and extras.route:
        route = ModelRoute.objects.filter(alias=extras.route).first() or default_route
    fields: dict[str, Any] = {"title": title, "route": route, "owner_id": owner.pk, "pinned": conversation.pinned}
    if extras is not None:
        fields["status"] = extras.status
        # Agent Chat's own export keeps the session's id unless it is taken (by another account's copy).
        if not AgentSession.objects.filter(pk=conversation.source_id).exists():
            fields["id"] = conversation.source_id
    return AgentSession.objects.create(**fields)
