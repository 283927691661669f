"""The conversation store: sessions, their append-only message log, checkpoints, runs and traces.

Writes go only through `core.conversation.services`, which allocates message seqs and keeps the
session's counters exact in the same transaction. A checkpoint points at the log by seq and
never copies it, so its cost does not grow with the session's length.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q

from core.config.models import AgentProfile, ModelRoute, Team

if TYPE_CHECKING:
    _BigAutoField = models.BigAutoField[int, int]
else:
    _BigAutoField = models.BigAutoField


class RowIdField(_BigAutoField):
    """A 64-bit auto id that on SQLite is the table's plain rowid, declared without AUTOINCREMENT.

    With AUTOINCREMENT every insert also rewrites the table's row in `sqlite_sequence`: one more
    page per message written and synced at each commit. Without it SQLite gives the next id past
    the largest one in the table, so ids still only grow while that row lives; only after the
    newest rows are deleted (a whole session deleted) can their ids come back. Nothing keeps a
    message id past its row: its attachments are deleted with it and the API pages the log by seq.
    PostgreSQL keeps its identity column.
    """

    def db_type_suffix(self, connection: BaseDatabaseWrapper) -> str | None:
        if connection.vendor == "sqlite":
            return None
        suffix: str | None = super().db_type_suffix(connection)  # type: ignore[misc]  # missing from the stubs
        return suffix


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class MessageRole(models.TextChoices):
    SYSTEM = "system", "System"
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    TOOL = "tool", "Tool"


class CheckpointReason(models.TextChoices):
    MANUAL = "manual", "Manual"
    COMPACTION = "compaction", "Compaction"
    RUN_END = "run_end", "Run end"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    INTERRUPTED = "interrupted", "Interrupted"
    # Tool calls wait for the user's approval or a client's result; no worker holds the run meanwhile.
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"


TERMINAL_RUN_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)
OPEN_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL)


class RunPurpose(models.TextChoices):
    # A chat turn answering a user message; at most one is open per session.
    CHAT = "chat", "Chat"
    # Upkeep: a session's compaction summary, a day's episode (no session: the user's whole day),
    # the durable facts of a turn. Chat lists show only chat runs; usage counts every purpose.
    COMPACTION = "compaction", "Compaction"
    EPISODE = "episode", "Episode"
    FACTS = "facts", "Facts"
    # A team member answering its lead's `ask_<member>` call; a child of the lead's run.
    DELEGATE = "delegate", "Delegate"


class TraceEventType(models.TextChoices):
    RUN_STARTED = "run_started", "Run started"
    TEXT_DELTA = "text_delta", "Text delta"
    REASONING = "reasoning", "Reasoning"
    TOOL_CALL = "tool_call", "Tool call"
    TOOL_RESULT = "tool_result", "Tool result"
    USAGE = "usage", "Usage"
    FINISH = "finish", "Finish"
    ERROR = "error", "Error"
    RUN_FINISHED = "run_finished", "Run finished"
    # The run waits: the calls named need an approval or a client's result.
    TOOLS_PENDING = "tools_pending", "Tools pending"
    # Why a tool was left out of the turn (an MCP server that cannot start, a schema that is not valid).
    TOOLS_NOTE = "tools_note", "Tools note"
    # One event of a child (delegated) run, mirrored into its parent's trace.
    DELEGATE = "delegate", "Delegate"


class Tag(models.Model):
    """A label one user gives to their sessions; another user's tags are invisible to them."""

    # PROTECT like the session's owner: removing an account deletes its records first.
    # No index of its own: `tag_owner_name_unique` (owner, name) leads with it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="session_tags", db_index=False
    )
    name = models.CharField(max_length=48)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "name"]
        constraints = [
            # One tag per name per user; serves "this user's tag named …" (the list and search filters).
            models.UniqueConstraint(fields=["owner", "name"], name="tag_owner_name_unique"),
            models.CheckConstraint(condition=~Q(name=""), name="tag_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class AgentSession(models.Model):
    """A conversation; its counters are kept exact by the services that append to it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200, blank=True, default="")
    route = models.ForeignKey(ModelRoute, on_delete=models.PROTECT, related_name="sessions")
    # PROTECT: removing an account is a deliberate act that deletes its sessions first through
    # `session_delete` (set-based); a CASCADE would have the collector load every message.
    # Messages, checkpoints and attachment references reach their owner through the session.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="agent_sessions")
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.ACTIVE)
    # Pinned sessions come first in the session list.
    pinned = models.BooleanField(default=False)
    # The owner's own tags only (`session_tags_set` refuses anything else).
    tags = models.ManyToManyField(Tag, related_name="sessions", blank=True)
    message_count = models.PositiveIntegerField(default=0)
    last_seq = models.PositiveIntegerField(default=0)
    # The seq of the message the person is on (0 before the first): the active path is the chain
    # from it up to the root. Every append moves it to the new message; `session_leaf_set` switches
    # branches. Stored, so a switch holds across reloads and restarts.
    leaf = models.PositiveIntegerField(default=0)
    tokens_since_checkpoint = models.PositiveBigIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # The agent the session talks to, or the team whose lead answers (at most one of them). SET_NULL:
    # the configuration file may drop an agent; its sessions then behave as sessions without one.
    agent = models.ForeignKey(AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions")
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions")

    class Meta:
        ordering = ["-updated", "-id"]
        verbose_name = "session"
        indexes = [
            # A user's most recent sessions (the bootstrap, the session list) read newest-first from
            # the owner's range, with no sort. It is the only index on `updated`, which every append
            # writes: the admin's lists across owners sort instead of having every message update a
            # second index.
            models.Index(fields=["owner", "-updated", "-id"], name="session_owner_recent_idx"),
            # The API's session list filtered by status pages newest-created first.
            models.Index(fields=["status", "-created", "-id"], name="session_status_created_idx"),
            # The API's session list pages newest-created first with a stable cursor.
            models.Index(fields=["-created", "-id"], name="session_created_idx"),
            # The API's session list of one owner: pinned first, then newest-created, keyset-paged.
            models.Index(fields=["owner", "-pinned", "-created", "-id"], name="session_owner_pinned_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=SessionStatus.values), name="session_status_valid"),
            models.CheckConstraint(condition=Q(message_count__lte=models.F("last_seq")), name="session_count_le_seq"),
            models.CheckConstraint(condition=Q(leaf__lte=models.F("last_seq")), name="session_leaf_le_seq"),
            # A session talks to an agent or to a team, never both.
            models.CheckConstraint(
                condition=Q(agent__isnull=True) | Q(team__isnull=True), name="session_agent_or_team"
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"session {self.id}"


class Message(models.Model):
    """One node of a session's conversation tree; `seq` runs 1, 2, 3… per session with no gap, in append order.

    `parent` is the message it answers or follows (None for a first message): regenerating a reply
    or editing a message appends a sibling under the same parent, so branches are never rewritten.
    """

    id = RowIdField(primary_key=True)
    # No index of its own: the (session, seq) unique index leads with it and serves every lookup.
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="messages", db_index=False)
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField(blank=True, default="")
    parts = models.JSONField(default=list, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    token_count_estimated = models.BooleanField(default=True)
    # NULL (not "") when absent, so the partial unique constraint ignores messages without one.
    client_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    created = models.DateTimeField(auto_now_add=True)
    # DO_NOTHING: messages are deleted only with their whole session, in one statement
    # (`session_delete`), so a parent never goes before its children. Last, as
    # `message_append`'s INSERT lists it. No index of its own:
    # `message_session_parent_idx` (session, parent) serves the siblings and children reads.
    parent = models.ForeignKey(
        "self", on_delete=models.DO_NOTHING, null=True, blank=True, related_name="children", db_index=False
    )

    class Meta:
        ordering = ["session", "seq"]
        indexes = [
            # A message's siblings (the children of its parent, or the session's first messages).
            models.Index(fields=["session", "parent"], name="message_session_parent_idx"),
        ]
        constraints = [
            # Serves every tail read (`seq > through_seq`) as well as forbidding duplicates.
            models.UniqueConstraint(fields=["session", "seq"], name="message_session_seq_unique"),
            # Makes a retried append with the same client_id find the stored row.
            models.UniqueConstraint(
                fields=["session", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_session_client_id_unique",
            ),
            models.CheckConstraint(condition=Q(seq__gte=1), name="message_seq_positive"),
            models.CheckConstraint(condition=Q(role__in=MessageRole.values), name="message_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.role}"


class Checkpoint(models.Model):
    """Resumable state covering the path from message `through_seq` up to the root; restore reads only what follows.

    `through_seq` is the leaf the checkpoint covers: it folds a branch's history only when that
    message lies on the branch's active path (a checkpoint on another branch never does).
    """

    # No index of its own: `checkpoint_latest_idx` (session, -id) leads with it.
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="checkpoints", db_index=False)
    parent = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children")
    through_seq = models.PositiveIntegerField()
    summary = models.TextField(blank=True, default="")
    state = models.JSONField(default=dict, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=16, choices=CheckpointReason.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "-id"]
        indexes = [
            # "Latest checkpoint of a session" is an index seek.
            models.Index(fields=["session", "-id"], name="checkpoint_latest_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(reason__in=CheckpointReason.values), name="checkpoint_reason_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id} checkpoint through #{self.through_seq} ({self.reason})"


class Run(models.Model):
    """One model turn; it ends in exactly one terminal state."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: `run_session_created_idx` (session, -created) leads with it. NULL only for
    # an episode run, which summarises a user's whole day (`run_session_unless_episode`).
    session = models.ForeignKey(
        AgentSession, on_delete=models.CASCADE, null=True, blank=True, related_name="runs", db_index=False
    )
    route = models.ForeignKey(ModelRoute, on_delete=models.PROTECT, null=True, blank=True, related_name="runs")
    # Its own column (the session's owner when it has one): a run is read and cancelled by its id,
    # and a run made for no conversation still has an owner. Trace events reach it through the run.
    # PROTECT for the same reason as the session's.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=24, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True, default="")
    cancel_reason = models.TextField(blank=True, default="")
    event_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The user message this run answers (a chat turn); a retry is a new run for the same message.
    message = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs", db_index=False
    )
    agent = models.ForeignKey(AgentProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs")
    purpose = models.CharField(max_length=16, choices=RunPurpose.choices, default=RunPurpose.CHAT)
    # The worker holding the run while it is `running`, and until when; the worker renews it on a
    # timer. An expired lease means a dead worker: the sweeper ends the run `interrupted`.
    lease_owner = models.CharField(max_length=128, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Set by a cancel from any client; the lease holder ends the run itself.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # 1 for the first run of a message, +1 for each retry.
    attempt = models.PositiveIntegerField(default=1)
    # A delegated run's parent (the lead's run) and the lead's tool call it answers. CASCADE: a
    # child goes with its parent (both are the same session's, deleted together).
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    tool_call_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            # The sweeper's two reads: queued runs, and running runs whose lease expired.
            models.Index(
                fields=["lease_expires_at"],
                name="run_open_lease_idx",
                condition=Q(status__in=("queued", "running")),
            ),
            # "The run that answers message M" (the turn retry and the run's message column).
            models.Index(fields=["message", "-created"], name="run_message_idx"),
            # recover_runs finds runs left `running`; the run list filters by status.
            # Ends in -id like the list's order, so SQLite uses it for the ORDER BY too.
            models.Index(fields=["status", "-created", "-id"], name="run_status_created_idx"),
            models.Index(fields=["session", "-created"], name="run_session_created_idx"),
            # The unfiltered run list pages newest first.
            models.Index(fields=["-created", "-id"], name="run_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="run_status_valid"),
            # Terminal runs carry their finish time; open runs do not.
            models.CheckConstraint(
                condition=(Q(status__in=TERMINAL_RUN_STATUSES) & Q(finished_at__isnull=False))
                | (~Q(status__in=TERMINAL_RUN_STATUSES) & Q(finished_at__isnull=True)),
                name="run_finished_iff_terminal",
            ),
            # A run that is (or was) running has a start time; a queued one has not started.
            models.CheckConstraint(
                condition=(Q(status=RunStatus.QUEUED) & Q(started_at__isnull=True))
                | (
                    Q(status__in=(RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL, RunStatus.COMPLETED))
                    & Q(started_at__isnull=False)
                )
                | Q(status__in=(RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)),
                name="run_started_unless_queued",
            ),
            # A cancelled run records why; a failed run records what went wrong.
            models.CheckConstraint(
                condition=~Q(status=RunStatus.CANCELLED) | ~Q(cancel_reason=""), name="run_cancel_has_reason"
            ),
            models.CheckConstraint(condition=~Q(status=RunStatus.FAILED) | ~Q(error=""), name="run_failed_has_error"),
            # One open chat turn per session: a second turn while one is queued or running is a 409.
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(status__in=("queued", "running", "awaiting_approval"), purpose="chat"),
                name="run_one_open_chat_per_session",
            ),
            models.CheckConstraint(condition=Q(attempt__gte=1), name="run_attempt_positive"),
            models.CheckConstraint(condition=Q(purpose__in=RunPurpose.values), name="run_purpose_valid"),
            models.CheckConstraint(
                condition=Q(purpose=RunPurpose.EPISODE) | Q(session__isnull=False), name="run_session_unless_episode"
            ),
            # One compaction at a time per session: a second task for the same session finds this
            # one open and leaves (two tasks write one checkpoint).
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(status__in=("queued", "running"), purpose="compaction"),
                name="run_one_open_compaction_per_session",
            ),
            # One episode run at a time per user (two workers after midnight write each day once).
            models.UniqueConstraint(
                fields=["owner"],
                condition=Q(status__in=("queued", "running"), purpose="episode"),
                name="run_one_open_episode_per_owner",
            ),
            # A delegated run answers a parent's tool call; any other run has no parent.
            models.CheckConstraint(
                condition=(Q(purpose="delegate") & Q(parent__isnull=False) & ~Q(tool_call_id=""))
                | (~Q(purpose="delegate") & Q(parent__isnull=True)),
                name="run_delegate_has_parent",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"

    @property
    def chat_session_id(self) -> uuid.UUID:
        """The session of a run that has one (every purpose but `episode`); ValueError otherwise."""
        if self.session_id is None:
            raise ValueError(f"run {self.id} ({self.purpose}) belongs to no session")
        return self.session_id


class WorkerBeat(models.Model):
    """A worker process's latest heartbeat: the bootstrap's liveness and the sweeper's peers."""

    worker_id = models.CharField(max_length=128, primary_key=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    # The run it holds now, if any (shown in the admin; the run's own lease decides).
    current_run_id = models.UUIDField(null=True, blank=True)

    class Meta:
        indexes = [
            # "Has any worker beaten in the last 30 s" reads the newest beat.
            models.Index(fields=["-beat_at"], name="worker_beat_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"worker {self.worker_id} on {self.host} (pid {self.pid})"


class TraceEvent(models.Model):
    """One streamed event of a run, in order; `payload` follows the contract of its `type`."""

    # No index of its own: the (run, index) unique index leads with it.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    index = models.PositiveIntegerField()
    type = models.CharField(max_length=16, choices=TraceEventType.choices)
    payload = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            # Serves reading a trace in order (and the text rebuild) as well as forbidding duplicates.
            models.UniqueConstraint(fields=["run", "index"], name="trace_event_run_index_unique"),
            models.CheckConstraint(condition=Q(index__gte=1), name="trace_event_index_positive"),
            models.CheckConstraint(condition=Q(type__in=TraceEventType.values), name="trace_event_type_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.index} {self.type}"


class InvocationStatus(models.TextChoices):
    # Open: the call has no result yet.
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    AWAITING_RESULT = "awaiting_result", "Awaiting a client's result"
    APPROVED = "approved", "Approved"
    # Closed: the call has its one result.
    DONE = "done", "Done"
    DENIED = "denied", "Denied"
    CANCELLED = "cancelled", "Cancelled"
    INTERRUPTED = "interrupted", "Interrupted"


OPEN_INVOCATION_STATUSES = (
    InvocationStatus.AWAITING_APPROVAL,
    InvocationStatus.AWAITING_RESULT,
    InvocationStatus.APPROVED,
)


class ToolInvocation(models.Model):
    """One tool call a model asked for, and its one result: the database keeps every call answered."""

    # No index of its own: `tool_invocation_session_call_unique` leads with it.
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="tool_invocations", db_index=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tool_invocations", db_index=False)
    call_id = models.CharField(max_length=200)
    tool = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=24, choices=InvocationStatus.choices)
    # Untrusted text: stored and shown, never executed or rendered as HTML.
    result = models.TextField(blank=True, default="")
    is_error = models.BooleanField(default=False)
    # The assistant message holding the call, and the tool message holding its result once appended.
    call_seq = models.PositiveIntegerField()
    result_seq = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        indexes = [
            # A run's calls in order (the loop's resume, run_finish's open check, the approval endpoint).
            models.Index(fields=["run", "id"], name="tool_invocation_run_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["session", "call_id"], name="tool_invocation_session_call_unique"),
            models.CheckConstraint(
                condition=Q(status__in=InvocationStatus.values), name="tool_invocation_status_valid"
            ),
            # A closed call has its finish time; an open one does not.
            models.CheckConstraint(
                condition=(Q(status__in=OPEN_INVOCATION_STATUSES) & Q(finished_at__isnull=True))
                | (~Q(status__in=OPEN_INVOCATION_STATUSES) & Q(finished_at__isnull=False)),
                name="tool_invocation_finished_iff_closed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tool} call {self.call_id} ({self.status})"
