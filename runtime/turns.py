"""One chat turn end to end, the way the runner will drive the stores.

`turn_run` appends the user message, builds the context inputs (memory) and the request
(`runtime.prompt.turn_prompt`), opens a run, feeds the provider adapter's events into the run's
trace as they arrive (through the coalescer, `runtime.coalescer`: text deltas merged and written
every ~50 ms or ~4 KB, one transaction per flush, other events written at once after them), then
in one transaction appends the assistant message (with the reply's reasoning as `reasoning` parts,
and, when the model called tools, the calls with the text streamed before them, then the tool
messages), records the usage
(telemetry) and closes the run `completed`. It writes a `run_end` checkpoint when the turn makes
the session cross its compaction threshold.

Failure paths leave exactly one terminal state and no half-written assistant message:
- the adapter streams an `error` event, or raises: the run ends `failed` with the error recorded;
- the caller's `should_cancel()` turns true, or someone cancels the run (API, admin) while it
  streams: the run ends `cancelled`. A timer beside the stream (`runtime.watch.TurnWatch`) reads
  both every 0.25 s whether or not tokens arrive, and closes the provider's stream, so a silent
  provider is stopped within a second. On `should_cancel()` the buffered text is written before
  the cancel; a run cancelled on the store takes no more events;
- the text is empty or too long, or the route's adapter is blocked or disabled: InvalidInputError or
  ConflictError before anything is written (`turn_refusal` checks the same before a caller creates
  a session for the turn).

Turns run in two steps: `turn_accept` validates the turn and, in ONE transaction, appends the user
message and opens its run `queued` (the API then enqueues it for the workers and answers 202);
`turn_execute` claims a queued run under a lease (`runtime.worker.lease.Lease`: renewed on a timer,
watching for a cancel request, the maximum wall time and the worker's shutdown), streams it and
writes the reply. `turn_run` does both in this process (the `chat` command).

Retries never ask the model twice. The run's `run_started` event (written when a worker claims it)
names the message (`message_seq`) and the process running it. A retry
with the same `client_id` and the same text gets the run that already answers that message, open
or finished (`TurnResult.created` is False; the API answers 200), and nothing is written; the same
`client_id` with another text is a ConflictError.

Branches: a turn continues the session's active path (the user message goes under its leaf), and
every reply message goes under the message before it, named explicitly, so a branch switch while
the reply streams cannot graft it elsewhere. `edit_seq` appends the text as a sibling of that user
message (under the same parent) and answers it; `regenerate_seq` appends no user message and
answers that assistant reply's parent again, the new reply becoming the old one's sibling. Both are
refused (ConflictError) while the session has a queued or running run.
A message stored without a run (written before runs named their message, or appended directly)
runs once if it is still the session's last message, and is a ConflictError otherwise.

It lives in `runtime/`, the one app that may use core, memory and telemetry together.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Required, TypedDict, Unpack
from uuid import UUID

from django.conf import settings
from django.db import transaction

from core.config.readiness import route_health_reasons
from core.config.selectors import provider_config, route_config, route_health_get
from core.config.services import route_turn_outcome
from core.conversation.contracts import MessagePart
from core.conversation.events import ErrorEvent, Finish, Reasoning, RuntimeEvent, TextDelta, ToolCall, Usage
from core.conversation.models import OPEN_RUN_STATUSES
from core.conversation.selectors import (
    OwnerScope,
    compaction_threshold_percent,
    context_fullness_percent,
    message_get,
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
    run_events_append,
    run_finish,
    run_interrupt,
    run_lease_release,
)
from core.conversation.workers import worker_identity
from core.errors import ConflictError, DomainError, InvalidInputError, chars_at_most
from core.models import (
    AgentSession,
    Checkpoint,
    CheckpointReason,
    Message,
    MessageRole,
    Run,
    RunPurpose,
    RunStatus,
    TraceEvent,
    TraceEventType,
)
from memory.context import context_inputs
from runtime.agents import AgentInstructions, agent_instructions, session_agent
from runtime.coalescer import TraceCoalescer
from runtime.prompt import TurnPrompt, reasoning_parts, turn_prompt
from runtime.providers import AdapterError, ProviderAdapter, ToolDefinition, adapter_for
from runtime.tools.gateway import McpGateway
from runtime.tools.loop import ToolLoop
from runtime.tools.registry import Offer, tools_offered
from runtime.upkeep import after_turn
from runtime.watch import STREAMING_CANCEL_REASON, TurnWatch, run_cancelled
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


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_QUOTE_CHARS else text[: SUMMARY_QUOTE_CHARS - 1] + "…"


class _Stream:
    """Collects what the adapter streamed while the coalescer writes it to the trace in batches."""

    def __init__(self, coalescer: TraceCoalescer, on_event: EventCallback | None) -> None:
        self.coalescer = coalescer
        self.on_event = on_event
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.reasoning: list[Reasoning] = []
        self.usage: Usage | None = None
        self.finish: Finish | None = None
        self.error: ErrorEvent | None = None

    def feed(self, event: RuntimeEvent) -> None:
        self.coalescer.add(event)
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ToolCall):
            self.calls.append(event)
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish = event
        elif isinstance(event, ErrorEvent):
            self.error = event
        elif isinstance(event, Reasoning):
            # Never reply text: kept apart, as the reply's reasoning parts (its state goes back next request).
            self.reasoning.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def flush(self) -> None:
        """Write what the coalescer still buffers (ConflictError if the run was ended meanwhile)."""
        self.coalescer.flush()


# What one model call streamed, for a delegated member's rounds too (`runtime.delegation`).
ReplyStream = _Stream


def turn_refusal(*, session: AgentSession, user_text: object) -> ProviderAdapter:
    """The adapter for a turn on `session`, or the InvalidInputError/ConflictError that refuses it.

    Reads only; a caller that creates a session for the turn checks this first, in the same
    transaction, so a refused turn leaves nothing behind.
    """
    if not isinstance(user_text, str) or not user_text.strip():
        raise InvalidInputError.for_field("text", "empty; give the message to send")
    chars_at_most("text", user_text, MAX_USER_TEXT_CHARS)
    adapter = adapter_for(session.route)
    status = adapter.status()
    if status.state != "ready":
        raise ConflictError.for_field(
            "route", f"{session.route.alias!r} is {status.state}: {'; '.join(status.reasons)}"
        )
    # What earlier turns or a probe taught: a refused key (still the same value) or an unknown model.
    blocks = route_health_reasons(
        route_config(session.route),
        provider_config(session.route.provider),
        route_health_get(route_id=session.route_id),
    )
    if blocks:
        raise ConflictError.for_field("route", f"{session.route.alias!r} is blocked: {'; '.join(blocks)}")
    return adapter


def _branch_point(session: AgentSession, *, seq: int, role: MessageRole) -> int:
    """The seq of the parent of message `seq` (0: it is a first message), which must have `role`."""
    target = message_get(session_id=session.pk, seq=seq)
    if target.role != role:
        verb = "edit a user message" if role == MessageRole.USER else "regenerate an assistant reply"
        raise InvalidInputError.for_field("seq", f"message #{seq} is a {target.role} message; {verb}")
    parent = Message.objects.filter(pk=target.parent_id).values_list("seq", flat=True).first()
    if parent is None and role == MessageRole.ASSISTANT:
        raise InvalidInputError.for_field("seq", f"message #{seq} answers nothing; regenerate a reply to a message")
    return parent or 0


def _refuse_open_run(session_id: UUID) -> None:
    """In the caller's transaction, with the session row locked: 409 while a run is queued or running."""
    list(AgentSession.objects.select_for_update().filter(pk=session_id).values_list("pk", flat=True))
    if Run.objects.filter(session_id=session_id, status__in=OPEN_RUN_STATUSES, purpose=RunPurpose.CHAT).exists():
        raise ConflictError.for_field("session", "has a run in progress; wait for it to finish or cancel it first")


