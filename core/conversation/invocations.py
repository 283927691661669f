"""Tool invocations: one row per tool call a model asked for, and its one result.

Writes (services) and reads (selectors) of `ToolInvocation`. A call is open while it waits for an
approval (`awaiting_approval`), a client's result (`awaiting_result`) or its run (`approved`), and
closed once it has its result (`done`, `denied`, or `cancelled`/`interrupted` when its run ended
first: `core.conversation.services._events_write` closes them). `run_finish` refuses to complete a
run while one of its calls is open. Results are untrusted text: stored and shown, never executed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from core.conversation.models import (
    OPEN_INVOCATION_STATUSES,
    InvocationStatus,
    Run,
    RunStatus,
    ToolInvocation,
)
from core.conversation.selectors import OwnerScope, owned, run_uuid
from core.errors import ConflictError, InvalidInputError, NotFoundError

DENIED_RESULT = "denied by the user"
APPROVAL_TIMEOUT_RESULT = "denied: no approval was given within {seconds} s (AGENTCHAT_APPROVAL_TIMEOUT)"
MAX_RESULT_CHARS = 100_000


@dataclass(frozen=True)
class NewInvocation:
    """A call to record: its status is where it starts (approved, awaiting, or already done with an error)."""

    call_id: str
    tool: str
    arguments: Mapping[str, Any]
    status: str
    result: str = ""
    is_error: bool = False


@dataclass(frozen=True)
class Decided:
    """What a decision left: the run, and whether every call it waits on is now decided (queue it again)."""

    run: Run
    resumable: bool


def invocations_create(*, run: Run, call_seq: int, calls: Sequence[NewInvocation]) -> list[ToolInvocation]:
    """Record a model call's tool calls under the assistant message `call_seq` (in the caller's transaction)."""
    now = timezone.now()
    rows = [
        ToolInvocation(
            session_id=run.chat_session_id,
            run=run,
            call_id=call.call_id,
            tool=call.tool,
            arguments=dict(call.arguments),
            status=call.status,
            result=call.result,
            is_error=call.is_error,
            call_seq=call_seq,
            finished_at=None if call.status in OPEN_INVOCATION_STATUSES else now,
        )
        for call in calls
    ]
    with transaction.atomic():
        return [ToolInvocation.objects.create(**_fields(row)) for row in rows]


def _fields(row: ToolInvocation) -> dict[str, Any]:
    return {
        field.attname: getattr(row, field.attname)
        for field in ToolInvocation._meta.concrete_fields
        if not field.primary_key and field.attname != "created"
    }


def invocation_finish(*, invocation_id: int, result: str, is_error: bool) -> ToolInvocation:
    """Store the result of an approved call its run just ran (`done`)."""
    with transaction.atomic():
        row = ToolInvocation.objects.select_for_update().get(pk=invocation_id)
        if row.status != InvocationStatus.APPROVED:
            raise ConflictError.for_field("invocation", f"is {row.status}; only an approved call is run")
        row.status, row.result, row.is_error, row.finished_at = InvocationStatus.DONE, result, is_error, timezone.now()
        row.save(update_fields=["status", "result", "is_error", "finished_at"])
    return row


def invocation_result_seq_set(*, invocation_id: int, seq: int) -> None:
    """Name the tool message that carries a closed call's result to the model."""
    ToolInvocation.objects.filter(pk=invocation_id).exclude(status__in=OPEN_INVOCATION_STATUSES).update(result_seq=seq)


def run_invocations(*, run_id: UUID | str, owner: OwnerScope = None) -> list[ToolInvocation]:
    """The calls of `owner`'s run, in the order the model asked for them."""
    run = owned(Run.objects.all(), owner).filter(pk=run_uuid(run_id)).first()
    if run is None:
        raise NotFoundError.for_field("run", f"no run {run_id}")
    return list(ToolInvocation.objects.filter(run_id=run.pk).order_by("id"))


def _waiting_run(run_id: UUID | str, owner: OwnerScope) -> Run:
    try:
        run = owned(Run.objects.select_for_update(), owner).get(pk=run_uuid(run_id))
    except Run.DoesNotExist:
        raise NotFoundError.for_field("run", f"no run {run_id}") from None
    if run.status != RunStatus.AWAITING_APPROVAL:
        raise ConflictError.for_field("run", f"is {run.status}; only a run awaiting approval takes decisions")
    return run


