"""Memory upkeep by the model: compaction summaries, daily episodes and durable facts.

Every upkeep call is a run with its `purpose` (`compaction`, `episode`, `facts`), its trace, its
usage (tagged with the purpose) and its error, opened by `core.conversation.services.upkeep_run_open`
under a lease the worker renews (`runtime.worker.lease.Lease`), so a killed worker's run ends
`interrupted` through the sweeper like a chat turn's.

- **Compaction** (`session_compact`): when a turn ends with its session over the compaction
  threshold, `after_turn` enqueues `compact_session`. It summarises the active path after the
  previous summary checkpoint up to a cut point, keeping the last `[memory] keep_recent_messages`
  messages verbatim (a tool result stays with the call before it), building on the previous
  summary; a transcript larger than the summary route's window is folded in chunks, each building
  on the last. The `compaction` checkpoint, the usage and the run's end are written in ONE
  transaction at the end: a task killed before it leaves nothing but its run (ended `interrupted`
  by the sweeper). Two tasks for one session open one run (`run_one_open_compaction_per_session`):
  the second leaves at once. A failed summary ends the run `failed` with the reason; the session
  is untouched and stays usable.
- **Episodes** (`episodes_write`): one whole-day episode per user and local day
  (AGENTCHAT_TIMEZONE) with messages, once the day is over: the worker writes yesterday's when it
  first runs after midnight (`episodes_due`), `manage.py write_episodes` any day or every missing
  one (`--backfill`). Rewriting replaces (`episode_upsert`). The conversations it covers are in
  its text and, each with its message range, in `session_refs`.
- **Facts** (`facts_extract`, off unless `[memory] extract_facts = true`): after a turn, the model
  lists durable facts as `key: fact` lines, stored through `memory_write` as the model's
  (deduplicated by key, never replacing one the user wrote; the facts run, the session and the
  turn's messages as provenance, the secret check refusing a secret-looking one).

The route is `[memory] summary_route`, or the session's own (episodes: the default route).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from core.config.contracts import MemoryConfig
from core.config.selectors import memory_config, route_resolve
from core.conversation.contracts import estimate_tokens
from core.conversation.events import ErrorEvent, TextDelta, Usage
from core.conversation.models import CheckpointReason, MessageRole, RunPurpose, RunStatus, TraceEventType
from core.conversation.selectors import (
    UNBOUNDED_BYTES,
    checkpoint_on_path,
    path_page,
    session_get,
    session_needs_compaction,
)
from core.conversation.services import (
    MAX_SUMMARY_CHARS,
    checkpoint_create,
    run_events_append,
    run_finish,
    run_lease_release,
    upkeep_run_open,
)
from core.errors import ConflictError, DomainError, InvalidInputError
from core.models import AgentSession, Checkpoint, Message, ModelRoute, Run
from memory.models import DailyEpisode, EpisodeSource, MemoryKind, MemorySource
from memory.services import SessionRef, episode_upsert, memory_write
from runtime.providers import AdapterError, PromptMessage, adapter_for
from runtime.worker.lease import Lease, process_worker_id
from telemetry.services import usage_record

LOG = logging.getLogger("agentchat.upkeep")
# A message longer than this is cut in the transcript (the summary needs its gist, not all of it).
MESSAGE_CHARS = 4_000
# Tokens kept free in the summary route's window besides its output and the instructions.
WINDOW_MARGIN_TOKENS = 256
PATH_CHUNK = 500
FACT_LINE = re.compile(r"^\s*[-*]?\s*([a-z][a-z0-9_.-]{0,99})\s*:\s*(.+?)\s*$")
MAX_FACTS = 20


class UpkeepError(Exception):
    """A model call of an upkeep run failed; `reason` is what the run records."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Spent:
    """What the model calls of one run reported, summed (None: a count some call did not report)."""

    calls: int = 0
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    cached_input_tokens: int | None = 0
    cache_write_input_tokens: int | None = 0
    reasoning_tokens: int | None = 0
    latency_ms: int = 0
    reported: bool = False

    def add(self, usage: Usage | None, latency_ms: int) -> None:
        self.calls += 1
        self.latency_ms += latency_ms
        for name in (
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_input_tokens",
            "reasoning_tokens",
        ):
            value = getattr(usage, name) if usage is not None else None
            current = getattr(self, name)
            setattr(self, name, None if value is None or current is None else current + value)
        self.reported = self.reported or usage is not None


