"""One chat turn end to end, the way the runner will drive the stores.

`turn_run` appends the user message, builds the context inputs (memory), opens a run, feeds the
provider adapter's events into the run's trace as they arrive, then in one transaction appends the
assistant message (and the tool messages when the model called a tool), records the usage
(telemetry) and closes the run `completed`. It writes a `run_end` checkpoint when the turn makes
the session cross its compaction threshold.

Failure paths leave exactly one terminal state and no half-written assistant message:
- the adapter streams an `error` event, or raises: the run ends `failed` with the error recorded;
- the caller's `should_cancel()` turns true, or someone cancels the run (API, admin) while it
  streams: the run ends `cancelled`;
- the text is empty or too long, or the route's adapter is blocked or disabled: InvalidInputError or
  ConflictError before anything is written (`turn_refusal` checks the same before a caller creates
  a session for the turn).

Retries never ask the model twice. The user message and its run are written in ONE transaction, and
the run's `run_started` event names the message (`message_seq`) and the process running it. A retry
with the same `client_id` and the same text gets the run that already answers that message, open
or finished (`TurnResult.created` is False; the API answers 200), and nothing is written; the same
`client_id` with another text is a ConflictError. Running the model again for a failed or
interrupted run, or regenerating a reply, would be an explicit action of its own (not built yet).
A message stored without a run (written before runs named their message, or appended directly)
runs once if it is still the session's last message, and is a ConflictError otherwise.

It lives in `runtime/`, the one app that may use core, memory and telemetry together.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from django.conf import settings
from django.db import transaction

from core.conversation.contracts import ToolCallPart, ToolResultPart
from core.conversation.events import ErrorEvent, Finish, RuntimeEvent, TextDelta, ToolCall, ToolResult, Usage
from core.conversation.selectors import (
    OwnerScope,
    compaction_threshold_percent,
    context_fullness_percent,
    messages_after,
    needs_compaction,
    run_for_message,
    run_text,
    runs_open_count,
    session_get,
    session_needs_compaction,
)
from core.conversation.services import (
    CANCEL_REQUESTED_REASON,
    checkpoint_create,
    message_append,
    run_cancel,
    run_claim,
    run_create,
    run_event_append,
    run_finish,
    run_interrupt,
    run_lease_release,
)
from core.conversation.workers import worker_identity
from core.errors import ConflictError, DomainError, InvalidInputError
from core.models import (
    AgentSession,
    Checkpoint,
    CheckpointReason,
    Message,
    MessageRole,
    Run,
    RunStatus,
    TraceEvent,
    TraceEventType,
)
from memory.context import ContextBundle, context_inputs
from runtime.providers import AdapterError, PromptMessage, ProviderAdapter, adapter_for
from runtime.worker.lease import Lease, Stop, process_worker_id
from telemetry.models import UsageEvent
from telemetry.services import usage_record

MAX_USER_TEXT_CHARS = 100_000
SUMMARY_QUOTE_CHARS = 200
# How many messages after the user message a replayed (retried) turn's answer may list.
MAX_REPLY_MESSAGES = 200

EventCallback = Callable[[RuntimeEvent], None]
RUN_LOG = logging.getLogger("agentchat.runs")


@dataclass(frozen=True)
class TurnResult:
    """What one turn wrote: its run, the messages it appended, the usage it recorded."""

    run: Run
    messages: tuple[Message, ...]
    text: str
    usage: UsageEvent | None
    checkpoint: Checkpoint | None
    # Why the model stopped (`length`: the reply was cut short at max_output_tokens); None if not said.
    finish_reason: str | None = None
    # False when a retry found the run that already answers its message (nothing was written).
    created: bool = True


def _prompt(bundle: ContextBundle) -> list[PromptMessage]:
    """The context bundle as prompt messages: one system message of memory, then the log's tail."""
    sections: list[str] = []
    memories = [*bundle.pinned_memories, *bundle.relevant_memories]
    if memories:
        sections.append("Remembered:\n" + "\n".join(f"- ({m.kind}) {m.content}" for m in memories))
    if bundle.checkpoint is not None and bundle.checkpoint.summary:
        sections.append(f"Summary of the conversation so far:\n{bundle.checkpoint.summary}")
    if bundle.episodes:
        sections.append("Recent days:\n" + "\n".join(f"- {e.day}: {e.summary}" for e in bundle.episodes))
    if bundle.attachments:
        sections.append(
            "Attachments:\n" + "\n".join(f"- {a.name} ({a.mime_type}): {a.summary}" for a in bundle.attachments)
        )
    prompt = [PromptMessage(role="system", content="\n\n".join(sections))] if sections else []
    prompt.extend(PromptMessage(role=m.role, content=m.content, parts=tuple(m.parts)) for m in bundle.messages)
    return prompt


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_QUOTE_CHARS else text[: SUMMARY_QUOTE_CHARS - 1] + "…"


