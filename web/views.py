"""The chat page: the session list, the active path of one conversation and its open run.

Views only parse, call selectors and shape for the templates; every write (a session, a turn, a
cancel, a branch switch) goes through the JSON API from `web/static/web/chat.js`, with the CSRF
token, so the page and the API share one set of rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Sum
from django.http import Http404, HttpRequest
from django.views.generic import TemplateView

from core.api.acting import acting_user
from core.conversation.models import OPEN_RUN_STATUSES
from core.conversation.search import message_search
from core.conversation.selectors import (
    path_page,
    run_events_after,
    run_text,
    runs_list,
    session_get,
    sessions_list,
    sibling_seqs,
)
from core.errors import InvalidInputError, NotFoundError
from core.models import AgentSession, Message, Run, RunPurpose, RunStatus, SessionStatus, TraceEventType
from runtime.bootstrap.compose import bootstrap_read
from runtime.bootstrap.response import Bootstrap
from telemetry.models import pico_usd_to_decimal
from telemetry.selectors import usage_events
from web.markdown import markdown_html

# The newest messages of the active path shown at once; the API pages the older ones.
PATH_MESSAGES = 200
SESSION_LIST = 100
EVENT_PAGE = 500


@dataclass
class Delegation:
    """A team member's work for one of its lead's calls: the child run's answer, nested under that call."""

    member: str
    tool_call_id: str
    status: str = RunStatus.RUNNING
    text: str = ""

    @property
    def html(self) -> str:
        return markdown_html(self.text)

    @property
    def status_text(self) -> str:
        return RunStatus(self.status).label.lower() if self.status in RunStatus.values else self.status

    def take(self, event_type: str, payload: dict[str, Any]) -> None:
        """Add one of the child's events (as its lead's trace mirrors it, in a `delegate` event)."""
        if event_type == TraceEventType.TEXT_DELTA:
            self.text += str(payload.get("text", ""))
        elif event_type == TraceEventType.RUN_FINISHED:
            self.status = str(payload.get("status", RunStatus.COMPLETED))


def delegations_read(*, owner: Any, session: AgentSession) -> dict[int | None, dict[str, Delegation]]:
    """The session's delegated work by the user message its lead's run answered, then by the lead's call
    id; the newest run wins (a retried turn). One query, and one per delegated run for its text."""
    found: dict[int | None, dict[str, Delegation]] = {}
    children = runs_list(owner=owner, session_id=session.pk, purpose=RunPurpose.DELEGATE).select_related("parent")
    for child in children:
        calls = found.setdefault(child.parent.message_id if child.parent is not None else None, {})
        if child.tool_call_id not in calls:
            member = child.agent.name if child.agent is not None else "a team member"
            calls[child.tool_call_id] = Delegation(member, child.tool_call_id, child.status, run_text(run_id=child.pk))
    return found


@dataclass(frozen=True)
class MessageView:
    """One message as the page shows it: safe HTML, reasoning apart, its place among its siblings."""

    message: Message
    html: str
    reasoning: str
    siblings: list[int]
    # The cost of the turns that answered this reply's user message (None: no priced usage recorded).
    cost: Decimal | None = None
    # A team member's work for each of this message's tool calls that asked one, by call id.
    delegated: dict[str, Delegation] = field(default_factory=dict)

    @property
    def parts(self) -> list[tuple[dict[str, Any], Delegation | None]]:
        """The message's parts, each tool call with the delegated work that answered it."""
        parts = self.message.parts if isinstance(self.message.parts, list) else []
        return [(part, self.delegated.get(str(part.get("id", "")))) for part in parts if isinstance(part, dict)]

    @property
    def position(self) -> int:
        return self.siblings.index(self.message.seq) + 1

    @property
    def previous_seq(self) -> int | None:
        return self.siblings[self.position - 2] if self.position > 1 else None

    @property
    def next_seq(self) -> int | None:
        return self.siblings[self.position] if self.position < len(self.siblings) else None


@dataclass
class OpenRun:
    """A run still streaming: what its stored events said so far and the index the page resumes after."""

    run: Run
    text: str = ""
    reasoning: str = ""
    last_index: int = 0
    tools: list[dict[str, Any]] = field(default_factory=list)
    # The calls the run waits on (its last `tools_pending` event, less those with a result since).
    pending: list[dict[str, Any]] = field(default_factory=list)
    # A member's work for each of the lead's calls so far, by call id (from the `delegate` events).
    delegated: dict[str, Delegation] = field(default_factory=dict)

    @property
    def html(self) -> str:
        return markdown_html(self.text)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reasoning(message: Message) -> str:
    parts = message.parts if isinstance(message.parts, list) else []
    return "\n\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and p.get("type") == "reasoning")


