"""Admin for the conversation store: sessions with their latest messages, checkpoints and runs; runs with
their trace in order; read-only changelists for messages, checkpoints, runs, trace events, tool
invocations and import jobs.

Built for tables of millions of rows: changelists never COUNT(*) a whole table (`CappedCountPaginator`
counts at most `COUNT_CAP` rows, `show_full_result_count` is off), inlines show only the newest rows,
and every list joins what it displays so the query count does not grow with the page.
Writes go through the services: sessions are created, edited, archived and deleted by them; messages,
checkpoints, runs and events are never edited here.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet, Subquery
from django.http import HttpRequest

from core.admin_base import (
    CappedCountPaginator,
    ConditionFilter,
    ReadOnlyAdmin,
    ReadOnlyInlineMixin,
    choice_conditions,
    columns,
    each_selected,
    preview,
    preview_column,
)
from core.conversation.search import message_search_q
from core.conversation.selectors import context_fullness_percent, run_text
from core.conversation.services import (
    run_cancel,
    session_archive,
    session_create,
    session_delete,
    session_unarchive,
    session_update,
)
from core.errors import ConflictError
from core.models import (
    AgentSession,
    Checkpoint,
    ImportJob,
    ImportStatus,
    InvocationStatus,
    Message,
    ModelRoute,
    Run,
    RunStatus,
    SessionStatus,
    ToolInvocation,
    TraceEvent,
)

LATEST_MESSAGES = 50
LATEST_CHECKPOINTS = 20
LATEST_RUNS = 20
FIRST_EVENTS = 500
# The tool filter lists the tools of this many newest calls (no scan of the table); any tool works as ?tool=.
RECENT_TOOL_CALLS = 1_000


@admin.display(description="content")
def _message_preview(admin_: object, message: Message) -> str:
    """A message's text on one line, or how many parts it holds when it has no text."""
    return preview(message.content) or f"({len(message.parts)} part(s))"


@admin.display(description="token count is")
def _token_source(admin_: object, message: Message) -> str:
    """Where a message's token count came from, in words (a red cross read as an error)."""
    return "estimated" if message.token_count_estimated else "reported"


class _ConversationMedia:
    css = {"all": ["core/conversation-admin.css"]}


# --- Sessions -------------------------------------------------------------------------------


class MessageInline(ReadOnlyInlineMixin, admin.TabularInline[Message, AgentSession]):
    model = Message
    verbose_name_plural = f"messages (the latest {LATEST_MESSAGES}, newest first)"
    fields = ("seq", "role", "content_preview", "token_count", "token_source", "client_id", "created")

    content_preview = _message_preview
    token_source = _token_source


class CheckpointInline(ReadOnlyInlineMixin, admin.TabularInline[Checkpoint, AgentSession]):
    model = Checkpoint
    verbose_name_plural = f"checkpoints (the latest {LATEST_CHECKPOINTS})"
    fields = ("id", "parent_id", "through_seq", "reason", "token_count", "summary_preview", "created")

    summary_preview = preview_column("summary", lambda checkpoint: checkpoint.summary)


class RunInline(ReadOnlyInlineMixin, admin.TabularInline[Run, AgentSession]):
    model = Run
    verbose_name_plural = f"runs (the latest {LATEST_RUNS})"
    fields = ("status", "route", "event_count", "created", "finished_at", "error_preview")
    show_change_link = True

    error_preview = preview_column("error", lambda run: run.error or run.cancel_reason)


class SessionStatusFilter(ConditionFilter):
    title = parameter_name = "status"
    conditions = choice_conditions("status", SessionStatus.choices)


