"""What the agent remembers beyond the live conversation.

- `DailyEpisode`: a summary of one day, cut in a named timezone, for one session or (session
  empty) for the whole day across sessions. It points at the message log by seq (a whole-day one
  at each conversation's range, `session_refs`); raw history stays in core's `Message` table and
  is never copied.
- `LongTermMemory`: facts, preferences and instructions, optionally addressed by a unique `key`.
  Full-text search over them is maintained by the database itself (see `memory.search` and the
  migration `0002_longterm_fulltext`): an FTS5 table on SQLite, a generated `tsvector` column with
  a GIN index on PostgreSQL. Neither is part of the Django model, so `makemigrations` ignores them.
- `MemoryTally`: each account's count of long-term memories not forgotten, kept by the services that
  add, remove, forget and restore them (the bootstrap reads one row instead of counting).
- `AttachmentContent` + `AttachmentSummary`: a file or source is summarised once per distinct
  content (sha256) in `AttachmentContent`; each time a message refers to it, an `AttachmentSummary`
  row records how (session, message, kind, display name, MIME type). File bytes are never stored.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact

from core.models import AgentSession, Message

IMPORTANCE_MIN = 1
IMPORTANCE_MAX = 5
IMPORTANCE_DEFAULT = 3


class EpisodeSource(models.TextChoices):
    COMPACTOR = "compactor", "Compactor"
    MANUAL = "manual", "Manual"


class MemoryKind(models.TextChoices):
    FACT = "fact", "Fact"
    PREFERENCE = "preference", "Preference"
    INSTRUCTION = "instruction", "Instruction"


class MemorySource(models.TextChoices):
    # Written by the user (API, admin, import).
    USER = "user", "User"
    # Written by a model through the memory_remember tool: never pinned by it.
    MODEL = "model", "Model"


class AttachmentKind(models.TextChoices):
    FILE = "file", "File"
    URL = "url", "URL"
    IMAGE = "image", "Image"
    OTHER = "other", "Other"


class DailyEpisode(models.Model):
    """A day's summary, for one session or (no session) for the whole day across sessions."""

    day = models.DateField()
    timezone = models.CharField(max_length=64, help_text="IANA name of the timezone the day was cut in")
    # No index of its own: `episode_session_day_idx` (session, day) leads with it.
    session = models.ForeignKey(
        AgentSession, on_delete=models.CASCADE, null=True, blank=True, related_name="daily_episodes", db_index=False
    )
    # PROTECT: an account's memory goes only when deleted on purpose (see AgentSession.owner).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="daily_episodes")
    summary = models.TextField()
    first_seq = models.PositiveIntegerField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(null=True, blank=True)
    # The conversations a whole-day episode covers, each with its message range that day:
    # [{"session": "<uuid>", "first_seq": 1, "last_seq": 9}, ...] (checked by `episode_upsert`).
    session_refs = models.JSONField(default=list, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=16, choices=EpisodeSource.choices)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "-id"]
        indexes = [
            # The episode list and the context builder's "recent episodes" read newest day first.
            models.Index(fields=["-day", "-id"], name="episode_recent_idx"),
            # A session's episodes, newest first (the list filtered by session).
            models.Index(fields=["session", "-day"], name="episode_session_day_idx"),
        ]
        constraints = [
            # One episode per (owner, day, session); the upsert finds it by this triple.
            models.UniqueConstraint(
                fields=["owner", "day", "session"],
                condition=Q(session__isnull=False),
                name="episode_owner_day_session_unique",
            ),
            # NULL never equals NULL in a unique index, so "the whole day" needs its own constraint.
            models.UniqueConstraint(
                fields=["owner", "day"], condition=Q(session__isnull=True), name="episode_owner_day_whole_unique"
            ),
            models.CheckConstraint(condition=Q(source__in=EpisodeSource.values), name="episode_source_valid"),
            # A message range belongs to one session: both ends or neither, first ≤ last, seqs start at 1
            # (a NULL end would make the comparison unknown, which a CHECK lets through, hence isnull).
            models.CheckConstraint(
                condition=Q(first_seq__isnull=True, last_seq__isnull=True)
                | Q(session__isnull=False, first_seq__gte=1, last_seq__isnull=False, last_seq__gte=F("first_seq")),
                name="episode_seq_range_valid",
            ),
        ]

    def __str__(self) -> str:
        scope = f"session {self.session_id}" if self.session_id else "whole day"
        return f"{self.day} ({self.timezone}) {scope}"