@dataclass(frozen=True)
class Accepted:
    """A turn accepted: the user message it answers and its run (`created` False when a retry found them)."""

    run: Run
    message: Message
    created: bool
    # For a regeneration: the reply it answers again (the new one becomes its sibling).
    regenerates_seq: int | None = None


def turn_accept(
    *,
    session_id: UUID | str,
    owner: OwnerScope = None,
    user_text: str = "",
    client_id: str | None = None,
    edit_seq: int | None = None,
    regenerate_seq: int | None = None,
    on_commit: Callable[[Run], None] | None = None,
) -> Accepted:
    """Validate a turn, then in ONE transaction append the user message and open its run `queued`.

    `edit_seq`: the text replaces that user message as its sibling; `regenerate_seq`: no text and no
    new user message, the run answers that assistant reply's parent again. A retry with the same
    `client_id` and text finds the run that answers that message and writes nothing. `on_commit`
    runs after the commit (the API enqueues the run's task there). With `owner`, another user's
    session is not found. Everything the turn writes is the session owner's.
    """
    if edit_seq is not None and regenerate_seq is not None:
        raise InvalidInputError.for_field("seq", "edit or regenerate, not both")
    regenerating = regenerate_seq is not None
    if not regenerating and (not isinstance(user_text, str) or not user_text.strip()):
        raise InvalidInputError.for_field("text", "empty; give the message to send")
    session = session_get(session_id=session_id, owner=owner)
    turn_refusal(session=session, user_text="regenerate" if regenerating else user_text)
    branching = edit_seq is not None or regenerating
    parent_seq: int | None = None
    if edit_seq is not None:
        parent_seq = _branch_point(session, seq=edit_seq, role=MessageRole.USER)
    if regenerate_seq is not None:
        parent_seq = _branch_point(session, seq=regenerate_seq, role=MessageRole.ASSISTANT)
    with transaction.atomic():
        if regenerating:
            _refuse_open_run(session.pk)
            user_message = message_get(session_id=session.pk, seq=int(parent_seq or 0))
        else:
            # The message and its run commit together: a retry sees both or neither (it waits on the
            # session's lock, PostgreSQL, or on the write lock, SQLite), never a message without its run.
            appended = message_append(
                session_id=session.pk,
                role=MessageRole.USER,
                content=user_text,
                client_id=client_id,
                parent_seq=parent_seq,
            )
            user_message = appended.record
            if not appended.created:
                existing = run_for_message(session_id=session.pk, message_seq=user_message.seq)
                if existing is not None:
                    return Accepted(run=existing, message=user_message, created=False)
                if user_message.seq != session.last_seq and not branching:
                    seq = user_message.seq
                    raise ConflictError.for_field(
                        "client_id",
                        f"{client_id!r} names message #{seq}, which other messages already follow; read the "
                        f"messages after #{seq}, or send a new message with a new client_id",
                    )
            if branching:
                _refuse_open_run(session.pk)  # an exception here rolls the appended edit back with it
        _refuse_too_many_open_runs(session.owner_id)
        run = run_create(session_id=session.pk, status=RunStatus.QUEUED, message=user_message)
        accepted = Accepted(run=run, message=user_message, created=True, regenerates_seq=regenerate_seq)
        if on_commit is not None:
            transaction.on_commit(lambda: on_commit(run))
    return accepted