@admin.register(AgentSession)
class AgentSessionAdmin(admin.ModelAdmin[AgentSession]):
    """Sessions; created and edited through the services, archived by the actions, deleted explicitly."""

    list_display = [
        "__str__",
        "owner",
        "route",
        "status",
        "message_count",
        "tokens_since_checkpoint",
        "context_fullness",
        "updated",
        "created",
    ]
    list_select_related = ["route", "owner"]
    list_filter = [SessionStatusFilter, "owner", "route", ("created", admin.DateFieldListFilter)]
    search_fields = ["title"]
    search_help_text = (
        'Searches titles (case-insensitive), and message text through the full-text index: words, "a phrase", '
        "prefix* (every term must match)."
    )
    ordering = ["-updated", "-id"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = ReadOnlyAdmin.list_per_page
    fields = ["title", "route", "status", "message_count", "last_seq", "tokens_since_checkpoint", "created", "updated"]
    readonly_fields = ["status", "message_count", "last_seq", "tokens_since_checkpoint", "created", "updated"]
    inlines = [MessageInline, CheckpointInline, RunInline]
    actions = ["archive_sessions", "unarchive_sessions"]
    Media = _ConversationMedia

    @admin.display(description="context full")
    def context_fullness(self, session: AgentSession) -> str:
        return f"{context_fullness_percent(session)}%"

    def get_readonly_fields(self, request: HttpRequest, obj: AgentSession | None = None) -> Any:
        if obj is not None and obj.status == SessionStatus.ARCHIVED:
            return self.fields  # an archived session is read-only; unarchive it to edit
        return self.readonly_fields

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "route":
            kwargs["queryset"] = ModelRoute.objects.filter(enabled=True).select_related("provider")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AgentSession], search_term: str
    ) -> tuple[QuerySet[AgentSession], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # Message text through the API's full-text index (an IN over its matches: no duplicate sessions).
        matches = message_search_q(term, field="pk", column="session_id")
        return queryset.filter(Q(title__icontains=term) | matches), False

    def get_formset_kwargs(self, request: HttpRequest, obj: Any, inline: Any, prefix: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_formset_kwargs(request, obj, inline, prefix)
        if obj is None or obj.pk is None:
            return kwargs
        # Only the newest rows: a session may hold millions of messages.
        if isinstance(inline, MessageInline):
            kwargs["queryset"] = Message.objects.filter(seq__gt=obj.last_seq - LATEST_MESSAGES).order_by("-seq")
        elif isinstance(inline, CheckpointInline):
            newest = Checkpoint.objects.filter(session=obj).order_by("-id").values("pk")[:LATEST_CHECKPOINTS]
            kwargs["queryset"] = Checkpoint.objects.filter(pk__in=Subquery(newest)).order_by("-id")
        elif isinstance(inline, RunInline):
            newest_runs = Run.objects.filter(session=obj).order_by("-created", "-id").values("pk")[:LATEST_RUNS]
            kwargs["queryset"] = (
                Run.objects.filter(pk__in=Subquery(newest_runs)).select_related("route").order_by("-created", "-id")
            )
        return kwargs

    def save_model(self, request: HttpRequest, obj: AgentSession, form: Any, change: bool) -> None:
        route_alias = obj.route.alias if obj.route_id else None
        if change:
            session_update(session_id=obj.pk, title=obj.title, route_alias=route_alias)
            return
        # The staff member who adds a session in the admin owns it.
        created = session_create(owner=request.user, title=obj.title, route_alias=route_alias)  # type: ignore[arg-type]
        obj.pk = created.pk
        obj.created, obj.updated = created.created, created.updated
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: AgentSession) -> None:
        session_delete(session_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AgentSession]) -> None:
        for session_id in queryset.values_list("pk", flat=True):
            session_delete(session_id=session_id)

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """A summary instead of Django's list of every related row (which would load every message)."""
        sessions = list(objs)
        ids = [session.pk for session in sessions]
        runs = Run.objects.filter(session_id__in=ids).aggregate(
            total=Count("id"), open=Count("id", filter=Q(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)))
        )
        checkpoints = Checkpoint.objects.filter(session_id__in=ids).count()
        messages_total = sum(session.message_count for session in sessions)
        summary: list[Any] = [
            f"Session: {session} ({session.message_count} messages, with its checkpoints, runs and events)"
            for session in sessions
        ]
        counts = {
            "sessions": len(sessions),
            "messages": messages_total,
            "checkpoints": checkpoints,
            "runs": runs["total"],
        }
        protected = [f"{runs['open']} queued or running run(s): cancel them first"] if runs["open"] else []
        return summary, counts, set(), protected

    @admin.action(description="Archive selected sessions")
    def archive_sessions(self, request: HttpRequest, queryset: QuerySet[AgentSession]) -> None:
        active = queryset.filter(status=SessionStatus.ACTIVE)
        each_selected(self, request, active, lambda pk: session_archive(session_id=pk), "Archived {count} session(s).")

    @admin.action(description="Unarchive selected sessions")
    def unarchive_sessions(self, request: HttpRequest, queryset: QuerySet[AgentSession]) -> None:
        archived = queryset.filter(status=SessionStatus.ARCHIVED)
        each_selected(
            self, request, archived, lambda pk: session_unarchive(session_id=pk), "Unarchived {count} session(s)."
        )


# --- Read-only changelists ------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin[Message]):
    list_display = ["session", "seq", "role", "content_preview", "token_count", "token_source", "created"]
    list_select_related = ["session"]
    list_filter = ["role"]
    search_fields = ["content"]  # shows the search box; the search itself is `get_search_results`
    search_help_text = 'Full-text search of message text: words, "a phrase", prefix* (every term must match).'
    ordering = ["-id"]  # newest first on the primary key: an index walk, never a sort
    fields = ["session", "seq", "role", "content", "parts", "token_count", "token_source", "client_id", "created"]
    Media = _ConversationMedia

    content_preview = _message_preview

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        term = search_term.strip()
        return (queryset.filter(message_search_q(term)) if term else queryset), False

    token_source = _token_source


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin[Checkpoint]):
    list_display = ["session", "through_seq", "reason", "token_count", "parent_id", "created"]
    list_select_related = ["session"]
    list_filter = ["reason"]
    ordering = ["-id"]
    fields = columns(Checkpoint)