def _run_cancelled(run_id: UUID) -> bool:
    return Run.objects.filter(pk=run_id, status=RunStatus.CANCELLED).exists()


class _Stream:
    """Collects what the adapter streamed while each event goes into the trace."""

    def __init__(self, run: Run, on_event: EventCallback | None) -> None:
        self.run = run
        self.on_event = on_event
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.results: list[ToolResult] = []
        self.usage: Usage | None = None
        self.finish: Finish | None = None
        self.error: ErrorEvent | None = None

    def feed(self, event: RuntimeEvent) -> None:
        run_event_append(run_id=self.run.pk, event_type=event.type, payload=event.payload())
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ToolCall):
            self.calls.append(event)
        elif isinstance(event, ToolResult):
            self.results.append(event)
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish = event
        elif isinstance(event, ErrorEvent):
            self.error = event
        # A Reasoning event is kept in the trace only (it is never reply text).
        if self.on_event is not None:
            self.on_event(event)


def turn_refusal(*, session: AgentSession, user_text: object) -> ProviderAdapter:
    """The adapter for a turn on `session`, or the InvalidInputError/ConflictError that refuses it.

    Reads only; a caller that creates a session for the turn checks this first, in the same
    transaction, so a refused turn leaves nothing behind.
    """
    if not isinstance(user_text, str) or not user_text.strip():
        raise InvalidInputError.for_field("text", "empty; give the message to send")
    if len(user_text) > MAX_USER_TEXT_CHARS:
        raise InvalidInputError.for_field(
            "text", f"has {len(user_text)} characters; at most {MAX_USER_TEXT_CHARS} are allowed"
        )
    adapter = adapter_for(session.route)
    status = adapter.status()
    if status.state != "ready":
        raise ConflictError.for_field(
            "route", f"{session.route.alias!r} is {status.state}: {'; '.join(status.reasons)}"
        )
    return adapter


@dataclass(frozen=True)
class Accepted:
    """A turn accepted: its user message and its run (`created` False when a retry found them)."""

    run: Run
    message: Message
    created: bool


def turn_accept(
    *,
    session_id: UUID | str,
    owner: OwnerScope = None,
    user_text: str,
    client_id: str | None = None,
    on_commit: Callable[[Run], None] | None = None,
) -> Accepted:
    """Validate a turn, then in ONE transaction append the user message and open its run `queued`.

    A retry with the same `client_id` and text finds the run that answers that message and writes
    nothing. `on_commit(run)` runs after the commit (the API enqueues the run's task there).
    With `owner`, another user's session is not found.
    """
    if not isinstance(user_text, str) or not user_text.strip():
        raise InvalidInputError.for_field("text", "empty; give the message to send")
    session = session_get(session_id=session_id, owner=owner)
    turn_refusal(session=session, user_text=user_text)
    with transaction.atomic():
        # The message and its run commit together: a retry sees both or neither (it waits on the
        # session's lock, PostgreSQL, or on the write lock, SQLite), never a message without its run.
        appended = message_append(session_id=session.pk, role=MessageRole.USER, content=user_text, client_id=client_id)
        user_message = appended.message
        if not appended.created:
            existing = run_for_message(session_id=session.pk, message_seq=user_message.seq)
            if existing is not None:
                return Accepted(run=existing, message=user_message, created=False)
            if user_message.seq != session.last_seq:
                seq = user_message.seq
                raise ConflictError.for_field(
                    "client_id",
                    f"{client_id!r} names message #{seq}, which other messages already follow; read the "
                    f"messages after #{seq}, or send a new message with a new client_id",
                )
        _refuse_too_many_open_runs(session.owner_id)
        run = run_create(session_id=session.pk, status=RunStatus.QUEUED, message=user_message)
        if on_commit is not None:
            transaction.on_commit(lambda: on_commit(run))
    return Accepted(run=run, message=user_message, created=True)