@dataclass
class _UpkeepRun:
    """An open upkeep run, its route, its lease and what its calls spent."""

    run: Run
    route: ModelRoute
    lease: Lease
    spent: _Spent = field(default_factory=_Spent)

    def ask(self, instructions: str, material: str) -> str:
        """One model call: `instructions` as the system text, `material` as the user message; the reply text."""
        if self.lease.stop() is not None:
            raise UpkeepError(f"stopped: {self.lease.stop()}")
        adapter = adapter_for(self.route)
        started = time.monotonic()
        text: list[str] = []
        usage: Usage | None = None
        error: ErrorEvent | None = None
        try:
            adapter.ensure_ready()
            events = adapter.stream(
                (PromptMessage(role="system", content=instructions), PromptMessage(role="user", content=material))
            )
            try:
                for event in events:
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    elif isinstance(event, Usage):
                        usage = event
                    elif isinstance(event, ErrorEvent):
                        error = event
                        break
            finally:
                events.close()
        except (AdapterError, DomainError) as exc:
            error = ErrorEvent(message=exc.message, code=exc.code)
        self.spent.add(usage, int((time.monotonic() - started) * 1000))
        answer = "".join(text).strip()
        trace: list[tuple[str, dict[str, Any] | None]] = []
        if answer:
            trace.append((TraceEventType.TEXT_DELTA, {"text": answer[:MAX_SUMMARY_CHARS]}))
        if usage is not None:
            trace.append((TraceEventType.USAGE, _usage_payload(usage)))
        if trace:
            run_events_append(run_id=self.run.pk, events=trace)
        if error is not None:
            raise UpkeepError(f"{self.route.alias}: {error.message}")
        if not answer:
            raise UpkeepError(f"{self.route.alias}: the model answered with no text")
        return answer

    def usage_write(self) -> None:
        """Record what the calls spent, tagged with the run's purpose (inside the caller's transaction)."""
        if self.spent.calls == 0:
            return
        counts = {
            name: getattr(self.spent, name) if self.spent.reported else None
            for name in ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens")
        }
        usage_record(
            owner=self.run.owner,
            request_id=f"run:{self.run.pk}",
            route_alias=self.route.alias,
            session_id=self.run.session_id,
            run_id=self.run.pk,
            reasoning_tokens=self.spent.reasoning_tokens if self.spent.reported else None,
            latency_ms=self.spent.latency_ms,
            purpose=self.run.purpose,
            **counts,
        )


def _usage_payload(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_input_tokens": usage.cache_write_input_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _open(
    *, owner: AbstractBaseUser, purpose: str, route: ModelRoute, session_id: UUID | None, lease_owner: str
) -> _UpkeepRun:
    """Open the upkeep run (ConflictError: one is open already) and start its lease."""
    lease_ms = settings.AGENTCHAT_RUN_LEASE_MS
    run = upkeep_run_open(
        owner=owner, purpose=purpose, route=route, session_id=session_id, lease_owner=lease_owner, lease_ms=lease_ms
    )
    lease = Lease(run_id=run.pk, owner=lease_owner)
    lease.start()
    return _UpkeepRun(run=run, route=route, lease=lease)


def _fail(upkeep: _UpkeepRun, reason: str) -> Run:
    """End the run `failed` with `reason`, recording what its calls spent, in one transaction."""
    LOG.warning("%s run %s failed: %s", upkeep.run.purpose, upkeep.run.pk, reason)
    with transaction.atomic():
        upkeep.usage_write()
        return run_finish(run_id=upkeep.run.pk, status=RunStatus.FAILED, error=reason[:2000])


