"""A team's lead hands work to a member: the member runs as a child run, and its answer is the tool result.

`delegate(parent_run=, member=, request=, tool_call_id=, gateway=)` is what the tool loop calls for
an `ask_<member>` call (`runtime.agents.team_tools`):

- it refuses (an error outcome, nothing written) past the delegation depth
  (`AGENTCHAT_DELEGATION_MAX_DEPTH`, default 2: a lead's member is depth 1, that member's member 2),
  or when the member is disabled or its route cannot answer;
- otherwise, in one transaction, it opens the child run `running` (`purpose = delegate`, `parent`,
  `tool_call_id`, the member as its `agent`, the member's route) and mirrors its `run_started` into
  the parent's trace;
- the member answers with its own tools, through the same tool loop as a turn
  (`runtime.tools.loop.ToolLoop`): its instructions and skills are the system text, the request the
  user message, and it is offered its agent's tools (built-ins, its skills' tools, its MCP servers'
  tools through `gateway`, and `ask_<member>` for a team it leads while the depth bound allows one
  more level). Each call is a `ToolInvocation` row of the child run (its id prefixed with the
  child's tool call, `<tool_call_id>/<id>`, so it stays unique in the session); its rounds are
  bounded by the member's `max_tool_rounds`. The member's messages are its own: they are not
  appended to the session (its conversation is the child's trace). A tool that needs the person's
  approval, or a client's result, is refused inside a delegation: the call is answered at once with
  an error result saying so (nobody is asked while the lead's turn waits on the member), and the
  member goes on without it;
- every batch written to the child's trace is also written into the parent's trace, in the same
  transaction, as `delegate` events carrying the child's run id, the member, the tool call and the
  child's event: a reader of the parent's stream sees the child's trace (text, tool calls, tool
  results) nested in it, in order;
- each of the member's model calls records its usage (its own event, on the parent's session,
  counted for the member's agent); the child ends `completed` or `failed`, its `run_finished` is
  mirrored, and the member's final text (or the error, `is_error`) is what the lead reads.

Cancelling the parent (`run_cancel`, `run_cancel_request`) cancels its open children in the same
transaction; the child's watch sees it within 0.25 s and closes the member's stream, and the
outcome says the member was cancelled. A parent that ends interrupted (the sweeper, `recover_runs`,
`run_interrupt`) or failed ends its open children `interrupted` in the same transaction
(`core.conversation.services`). No transaction is held while the member's provider streams.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction

from core.config.readiness import route_health_reasons
from core.config.selectors import provider_config, route_config, route_health_get
from core.conversation.contracts import MessagePart
from core.conversation.events import ErrorEvent, ToolCall
from core.conversation.invocations import NewInvocation
from core.conversation.services import run_create, run_events_append, run_finish
from core.errors import ConflictError, DomainError
from core.models import (
    AgentProfile,
    InvocationStatus,
    Message,
    Run,
    RunPurpose,
    RunStatus,
    TraceEventType,
)
from runtime.agents import agent_instructions, delegation_depth
from runtime.coalescer import TraceCoalescer
from runtime.prompt import prompt_message, reasoning_parts
from runtime.providers import AdapterError, PromptMessage, ProviderAdapter, ToolDefinition, adapter_for
from runtime.tools.gateway import McpGateway
from runtime.tools.loop import ToolLoop
from runtime.tools.registry import tools_offered
from runtime.turns import ReplyStream
from runtime.watch import TurnWatch, run_cancelled
from telemetry.services import usage_record

__all__ = ["DelegateOutcome", "delegate", "delegation_depth", "mirrored"]

# The result a member's call of a tool that waits for the person (an approval, a client's result) gets.
NOT_IN_DELEGATION = (
    "{tool} cannot run inside a delegation: it waits for {what}, and nobody is asked while the lead waits on "
    "this member; go on without it, or say in your answer that it is needed"
)


@dataclass(frozen=True)
class DelegateOutcome:
    """The member's final text (or why it has none, `is_error`), and the child run when one was opened."""

    text: str
    is_error: bool
    run: Run | None = None