def _refuse_too_many_open_runs(owner_id: int) -> None:
    cap = settings.AGENTCHAT_MAX_OPEN_RUNS_PER_USER
    if runs_open_count(owner_id=owner_id) >= cap:
        raise ConflictError.for_field(
            "session",
            f"you have {cap} open runs, the most allowed at once (AGENTCHAT_MAX_OPEN_RUNS_PER_USER); "
            "wait for one to finish or cancel one",
        )


class TurnAsked(TypedDict, total=False):
    """A turn as `turn_accept` takes it (but for `on_commit`): what `turn_run` passes on."""

    session_id: Required[UUID | str]
    owner: OwnerScope
    user_text: str
    client_id: str | None
    edit_seq: int | None
    regenerate_seq: int | None


def turn_run(
    *,
    on_event: EventCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    gateway: McpGateway | None = None,
    **asked: Unpack[TurnAsked],
) -> TurnResult:
    """Accept and execute one chat turn in this process (the `chat` command; see the module docstring)."""
    accepted = turn_accept(**asked)
    if not accepted.created:
        return _existing(accepted.run, accepted.message)
    return turn_execute(
        run_id=accepted.run.pk,
        on_event=on_event,
        should_cancel=should_cancel,
        regenerates_seq=asked.get("regenerate_seq"),
        gateway=gateway,
    )


