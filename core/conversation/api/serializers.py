"""Shapes of the conversation API: what each endpoint accepts and answers (no domain rules here).

Input serializers check types and refuse unknown keys; the services check everything else.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.api.serializers import PageQuerySerializer, ReadOnlyModelSerializer, StrictInputSerializer
from core.conversation.models import CheckpointReason, MessageRole, RunPurpose, RunStatus, SessionStatus, TraceEventType
from core.conversation.selectors import (
    MESSAGE_PAGE_DEFAULT_COUNT,
    MESSAGE_PAGE_MAX_COUNT,
    context_fullness_percent,
    session_needs_compaction,
)
from core.models import AgentSession, Checkpoint, Message, Run, TraceEvent

# Seqs, indexes and token counts are 32-bit columns: larger filters are refused before the database sees them.
MAX_INT32 = 2**31 - 1


# --- Sessions -------------------------------------------------------------------------------


class SessionSerializer(ReadOnlyModelSerializer[AgentSession]):
    route = serializers.CharField(source="route.alias", read_only=True)
    agent = serializers.CharField(
        source="agent.name", read_only=True, allow_null=True, help_text="The agent the session talks to, if any"
    )
    team = serializers.CharField(
        source="team.name", read_only=True, allow_null=True, help_text="The team whose lead answers, if any"
    )
    context_window_tokens = serializers.IntegerField(source="route.context_window_tokens", read_only=True)
    context_fullness_percent = serializers.SerializerMethodField()
    needs_compaction = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()

    class Meta:
        model = AgentSession
        fields = [
            "id",
            "title",
            "route",
            "agent",
            "team",
            "status",
            "pinned",
            "tags",
            "message_count",
            "last_seq",
            "leaf",
            "tokens_since_checkpoint",
            "context_window_tokens",
            "context_fullness_percent",
            "needs_compaction",
            "created",
            "updated",
        ]

    def get_context_fullness_percent(self, session: AgentSession) -> float:
        """tokens_since_checkpoint / the route's context window, in percent (one decimal)."""
        return context_fullness_percent(session)

    def get_tags(self, session: AgentSession) -> list[str]:
        """The session's tag names, sorted."""
        return sorted(tag.name for tag in session.tags.all())

    def get_needs_compaction(self, session: AgentSession) -> bool:
        """True when the fullness reached AGENTCHAT_COMPACTION_THRESHOLD_PERCENT (active sessions only)."""
        return session_needs_compaction(session)


class SessionListQuerySerializer(PageQuerySerializer):
    status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
    needs_compaction = serializers.BooleanField(required=False, allow_null=True, default=None)
    tag = serializers.CharField(required=False, max_length=200, help_text="Only sessions with this tag of yours")


def _optional_name(help_text: str) -> serializers.CharField:
    """A record named by its alias or name; absent, null and "" all mean none."""
    return serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None, help_text=help_text)


class SessionCreateSerializer(StrictInputSerializer):
    title = serializers.CharField(required=False, allow_blank=True, default="")
    route = _optional_name("Route alias; if absent the agent's (the team lead's), else the default route")
    agent = _optional_name("An agent's name (or give a team)")
    team = _optional_name("A team's name; its lead answers")


# The changes to a session: its fields are `session_update`'s keywords (`route` as `route_alias`,
# `agent` and `team` as `…_name`); an absent one stays as it is.
class SessionUpdateSerializer(StrictInputSerializer):
    title = serializers.CharField(required=False, allow_blank=True)
    route = serializers.CharField(required=False, source="route_alias", help_text="A route alias")
    agent = serializers.CharField(
        required=False,
        allow_blank=True,
        source="agent_name",
        help_text="Talk to this agent (its route unless `route` is given); '' unbinds",
    )
    team = serializers.CharField(
        required=False,
        allow_blank=True,
        source="team_name",
        help_text="Talk to this team's lead (its route unless `route`); '' unbinds",
    )
    pinned = serializers.BooleanField(required=False, help_text="Pinned sessions come first in the list")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=200, allow_blank=True, trim_whitespace=False),
        required=False,
        max_length=100,
        help_text="Replaces the session's tags (names; new ones become tags of yours)",
    )


class SessionDeleteSerializer(serializers.Serializer[Any]):
    """How many rows the delete removed, per record."""

    messages = serializers.IntegerField()
    checkpoints = serializers.IntegerField()
    runs = serializers.IntegerField()
    events = serializers.IntegerField()


# --- Messages -------------------------------------------------------------------------------