def mirrored(
    child_id: UUID, member: str, tool_call_id: str, event_type: str, payload: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A child run's event as the `delegate` event of its parent's trace."""
    return (
        TraceEventType.DELEGATE,
        {
            "run_id": str(child_id),
            "member": member,
            "tool_call_id": tool_call_id,
            "event": {"type": event_type, "payload": payload},
        },
    )


@dataclass(frozen=True)
class _Mirror:
    """Writes a batch into the child's trace and, nested, into each of its ancestors' (one level of
    `delegate` per delegation), in one transaction: the chat turn's trace holds the whole tree."""

    child: Run
    member: str
    # From the child up: (run, its member, its tool call, the run whose trace it is mirrored into).
    levels: tuple[tuple[UUID, str, str, UUID], ...]

    @classmethod
    def of(cls, child: Run, member: AgentProfile) -> _Mirror:
        levels: list[tuple[UUID, str, str, UUID]] = []
        run: Run | None = child
        while run is not None and run.parent_id is not None:
            name = member.name if run.pk == child.pk else (run.agent.name if run.agent is not None else "")
            levels.append((run.pk, name, run.tool_call_id, run.parent_id))
            run = Run.objects.select_related("agent").filter(pk=run.parent_id).first()
        return cls(child=child, member=member.name, levels=tuple(levels))

    def append(self, batch: list[tuple[str, dict[str, Any]]]) -> Run:
        with transaction.atomic():
            run = run_events_append(run_id=self.child.pk, events=batch)
            self.up(batch)
        return run

    def up(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """Write the child's `batch` (already in its own trace) into its ancestors' traces."""
        with transaction.atomic():
            for run_id, member, tool_call_id, into in self.levels:
                batch = [mirrored(run_id, member, tool_call_id, kind, body) for kind, body in batch]
                run_events_append(run_id=into, events=batch)


class _MirroringCoalescer(TraceCoalescer):
    """The child's coalescer: each batch goes into the child's trace and, nested, into the parent's."""

    def __init__(self, mirror: _Mirror) -> None:
        super().__init__(mirror.child.pk)
        self.mirror = mirror

    def _append(self, batch: list[tuple[str, dict[str, Any]]]) -> Run:
        return self.mirror.append(batch)


class _MemberToolLoop(ToolLoop):
    """The turn's tool loop, run for a delegated member: its messages stay in `transcript` (not in the
    session), its trace is mirrored, its calls are stored under the child's tool call, and a tool that
    waits for the person is answered at once with an error."""

    def __init__(self, *, run: Run, mirror: _Mirror, transcript: list[PromptMessage], source: int, **kw: Any) -> None:
        super().__init__(run=run, leaf=0, **kw)
        self.mirror = mirror
        self.transcript = transcript
        self.source = source
        self.prefix = f"{run.tool_call_id}/"

    def message_append(self, role: str, content: str, parts: list[MessagePart]) -> Message:
        self.transcript.append(prompt_message(role, content, parts))
        return Message(session_id=self.run.chat_session_id, seq=self.leaf + 1, role=role, content=content, parts=parts)

    def trace_append(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.mirror.append(events)

    def stored_id(self, call_id: str) -> str:
        return self.prefix + call_id

    def provider_id(self, stored_id: str) -> str:
        return stored_id.removeprefix(self.prefix)

    def source_seq(self, call_seq: int) -> int:
        return self.source

    def _new(self, call: ToolCall) -> NewInvocation:
        new = super()._new(call)
        if new.status == InvocationStatus.AWAITING_RESULT:
            what = "a result from the client"
        elif new.status == InvocationStatus.AWAITING_APPROVAL:
            what = "the person's approval"
        else:
            return new
        message = NOT_IN_DELEGATION.format(tool=call.name, what=what)
        return NewInvocation(call.id, call.name, call.arguments, InvocationStatus.DONE, message, True)


def _refusal(parent_run: Run, member: AgentProfile) -> str | None:
    """Why the member cannot be asked now, or None."""
    limit = settings.AGENTCHAT_DELEGATION_MAX_DEPTH
    if delegation_depth(parent_run) + 1 > limit:
        return (
            f"cannot ask {member.name!r}: delegations nest at most {limit} deep (AGENTCHAT_DELEGATION_MAX_DEPTH); "
            "answer with what you have"
        )
    if not member.enabled:
        return f"cannot ask {member.name!r}: the agent is disabled"
    status = adapter_for(member.route).status()
    if status.state != "ready":
        why = "; ".join(status.reasons)
        return f"cannot ask {member.name!r}: its route {member.route.alias!r} is {status.state}: {why}"
    blocks = route_health_reasons(
        route_config(member.route), provider_config(member.route.provider), route_health_get(route_id=member.route_id)
    )
    if blocks:
        return f"cannot ask {member.name!r}: its route {member.route.alias!r} is blocked: {'; '.join(blocks)}"
    return None


def delegate(
    *,
    parent_run: Run,
    member: AgentProfile,
    request: str,
    tool_call_id: str,
    gateway: McpGateway | None = None,
    source_seq: int = 0,
) -> DelegateOutcome:
    """Run `member` on `request` as a child of `parent_run` answering its call `tool_call_id` (see the module
    docstring); `gateway` reaches the member's MCP servers, `source_seq` is the session message its tools act from."""
    refusal = _refusal(parent_run, member)
    if refusal is not None:
        return DelegateOutcome(text=refusal, is_error=True)
    if not isinstance(request, str) or not request.strip():
        return DelegateOutcome(
            text=f"cannot ask {member.name!r}: the request is empty; say what it should do", is_error=True
        )
    with transaction.atomic():
        child = run_create(
            session_id=parent_run.chat_session_id,
            route_alias=member.route.alias,
            status=RunStatus.RUNNING,
            purpose=RunPurpose.DELEGATE,
            agent=member,
            parent=parent_run,
            tool_call_id=tool_call_id,
        )
        mirror = _Mirror.of(child, member)
        mirror.up([(TraceEventType.RUN_STARTED, {})])
    child = Run.objects.select_related("agent", "route").get(pk=child.pk)
    return _member_answer(child, member, request, gateway=gateway, source_seq=source_seq, mirror=mirror)


def _model_call(
    adapter: ProviderAdapter,
    transcript: list[PromptMessage],
    tools: tuple[ToolDefinition, ...],
    coalescer: _MirroringCoalescer,
    watch: TurnWatch,
) -> ReplyStream:
    """Stream one model call of the member into its (mirrored) trace."""
    answer = ReplyStream(coalescer, None)
    events = adapter.stream(list(transcript), tools=tools)
    try:
        for event in events:
            if watch.cancelled.is_set() or answer.error is not None:
                break  # an error ends the call: what follows it is not taken
            answer.feed(event)
        if not watch.cancelled.is_set():
            answer.flush()
    finally:
        events.close()
    return answer


def _member_answer(
    child: Run, member: AgentProfile, request: str, *, gateway: McpGateway | None, source_seq: int, mirror: _Mirror
) -> DelegateOutcome:
    """Run the member's tool rounds (its trace mirrored into the parent's), then close the child."""
    route = member.route
    budget = max(1, route.context_window_tokens - route.max_output_tokens)
    instructions = agent_instructions(member, budget_tokens=budget // 2).text
    transcript = [PromptMessage(role="system", content=instructions)] if instructions else []
    transcript.append(PromptMessage(role="user", content=request))
    adapter = adapter_for(route)
    coalescer = _MirroringCoalescer(mirror)
    offer = tools_offered(run=child, gateway=gateway)
    loop = _MemberToolLoop(
        run=child, offer=offer, gateway=gateway, mirror=mirror, transcript=transcript, source=source_seq
    )
    answer = ReplyStream(coalescer, None)
    watch = TurnWatch(
        run_id=child.pk,
        close_stream=adapter.close,
        coalescer=coalescer,
        read_store=not transaction.get_connection().in_atomic_block,
    )
    started = time.monotonic()
    with watch:
        try:
            if offer.notes:
                mirror.append([(TraceEventType.TOOLS_NOTE, {"message": note}) for note in offer.notes])
            tools = offer.definitions()
            adapter.tools_check(tools)
            while not watch.cancelled.is_set():
                answer = _model_call(adapter, transcript, tools, coalescer, watch)
                if watch.cancelled.is_set() or answer.error is not None or not answer.calls:
                    break
                if loop.rounds >= loop.max_rounds:
                    answer.feed(
                        ErrorEvent(
                            message=f"stopped after {loop.rounds} rounds of tool calls (the agent's max_tool_rounds); "
                            f"the model still asked for {', '.join(call.name for call in answer.calls)}",
                            code="tool_rounds_exceeded",
                        )
                    )
                    answer.flush()
                    break
                latency_ms = int((time.monotonic() - started) * 1000)
                with transaction.atomic():
                    _usage(child, answer, latency_ms=latency_ms, answered=True, request_id=loop.request_id())
                    loop.calls_record("".join(answer.text), answer.calls, reasoning_parts(answer.reasoning), "")
                started = time.monotonic()
                loop.results_append(None)
        except ConflictError:
            watch.trip("")  # the child (or its parent) was ended meanwhile
        except (AdapterError, DomainError) as exc:
            answer.feed(ErrorEvent(message=exc.message, code=exc.code))
            answer.flush()
    latency_ms = int((time.monotonic() - started) * 1000)
    return _close(
        child,
        member,
        answer,
        cancelled=watch.cancelled.is_set() or run_cancelled(child.pk),
        latency_ms=latency_ms,
        mirror=mirror,
        request_id=loop.request_id(),
    )


def _close(
    child: Run,
    member: AgentProfile,
    answer: ReplyStream,
    *,
    cancelled: bool,
    latency_ms: int,
    mirror: _Mirror,
    request_id: str,
) -> DelegateOutcome:
    """Record the last call's usage, end the child, mirror its end into the parent; the outcome the lead reads."""
    answered = not cancelled and answer.error is None
    _usage(child, answer, latency_ms=latency_ms, answered=answered, request_id=request_id)
    text = "".join(answer.text)
    if cancelled:
        return _cancelled(child, member, mirror)
    if answer.error is None and not text:
        answer.error = ErrorEvent(message=f"{member.name!r} answered with no text", code="empty_reply")
    status = RunStatus.COMPLETED if answer.error is None else RunStatus.FAILED
    error = answer.error.message if answer.error is not None else ""
    try:
        with transaction.atomic():
            finished = run_finish(run_id=child.pk, status=status, error=error)
            mirror.up([(TraceEventType.RUN_FINISHED, {"status": status})])
    except ConflictError:
        # The parent (and so the child) was cancelled while the child was being closed.
        return _cancelled(child, member, mirror)
    if answer.error is not None:
        return DelegateOutcome(text=f"{member.name!r} failed: {answer.error.message}", is_error=True, run=finished)
    return DelegateOutcome(text=text, is_error=False, run=finished)


def _cancelled(child: Run, member: AgentProfile, mirror: _Mirror) -> DelegateOutcome:
    """The outcome of a cancelled child; its end is mirrored while the parent still takes events."""
    stored = Run.objects.get(pk=child.pk)
    with contextlib.suppress(ConflictError):  # the parent was cancelled with it: its trace ends there
        mirror.up([(TraceEventType.RUN_FINISHED, {"status": stored.status})])
    reason = stored.cancel_reason or stored.error or stored.status
    return DelegateOutcome(text=f"{member.name!r} was {stored.status}: {reason}", is_error=True, run=stored)


def _usage(child: Run, answer: ReplyStream, *, latency_ms: int, answered: bool, request_id: str) -> None:
    """One model call's usage event (its session is the parent's; its agent is the member)."""
    if answer.usage is None and not answered:
        return
    usage = answer.usage
    usage_record(
        owner=child.owner,
        request_id=request_id,
        route_alias=child.route.alias if child.route is not None else None,
        run_id=child.pk,
        input_tokens=usage.input_tokens if usage else None,
        cached_input_tokens=usage.cached_input_tokens if usage else None,
        cache_write_input_tokens=usage.cache_write_input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        latency_ms=latency_ms,
    )