def _close(upkeep: _UpkeepRun) -> None:
    upkeep.lease.close()
    run_lease_release(run_id=upkeep.run.pk, lease_owner=upkeep.lease.owner)


def _summary_route(config: MemoryConfig, fallback: ModelRoute) -> ModelRoute:
    return route_resolve(config.summary_route) if config.summary_route else fallback


def _line(message: Message) -> str:
    text = " ".join(message.content.split())
    if len(text) > MESSAGE_CHARS:
        text = text[: MESSAGE_CHARS - 1] + "…"
    return f"[#{message.seq} {message.role}] {text}"


def _chunks(lines: Sequence[str], budget_tokens: int) -> Iterator[list[str]]:
    """`lines` in order, in groups whose estimated tokens stay within `budget_tokens` (one line at least)."""
    group: list[str] = []
    used = 0
    for line in lines:
        tokens = estimate_tokens(line) + 1
        if group and used + tokens > budget_tokens:
            yield group
            group, used = [], 0
        group.append(line)
        used += tokens
    if group:
        yield group


def _fold(upkeep: _UpkeepRun, instructions: str, earlier: str, lines: Sequence[str], heading: str) -> str:
    """The model's summary of `lines` building on `earlier`, in as many calls as the route's window needs."""
    route = upkeep.route
    window = route.context_window_tokens - route.max_output_tokens - WINDOW_MARGIN_TOKENS
    summary = earlier
    for group in _chunks(lines, max(64, window - estimate_tokens(instructions) - estimate_tokens(summary))):
        before = f"Earlier summary:\n{summary}\n\n" if summary else ""
        summary = upkeep.ask(instructions, f"{before}{heading}:\n" + "\n".join(group))
    return _clip(summary)