def open_run_read(run: Run) -> OpenRun:
    """The open run as the page renders it: every stored event read in pages, so text and index agree."""
    shown = OpenRun(run=run)
    while True:
        events = run_events_after(run_id=run.pk, after=shown.last_index, limit=EVENT_PAGE)
        for event in events:
            payload = event.payload if isinstance(event.payload, dict) else {}
            if event.type == TraceEventType.TEXT_DELTA:
                shown.text += str(payload.get("text", ""))
            elif event.type == TraceEventType.REASONING:
                shown.reasoning += str(payload.get("text", ""))
            elif event.type in (TraceEventType.TOOL_CALL, TraceEventType.TOOL_RESULT):
                shown.tools.append({"type": event.type, **payload})
                done = payload.get("tool_call_id")
                shown.pending = [call for call in shown.pending if call.get("id") != done]
            elif event.type == TraceEventType.TOOLS_PENDING:
                shown.pending = [call for call in payload.get("calls", []) if isinstance(call, dict)]
            elif event.type == TraceEventType.DELEGATE:
                call_id = str(payload.get("tool_call_id", ""))
                work = shown.delegated.setdefault(call_id, Delegation(str(payload.get("member", "")), call_id))
                nested = _mapping(payload.get("event"))
                work.take(str(nested.get("type", "")), _mapping(nested.get("payload")))
            shown.last_index = event.index
        if len(events) < EVENT_PAGE:
            for tool in shown.tools:
                if tool["type"] == TraceEventType.TOOL_CALL:
                    tool["delegation"] = shown.delegated.get(str(tool.get("id", "")))
            return shown


def turn_costs(*, owner: Any, session: AgentSession) -> dict[int, Decimal]:
    """Per user message id, the cost of the priced usage of the runs that answered it (one query)."""
    rows = (
        usage_events(owner=owner, session_id=session.pk)
        .filter(run__message_id__isnull=False, cost_pico_usd__isnull=False)
        .order_by()
        .values("run__message_id")
        .annotate(spent=Sum("cost_pico_usd"))
    )
    return {row["run__message_id"]: pico_usd_to_decimal(int(row["spent"])) for row in rows}


def _bootstrap(request: HttpRequest) -> Bootstrap:
    user = acting_user(request)
    return bootstrap_read(owner_id=user.pk, staff=bool(getattr(user, "is_staff", False)))


class FragmentPage(LoginRequiredMixin, TemplateView):
    """A page whose changing part htmx asks for again: an htmx request gets `fragment_name` alone."""

    fragment_name = ""

    def get_template_names(self) -> list[str]:
        return [self.fragment_name if getattr(self.request, "htmx", False) else str(self.template_name)]


class ChatView(FragmentPage):
    """`/` (a new chat on the default route) and `/chat/<id>/` (one of the user's conversations)."""

    template_name = "web/chat.html"
    # htmx's refresh after a turn, a stop or a branch switch swaps the conversation alone.
    fragment_name = "web/_conversation.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        owner = acting_user(self.request)
        tag = self.request.GET.get("tag") or None
        try:
            sessions = list(sessions_list(owner=owner, status=SessionStatus.ACTIVE, tag=tag)[:SESSION_LIST])
        except InvalidInputError:
            sessions = []
        boot = _bootstrap(self.request)
        session_id: UUID | None = kwargs.get("session_id")
        session: AgentSession | None = None
        messages: list[MessageView] = []
        open_run: OpenRun | None = None
        if session_id is not None:
            try:
                session = session_get(session_id=session_id, owner=owner)
            except NotFoundError:
                raise Http404("No such conversation.") from None
            page = (
                path_page(session_id=session.pk, start_seq=session.leaf, limit=PATH_MESSAGES) if session.leaf else None
            )
            path = page.messages if page is not None else []
            seqs = sibling_seqs(session_id=session.pk, messages=path)
            costs = turn_costs(owner=owner, session=session)
            delegations = delegations_read(owner=owner, session=session)
            asked: int | None = None  # the user message the runs of the messages below it answer
            for m in path:
                asked = m.pk if m.role == "user" else asked
                messages.append(
                    MessageView(
                        message=m,
                        html=markdown_html(m.content),
                        reasoning=_reasoning(m),
                        siblings=seqs[m.seq],
                        cost=costs.get(m.parent_id) if m.role == "assistant" and m.parent_id is not None else None,
                        delegated=delegations.get(asked, {}),
                    )
                )
            newest = runs_list(owner=owner, session_id=session.pk).first()
            if newest is not None and newest.status in OPEN_RUN_STATUSES:
                open_run = open_run_read(newest)
        routes = list(boot.config.routes)
        route_choice = self.request.GET.get("route") or boot.config.default_route or ""
        chosen = next((entry for entry in routes if entry.record.alias == route_choice), None)
        if session is not None:
            blocked_reason = (
                "This conversation is archived: unarchive it to write." if session.status != "active" else ""
            )
        elif chosen is None:
            blocked_reason = (
                f"No route named {route_choice!r}: choose one above."
                if route_choice
                else "No route is configured: add one to the config file and run manage.py load_config."
            )
        elif chosen.status != "ready":
            blocked_reason = f"{chosen.record.alias} is {chosen.status}: {'; '.join(chosen.reasons)}"
        else:
            blocked_reason = ""
        context.update(
            sessions=sessions,
            session=session,
            # Not `messages`: that name is the messages framework's (the notices in web/app.html).
            items=messages,
            open_run=open_run,
            routes=routes,
            default_route=boot.config.default_route,
            route_choice=route_choice,
            can_send=not blocked_reason,
            blocked_reason=blocked_reason,
            page="chat",
            chat_view=boot.views.get("chat"),
            tag=tag,
            tags=sorted({t.name for s in sessions for t in s.tags.all()}),
        )
        return context


class SearchView(LoginRequiredMixin, TemplateView):
    """`/search/?q=`: the history search over the user's messages, as links into each conversation."""

    template_name = "web/search.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        query = self.request.GET.get("q", "").strip()
        context.update(query=query, results=[], problem="")
        if query:
            try:
                context["results"] = message_search(owner=acting_user(self.request), query=query).results
            except InvalidInputError as error:
                context["problem"] = str(error)
        return context