def _refuse_too_many_open_runs(owner_id: int) -> None:
    cap = settings.AGENTCHAT_MAX_OPEN_RUNS_PER_USER
    if runs_open_count(owner_id=owner_id) >= cap:
        raise ConflictError.for_field(
            "session",
            f"you have {cap} open runs, the most allowed at once (AGENTCHAT_MAX_OPEN_RUNS_PER_USER); "
            "wait for one to finish or cancel one",
        )


def turn_run(
    *,
    session_id: UUID | str,
    owner: OwnerScope = None,
    user_text: str,
    client_id: str | None = None,
    on_event: EventCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TurnResult:
    """Accept and execute one chat turn in this process (the `chat` command; see the module docstring).

    With `owner`, another user's session is not found. Everything the turn writes is the session owner's.
    """
    accepted = turn_accept(session_id=session_id, owner=owner, user_text=user_text, client_id=client_id)
    if not accepted.created:
        return _existing(accepted.run, accepted.message)
    return turn_execute(run_id=accepted.run.pk, on_event=on_event, should_cancel=should_cancel)


def turn_execute(
    *,
    run_id: UUID,
    lease_owner: str | None = None,
    on_event: EventCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TurnResult:
    """Run a queued turn: take its lease, stream the provider into the trace, write the reply.

    The lease's timer renews it and watches for a cancel, the wall time and a worker's shutdown,
    independently of tokens. A run that is not queued any more (another worker took it, or it was
    cancelled) is returned as it stands, and nothing is written.
    """
    queued = Run.objects.select_related("message").get(pk=run_id)
    user_message = queued.message
    if user_message is None:
        raise ConflictError.for_field("run", "answers no user message; only a chat turn runs here")
    session = session_get(session_id=queued.session_id)
    # Over the threshold before the user message came in: then this turn did not cross it.
    was_over_threshold = needs_compaction(
        session.status,
        max(0, session.tokens_since_checkpoint - user_message.token_count),
        session.route.context_window_tokens,
        compaction_threshold_percent(),
    )
    owner = lease_owner or process_worker_id()
    payload = {"message_seq": user_message.seq, **worker_identity()}
    run = run_claim(run_id=run_id, lease_owner=owner, lease_ms=settings.AGENTCHAT_RUN_LEASE_MS, payload=payload)
    if run is None:
        return _existing(Run.objects.select_related("route").get(pk=run_id), user_message)
    lease = Lease(run_id=run.pk, owner=owner)
    lease.start()
    started = time.monotonic()
    result: TurnResult | None = None
    try:
        result = _stream_turn(run, session, user_message, lease, on_event, should_cancel, was_over_threshold)
        return result
    finally:
        lease.close()
        run_lease_release(run_id=run.pk, lease_owner=owner)
        _log_run(run.pk, result, started)


def _stream_turn(
    run: Run,
    session: AgentSession,
    user_message: Message,
    lease: Lease,
    on_event: EventCallback | None,
    should_cancel: Callable[[], bool] | None,
    was_over_threshold: bool,
) -> TurnResult:
    budget = max(1, session.route.context_window_tokens - session.route.max_output_tokens)
    stream = _Stream(run, on_event)
    started = time.monotonic()
    try:
        adapter = adapter_for(session.route)
        adapter.ensure_ready()
        prompt = _prompt(context_inputs(session_id=session.pk, budget_tokens=budget))
        for event in _events_until_stopped(adapter.stream(prompt), lease.stop):
            if _run_cancelled(run.pk):
                return _cancelled(run, user_message, reason="")
            if should_cancel is not None and should_cancel():
                return _cancelled(run, user_message, reason="cancelled while the reply was streaming")
            stopped = _stopped(run, user_message, lease.stop())
            if stopped is not None:
                return stopped
            stream.feed(event)
            if stream.error is not None:
                break
        stopped = _stopped(run, user_message, lease.stop())
        if stopped is not None:
            return stopped
    except ConflictError:
        # The run was ended from outside (API, admin, the sweeper) while we were appending its events.
        if _run_cancelled(run.pk) or lease.stop() is not None:
            return _cancelled(run, user_message, reason="")
        raise
    except (AdapterError, DomainError) as exc:
        stream.feed(ErrorEvent(message=exc.message, code=exc.code))
    except Exception as exc:
        # A bug, not a provider answer: record it so the run is not left `running`, then let it surface.
        stream.feed(ErrorEvent(message=f"{type(exc).__name__}: {exc}", code="internal_error"))
        run_finish(run_id=run.pk, status=RunStatus.FAILED)
        raise
    if stream.error is None and not stream.text and not stream.calls:
        stream.feed(ErrorEvent(message="the provider streamed no text and no tool call", code="empty_reply"))
    if stream.error is not None:
        # Tokens the provider reported before it failed were still spent: they are recorded too.
        with transaction.atomic():
            usage = _usage_record(run, stream, latency_ms=int((time.monotonic() - started) * 1000))
            finished = run_finish(run_id=run.pk, status=RunStatus.FAILED)
        return TurnResult(run=finished, messages=(user_message,), text="", usage=usage, checkpoint=None)
    latency_ms = int((time.monotonic() - started) * 1000)
    return _complete(run, user_message, stream, latency_ms=latency_ms, was_over=was_over_threshold)


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()
# How often the turn loop looks at the lease's stop reason while the provider is silent.
STOP_POLL_S = 0.1


def _events_until_stopped(events: Iterator[RuntimeEvent], stop: Callable[[], Stop | None]) -> Iterator[RuntimeEvent]:
    """The adapter's events, read on a thread of their own so that a stop is seen while the provider
    is silent; the reader closes the provider stream once it is told to (at its next chunk)."""
    inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
    abandoned = threading.Event()

    def read() -> None:
        try:
            for event in events:
                inbox.put(event)
                if abandoned.is_set():
                    break
        except BaseException as exc:  # handed to the turn loop, which decides
            inbox.put(_Raised(exc))
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
            inbox.put(_DONE)

    reader = threading.Thread(target=read, name="provider-stream", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = inbox.get(timeout=STOP_POLL_S)
            except queue.Empty:
                if stop() is not None:
                    return
                continue
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield cast(RuntimeEvent, item)
    finally:
        abandoned.set()


def _stopped(run: Run, user_message: Message, stop: Stop | None) -> TurnResult | None:
    """End the run as the lease's stop reason says (nothing when someone else already ended it)."""
    if stop is None:
        return None
    if stop.kind == "cancel":
        reason = stop.reason or Run.objects.get(pk=run.pk).cancel_reason or CANCEL_REQUESTED_REASON
        try:
            return _cancelled(run, user_message, reason=reason)
        except ConflictError:
            pass
    elif stop.kind == "interrupt":
        run_interrupt(run_id=run.pk, error=stop.reason)
    return TurnResult(run=Run.objects.get(pk=run.pk), messages=(user_message,), text="", usage=None, checkpoint=None)


def _log_run(run_id: UUID, result: TurnResult | None, started: float) -> None:
    """One structured line per run: id, route, status, duration, tokens, attempt."""
    run = Run.objects.select_related("route").filter(pk=run_id).first()
    if run is None:
        return
    usage = result.usage if result is not None else None
    RUN_LOG.info(
        "%s",
        json.dumps(
            {
                "run": str(run.pk),
                "route": run.route.alias if run.route is not None else None,
                "status": run.status,
                "duration_ms": int((time.monotonic() - started) * 1000),
                "input_tokens": usage.input_tokens if usage is not None else None,
                "output_tokens": usage.output_tokens if usage is not None else None,
                "retries": run.attempt - 1,
                "error": run.error or None,
            }
        ),
    )


def _existing(run: Run, user_message: Message) -> TurnResult:
    """What a turn already wrote for `user_message`, as its run stands now (open or finished)."""
    replies: list[Message] = []
    if run.status == RunStatus.COMPLETED:
        for message in messages_after(session_id=run.session_id, after_seq=user_message.seq, limit=MAX_REPLY_MESSAGES):
            if message.role == MessageRole.USER or (run.finished_at and message.created > run.finished_at):
                break
            replies.append(message)
    finish = TraceEvent.objects.filter(run=run, type=TraceEventType.FINISH).order_by("-index").first()
    return TurnResult(
        run=run,
        messages=(user_message, *replies),
        text=run_text(run_id=run.pk) if run.status in (RunStatus.RUNNING, RunStatus.COMPLETED) else "",
        usage=UsageEvent.objects.filter(run=run).first(),
        checkpoint=Checkpoint.objects.filter(
            session_id=run.session_id, reason=CheckpointReason.RUN_END, state__run_id=str(run.pk)
        ).first(),
        finish_reason=str(finish.payload.get("reason")) if finish is not None else None,
        created=False,
    )


def _cancelled(run: Run, user_message: Message, *, reason: str) -> TurnResult:
    run = run_cancel(run_id=run.pk, reason=reason) if reason else Run.objects.get(pk=run.pk)
    return TurnResult(run=run, messages=(user_message,), text="", usage=None, checkpoint=None)


def _complete(run: Run, user_message: Message, stream: _Stream, *, latency_ms: int, was_over: bool) -> TurnResult:
    """Append the reply, record usage and close the run, all in one transaction."""
    session_id = run.session_id
    text = "".join(stream.text)
    appended: list[Message] = [user_message]
    with transaction.atomic():
        if stream.calls:
            call_parts: list[ToolCallPart] = [
                {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
                for call in stream.calls
            ]
            appended.append(
                message_append(session_id=session_id, role=MessageRole.ASSISTANT, parts=list(call_parts)).message
            )
            for result in stream.results:
                result_part: ToolResultPart = {
                    "type": "tool_result",
                    "tool_call_id": result.tool_call_id,
                    "content": result.content,
                    "is_error": result.is_error,
                }
                appended.append(
                    message_append(
                        session_id=session_id, role=MessageRole.TOOL, content=result.content, parts=[result_part]
                    ).message
                )
        if text:
            output_tokens = stream.usage.output_tokens if stream.usage is not None else None
            appended.append(
                message_append(
                    session_id=session_id, role=MessageRole.ASSISTANT, content=text, token_count=output_tokens
                ).message
            )
        usage = _usage_record(run, stream, latency_ms=latency_ms)
        finished = run_finish(run_id=run.pk, status=RunStatus.COMPLETED)
        checkpoint = _checkpoint_if_crossed(session_id, run, was_over=was_over, last=appended[-1])
    return TurnResult(
        run=finished,
        messages=tuple(appended),
        text=text,
        usage=usage,
        checkpoint=checkpoint,
        finish_reason=stream.finish.reason if stream.finish is not None else None,
    )


def _usage_record(run: Run, stream: _Stream, *, latency_ms: int) -> UsageEvent | None:
    """Record the usage the provider reported for this run (once: the request id is the run's)."""
    if stream.usage is None:
        return None
    return usage_record(
        owner=run.owner,
        request_id=f"run:{run.pk}",
        route_alias=run.route.alias if run.route is not None else None,
        session_id=run.session_id,
        run_id=run.pk,
        input_tokens=stream.usage.input_tokens,
        cached_input_tokens=stream.usage.cached_input_tokens,
        output_tokens=stream.usage.output_tokens,
        reasoning_tokens=stream.usage.reasoning_tokens,
        latency_ms=latency_ms,
    ).event


def _checkpoint_if_crossed(session_id: UUID, run: Run, *, was_over: bool, last: Message) -> Checkpoint | None:
    """A `run_end` checkpoint when this turn took the session over its compaction threshold."""
    session = session_get(session_id=session_id)
    if was_over or not session_needs_compaction(session):
        return None
    state: dict[str, Any] = {
        "run_id": str(run.pk),
        "route": session.route.alias,
        "context_fullness_percent": context_fullness_percent(session),
        "needs_compaction": True,
    }
    summary = (
        f"Context reached {context_fullness_percent(session)}% of {session.route.alias}'s window "
        f"after message #{session.last_seq}; last reply: {_quote(last.content)}"
    )
    return checkpoint_create(
        session_id=session_id,
        through_seq=session.last_seq,
        reason=CheckpointReason.RUN_END,
        summary=summary,
        state=state,
    )
