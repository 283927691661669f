"""Shapes of the memory API: explicit fields, input parsing only (the services own the rules)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api.fields import Int64Field
from core.api.serializers import ReadOnlyModelSerializer, dataclass_output_serializer
from memory.context import (
    MAX_BUDGET_TOKENS,
    ContextAttachment,
    ContextCheckpoint,
    ContextEpisode,
    ContextMemory,
    ContextMessage,
)
from memory.models import AttachmentKind, AttachmentSummary, DailyEpisode, EpisodeSource, LongTermMemory, MemoryKind
from memory.search import MAX_LIMIT, MAX_QUERY_CHARS

# --- long-term memory ---------------------------------------------------------------------------


class LongTermMemorySerializer(ReadOnlyModelSerializer[LongTermMemory]):
    class Meta:
        model = LongTermMemory
        fields = [
            "id",
            "kind",
            "content",
            "key",
            "importance",
            "pinned",
            "source_session",
            "source_first_seq",
            "source_last_seq",
            "source",
            "source_run",
            "forgotten_at",
            "created",
            "updated",
            "last_used_at",
        ]


class LongTermMemoryWriteSerializer(serializers.Serializer[Any]):
    """Create (or, with an existing key, update) a memory."""

    # Its fields are `memory_write`'s keywords (`source_session` as `source_session_id`).
    kind = serializers.ChoiceField(choices=MemoryKind.choices)
    content = serializers.CharField(trim_whitespace=False)
    key = serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    importance = Int64Field(required=False, help_text="1 (low) to 5 (high); 3 for a new memory")
    pinned = serializers.BooleanField(required=False)
    source_session = serializers.UUIDField(required=False, allow_null=True, source="source_session_id")
    source_first_seq = Int64Field(required=False, allow_null=True)
    source_last_seq = Int64Field(required=False, allow_null=True)


class LongTermMemoryUpdateSerializer(serializers.Serializer[Any]):
    """PUT sends every field (absent ones take their defaults); PATCH only the ones to change."""

    kind = serializers.ChoiceField(choices=MemoryKind.choices)
    content = serializers.CharField(trim_whitespace=False)
    key = serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    importance = Int64Field(required=False)
    pinned = serializers.BooleanField(required=False)


# A PATCH: its fields are `memory_update`'s keywords; an absent one stays as it is.
class LongTermMemoryPatchSerializer(LongTermMemoryUpdateSerializer):
    kind = serializers.ChoiceField(choices=MemoryKind.choices, required=False)
    content = serializers.CharField(trim_whitespace=False, required=False)


class LongTermMemoryListQuerySerializer(serializers.Serializer[Any]):
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=(
            f"Full-text search: memories containing every word (letters and digits; anything else only "
            f"separates words), best match first; at most {MAX_QUERY_CHARS} characters are read"
        ),
    )
    limit = Int64Field(
        required=False, default=20, min_value=1, max_value=MAX_LIMIT, help_text="How many search results (with q)"
    )
    forgotten = serializers.BooleanField(
        required=False, default=False, help_text="true: list only the forgotten memories (to restore one)"
    )
    kind = serializers.ChoiceField(choices=MemoryKind.choices, required=False)
    pinned = serializers.BooleanField(required=False)
    key = serializers.CharField(required=False)


# --- daily episodes -----------------------------------------------------------------------------


class SessionRefSerializer(serializers.Serializer[Any]):
    """A conversation a whole-day episode covers, and its messages of that day."""

    session = serializers.UUIDField()
    first_seq = Int64Field(min_value=1)
    last_seq = Int64Field(min_value=1)


class DailyEpisodeSerializer(ReadOnlyModelSerializer[DailyEpisode]):
    session_refs = SessionRefSerializer(many=True, read_only=True)

    class Meta:
        model = DailyEpisode
        fields = [
            "id",
            "day",
            "timezone",
            "session",
            "summary",
            "first_seq",
            "last_seq",
            "session_refs",
            "token_count",
            "source",
            "created",
            "updated",
        ]


class DailyEpisodeWriteSerializer(serializers.Serializer[Any]):
    """Store a day's summary; the same (day, session) again replaces it."""

    day = serializers.DateField()
    timezone = serializers.CharField(required=False, help_text="IANA name; AGENTCHAT_TIMEZONE when absent")
    session = serializers.UUIDField(required=False, allow_null=True, help_text="absent or null: the whole day")
    summary = serializers.CharField(trim_whitespace=False)
    # The stubs type Field.source (the attribute path); DRF's metaclass turns this into the field "source".
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=EpisodeSource.choices, default=EpisodeSource.MANUAL
    )
    first_seq = Int64Field(required=False, allow_null=True)
    last_seq = Int64Field(required=False, allow_null=True)
    token_count = Int64Field(required=False, allow_null=True, help_text="estimated when absent")
    session_refs = SessionRefSerializer(
        many=True, required=False, help_text="a whole-day episode's conversations, each with its message range"
    )


