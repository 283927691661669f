"""One turn's rounds of tool calls: record each call, check it, run it or wait for it, append its result.

`runtime.turns` drives the model calls; `ToolLoop` does what happens between them. Every call is a
`ToolInvocation` row (its result too), so every call in the log has exactly one result: an unknown
tool (`unknown tool NAME`) or invalid arguments are answered at once as error results; a call of a
tool that `requires_approval` waits for `POST /api/runs/{id}/approve/`, a `client` tool's for
`POST /api/runs/{id}/tool-results/` (the run is parked `awaiting_approval` and no worker holds
it); the others run with their timeouts. Results are untrusted text: stored and shown, never run.

A delegated member runs the same loop (`runtime.delegation`): the hooks `message_append`,
`trace_append`, `stored_id`/`provider_id` and `source_seq` say where its messages, trace and call ids
go; a turn's go into its session and its trace as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from django.db import transaction

from core.conversation.contracts import MessagePart, ToolCallPart, ToolResultPart
from core.conversation.events import RuntimeEvent, ToolCall, ToolResult
from core.conversation.invocations import (
    NewInvocation,
    invocation_finish,
    invocation_result_seq_set,
    invocations_create,
)
from core.conversation.services import message_append, run_await_tools, run_events_append
from core.models import InvocationStatus, Message, MessageRole, Run, ToolInvocation, TraceEventType
from runtime.tools.builtins import ToolContext
from runtime.tools.gateway import McpGateway
from runtime.tools.registry import Offer, arguments_problem, tool_run

DEFAULT_MAX_TOOL_ROUNDS = 8
EventCallback = Callable[[RuntimeEvent], None]


class ToolLoop:
    """The tool rounds of one run: how many were taken, where the conversation stands (`leaf`), whether it waits."""

    def __init__(self, *, run: Run, offer: Offer, gateway: McpGateway | None, leaf: int) -> None:
        self.run = run
        self.offer = offer
        self.gateway = gateway
        self.leaf = leaf
        self.max_rounds = run.agent.max_tool_rounds if run.agent is not None else DEFAULT_MAX_TOOL_ROUNDS
        self.rows = list(ToolInvocation.objects.filter(run_id=run.pk).order_by("id"))
        self.rounds = len({row.call_seq for row in self.rows})
        self.waiting = False

    def request_id(self) -> str:
        """The usage request id of the next model call: one per call of the run."""
        return f"run:{self.run.pk}" if self.rounds == 0 else f"run:{self.run.pk}:{self.rounds}"

    def _round(self) -> list[ToolInvocation]:
        last = max((row.call_seq for row in self.rows), default=None)
        return [row for row in self.rows if row.call_seq == last]

    def resume(self, on_event: EventCallback | None) -> list[Message]:
        """A run taken again after its calls were decided: run the approved ones, append the results."""
        current = self._round()
        if not current:
            return []
        self.leaf = max(row.result_seq or row.call_seq for row in current)
        if all(row.result_seq is not None for row in current):
            return []
        self.leaf = current[0].call_seq
        return self.results_append(on_event)

    # Where the run's messages and trace go, and how its calls are named in the store: a turn's go
    # into its session and its trace as they are; a delegated member's are its own (`runtime.delegation`).

    def message_append(self, role: str, content: str, parts: list[MessagePart]) -> Message:
        """Append one message of the run's conversation under `leaf` (a turn's: into the session)."""
        return message_append(
            session_id=self.run.chat_session_id, parent_seq=self.leaf, role=role, content=content, parts=parts
        ).record

    def trace_append(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        run_events_append(run_id=self.run.pk, events=events)

    def stored_id(self, call_id: str) -> str:
        """The id a provider's call is stored under (unique in the session)."""
        return call_id

    def provider_id(self, stored_id: str) -> str:
        """The provider's id of a stored call (the inverse of `stored_id`)."""
        return stored_id

    def source_seq(self, call_seq: int) -> int:
        """The session message a round's tools act from (what `remember` cites)."""
        return call_seq

    def _new(self, call: ToolCall) -> NewInvocation:
        tool = self.offer.tools.get(call.name)
        done = InvocationStatus.DONE
        if tool is None:
            return NewInvocation(call.id, call.name, call.arguments, done, f"unknown tool {call.name}", True)
        problem = (
            f"invalid arguments for {call.name}: {call.arguments_error}"
            if call.arguments_error is not None
            else arguments_problem(tool, call.arguments)
        )
        if problem is not None:
            return NewInvocation(call.id, call.name, call.arguments, done, problem, True)
        if tool.runner == "client":
            return NewInvocation(call.id, call.name, call.arguments, InvocationStatus.AWAITING_RESULT)
        if tool.requires_approval:
            return NewInvocation(call.id, call.name, call.arguments, InvocationStatus.AWAITING_APPROVAL)
        return NewInvocation(call.id, call.name, call.arguments, InvocationStatus.APPROVED)

    def calls_record(
        self, text: str, calls: Sequence[ToolCall], reasoning: Sequence[MessagePart], owner: str
    ) -> Message:
        """In the caller's transaction: the message with its calls, a row per call; park the run if one waits."""
        parts: list[MessagePart] = [*reasoning]
        for call in calls:
            part: ToolCallPart = {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
            parts.append(part)
        message = self.message_append(MessageRole.ASSISTANT, text, parts)
        self.leaf = message.seq
        new = [replace(self._new(call), call_id=self.stored_id(call.id)) for call in calls]
        self.rows += invocations_create(run=self.run, call_seq=message.seq, calls=new)
        self.rounds += 1
        pending = [row for row in self._round() if row.status in _WAITING]
        if pending:
            calls_waiting: list[dict[str, Any]] = [
                {
                    "id": row.call_id,
                    "name": row.tool,
                    "arguments": row.arguments,
                    "waits_for": "result" if row.status == InvocationStatus.AWAITING_RESULT else "approval",
                }
                for row in pending
            ]
            self.waiting = run_await_tools(run_id=self.run.pk, lease_owner=owner, calls=calls_waiting) is not None
        return message

    def results_append(self, on_event: EventCallback | None) -> list[Message]:
        """Run the round's approved calls, then append every result as a tool message (one transaction)."""
        current = self._round()
        context = ToolContext(
            owner=self.run.owner,
            session_id=self.run.chat_session_id,
            run_id=self.run.pk,
            message_seq=self.source_seq(current[0].call_seq),
        )
        results: list[ToolResult] = []
        for index, row in enumerate(current):
            if row.status == InvocationStatus.APPROVED:
                tool = self.offer.tools.get(row.tool)
                text, is_error = (
                    tool_run(tool, row.arguments, context=context, gateway=self.gateway, call_id=row.call_id)
                    if tool is not None
                    else (f"unknown tool {row.tool}", True)
                )
                current[index] = row = invocation_finish(invocation_id=row.pk, result=text, is_error=is_error)
            results.append(
                ToolResult(tool_call_id=self.provider_id(row.call_id), content=row.result, is_error=row.is_error)
            )
        self.trace_append([(TraceEventType.TOOL_RESULT, r.payload()) for r in results])
        if on_event is not None:
            for result in results:
                on_event(result)
        appended: list[Message] = []
        with transaction.atomic():
            for row, result in zip(current, results, strict=True):
                part: ToolResultPart = {
                    "type": "tool_result",
                    "tool_call_id": result.tool_call_id,
                    "content": result.content,
                    "is_error": result.is_error,
                }
                message = self.message_append(MessageRole.TOOL, result.content, [part])
                invocation_result_seq_set(invocation_id=row.pk, seq=message.seq)
                row.result_seq = message.seq
                self.leaf = message.seq
                appended.append(message)
        return appended


_WAITING = (InvocationStatus.AWAITING_APPROVAL, InvocationStatus.AWAITING_RESULT)