def _close_each(
    run: Run, field: str, answers: Mapping[str, tuple[str, str, bool]], waiting_status: str, noun: str
) -> Decided:
    """Close the calls named in `answers` (call id → (status, result, is_error)), each waiting in `waiting_status`."""
    if not answers:
        raise InvalidInputError.for_field(field, f"empty; give a {noun} for each pending call")
    rows = {row.call_id: row for row in ToolInvocation.objects.select_for_update().filter(run_id=run.pk)}
    for call_id in answers:
        row = rows.get(call_id)
        if row is None:
            raise InvalidInputError.for_field(f"{field}.{call_id}", "no such call in this run; use a pending call's id")
        if row.status != waiting_status:
            raise ConflictError.for_field(f"{field}.{call_id}", f"the call is {row.status}; it takes no {noun}")
    now = timezone.now()
    for call_id, (status, result, is_error) in answers.items():
        row = rows[call_id]
        row.status, row.result, row.is_error, row.decided_at = status, result, is_error, now
        row.finished_at = None if status in OPEN_INVOCATION_STATUSES else now
        row.save(update_fields=["status", "result", "is_error", "decided_at", "finished_at"])
    waiting = (InvocationStatus.AWAITING_APPROVAL, InvocationStatus.AWAITING_RESULT)
    resumable = not any(row.status in waiting for row in rows.values())
    return Decided(run=run, resumable=resumable)


def invocations_decide(*, run_id: UUID | str, owner: OwnerScope = None, decisions: Mapping[str, bool]) -> Decided:
    """Approve (True) or deny (False) calls of `owner`'s waiting run; a denied call answers "denied by the user"."""
    for call_id, approve in decisions.items():
        if not isinstance(approve, bool):
            raise InvalidInputError.for_field(f"decisions.{call_id}", "must be true (approve) or false (deny)")
    answers = {
        call_id: (InvocationStatus.APPROVED, "", False) if approve else (InvocationStatus.DENIED, DENIED_RESULT, True)
        for call_id, approve in decisions.items()
    }
    with transaction.atomic():
        run = _waiting_run(run_id, owner)
        return _close_each(run, "decisions", answers, InvocationStatus.AWAITING_APPROVAL, "decision")


def invocations_results_post(
    *, run_id: UUID | str, owner: OwnerScope = None, results: Mapping[str, tuple[str, bool]]
) -> Decided:
    """Store the results an API client computed for the run's `client` calls (call id → (content, is_error))."""
    for call_id, (content, _) in results.items():
        if len(content) > MAX_RESULT_CHARS:
            raise InvalidInputError.for_field(
                f"results.{call_id}.content", f"has {len(content)} characters; at most {MAX_RESULT_CHARS}"
            )
    answers = {call_id: (InvocationStatus.DONE, content, is_error) for call_id, (content, is_error) in results.items()}
    with transaction.atomic():
        run = _waiting_run(run_id, owner)
        return _close_each(run, "results", answers, InvocationStatus.AWAITING_RESULT, "result")


def invocations_approval_expire(*, older_than: datetime, seconds: int) -> list[UUID]:
    """Deny every call still waiting for approval since before `older_than`; the runs now resumable."""
    stale = ToolInvocation.objects.filter(
        status=InvocationStatus.AWAITING_APPROVAL,
        created__lt=older_than,
        run__status=RunStatus.AWAITING_APPROVAL,
    )
    resumable: list[UUID] = []
    for run_id in sorted(set(stale.values_list("run_id", flat=True))):
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=run_id)
            if run.status != RunStatus.AWAITING_APPROVAL:
                continue
            now = timezone.now()
            ToolInvocation.objects.filter(
                run_id=run_id, status=InvocationStatus.AWAITING_APPROVAL, created__lt=older_than
            ).update(
                status=InvocationStatus.DENIED,
                result=APPROVAL_TIMEOUT_RESULT.format(seconds=seconds),
                is_error=True,
                decided_at=now,
                finished_at=now,
            )
            if not ToolInvocation.objects.filter(
                run_id=run_id,
                status__in=(InvocationStatus.AWAITING_APPROVAL, InvocationStatus.AWAITING_RESULT),
            ).exists():
                resumable.append(run_id)
    return resumable


def runs_resumable_ids() -> list[UUID]:
    """Runs awaiting approval whose calls are all decided: a lost enqueue is made again (the sweeper)."""
    waiting = ToolInvocation.objects.filter(
        status__in=(InvocationStatus.AWAITING_APPROVAL, InvocationStatus.AWAITING_RESULT)
    ).values("run_id")
    return list(
        Run.objects.filter(status=RunStatus.AWAITING_APPROVAL).exclude(pk__in=waiting).values_list("pk", flat=True)
    )