def turn_execute(
    *,
    run_id: UUID,
    lease_owner: str | None = None,
    on_event: EventCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    regenerates_seq: int | None = None,
    gateway: McpGateway | None = None,
) -> TurnResult:
    """Run a queued turn: take its lease, stream the provider into the trace, write the reply.

    `gateway` reaches the MCP servers; without one their tools are left out of the turn (a trace
    note says so). A run `awaiting_approval` whose calls are all decided is taken the same way.

    The lease's timer renews it and watches for a cancel request, the wall time and a worker's
    shutdown, independently of tokens; the turn's watch closes the provider's stream when one comes.
    A run that is not queued any more (another worker took it, or it was cancelled) is returned as
    it stands, and nothing is written. `regenerates_seq` names the reply a regeneration answers again.
    """
    queued = Run.objects.select_related("message").get(pk=run_id)
    user_message = queued.message
    if user_message is None:
        raise ConflictError.for_field("run", "answers no user message; only a chat turn runs here")
    session = session_get(session_id=queued.chat_session_id)
    # Over the threshold before the user message came in: then this turn did not cross it.
    already = 0 if regenerates_seq is not None else user_message.token_count
    was_over_threshold = needs_compaction(
        session.status,
        max(0, session.tokens_since_checkpoint - already),
        session.route.context_window_tokens,
        compaction_threshold_percent(),
    )
    owner = lease_owner or process_worker_id()
    payload: dict[str, Any] = {"message_seq": user_message.seq, **worker_identity()}
    if regenerates_seq is not None:
        payload["regenerates_seq"] = regenerates_seq
    run = run_claim(run_id=run_id, lease_owner=owner, lease_ms=settings.AGENTCHAT_RUN_LEASE_MS, payload=payload)
    if run is None:
        return _existing(Run.objects.select_related("route").get(pk=run_id), user_message)
    appended = () if regenerates_seq is not None else (user_message,)
    lease = Lease(run_id=run.pk, owner=owner)
    lease.start()
    started = time.monotonic()
    result: TurnResult | None = None
    adapter: ProviderAdapter | None = None
    try:
        adapter = adapter_for(session.route)
        result = _stream_turn(
            run,
            user_message,
            lease,
            on_event,
            should_cancel,
            was_over_threshold,
            appended=appended,
            adapter=adapter,
            gateway=gateway,
        )
        return result
    finally:
        lease.close()
        run_lease_release(run_id=run.pk, lease_owner=owner)
        _log_run(run.pk, result, started, request_id=adapter.request_id if adapter is not None else None)