class DailyEpisodeListQuerySerializer(serializers.Serializer[Any]):
    session = serializers.UUIDField(required=False, help_text="Only this session's episodes")
    whole_day = serializers.BooleanField(
        required=False, help_text="true: only whole-day episodes; false: only per-session"
    )
    day_from = serializers.DateField(required=False)
    day_to = serializers.DateField(required=False)
    source = serializers.ChoiceField(choices=EpisodeSource.choices, required=False)  # type: ignore[assignment]


# --- attachments --------------------------------------------------------------------------------


class AttachmentSummarySerializer(ReadOnlyModelSerializer[AttachmentSummary]):
    message_seq = serializers.IntegerField(source="message.seq", read_only=True)
    sha256 = serializers.CharField(source="content.sha256", read_only=True)
    size_bytes = serializers.IntegerField(source="content.size_bytes", read_only=True)
    summary = serializers.CharField(source="content.summary", read_only=True)
    token_count = serializers.IntegerField(source="content.token_count", read_only=True)

    class Meta:
        model = AttachmentSummary
        fields = [
            "id",
            "session",
            "message",
            "message_seq",
            "kind",
            "display_name",
            "uri",
            "mime_type",
            "sha256",
            "size_bytes",
            "summary",
            "token_count",
            "created",
        ]


class AttachmentWriteSerializer(serializers.Serializer[Any]):
    """Record that a message refers to a file or source; its summary is shared by sha256."""

    # Its fields are `attachment_record`'s keywords (`session` and `message` as `…_id`).
    session = serializers.UUIDField(source="session_id")
    message = Int64Field(
        required=False,
        allow_null=True,
        default=None,
        source="message_id",
        help_text="The message id (the `id` of a message response; it must belong to the session). "
        "Give this or `message_seq`.",
    )
    message_seq = Int64Field(
        required=False,
        allow_null=True,
        default=None,
        help_text="The message's seq in the session (the `seq` of a message response). Give this or `message`.",
    )
    sha256 = serializers.CharField(help_text="SHA-256 of the content, 64 hex characters")
    kind = serializers.ChoiceField(choices=AttachmentKind.choices)
    display_name = serializers.CharField(trim_whitespace=False)
    mime_type = serializers.CharField()
    size_bytes = Int64Field()
    summary = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    token_count = Int64Field(required=False, allow_null=True)
    uri = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="http(s) address of a url source"
    )

    def to_internal_value(self, data: Any) -> Any:
        """Parse the fields; a body naming no message at all also gets a `message` problem, with the others."""
        errors: dict[str, Any] = {}
        value: Any = None
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors = dict(exc.detail) if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        if hasattr(data, "get") and data.get("message") is None and data.get("message_seq") is None:
            errors.setdefault(
                "message", ["is missing; give the message's id (`message`) or its seq in the session (`message_seq`)"]
            )
        if errors:
            raise serializers.ValidationError(errors)
        return value


class AttachmentListQuerySerializer(serializers.Serializer[Any]):
    session = serializers.UUIDField(required=False)
    message = Int64Field(required=False, help_text="A message id")
    sha256 = serializers.CharField(required=False)
    kind = serializers.ChoiceField(choices=AttachmentKind.choices, required=False)


# --- context ------------------------------------------------------------------------------------


class ContextQuerySerializer(serializers.Serializer[Any]):
    budget = Int64Field(
        required=False,
        help_text=(
            f"Token budget, 1 to {MAX_BUDGET_TOKENS}; absent: the session route's context window "
            "minus its maximum output"
        ),
    )


# The context items as `memory.context` builds them, field for field.
ContextMemorySerializer = dataclass_output_serializer(
    ContextMemory, "ContextMemorySerializer", kind=serializers.ChoiceField(choices=MemoryKind.choices)
)
ContextCheckpointSerializer = dataclass_output_serializer(ContextCheckpoint, "ContextCheckpointSerializer")
ContextEpisodeSerializer = dataclass_output_serializer(ContextEpisode, "ContextEpisodeSerializer")
ContextAttachmentSerializer = dataclass_output_serializer(ContextAttachment, "ContextAttachmentSerializer")
ContextMessageSerializer = dataclass_output_serializer(
    ContextMessage, "ContextMessageSerializer", parts=serializers.ListField(child=serializers.DictField())
)


class ContextBundleSerializer(serializers.Serializer[Any]):
    """The context builder's input, in priority order (see memory.context)."""

    session_id = serializers.UUIDField()
    budget_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    pinned_memories = ContextMemorySerializer(many=True)
    relevant_memories = ContextMemorySerializer(many=True)
    checkpoint = ContextCheckpointSerializer(allow_null=True)
    episodes = ContextEpisodeSerializer(many=True)
    attachments = ContextAttachmentSerializer(many=True)
    messages = ContextMessageSerializer(many=True)
    skipped_items = serializers.IntegerField(help_text="Items of priorities 1-5 left out because they did not fit")
    messages_omitted = serializers.IntegerField(help_text="Messages after the checkpoint left out (the oldest)")


class SessionContextSerializer(ContextBundleSerializer):
    """The context bundle of a session, with why its latest compaction failed ("" if it did not)."""

    compaction_error = serializers.CharField(
        help_text="The reason the session's latest compaction run failed or was interrupted; empty otherwise"
    )