class MessageSerializer(ReadOnlyModelSerializer[Message]):
    class Meta:
        model = Message
        fields = [
            "id",
            "seq",
            "role",
            "content",
            "parts",
            "token_count",
            "token_count_estimated",
            "client_id",
            "created",
            "parent",
        ]
        extra_kwargs = {"parent": {"help_text": "The id of the message this one follows (null for a first message)"}}


def _after_seq(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(required=False, min_value=0, max_value=MAX_INT32, default=0, help_text=help_text)


def _message_page_size() -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MESSAGE_PAGE_MAX_COUNT,
        default=MESSAGE_PAGE_DEFAULT_COUNT,
        help_text="At most this many messages (the page's byte budget may stop it sooner)",
    )


class MessageListQuerySerializer(StrictInputSerializer):
    after_seq = _after_seq("Read only messages with a greater seq")
    page_size = _message_page_size()


class MessagePageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="The next page (null at the end of the log)")
    results = MessageSerializer(many=True)


# A message to append: its fields are `message_append`'s keywords.
class MessageAppendSerializer(StrictInputSerializer):
    role = serializers.CharField(help_text="system, user, assistant or tool")
    content = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    parts = serializers.JSONField(
        required=False, allow_null=True, default=None, help_text="A list of tool_call, tool_result or attachment parts"
    )
    client_id = serializers.CharField(
        required=False, allow_null=True, default=None, help_text="Makes the append idempotent: a retry returns the same"
    )
    token_count = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Provider-reported tokens; estimated when absent"
    )
    parent_seq = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        max_value=MAX_INT32,
        help_text="The message this one follows (0: a new first message); the session's leaf when absent. "
        "The new message becomes the leaf.",
    )


# --- Checkpoints and restore ----------------------------------------------------------------


class CheckpointSerializer(ReadOnlyModelSerializer[Checkpoint]):
    class Meta:
        model = Checkpoint
        fields = ["id", "parent", "through_seq", "summary", "state", "token_count", "reason", "created"]


# A checkpoint to write: its fields (`parent` as `parent_id`) are `checkpoint_create`'s keywords.
class CheckpointCreateSerializer(StrictInputSerializer):
    through_seq = serializers.IntegerField(help_text="The last message seq the checkpoint covers")
    summary = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    state = serializers.JSONField(required=False, default=dict, help_text="The runtime's resumable state (an object)")
    reason = serializers.ChoiceField(choices=CheckpointReason.choices)
    token_count = serializers.IntegerField(required=False, allow_null=True, default=None)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `parent` is also the attribute a field uses for its enclosing serializer, so it is added here.
        fields = super().get_fields()
        fields["parent"] = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            source="parent_id",
            help_text="Parent checkpoint id; the latest when absent",
        )
        return fields


class RestoreSerializer(serializers.Serializer[Any]):
    checkpoint = CheckpointSerializer(allow_null=True, help_text="The newest summary checkpoint on the active path")
    messages = MessageSerializer(
        many=True, help_text="The newest page of the active path after the checkpoint, ending at the leaf, in seq order"
    )
    next = serializers.URLField(
        allow_null=True,
        help_text="The path page of the older messages after the checkpoint (null when `messages` is all of them)",
    )


# --- The conversation tree ------------------------------------------------------------------


class LeafSetSerializer(StrictInputSerializer):
    seq = serializers.IntegerField(
        min_value=1, max_value=MAX_INT32, help_text="The message to make the leaf: the active path ends there"
    )


class PathQuerySerializer(StrictInputSerializer):
    before_seq = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_INT32,
        default=None,
        allow_null=True,
        help_text="Read the path from this message's parent upwards (the `next` of a page); default: from the leaf",
    )
    after_seq = _after_seq("Stop above this seq (a checkpoint's)")
    page_size = _message_page_size()