class TraceEventInline(ReadOnlyInlineMixin, admin.TabularInline[TraceEvent, Run]):
    model = TraceEvent
    verbose_name_plural = f"trace events (in order, the first {FIRST_EVENTS})"
    fields = ("index", "type", "payload", "created")
    ordering = ["index"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[TraceEvent]:
        return super().get_queryset(request).filter(index__lte=FIRST_EVENTS)


class RunStatusFilter(ConditionFilter):
    title = parameter_name = "status"
    conditions = choice_conditions("status", RunStatus.choices)


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin[Run]):
    Media = _ConversationMedia
    list_display = ["id", "owner", "session", "route", "status", "event_count", "created", "finished_at"]
    list_select_related = ["session", "route", "owner"]
    list_filter = [RunStatusFilter, "owner", "route", ("created", admin.DateFieldListFilter)]
    ordering = ["-created", "-id"]
    fields = columns(Run, "text")
    readonly_fields = ["text"]
    inlines = [TraceEventInline]
    actions = ["cancel_runs"]

    @admin.display(description="streamed text (rebuilt from text_delta events)")
    def text(self, run: Run) -> str:
        return run_text(run_id=run.pk)

    @admin.action(description="Cancel selected queued or running runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        open_ids = list(queryset.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).values_list("pk", flat=True))
        cancelled = 0
        for run_id in open_ids:
            try:
                run_cancel(run_id=run_id, reason=f"cancelled in the admin by {request.user}")
            except ConflictError:
                continue  # it finished meanwhile
            cancelled += 1
        self.message_user(request, f"Cancelled {cancelled} run(s).", messages.SUCCESS)


@admin.register(TraceEvent)
class TraceEventAdmin(ReadOnlyAdmin[TraceEvent]):
    Media = _ConversationMedia
    list_display = ["run", "index", "type", "payload_preview", "created"]
    list_select_related = ["run"]
    list_filter = ["type"]
    ordering = ["-id"]
    fields = columns(TraceEvent)

    payload_preview = preview_column("payload", lambda event: str(event.payload))


class InvocationStatusFilter(ConditionFilter):
    title = parameter_name = "status"
    conditions = choice_conditions("status", InvocationStatus.choices)


class ToolFilter(admin.SimpleListFilter):
    """The tools of the RECENT_TOOL_CALLS newest calls (one bounded query); any tool works as `?tool=<name>`."""

    title = parameter_name = "tool"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = ToolInvocation.objects.order_by("-id").values_list("tool", flat=True)[:RECENT_TOOL_CALLS]
        return [(tool, tool) for tool in sorted(set(recent))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(tool=self.value()) if self.value() else queryset


@admin.register(ToolInvocation)
class ToolInvocationAdmin(ReadOnlyAdmin[ToolInvocation]):
    """Each tool call a model asked for, its decision and its result; the tool loop's services own them."""

    Media = _ConversationMedia
    list_display = [
        "id",
        "run",
        "tool",
        "status",
        "is_error",
        "arguments_preview",
        "result_preview",
        "created",
        "decided_at",
        "finished_at",
        "duration",
    ]
    list_select_related = ["run"]
    list_filter = [InvocationStatusFilter, ToolFilter, "is_error", ("created", admin.DateFieldListFilter)]
    search_fields = ["tool"]
    ordering = ["-id"]
    fields = columns(ToolInvocation, "duration")
    readonly_fields = ["duration"]

    # Keys sorted: PostgreSQL (jsonb) and SQLite keep them in different orders.
    arguments_preview = preview_column(
        "arguments", lambda call: json.dumps(call.arguments, ensure_ascii=False, sort_keys=True)
    )
    result_preview = preview_column("result", lambda call: call.result)

    @admin.display(description="took")
    def duration(self, call: ToolInvocation) -> str:
        """From the call to its result (approval waits included), to the millisecond; empty while open."""
        if call.finished_at is None:
            return ""
        # A call recorded already closed (an unknown tool) takes its finish time just before its creation.
        return f"{max(0.0, (call.finished_at - call.created).total_seconds()):.3f} s"


class ImportStatusFilter(ConditionFilter):
    title = parameter_name = "status"
    conditions = choice_conditions("status", ImportStatus.choices)


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin[ImportJob]):
    """An upload a worker imports: its progress, report and error; the import services own it."""

    list_display = [
        "id",
        "owner",
        "format",
        "status",
        "dry_run",
        "conversations_imported",
        "conversations_skipped",
        "messages_imported",
        "created",
        "finished_at",
    ]
    list_select_related = ["owner"]
    list_filter = [ImportStatusFilter, "format", "dry_run"]
    ordering = ["-created", "-id"]
    fields = columns(ImportJob)
