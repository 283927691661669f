"""Writes to the memory tiers: the only path by which episodes, memories and attachment summaries change.

Each service validates its input completely before it opens one transaction, and raises
`InvalidInputError` / `NotFoundError` / `ConflictError` naming the field, so nothing is half written.
Memory is re-sent to a provider in every prompt, so the memory tiers (long-term content and key,
episode summaries, attachment summaries) refuse text shaped like a credential (`find_secret`).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from core.config.secrets import find_secret, redact
from core.conversation.contracts import SHA256_RE, estimate_tokens
from core.conversation.selectors import OwnerScope, owned, session_uuid
from core.conversation.services import Written
from core.errors import ConflictError, InvalidInputError, NotFoundError, chars_at_most
from core.lookups import row_get
from core.models import AgentSession, Message
from memory.models import (
    IMPORTANCE_DEFAULT,
    IMPORTANCE_MAX,
    IMPORTANCE_MIN,
    AttachmentContent,
    AttachmentKind,
    AttachmentSummary,
    DailyEpisode,
    EpisodeSource,
    LongTermMemory,
    MemoryKind,
    MemorySource,
    MemoryTally,
)

MAX_SUMMARY_CHARS = 100_000
MAX_MEMORY_CHARS = 20_000
MAX_KEY_CHARS = 200
MAX_NAME_CHARS = 255
MAX_MIME_CHARS = 255
MAX_URI_CHARS = 2_000
MAX_ATTACHMENT_BYTES = 1 << 40  # 1 TiB: larger is a mistake, not a file


class Unset(enum.Enum):
    """Marks an argument that was not given (so `None` can mean "clear it")."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True)
class SessionRef:
    """A conversation a whole-day episode covers, and its messages of that day."""

    session_id: UUID | str
    first_seq: int
    last_seq: int


@dataclass(frozen=True)
class MemoryResult:
    memory: LongTermMemory
    created: bool


@dataclass(frozen=True)
class AttachmentResult(Written[AttachmentSummary]):
    """The reference row (`created` False when this message already referred to this content), and
    whether the content itself was stored by this call."""

    content_created: bool


# --- validation helpers -------------------------------------------------------------------------