class LongTermMemory(models.Model):
    """One remembered fact, preference or instruction; `key`, when set, addresses it uniquely."""

    # PROTECT: an account's memory goes only when deleted on purpose (see AgentSession.owner).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="long_term_memories")
    kind = models.CharField(max_length=16, choices=MemoryKind.choices)
    content = models.TextField()
    # NULL (not "") when absent, so the partial unique constraint ignores memories without a key.
    key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    importance = models.PositiveSmallIntegerField(default=IMPORTANCE_DEFAULT)
    pinned = models.BooleanField(default=False)
    source_session = models.ForeignKey(
        AgentSession, on_delete=models.SET_NULL, null=True, blank=True, related_name="long_term_memories"
    )
    source_first_seq = models.PositiveIntegerField(null=True, blank=True)
    source_last_seq = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=8, choices=MemorySource.choices, default=MemorySource.USER)
    # The run whose tool call wrote it (a model's memory); its message is `source_last_seq`.
    source_run = models.ForeignKey(
        "core.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="memories_written"
    )
    # Set by a forget (a soft delete the user can undo); selectors hide forgotten memories.
    forgotten_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "long-term memory"
        verbose_name_plural = "long-term memories"
        indexes = [
            # The API list pages newest first by cursor.
            models.Index(fields=["-created", "-id"], name="memory_recent_idx"),
            # The context builder reads the owner's pinned memories first: few rows per owner, so a
            # partial index led by the owner.
            models.Index(
                fields=["owner", "-importance", "-id"], condition=Q(pinned=True), name="memory_owner_pinned_idx"
            ),
            # The bootstrap counts the owner's memories and their pinned ones from this index alone
            # (SQLite's planner takes the owner's foreign-key index for `pinned AND owner_id = ?` and
            # reads every row of the owner; `owner_id = ? AND pinned = ?` is a range of this one).
            models.Index(fields=["owner", "pinned"], name="memory_owner_pinned_count_idx"),
        ]
        constraints = [
            # memory_write finds the owner's existing key and updates it instead of adding a second row;
            # another owner's same key is another memory.
            models.UniqueConstraint(
                fields=["owner", "key"], condition=Q(key__isnull=False), name="memory_owner_key_unique"
            ),
            models.CheckConstraint(condition=Q(kind__in=MemoryKind.values), name="memory_kind_valid"),
            models.CheckConstraint(
                condition=Q(importance__gte=IMPORTANCE_MIN, importance__lte=IMPORTANCE_MAX),
                name="memory_importance_range",
            ),
            models.CheckConstraint(
                condition=Q(source_first_seq__isnull=True, source_last_seq__isnull=True)
                | Q(source_first_seq__gte=1, source_last_seq__isnull=False, source_last_seq__gte=F("source_first_seq")),
                name="memory_source_range_valid",
            ),
        ]

    def __str__(self) -> str:
        label = self.key or f"#{self.pk}"
        text = self.content if len(self.content) <= 60 else f"{self.content[:57]}…"
        return f"{self.kind} {label}: {text}"


class MemoryTally(models.Model):
    """How many long-term memories one account holds, forgotten ones aside, kept by `memory.services` in
    the transaction that adds, removes, forgets or restores one (the bootstrap reads it instead of
    counting the account's memories)."""

    # CASCADE: a derived count, not a record; it goes with the account.
    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="memory_tally"
    )
    long_term = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = verbose_name_plural = "memory tally"

    def __str__(self) -> str:
        return f"user {self.owner_id}: {self.long_term} long-term memories"


class AttachmentContent(models.Model):
    """One distinct content (by sha256) of one account and its summary, shared by that account's messages
    that refer to it. Another account recording the same bytes gets a content of its own: what one
    person's summary says is never shown to another."""

    # No index of its own: `attachment_content_owner_sha256_unique` (owner, sha256) leads with it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="attachment_contents", db_index=False
    )
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    summary = models.TextField(blank=True, default="")
    token_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # A SHA-256 in hex is 64 characters (the service also checks it is lowercase hex; a REGEXP
            # check would need Django's SQLite function in every connection that writes).
            models.CheckConstraint(condition=Exact(Length("sha256"), 64), name="attachment_sha256_length"),
            # One content per owner and sha256: the service and the context builder find it by this pair.
            models.UniqueConstraint(fields=["owner", "sha256"], name="attachment_content_owner_sha256_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.sha256[:12]}… ({self.size_bytes} bytes)"


class AttachmentSummary(models.Model):
    """A message's reference to an attachment or source; the summary itself lives on its content."""

    # Neither has an index of its own: `attachment_session_idx` (session, -created) and the
    # (message, content) unique index lead with them. The owner is the session's (no column).
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="attachments", db_index=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments", db_index=False)
    content = models.ForeignKey(AttachmentContent, on_delete=models.PROTECT, related_name="references")
    kind = models.CharField(max_length=8, choices=AttachmentKind.choices)
    display_name = models.CharField(max_length=255)
    uri = models.CharField(max_length=2000, blank=True, default="", help_text="where a url source was read from")
    mime_type = models.CharField(max_length=255)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "attachment summary"
        verbose_name_plural = "attachment summaries"
        indexes = [
            # The API list pages newest first by cursor.
            models.Index(fields=["-created", "-id"], name="attachment_recent_idx"),
            # The list filtered by session.
            models.Index(fields=["session", "-created"], name="attachment_session_idx"),
        ]
        constraints = [
            # Recording the same content for the same message twice returns the stored row.
            models.UniqueConstraint(fields=["message", "content"], name="attachment_message_content_unique"),
            models.CheckConstraint(condition=Q(kind__in=AttachmentKind.values), name="attachment_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.display_name}"