class _LeasedWatch(TurnWatch):
    """The turn's watch, also stopping the turn when its lease says so (a cancel request, the wall time, a shutdown)."""

    def __init__(self, *, lease: Lease, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lease = lease

    def cancel_requested(self) -> str | None:
        if self.lease.stop() is not None:
            return LEASE_STOPPED
        return super().cancel_requested()


# The watch's reason when the lease stopped the turn (the lease's `Stop` says how the run ends).
LEASE_STOPPED = "the run's lease stopped it"


def _stream_turn(
    run: Run,
    user_message: Message,
    lease: Lease,
    on_event: EventCallback | None,
    should_cancel: Callable[[], bool] | None,
    was_over_threshold: bool,
    *,
    appended: tuple[Message, ...],
    adapter: ProviderAdapter,
    gateway: McpGateway | None = None,
) -> TurnResult:
    """Answer `user_message` (the path ending there is the context), calling tools in rounds, and store the reply.

    Each round: one model call, its own usage event and assistant message (text and tool-call
    parts); its calls recorded as tool invocations, checked against their schemas, run (or the
    run parked `awaiting_approval` when one needs an approval or a client's result), and each
    result appended as a tool message; then the model is called again. A resumed run (its calls
    decided) first runs and appends the calls its last round left. `appended` is what the turn
    already wrote (the user message; nothing for a regeneration). Nothing is held across a stream.
    """
    run = Run.objects.select_related("agent").get(pk=run.pk)
    session = session_get(session_id=run.chat_session_id)
    budget = max(1, session.route.context_window_tokens - session.route.max_output_tokens)
    coalescer = TraceCoalescer(run.pk)
    # Inside a caller's transaction the run is not committed: no other connection can cancel it.
    watch = _LeasedWatch(
        lease=lease,
        run_id=run.pk,
        close_stream=adapter.close,
        should_cancel=should_cancel,
        coalescer=coalescer,
        read_store=not transaction.get_connection().in_atomic_block,
    )
    offer = tools_offered(run=run, gateway=gateway)
    loop = ToolLoop(run=run, offer=offer, gateway=gateway, leaf=user_message.seq)
    messages = list(appended)
    started = time.monotonic()
    with watch:
        if offer.notes:
            run_events_append(run_id=run.pk, events=[(TraceEventType.TOOLS_NOTE, {"message": n}) for n in offer.notes])
        messages += loop.resume(on_event)
        while True:
            stream = _Stream(coalescer, on_event)
            stopped = _model_call(
                stream, watch, adapter, should_cancel, run, lease, appended, loop, offer, session, budget
            )
            if stopped is not None:
                return stopped
            if watch.cancelled.is_set():
                stop = lease.stop() if watch.reason == LEASE_STOPPED else None
                return _stopped(run, appended, stream, reason=watch.reason, stop=stop)
            if stream.error is None and not stream.text and not stream.calls:
                stream.feed(ErrorEvent(message="the provider streamed no text and no tool call", code="empty_reply"))
            if stream.error is None and stream.calls and loop.rounds >= loop.max_rounds:
                stream.feed(
                    ErrorEvent(
                        message=f"stopped after {loop.rounds} rounds of tool calls (the agent's max_tool_rounds); "
                        f"the model still asked for {', '.join(call.name for call in stream.calls)}",
                        code="tool_rounds_exceeded",
                    )
                )
                stream.flush()
            latency_ms = int((time.monotonic() - started) * 1000)
            if stream.error is not None:
                # Tokens the provider reported before it failed were still spent: they are recorded too.
                with transaction.atomic():
                    usage = _usage_record(run, stream, latency_ms=latency_ms, request_id=loop.request_id())
                    finished = run_finish(run_id=run.pk, status=RunStatus.FAILED)
                    # A refused key or an unknown model blocks the route until the key changes or a later success.
                    route_turn_outcome(route=session.route, code=stream.error.code)
                return TurnResult(run=finished, messages=tuple(messages), text="", usage=usage, checkpoint=None)
            if not stream.calls:
                result = _complete(
                    run,
                    loop.leaf,
                    tuple(messages),
                    stream,
                    latency_ms=latency_ms,
                    was_over=was_over_threshold,
                    request_id=loop.request_id(),
                )
                route_turn_outcome(route=session.route, code="")  # a success lifts a block the route still had
                after_turn(result.run)  # compaction when over the threshold, facts when configured (after the commit)
                return result
            with transaction.atomic():
                _usage_record(run, stream, latency_ms=latency_ms, answered=True, request_id=loop.request_id())
                text = "".join(stream.text)
                messages.append(loop.calls_record(text, stream.calls, reasoning_parts(stream.reasoning), lease.owner))
            started = time.monotonic()
            if loop.waiting:
                return TurnResult(
                    run=Run.objects.get(pk=run.pk), messages=tuple(messages), text="", usage=None, checkpoint=None
                )
            messages += loop.results_append(on_event)


def _model_call(
    stream: _Stream,
    watch: _LeasedWatch,
    adapter: ProviderAdapter,
    should_cancel: Callable[[], bool] | None,
    run: Run,
    lease: Lease,
    appended: tuple[Message, ...],
    loop: ToolLoop,
    offer: Offer,
    session: AgentSession,
    budget: int,
) -> TurnResult | None:
    """Stream one model call into `stream` (its events into the trace); a TurnResult when the run was ended outside."""
    events: Generator[RuntimeEvent, None, None] | None = None
    try:
        adapter.ensure_ready()  # the route may have been blocked or disabled while the run was queued
        prompt = _agent_prompt(adapter, session, budget, leaf=loop.leaf, tools=offer.definitions())
        events = adapter.stream(prompt.messages, tools=prompt.tools)
        for event in events:
            if watch.cancelled.is_set():
                break
            if should_cancel is not None and should_cancel():
                watch.trip(STREAMING_CANCEL_REASON)
                break
            stream.feed(event)
            if stream.error is not None:
                break
        if not watch.cancelled.is_set():
            stream.flush()
    except ConflictError:
        # The run was ended from outside (API, admin, the sweeper) while we were appending its events.
        if run_cancelled(run.pk) or lease.stop() is not None:
            return _cancelled(run, appended, reason="")
        raise
    except (AdapterError, DomainError) as exc:
        stream.feed(ErrorEvent(message=exc.message, code=exc.code))
        stream.flush()
    except Exception as exc:
        # A bug, not a provider answer: record it so the run is not left `running`, then let it surface.
        stream.feed(ErrorEvent(message=f"{type(exc).__name__}: {exc}", code="internal_error"))
        stream.flush()
        run_finish(run_id=run.pk, status=RunStatus.FAILED)
        raise
    finally:
        if events is not None:
            events.close()  # closes the provider's HTTP stream when the loop left early
    return None


def _agent_prompt(
    adapter: ProviderAdapter, session: AgentSession, budget: int, *, leaf: int, tools: Sequence[ToolDefinition] = ()
) -> TurnPrompt:
    """The turn's request: the session's agent's instructions and skills (at most half the budget),
    then the context inputs within what is left (a session without an agent: the context only), offering `tools`."""
    agent = session_agent(session)
    instructions = agent_instructions(agent, budget_tokens=budget // 2) if agent is not None else AgentInstructions()
    bundle = context_inputs(session_id=session.pk, budget_tokens=max(1, budget - instructions.tokens), leaf=leaf)
    return turn_prompt(adapter=adapter, bundle=bundle, tools=tools, instructions=instructions.text)


def _log_run(run_id: UUID, result: TurnResult | None, started: float, *, request_id: str | None) -> None:
    """One structured line per run: id, route, status, duration, tokens, attempt, the provider's request id."""
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
                "provider_request_id": request_id,
            }
        ),
    )