def _text(field: str, value: str, *, max_chars: int, blank: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInputError.for_field(field, "must be a string")
    value = value.strip()
    if not value and not blank:
        raise InvalidInputError.for_field(field, "is empty; give some text")
    return chars_at_most(field, value, max_chars)


def _no_secret(field: str, value: str) -> str:
    """Memory is sent to a provider with every prompt: nothing shaped like a credential is kept."""
    suspect = find_secret(value)
    if suspect is not None:
        raise InvalidInputError.for_field(
            field, f"looks like a credential ({redact(suspect)}); store where to find it, not the value"
        )
    return value


def _choice(field: str, value: str, values: Sequence[str]) -> str:
    if value not in values:
        raise InvalidInputError.for_field(field, f"{value!r} is not allowed; use one of {', '.join(values)}")
    return value


def _count(field: str, value: int | None, *, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidInputError.for_field(field, f"{value!r} is out of range; give a whole number from 0 to {maximum}")
    return value


def _seq_range(prefix: str, first: int | None, last: int | None, session: AgentSession | None) -> None:
    """Both ends or neither; 1 ≤ first ≤ last ≤ the session's last seq."""
    if first is None and last is None:
        return
    if first is None or last is None:
        missing = f"{prefix}first_seq" if first is None else f"{prefix}last_seq"
        raise InvalidInputError.for_field(missing, "is missing; give both ends of the message range or neither")
    if session is None:
        raise InvalidInputError.for_field(
            f"{prefix}first_seq", "a message range needs a session; give the session the messages belong to"
        )
    for name, value in ((f"{prefix}first_seq", first), (f"{prefix}last_seq", last)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError.for_field(name, f"{value!r} is not a seq; seqs are whole numbers from 1")
    if first > last:
        raise InvalidInputError.for_field(f"{prefix}last_seq", f"{last} is before first_seq {first}; swap them")
    if last > session.last_seq:
        raise InvalidInputError.for_field(
            f"{prefix}last_seq", f"{last} is past the session's last message (#{session.last_seq})"
        )


def _session(field: str, session_id: UUID | str, owner: OwnerScope) -> AgentSession:
    queryset = owned(AgentSession.objects.all(), owner)
    return row_get(queryset, field, f"no session {session_id}", pk=session_uuid(session_id))


def _session_refs(refs: Sequence[SessionRef], owner: AbstractBaseUser, whole_day: bool) -> list[dict[str, object]]:
    """Each ref names one of `owner`'s sessions and a message range in it; stored as JSON."""
    if refs and not whole_day:
        raise InvalidInputError.for_field(
            "session_refs", "only a whole-day episode lists sessions; a session's episode gives first_seq/last_seq"
        )
    stored: list[dict[str, object]] = []
    for index, ref in enumerate(refs):
        field = f"session_refs[{index}]."
        session = _session(f"{field}session", ref.session_id, owner)
        _seq_range(field, ref.first_seq, ref.last_seq, session)
        stored.append({"session": str(session.pk), "first_seq": ref.first_seq, "last_seq": ref.last_seq})
    return stored


def _timezone_name(value: str) -> str:
    name = _text("timezone", value, max_chars=64)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError.for_field(
            "timezone", f"{name!r} is not a known timezone; use an IANA name such as Europe/Paris or UTC"
        ) from None
    return name


def _importance(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not IMPORTANCE_MIN <= value <= IMPORTANCE_MAX:
        raise InvalidInputError.for_field(
            "importance", f"{value!r} is out of range; give a whole number from {IMPORTANCE_MIN} to {IMPORTANCE_MAX}"
        )
    return value


def _key(value: str | None) -> str | None:
    if value is None:
        return None
    key = _text("key", value, max_chars=MAX_KEY_CHARS, blank=True)
    if any(not char.isprintable() for char in key):
        raise InvalidInputError.for_field("key", "contains control characters; use printable text")
    return _no_secret("key", key) or None


# --- daily episodes -----------------------------------------------------------------------------


def episode_upsert(
    *,
    owner: AbstractBaseUser,
    day: datetime.date,
    timezone_name: str,
    summary: str,
    source: str,
    session_id: UUID | str | None = None,
    first_seq: int | None = None,
    last_seq: int | None = None,
    token_count: int | None = None,
    session_refs: Sequence[SessionRef] = (),
) -> Written[DailyEpisode]:
    """Store `owner`'s summary of `day` for one of their sessions (or the whole day when no session,
    with the sessions it covers as `session_refs`).

    It replaces `owner`'s existing one; another user's episode of the same day is another row.
    """
    if not isinstance(day, datetime.date) or isinstance(day, datetime.datetime):
        raise InvalidInputError.for_field("day", "must be a date (YYYY-MM-DD)")
    name = _timezone_name(timezone_name)
    text = _no_secret("summary", _text("summary", summary, max_chars=MAX_SUMMARY_CHARS))
    source = _choice("source", source, EpisodeSource.values)
    tokens = _count("token_count", token_count, maximum=2**31 - 1)
    if day > timezone.now().astimezone(ZoneInfo(name)).date():
        raise InvalidInputError.for_field("day", f"{day} has not begun yet in {name}; summarise past or current days")
    session = _session("session", session_id, owner) if session_id is not None else None
    _seq_range("", first_seq, last_seq, session)
    values = {
        "timezone": name,
        "summary": text,
        "source": source,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "session_refs": _session_refs(session_refs, owner, whole_day=session is None),
        "token_count": estimate_tokens(text) if tokens is None else tokens,
    }
    with transaction.atomic():
        existing = DailyEpisode.objects.select_for_update().filter(owner_id=owner.pk, day=day, session=session).first()
        if existing is not None:
            for field, value in values.items():
                setattr(existing, field, value)
            existing.save(update_fields=[*values, "updated"])
            return Written(record=existing, created=False)
        try:
            with transaction.atomic():
                episode = DailyEpisode.objects.create(owner_id=owner.pk, day=day, session=session, **values)
        except IntegrityError:
            # A concurrent writer created it between our read and insert (PostgreSQL): update theirs.
            episode = DailyEpisode.objects.select_for_update().get(owner_id=owner.pk, day=day, session=session)
            for field, value in values.items():
                setattr(episode, field, value)
            episode.save(update_fields=[*values, "updated"])
            return Written(record=episode, created=False)
    return Written(record=episode, created=True)


def episode_delete(*, episode_id: int, owner: OwnerScope = None) -> None:
    """Remove one daily episode of `owner`."""
    with transaction.atomic():
        deleted, _ = owned(DailyEpisode.objects.all(), owner).filter(pk=episode_id).delete()
    if not deleted:
        raise NotFoundError.for_field("episode", f"no daily episode {episode_id}")


# --- long-term memory ---------------------------------------------------------------------------


def _memory_locked(memory_id: int, owner: OwnerScope) -> LongTermMemory:
    queryset = owned(LongTermMemory.objects.select_for_update(), owner)
    return row_get(queryset, "memory", f"no long-term memory {memory_id}", pk=memory_id)


def memory_write(
    *,
    owner: AbstractBaseUser,
    kind: str,
    content: str,
    key: str | None = None,
    importance: int | None = None,
    pinned: bool | None = None,
    source_session_id: UUID | str | None = None,
    source_first_seq: int | None = None,
    source_last_seq: int | None = None,
    source: str = MemorySource.USER,
    source_run_id: UUID | None = None,
) -> MemoryResult:
    """Remember something for `owner`; with a key `owner` used already, that memory is updated instead.

    Keys are per owner: another user's memory under the same key is never read or touched.

    On an update, `importance`, `pinned` and the provenance keep their stored values unless given.
    A model's memory (`source="model"`, written through the memory_remember tool, with the run and
    message that wrote it) is never pinned by it and never replaces a memory the user wrote.
    """
    source = _choice("source", source, MemorySource.values)
    if source == MemorySource.MODEL and pinned:
        raise InvalidInputError.for_field("pinned", "a model cannot pin a memory; the user pins it")
    kind = _choice("kind", kind, MemoryKind.values)
    text = _no_secret("content", _text("content", content, max_chars=MAX_MEMORY_CHARS))
    checked_key = _key(key)
    checked_importance = _importance(importance) if importance is not None else None
    if pinned is not None and not isinstance(pinned, bool):
        raise InvalidInputError.for_field("pinned", "must be true or false")
    session = _session("source_session", source_session_id, owner) if source_session_id is not None else None
    _seq_range("source_", source_first_seq, source_last_seq, session)

    changes: dict[str, object] = {"kind": kind, "content": text}
    if checked_importance is not None:
        changes["importance"] = checked_importance
    if pinned is not None:
        changes["pinned"] = pinned
    if session is not None:
        changes.update(source_session=session, source_first_seq=source_first_seq, source_last_seq=source_last_seq)
    if source == MemorySource.MODEL:
        changes.update(source=source, source_run_id=source_run_id)

    with transaction.atomic():
        if checked_key is not None:
            existing = LongTermMemory.objects.select_for_update().filter(owner_id=owner.pk, key=checked_key).first()
            if existing is not None:
                if source == MemorySource.MODEL and existing.source != MemorySource.MODEL:
                    raise ConflictError.for_field(
                        "key",
                        f"{checked_key!r} names a memory the user wrote; a model may not change it, use another key",
                    )
                if existing.forgotten_at is not None:  # written again: remembered, counted again
                    _long_term_tally(owner.pk, 1)
                return MemoryResult(memory=_memory_apply(existing, {**changes, "forgotten_at": None}), created=False)
        fields = {
            "importance": IMPORTANCE_DEFAULT,
            "pinned": False,
            **changes,
            "key": checked_key,
            "owner_id": owner.pk,
        }
        try:
            with transaction.atomic():
                memory = LongTermMemory.objects.create(**fields)
                _long_term_tally(owner.pk, 1)
        except IntegrityError:
            # Another writer stored the same key between our read and insert (PostgreSQL): update theirs.
            existing = LongTermMemory.objects.select_for_update().get(owner_id=owner.pk, key=checked_key)
            return MemoryResult(memory=_memory_apply(existing, changes), created=False)
    return MemoryResult(memory=memory, created=True)


def _memory_apply(memory: LongTermMemory, changes: dict[str, object]) -> LongTermMemory:
    for field, value in changes.items():
        setattr(memory, field, value)
    memory.save(update_fields=[*changes, "updated"])
    return memory


def memory_update(
    *,
    memory_id: int,
    owner: OwnerScope = None,
    kind: str | None = None,
    content: str | None = None,
    key: str | Unset | None = UNSET,
    importance: int | None = None,
    pinned: bool | None = None,
) -> LongTermMemory:
    """Change the given fields of one memory; `key=None` removes its key. A key held by another memory is a conflict."""
    changes: dict[str, object] = {}
    if kind is not None:
        changes["kind"] = _choice("kind", kind, MemoryKind.values)
    if content is not None:
        changes["content"] = _no_secret("content", _text("content", content, max_chars=MAX_MEMORY_CHARS))
    if not isinstance(key, Unset):
        changes["key"] = _key(key)
    if importance is not None:
        changes["importance"] = _importance(importance)
    if pinned is not None:
        if not isinstance(pinned, bool):
            raise InvalidInputError.for_field("pinned", "must be true or false")
        changes["pinned"] = pinned
    with transaction.atomic():
        memory = _memory_locked(memory_id, owner)
        new_key = changes.get("key")
        same_owner = LongTermMemory.objects.filter(owner_id=memory.owner_id, key=new_key)
        if new_key is not None and same_owner.exclude(pk=memory.pk).exists():
            raise ConflictError.for_field(
                "key", f"{new_key!r} belongs to another memory; write to that key or choose another"
            )
        if not changes:
            return memory
        try:
            with transaction.atomic():
                return _memory_apply(memory, changes)
        except IntegrityError:
            raise ConflictError.for_field(
                "key", f"{new_key!r} belongs to another memory; write to that key or choose another"
            ) from None


def memory_delete(*, memory_id: int, owner: OwnerScope = None) -> None:
    """Forget one memory of `owner` (its full-text entry goes with it, by trigger or generated column)."""
    with transaction.atomic():
        memory = _memory_locked(memory_id, owner)  # locked: a concurrent delete finds it gone
        LongTermMemory.objects.filter(pk=memory.pk).delete()
        if memory.forgotten_at is None:  # a forgotten memory was counted down by its forget
            _long_term_tally(memory.owner_id, -1)


def _long_term_tally(owner_id: int, delta: int) -> None:
    """Add `delta` to `owner_id`'s `MemoryTally` (its memories not forgotten), in the caller's transaction:
    one upsert, no read. Written by each write that adds, removes, forgets or restores one."""
    quote = connection.ops.quote_name
    table, owner, count = quote(MemoryTally._meta.db_table), quote("owner_id"), quote("long_term")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({owner}, {count}) VALUES (%s, %s) "  # noqa: S608  # nosec B608 (names only)
            f"ON CONFLICT ({owner}) DO UPDATE SET {count} = {table}.{count} + excluded.{count}",
            [owner_id, delta],
        )


def memory_tally_rebuild() -> int:
    """Count every account's long-term memories (forgotten ones aside) again into `MemoryTally` (after
    writes that bypassed the services: bulk loads, data fixes); returns how many accounts hold some."""
    remembered = LongTermMemory.objects.filter(forgotten_at__isnull=True)
    counts = remembered.values("owner_id").annotate(n=Count("id")).order_by("owner_id")
    with transaction.atomic():
        MemoryTally.objects.all().delete()
        return len(
            MemoryTally.objects.bulk_create(
                [MemoryTally(owner_id=row["owner_id"], long_term=row["n"]) for row in counts]
            )
        )


def memory_forget(*, memory_id: int, owner: OwnerScope = None) -> LongTermMemory:
    """Forget one memory softly: hidden from search, lists and the context until `memory_restore`."""
    with transaction.atomic():
        memory = _memory_locked(memory_id, owner)
        if memory.forgotten_at is None:
            memory = _memory_apply(memory, {"forgotten_at": timezone.now()})
            _long_term_tally(memory.owner_id, -1)
    return memory


def memory_restore(*, memory_id: int, owner: OwnerScope = None) -> LongTermMemory:
    """Undo a forget: the memory is searched, listed and sent to models again."""
    with transaction.atomic():
        memory = _memory_locked(memory_id, owner)
        if memory.forgotten_at is not None:
            memory = _memory_apply(memory, {"forgotten_at": None})
            _long_term_tally(memory.owner_id, 1)
    return memory


def memory_pin(*, memory_ids: Sequence[int], pinned: bool, owner: OwnerScope = None) -> int:
    """Pin (or unpin) `owner`'s memories among `memory_ids` in one UPDATE; returns how many changed."""
    if not isinstance(pinned, bool):
        raise InvalidInputError.for_field("pinned", "must be true or false")
    ids = sorted(set(memory_ids))
    with transaction.atomic():
        return (
            owned(LongTermMemory.objects.all(), owner)
            .filter(pk__in=ids)
            .exclude(pinned=pinned)
            .update(pinned=pinned, updated=timezone.now())
        )


def memory_mark_used(*, memory_ids: Sequence[int]) -> int:
    """Record that these memories were given to a model now (one UPDATE); returns how many rows."""
    ids = sorted(set(memory_ids))
    if not ids:
        return 0
    with transaction.atomic():
        return LongTermMemory.objects.filter(pk__in=ids).update(last_used_at=timezone.now())


# --- attachments and sources --------------------------------------------------------------------


def _attachment_message(session: AgentSession, message_id: int | None, message_seq: int | None) -> Message:
    """The message an attachment refers to, by id or by seq in `session` (exactly one of the two)."""
    if message_id is not None and message_seq is None:
        message = Message.objects.filter(pk=message_id).only("id", "session_id").first()
        if message is None:
            raise NotFoundError.for_field("message", f"no message {message_id}")
        if message.session_id != session.pk:
            raise InvalidInputError.for_field(
                "message", f"message {message_id} belongs to another session; give a message of session {session.pk}"
            )
        return message
    if message_seq is not None and message_id is None:
        message = Message.objects.filter(session=session, seq=message_seq).only("id", "session_id").first()
        if message is None:
            raise NotFoundError.for_field(
                "message_seq", f"session {session.pk} has no message {message_seq} (its seqs are 1..{session.last_seq})"
            )
        return message
    both = "both were given" if message_id is not None else "neither was given"
    raise InvalidInputError.for_field(
        "message", f"give the message's id (`message`) or its seq in the session (`message_seq`); {both}"
    )


def attachment_record(
    *,
    session_id: UUID | str,
    owner: OwnerScope = None,
    message_id: int | None = None,
    message_seq: int | None = None,
    sha256: str,
    kind: str,
    display_name: str,
    mime_type: str,
    size_bytes: int,
    summary: str = "",
    token_count: int | None = None,
    uri: str = "",
) -> AttachmentResult:
    """Record that a message refers to some content; the content is summarised once per owner (the
    session's), shared by sha256 among that owner's messages only.

    The message is given by its id (`message_id`) or by its seq in the session (`message_seq`), not both.
    The first summary given for a content is kept; a later record with a different summary does not
    replace it. A content recorded without a summary takes the first one given later.
    """
    digest = _text("sha256", sha256, max_chars=64).lower()
    if not SHA256_RE.fullmatch(digest):
        raise InvalidInputError.for_field("sha256", "must be 64 hex characters (the content's SHA-256)")
    kind = _choice("kind", kind, AttachmentKind.values)
    name = _text("display_name", display_name, max_chars=MAX_NAME_CHARS)
    mime = _text("mime_type", mime_type, max_chars=MAX_MIME_CHARS).lower()
    if "/" not in mime or " " in mime:
        raise InvalidInputError.for_field(
            "mime_type", f"{mime!r} is not a MIME type; use type/subtype, e.g. text/plain"
        )
    size = _count("size_bytes", size_bytes, maximum=MAX_ATTACHMENT_BYTES)
    if size is None:
        raise InvalidInputError.for_field("size_bytes", "is missing; give the content's size in bytes")
    text = _no_secret("summary", _text("summary", summary, max_chars=MAX_SUMMARY_CHARS, blank=True))
    tokens = _count("token_count", token_count, maximum=2**31 - 1)
    location = _text("uri", uri, max_chars=MAX_URI_CHARS, blank=True)
    if kind == AttachmentKind.URL and not location.startswith(("http://", "https://")):
        raise InvalidInputError.for_field("uri", "a url source needs the http(s) address it was read from")
    session = _session("session", session_id, owner)
    message = _attachment_message(session, message_id, message_seq)
    summary_tokens = estimate_tokens(text) if tokens is None else tokens

    with transaction.atomic():
        content, content_created = _content_get_or_create(session.owner_id, digest, size, text, summary_tokens)
        if content.size_bytes != size:
            raise ConflictError.for_field(
                "size_bytes", f"{size} differs from the {content.size_bytes} bytes recorded for this sha256"
            )
        if text and not content.summary:
            content.summary, content.token_count = text, summary_tokens
            content.save(update_fields=["summary", "token_count", "updated"])
        existing = AttachmentSummary.objects.filter(message=message, content=content).first()
        if existing is not None:
            existing.content = content
            return AttachmentResult(record=existing, created=False, content_created=content_created)
        attachment = AttachmentSummary.objects.create(
            session=session,
            message=message,
            content=content,
            kind=kind,
            display_name=name,
            uri=location,
            mime_type=mime,
        )
    return AttachmentResult(record=attachment, created=True, content_created=content_created)


def _content_get_or_create(
    owner_id: int, digest: str, size: int, summary: str, tokens: int
) -> tuple[AttachmentContent, bool]:
    """The owner's content for `digest`; another owner's content with the same bytes is never shared."""
    mine = AttachmentContent.objects.select_for_update().filter(owner_id=owner_id, sha256=digest)
    content = mine.first()
    if content is not None:
        return content, False
    try:
        with transaction.atomic():
            created = AttachmentContent.objects.create(
                owner_id=owner_id, sha256=digest, size_bytes=size, summary=summary, token_count=tokens if summary else 0
            )
    except IntegrityError:
        # The same content was recorded concurrently (PostgreSQL): share that row.
        return mine.get(), False
    return created, True