def _clip(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Compaction -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompactionResult:
    """What one compaction task did: `written`, `not_due`, `busy` (another task is at it), `nothing` or `failed`."""

    outcome: str
    run: Run | None = None
    checkpoint: Checkpoint | None = None
    reason: str = ""


def _path_after(session_id: UUID, leaf: int, after_seq: int) -> list[Message]:
    """The active path's messages after `after_seq` up to `leaf`, in order (read in chunks from the leaf)."""
    newest_first: list[Message] = []
    start, before = leaf, False
    walk: dict[str, Any] = {"after_seq": after_seq, "limit": PATH_CHUNK, "budget_bytes": UNBOUNDED_BYTES}
    while True:
        page = path_page(session_id=session_id, start_seq=start, before=before, **walk)
        newest_first.extend(reversed(page.messages))
        if page.next_before_seq is None:
            break
        start, before = page.next_before_seq, True
    newest_first.reverse()
    return newest_first


def compaction_cut(messages: Sequence[Message], keep_recent: int) -> int:
    """How many of `messages` (oldest first) to fold: all but the last `keep_recent`, never
    separating a tool result from the call it answers."""
    cut = max(0, len(messages) - keep_recent)
    while 0 < cut < len(messages) and messages[cut].role == MessageRole.TOOL:
        cut += 1
    return cut


def session_compact(*, session_id: UUID | str, lease_owner: str | None = None, force: bool = False) -> CompactionResult:
    """Fold the session's older messages into a `compaction` checkpoint (see the module docstring).

    Without `force`, only a session over its threshold is compacted.
    """
    session = session_get(session_id=session_id)
    if not force and not session_needs_compaction(session):
        return CompactionResult(outcome="not_due")
    config = memory_config()
    route = _summary_route(config, session.route)
    try:
        upkeep = _open(
            owner=session.owner,
            purpose=RunPurpose.COMPACTION,
            route=route,
            session_id=session.pk,
            lease_owner=lease_owner or process_worker_id(),
        )
    except ConflictError as exc:
        return CompactionResult(outcome="busy", reason=exc.message)
    try:
        return _compact(upkeep, session, config)
    finally:
        _close(upkeep)


def _compact(upkeep: _UpkeepRun, session: AgentSession, config: MemoryConfig) -> CompactionResult:
    leaf = session.leaf
    previous = checkpoint_on_path(session_id=session.pk, leaf=leaf)
    floor = previous.through_seq if previous is not None else 0
    messages = _path_after(session.pk, leaf, floor)
    cut = compaction_cut(messages, config.keep_recent_messages)
    if cut == 0:
        with transaction.atomic():
            finished = run_finish(run_id=upkeep.run.pk, status=RunStatus.COMPLETED)
        return CompactionResult(outcome="nothing", run=finished, reason="no message before the recent ones to fold")
    folded = messages[:cut]
    try:
        summary = _fold(
            upkeep,
            config.compaction_prompt,
            previous.summary if previous is not None else "",
            [_line(message) for message in folded],
            "Conversation to fold in",
        )
    except UpkeepError as exc:
        return CompactionResult(outcome="failed", run=_fail(upkeep, exc.reason), reason=exc.reason)
    through = folded[-1].seq
    state = {
        "run_id": str(upkeep.run.pk),
        "route": upkeep.route.alias,
        "leaf": leaf,
        "from_seq": folded[0].seq,
        "messages_folded": len(folded),
        "previous_checkpoint": previous.pk if previous is not None else None,
    }
    try:
        with transaction.atomic():
            checkpoint = checkpoint_create(
                session_id=session.pk,
                through_seq=through,
                reason=CheckpointReason.COMPACTION,
                summary=summary,
                state=state,
                token_count=estimate_tokens(summary),
            )
            upkeep.usage_write()
            finished = run_finish(run_id=upkeep.run.pk, status=RunStatus.COMPLETED)
    except (InvalidInputError, ConflictError) as exc:
        # The branch was switched or the session archived while the model wrote: nothing is kept.
        return CompactionResult(outcome="failed", run=_fail(upkeep, exc.message), reason=exc.message)
    return CompactionResult(outcome="written", run=finished, checkpoint=checkpoint)


# --- Daily episodes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeOutcome:
    """One user's episode of one day: `written`, `kept` (already there), `busy` or `failed`."""

    owner_id: int
    day: dt.date
    outcome: str
    episode: DailyEpisode | None = None
    run: Run | None = None
    reason: str = ""


def _day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.AGENTCHAT_TIMEZONE)


def local_today(now: dt.datetime | None = None) -> dt.date:
    """Today in AGENTCHAT_TIMEZONE at `now` (default: the clock)."""
    return (now or timezone.now()).astimezone(_zone()).date()


def days_with_messages(*, before: dt.date) -> list[dt.date]:
    """Every local day before `before` on which some message was written, oldest first."""
    zone = _zone()
    first = Message.objects.order_by("created").values_list("created", flat=True).first()
    if first is None:
        return []
    days: list[dt.date] = []
    day = first.astimezone(zone).date()
    while day < before:
        start, end = _day_bounds(day, zone)
        if Message.objects.filter(created__gte=start, created__lt=end).exists():
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def episodes_write(
    *, day: dt.date, lease_owner: str | None = None, only_missing: bool = False, now: dt.datetime | None = None
) -> list[EpisodeOutcome]:
    """Write (or rewrite) every user's whole-day episode of local `day`; the day must be over.

    `only_missing`: leave a user whose episode of that day exists (the worker's daily pass).
    """
    if day >= local_today(now):
        raise InvalidInputError.for_field(
            "day", f"{day} is not over yet in {settings.AGENTCHAT_TIMEZONE}; give an earlier day"
        )
    zone = _zone()
    start, end = _day_bounds(day, zone)
    owners = sorted(
        set(Message.objects.filter(created__gte=start, created__lt=end).values_list("session__owner_id", flat=True))
    )
    config = memory_config()
    users = {user.pk: user for user in get_user_model().objects.filter(pk__in=owners)}
    outcomes: list[EpisodeOutcome] = []
    for owner_id in owners:
        existing = DailyEpisode.objects.filter(owner_id=owner_id, day=day, session__isnull=True).first()
        if only_missing and existing is not None:
            outcomes.append(EpisodeOutcome(owner_id=owner_id, day=day, outcome="kept", episode=existing))
            continue
        outcomes.append(_episode(users[owner_id], day, start, end, config, lease_owner or process_worker_id()))
    return outcomes


