"""A team's lead hands work to a member: the member runs as a child run, and its answer is the tool result.

`delegate(parent_run=, member=, request=, tool_call_id=)` is what the tool loop calls for an
`ask_<member>` call (`runtime.agents.team_tools`):

- it refuses (an error outcome, nothing written) past the delegation depth
  (`AGENTCHAT_DELEGATION_MAX_DEPTH`, default 2: a lead's member is depth 1, that member's member 2),
  or when the member is disabled or its route cannot answer;
- otherwise, in one transaction, it opens the child run `running` (`purpose = delegate`, `parent`,
  `tool_call_id`, the member as its `agent`, the member's route) and mirrors its `run_started` into
  the parent's trace;
- it streams the member's answer (its instructions and skills as the system text, the request as
  the user message) into the child's trace. Every batch the child's coalescer writes is also written
  into the parent's trace, in the same transaction, as `delegate` events carrying the child's run id,
  the member, the tool call and the child's event: a reader of the parent's stream sees the child's
  trace nested in it, in order;
- it records the child's usage (its own event, on the parent's session, counted for the member's
  agent), ends the child `completed` or `failed`, mirrors the `run_finished`, and returns the
  member's final text, or the error as an error outcome (`is_error`) the lead reads as the tool result.

Cancelling the parent (`run_cancel`, `run_cancel_request`) cancels its open children in the same
transaction; the child's watch sees it within 0.25 s and closes the member's stream, and the
outcome says the member was cancelled. No transaction is held while the member's provider streams.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction

from core.config.readiness import route_health_reasons
from core.config.selectors import provider_config, route_config, route_health_get
from core.conversation.events import ErrorEvent, TextDelta, Usage
from core.conversation.services import run_create, run_events_append, run_finish
from core.errors import ConflictError, DomainError
from core.models import AgentProfile, Run, RunPurpose, RunStatus, ToolSpec, TraceEventType
from runtime.agents import agent_instructions
from runtime.coalescer import TraceCoalescer
from runtime.providers import AdapterError, PromptMessage, ToolDefinition, adapter_for
from runtime.watch import TurnWatch, run_cancelled
from telemetry.services import usage_record


@dataclass(frozen=True)
class DelegateOutcome:
    """The member's final text (or why it has none, `is_error`), and the child run when one was opened."""

    text: str
    is_error: bool
    run: Run | None = None


def delegation_depth(run: Run) -> int:
    """How many delegations lie above `run` (0 for a chat turn): one query per level."""
    depth, parent_id = 0, run.parent_id
    while parent_id is not None:
        depth += 1
        parent_id = Run.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    return depth


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


class _MirroringCoalescer(TraceCoalescer):
    """The child's coalescer: each batch goes into the child's trace and, nested, into the parent's."""

    def __init__(self, child: Run, *, member: str, parent_id: UUID) -> None:
        super().__init__(child.pk)
        self.member = member
        self.parent_id = parent_id
        self.tool_call_id = child.tool_call_id

    def _append(self, batch: list[tuple[str, dict[str, Any]]]) -> Run:
        with transaction.atomic():
            run = super()._append(batch)
            run_events_append(
                run_id=self.parent_id,
                events=[mirrored(self.run_id, self.member, self.tool_call_id, kind, body) for kind, body in batch],
            )
        return run


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
    tools: Sequence[ToolSpec] = (),
) -> DelegateOutcome:
    """Run `member` on `request` as a child of `parent_run` answering its call `tool_call_id` (see the module
    docstring); `tools` are offered to the member (the tool loop passes the member's toolset)."""
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
        run_events_append(
            run_id=parent_run.pk, events=[mirrored(child.pk, member.name, tool_call_id, TraceEventType.RUN_STARTED, {})]
        )
    return _member_answer(child, member, request, tools, parent_id=parent_run.pk)


@dataclass
class _Answer:
    text: list[str]
    usage: Usage | None = None
    error: ErrorEvent | None = None