class SiblingSerializer(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    role = serializers.CharField()
    content = serializers.CharField()
    created = serializers.DateTimeField()
    leaf = serializers.IntegerField(help_text="The newest message of this sibling's branch: the leaf to switch to")


class SiblingsSerializer(serializers.Serializer[Any]):
    seq = serializers.IntegerField(help_text="The message asked about")
    position = serializers.IntegerField(help_text="Its place among its siblings, from 1 (the `2` of `2 of 3`)")
    count = serializers.IntegerField(help_text="How many siblings there are, itself included (the `3` of `2 of 3`)")
    siblings = SiblingSerializer(many=True, help_text="The children of the same parent, in seq order")


# --- Runs and traces ------------------------------------------------------------------------


class RunSerializer(ReadOnlyModelSerializer[Run]):
    route = serializers.CharField(source="route.alias", read_only=True, allow_null=True)
    message_seq = serializers.IntegerField(
        source="message.seq", read_only=True, allow_null=True, help_text="The user message this run answers."
    )
    agent = serializers.CharField(
        source="agent.name", read_only=True, allow_null=True, help_text="The agent the run ran as, if any."
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "session",
            "route",
            "status",
            "error",
            "cancel_reason",
            "event_count",
            "created",
            "started_at",
            "finished_at",
            "message_seq",
            "purpose",
            "attempt",
            "cancel_requested_at",
            "lease_expires_at",
            "agent",
            "parent",
            "tool_call_id",
        ]


class RunListQuerySerializer(PageQuerySerializer):
    session = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    purpose = serializers.ChoiceField(
        choices=RunPurpose.choices,
        default=RunPurpose.CHAT,
        help_text="chat (the default: the turns of conversations) or an upkeep purpose (compaction, episode, facts)",
    )


# A run to open: its fields are `run_create`'s keywords (`session` as `session_id`, `route` as `route_alias`).
class RunCreateSerializer(StrictInputSerializer):
    session = serializers.CharField(source="session_id", help_text="The session id")
    route = serializers.CharField(
        required=False, allow_null=True, default=None, source="route_alias", help_text="The session's if absent"
    )
    status = serializers.ChoiceField(
        choices=RunStatus.choices, default=RunStatus.QUEUED, help_text="A new run is queued (default) or running"
    )


class RunCancelSerializer(StrictInputSerializer):
    reason = serializers.CharField(
        trim_whitespace=False,
        required=False,
        default="",
        allow_blank=True,
        help_text="Why the run is cancelled (recorded; `cancelled on request` if absent)",
    )


class RunTextSerializer(serializers.Serializer[Any]):
    run = serializers.UUIDField()
    text = serializers.CharField()


class TraceEventSerializer(ReadOnlyModelSerializer[TraceEvent]):
    class Meta:
        model = TraceEvent
        fields = ["index", "type", "payload", "created"]


class TraceEventListQuerySerializer(PageQuerySerializer):
    after_index = serializers.IntegerField(required=False, min_value=0, max_value=MAX_INT32, default=0)


# An event to append: its fields are `run_event_append`'s keywords (`type` as `event_type`).
class TraceEventAppendSerializer(StrictInputSerializer):
    type = serializers.ChoiceField(choices=TraceEventType.choices, source="event_type")
    payload = serializers.JSONField(required=False, default=dict, help_text="Per the event type's contract")


# --- Search ---------------------------------------------------------------------------------


class SearchQuerySerializer(PageQuerySerializer):
    q = serializers.CharField(
        trim_whitespace=False,
        help_text='Words (all must match), "a phrase", prefix* (2+ characters before the *); at most 32 words',
    )
    session = serializers.UUIDField(required=False, help_text="Only this session's messages")
    role = serializers.ChoiceField(choices=MessageRole.choices, required=False, help_text="Only messages of this role")
    to = serializers.DateTimeField(required=False, help_text="Only messages created before this time")
    tag = serializers.CharField(required=False, max_length=200, help_text="Only sessions with this tag of yours")
    include_archived = serializers.BooleanField(required=False, default=False, help_text="Search archived sessions too")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `from` is a Python keyword, so the field is added here, before `to`.
        fields = super().get_fields()
        ordered = {name: field for name, field in fields.items() if name not in ("to", "cursor", "page_size")}
        ordered["from"] = serializers.DateTimeField(
            required=False, help_text="Only messages created at or after this time (ISO 8601)"
        )
        ordered.update((name, fields[name]) for name in ("to", "cursor", "page_size"))
        return ordered


class MessageHitSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    seq = serializers.IntegerField(help_text="Where to jump in the session's message log")
    role = serializers.CharField()
    created = serializers.DateTimeField()
    score = serializers.FloatField(help_text="Higher is better (comparable within one search only)")
    snippet = serializers.CharField(
        help_text="The text around the first match, HTML-escaped; each matching word is wrapped in <mark>…</mark>"
    )


class SessionHitsSerializer(serializers.Serializer[Any]):
    session = SessionSerializer()
    score = serializers.FloatField(help_text="The session's best message score")
    match_count = serializers.IntegerField(help_text="How many of the session's messages match")
    messages = MessageHitSerializer(many=True, help_text="The session's best matches (at most 3), best first")


class SearchPageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="The next page (null after the last)")
    results = SessionHitsSerializer(many=True)