def _episode(
    owner: AbstractBaseUser, day: dt.date, start: dt.datetime, end: dt.datetime, config: MemoryConfig, lease_owner: str
) -> EpisodeOutcome:
    owner_id = int(owner.pk)
    route = _summary_route(config, route_resolve(None))
    try:
        upkeep = _open(owner=owner, purpose=RunPurpose.EPISODE, route=route, session_id=None, lease_owner=lease_owner)
    except ConflictError as exc:
        return EpisodeOutcome(owner_id=owner_id, day=day, outcome="busy", reason=exc.message)
    try:
        messages = list(
            Message.objects.filter(session__owner_id=owner_id, created__gte=start, created__lt=end)
            .select_related("session")
            .order_by("created", "id")
        )
        sessions: dict[UUID, list[int]] = {}
        lines: list[str] = []
        for message in messages:
            seqs = sessions.setdefault(message.session_id, [])
            if not seqs:
                lines.append(f"--- session {message.session.title or message.session_id}")
            seqs.append(message.seq)
            lines.append(_line(message))
        try:
            summary = _fold(upkeep, config.episode_prompt, "", lines, f"Conversations of {day.isoformat()}")
        except UpkeepError as exc:
            return EpisodeOutcome(owner_id=owner_id, day=day, outcome="failed", run=_fail(upkeep, exc.reason))
        refs = "; ".join(f"{pk} #{min(seqs)}-#{max(seqs)}" for pk, seqs in sessions.items())
        text = _clip(f"{summary}\n\nSessions: {refs}", 100_000)
        try:
            with transaction.atomic():
                episode = episode_upsert(
                    owner=owner,
                    day=day,
                    timezone_name=settings.AGENTCHAT_TIMEZONE,
                    summary=text,
                    source=EpisodeSource.COMPACTOR,
                    session_refs=[SessionRef(pk, min(seqs), max(seqs)) for pk, seqs in sessions.items()],
                ).record
                upkeep.usage_write()
                finished = run_finish(run_id=upkeep.run.pk, status=RunStatus.COMPLETED)
        except InvalidInputError as exc:
            return EpisodeOutcome(owner_id=owner_id, day=day, outcome="failed", run=_fail(upkeep, exc.message))
        return EpisodeOutcome(owner_id=owner_id, day=day, outcome="written", episode=episode, run=finished)
    finally:
        _close(upkeep)


def episodes_due(*, now: dt.datetime | None = None, lease_owner: str | None = None) -> list[EpisodeOutcome]:
    """Yesterday's missing episodes (the worker's pass after midnight; every user with messages that day)."""
    yesterday = local_today(now) - dt.timedelta(days=1)
    return episodes_write(day=yesterday, lease_owner=lease_owner, only_missing=True, now=now)


# --- Facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactsResult:
    """What one facts task stored (`keys`), and what it refused (`refused`: key → why)."""

    outcome: str
    run: Run | None = None
    keys: tuple[str, ...] = ()
    refused: dict[str, str] = field(default_factory=dict)