def _member_answer(
    child: Run, member: AgentProfile, request: str, tools: Sequence[ToolSpec], *, parent_id: UUID
) -> DelegateOutcome:
    """Stream the member's reply into the child's (and, mirrored, the parent's) trace, then close the child."""
    route = member.route
    budget = max(1, route.context_window_tokens - route.max_output_tokens)
    instructions = agent_instructions(member, budget_tokens=budget // 2).text
    messages = [PromptMessage(role="system", content=instructions)] if instructions else []
    messages.append(PromptMessage(role="user", content=request))
    adapter = adapter_for(route)
    coalescer = _MirroringCoalescer(child, member=member.name, parent_id=parent_id)
    answer = _Answer(text=[])
    watch = TurnWatch(
        run_id=child.pk,
        close_stream=adapter.close,
        coalescer=coalescer,
        read_store=not transaction.get_connection().in_atomic_block,
    )
    started = time.monotonic()
    with watch:
        events = None
        try:
            definitions = tuple(ToolDefinition.from_spec(spec) for spec in tools)
            adapter.tools_check(definitions)
            events = adapter.stream(messages, tools=definitions)
            for event in events:
                if watch.cancelled.is_set():
                    break
                coalescer.add(event)
                if isinstance(event, TextDelta):
                    answer.text.append(event.text)
                elif isinstance(event, Usage):
                    answer.usage = event
                elif isinstance(event, ErrorEvent):
                    answer.error = event
                    break
            if not watch.cancelled.is_set():
                coalescer.flush()
        except ConflictError:
            watch.trip("")  # the child (or its parent) was ended meanwhile
        except (AdapterError, DomainError) as exc:
            answer.error = ErrorEvent(message=exc.message, code=exc.code)
            coalescer.add(answer.error)
            coalescer.flush()
        finally:
            if events is not None:
                events.close()
    latency_ms = int((time.monotonic() - started) * 1000)
    return _close(
        child,
        member,
        answer,
        cancelled=watch.cancelled.is_set() or run_cancelled(child.pk),
        latency_ms=latency_ms,
        parent_id=parent_id,
    )


def _close(
    child: Run, member: AgentProfile, answer: _Answer, *, cancelled: bool, latency_ms: int, parent_id: UUID
) -> DelegateOutcome:
    """Record the child's usage, end it, mirror its end into the parent; the outcome the lead reads."""
    _usage(child, answer, latency_ms=latency_ms, answered=not cancelled and answer.error is None)
    text = "".join(answer.text)
    if cancelled:
        return _cancelled(child, member, parent_id)
    if answer.error is None and not text:
        answer.error = ErrorEvent(message=f"{member.name!r} answered with no text", code="empty_reply")
    status = RunStatus.COMPLETED if answer.error is None else RunStatus.FAILED
    error = answer.error.message if answer.error is not None else ""
    try:
        with transaction.atomic():
            finished = run_finish(run_id=child.pk, status=status, error=error)
            run_events_append(
                run_id=parent_id,
                events=[
                    mirrored(child.pk, member.name, child.tool_call_id, TraceEventType.RUN_FINISHED, {"status": status})
                ],
            )
    except ConflictError:
        # The parent (and so the child) was cancelled while the child was being closed.
        return _cancelled(child, member, parent_id)
    if answer.error is not None:
        return DelegateOutcome(text=f"{member.name!r} failed: {answer.error.message}", is_error=True, run=finished)
    return DelegateOutcome(text=text, is_error=False, run=finished)


def _cancelled(child: Run, member: AgentProfile, parent_id: UUID) -> DelegateOutcome:
    """The outcome of a cancelled child; its end is mirrored while the parent still takes events."""
    stored = Run.objects.get(pk=child.pk)
    end = mirrored(child.pk, member.name, child.tool_call_id, TraceEventType.RUN_FINISHED, {"status": stored.status})
    with contextlib.suppress(ConflictError):  # the parent was cancelled with it: its trace ends there
        run_events_append(run_id=parent_id, events=[end])
    reason = stored.cancel_reason or stored.status
    return DelegateOutcome(text=f"{member.name!r} was cancelled: {reason}", is_error=True, run=stored)


def _usage(child: Run, answer: _Answer, *, latency_ms: int, answered: bool) -> None:
    """The child's own usage event (its session is the parent's; its agent is the member)."""
    if answer.usage is None and not answered:
        return
    usage = answer.usage
    usage_record(
        owner=child.owner,
        request_id=f"run:{child.pk}",
        route_alias=child.route.alias if child.route is not None else None,
        run_id=child.pk,
        input_tokens=usage.input_tokens if usage else None,
        cached_input_tokens=usage.cached_input_tokens if usage else None,
        cache_write_input_tokens=usage.cache_write_input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        latency_ms=latency_ms,
    )