def _existing(run: Run, user_message: Message) -> TurnResult:
    """What a turn already wrote for `user_message`, as its run stands now (open or finished)."""
    replies: list[Message] = []
    if run.status == RunStatus.COMPLETED:
        for message in messages_after(
            session_id=run.chat_session_id, after_seq=user_message.seq, limit=MAX_REPLY_MESSAGES
        ):
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


def _stopped(
    run: Run, appended: tuple[Message, ...], stream: _Stream, *, reason: str, stop: Stop | None = None
) -> TurnResult:
    """End a run whose turn was stopped: what streamed before it is written first, then how it ends.

    `stop` is the lease's reason (a cancel request, the wall time, the worker's shutdown; `lost`:
    someone else ended the run, so nothing more is written). Otherwise `reason` is the caller's, or
    empty when the run was already cancelled on the store (nothing more can be written to it).
    """
    if stop is not None:
        as_it_stands = TurnResult(
            run=Run.objects.get(pk=run.pk), messages=appended, text="", usage=None, checkpoint=None
        )
        if stop.kind == "lost":
            return as_it_stands
        try:
            stream.flush()
            if stop.kind == "interrupt":
                run_interrupt(run_id=run.pk, error=stop.reason)
                return TurnResult(
                    run=Run.objects.get(pk=run.pk), messages=appended, text="", usage=None, checkpoint=None
                )
            cancel_reason = stop.reason or Run.objects.get(pk=run.pk).cancel_reason or CANCEL_REQUESTED_REASON
            return _cancelled(run, appended, reason=cancel_reason)
        except ConflictError:
            return TurnResult(run=Run.objects.get(pk=run.pk), messages=appended, text="", usage=None, checkpoint=None)
    if reason:
        try:
            stream.flush()
            return _cancelled(run, appended, reason=reason)
        except ConflictError:
            if not run_cancelled(run.pk):
                raise
    return _cancelled(run, appended, reason="")