def facts_parse(text: str) -> list[tuple[str, str]]:
    """`key: fact` lines of a model's answer (at most MAX_FACTS; NONE or other lines give nothing)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = FACT_LINE.match(line)
        if match and match.group(1) not in found:
            found[match.group(1)] = match.group(2)
        if len(found) == MAX_FACTS:
            break
    return list(found.items())


def facts_extract(*, run_id: UUID | str, lease_owner: str | None = None) -> FactsResult:
    """Ask the model for durable facts in the exchange chat run `run_id` answered, and remember them."""
    turn = Run.objects.select_related("message", "owner").get(pk=run_id, purpose=RunPurpose.CHAT)
    if turn.session_id is None or turn.message is None or turn.status != RunStatus.COMPLETED:
        return FactsResult(outcome="nothing")
    session = session_get(session_id=turn.session_id)
    config = memory_config()
    replies = list(Message.objects.filter(session_id=session.pk, seq__gt=turn.message.seq).order_by("seq")[:20])
    exchange = [turn.message, *[m for m in replies if m.role == MessageRole.ASSISTANT][:1]]
    # The turn's own messages end where the next user message begins; its last is the facts' source.
    answered = list(takewhile(lambda m: m.role != MessageRole.USER, replies))
    last_seq = answered[-1].seq if answered else turn.message.seq
    try:
        upkeep = _open(
            owner=session.owner,
            purpose=RunPurpose.FACTS,
            route=_summary_route(config, session.route),
            session_id=session.pk,
            lease_owner=lease_owner or process_worker_id(),
        )
    except ConflictError:
        return FactsResult(outcome="busy")
    try:
        try:
            answer = upkeep.ask(config.facts_prompt, "\n".join(_line(m) for m in exchange))
        except UpkeepError as exc:
            return FactsResult(outcome="failed", run=_fail(upkeep, exc.reason))
        stored: list[str] = []
        refused: dict[str, str] = {}
        with transaction.atomic():
            for key, content in facts_parse(answer):
                try:
                    with transaction.atomic():
                        memory_write(
                            owner=session.owner,
                            kind=MemoryKind.FACT,
                            key=key,
                            content=content,
                            source_session_id=session.pk,
                            source_first_seq=turn.message.seq,
                            source_last_seq=last_seq,
                            source=MemorySource.MODEL,
                            source_run_id=upkeep.run.pk,
                        )
                    stored.append(key)
                except (InvalidInputError, ConflictError) as exc:
                    refused[key] = exc.message
            upkeep.usage_write()
            finished = run_finish(run_id=upkeep.run.pk, status=RunStatus.COMPLETED)
        return FactsResult(outcome="written", run=finished, keys=tuple(stored), refused=refused)
    finally:
        _close(upkeep)


# --- Tasks and the turn's hook ----------------------------------------------------------------


def _lease_owner() -> str:
    from runtime.worker.tasks import worker_id

    return worker_id()


@task()
def compact_session(session_id: str) -> str:
    """The compaction task: fold the session if it is still over its threshold."""
    return session_compact(session_id=UUID(session_id), lease_owner=_lease_owner()).outcome


@task()
def extract_facts(run_id: str) -> str:
    """The facts task of one finished chat turn."""
    return facts_extract(run_id=UUID(run_id), lease_owner=_lease_owner()).outcome


@task()
def episodes_task() -> str:
    """The worker's daily pass: yesterday's missing episodes."""
    outcomes = episodes_due(lease_owner=_lease_owner())
    return ", ".join(f"{item.owner_id}:{item.outcome}" for item in outcomes)


def after_turn(run: Run) -> None:
    """After a chat turn's commit: enqueue compaction when the session is over its threshold, and the
    facts task when `[memory] extract_facts` is on."""
    if run.session_id is None or run.status != RunStatus.COMPLETED:
        return
    session_id = str(run.session_id)

    def enqueue() -> None:
        session = AgentSession.objects.select_related("route").filter(pk=session_id).first()
        if session is not None and session_needs_compaction(session):
            compact_session.enqueue(session_id)
        if memory_config().extract_facts:
            extract_facts.enqueue(str(run.pk))

    transaction.on_commit(enqueue)