def _cancelled(run: Run, appended: tuple[Message, ...], *, reason: str) -> TurnResult:
    run = run_cancel(run_id=run.pk, reason=reason) if reason else Run.objects.get(pk=run.pk)
    return TurnResult(run=run, messages=appended, text="", usage=None, checkpoint=None)


def _complete(
    run: Run,
    parent_seq: int,
    already: tuple[Message, ...],
    stream: _Stream,
    *,
    latency_ms: int,
    was_over: bool,
    request_id: str,
) -> TurnResult:
    """Append the final reply under `parent_seq`, record this model call's usage and close the run.

    All in one transaction; the reply becomes the session's leaf.
    """
    session_id = run.chat_session_id
    text = "".join(stream.text)
    output_tokens = stream.usage.output_tokens if stream.usage is not None else None
    reasoning: list[MessagePart] = list(reasoning_parts(stream.reasoning))
    with transaction.atomic():
        message = message_append(
            session_id=session_id,
            parent_seq=parent_seq,
            role=MessageRole.ASSISTANT,
            content=text,
            parts=reasoning or None,
            token_count=output_tokens,
        ).record
        appended = (*already, message)
        usage = _usage_record(run, stream, latency_ms=latency_ms, answered=True, request_id=request_id)
        finished = run_finish(run_id=run.pk, status=RunStatus.COMPLETED)
        checkpoint = _checkpoint_if_crossed(session_id, run, was_over=was_over, last=message)
    return TurnResult(
        run=finished,
        messages=appended,
        text=text,
        usage=usage,
        checkpoint=checkpoint,
        finish_reason=stream.finish.reason if stream.finish is not None else None,
    )


def _usage_record(
    run: Run, stream: _Stream, *, latency_ms: int, answered: bool = False, request_id: str
) -> UsageEvent | None:
    """Record the usage the provider reported for one model call of this run (once: `request_id` is the call's).

    A provider that `answered` (the reply is complete) without reporting usage, as llama.cpp's
    server does while streaming, still spent tokens: its event is recorded with every count unknown
    (None), never as zeros. A failed turn without a report records nothing.
    """
    usage = stream.usage
    if usage is None:
        if not answered:
            return None
        usage = Usage(input_tokens=None, output_tokens=None)
    return usage_record(
        owner=run.owner,
        request_id=request_id,
        route_alias=run.route.alias if run.route is not None else None,
        session_id=run.session_id,
        run_id=run.pk,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_input_tokens=usage.cache_write_input_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
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
        f"after message #{last.seq}; last reply: {_quote(last.content)}"
    )
    return checkpoint_create(
        session_id=session_id,
        through_seq=last.seq,
        reason=CheckpointReason.RUN_END,
        summary=summary,
        state=state,
    )
