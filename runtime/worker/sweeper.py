"""The sweeper every worker runs about once a second: the run's lease, not the task row, decides.

- A `running` run whose lease expired belongs to a dead worker: it ends `interrupted`, saying which.
- A `queued` run with no live task (a crash between the commit and the enqueue) is enqueued again;
  one queued longer than `AGENTCHAT_QUEUED_RUN_EXPIRY_S` ends `interrupted` instead.
- A tool call waiting for approval longer than `AGENTCHAT_APPROVAL_TIMEOUT` seconds is denied with
  that reason; a run `awaiting_approval` whose calls are all decided and that no task will take (a
  crash between the decision and the enqueue, a restart) is enqueued again, so waiting survives restarts.
- Finished task rows older than `AGENTCHAT_TASK_RESULTS_KEEP_S` are pruned, and the heartbeat rows
  of workers silent for an hour are forgotten.
Taking a run is idempotent (`run_claim` starts only a queued run), so a run enqueued twice runs once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.utils import timezone
from django_tasks import task_backends
from django_tasks.base import TaskResultStatus
from django_tasks_db import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from core.conversation.invocations import invocations_approval_expire, runs_resumable_ids
from core.conversation.selectors import runs_queued_ids
from core.conversation.services import runs_lease_expired_interrupt, runs_queue_expired_interrupt
from core.models import Run, WorkerBeat
from runtime.worker.tasks import run_enqueue, run_turn

LOG = logging.getLogger("agentchat.worker")
# A queued run younger than this is left to the enqueue that its commit scheduled.
REQUEUE_AFTER = timedelta(seconds=2)
# Without the database backend the sweeper cannot see tasks: it re-enqueues runs queued this long.
REQUEUE_BLIND_AFTER = timedelta(seconds=30)
# A worker whose heartbeat is older than this is not live (the bootstrap's rule too).
WORKER_LIVE = timedelta(seconds=30)
FORGET_WORKER_AFTER = timedelta(hours=1)


@dataclass
class SweepResult:
    """What one sweep did."""

    requeued: list[UUID] = field(default_factory=list)
    lease_expired: list[UUID] = field(default_factory=list)
    queue_expired: list[UUID] = field(default_factory=list)
    approval_expired: list[UUID] = field(default_factory=list)
    pruned_tasks: int = 0


def _live_task_run_ids() -> set[str] | None:
    """Run ids that a ready task, or a running task of a live worker, will take; None if not knowable."""
    if not isinstance(task_backends["default"], DatabaseBackend):
        return None
    live_workers = set(
        WorkerBeat.objects.filter(beat_at__gte=timezone.now() - WORKER_LIVE).values_list("worker_id", flat=True)
    )
    rows = DBTaskResult.objects.filter(
        task_path=run_turn.module_path, status__in=(TaskResultStatus.READY, TaskResultStatus.RUNNING)
    ).values_list("status", "args_kwargs", "worker_ids")
    live: set[str] = set()
    for status, args_kwargs, worker_ids in rows:
        if status == TaskResultStatus.RUNNING and not (worker_ids and worker_ids[-1] in live_workers):
            continue
        args = args_kwargs.get("args") or [] if isinstance(args_kwargs, dict) else []
        if args:
            live.add(str(args[0]))
    return live


def sweep(*, prune: bool = True) -> SweepResult:
    """One pass of the sweeper (see the module docstring)."""
    now = timezone.now()
    result = SweepResult()
    result.lease_expired = runs_lease_expired_interrupt(now=now)
    result.queue_expired = runs_queue_expired_interrupt(
        older_than=now - timedelta(seconds=settings.AGENTCHAT_QUEUED_RUN_EXPIRY_S)
    )
    timeout = settings.AGENTCHAT_APPROVAL_TIMEOUT
    result.approval_expired = invocations_approval_expire(older_than=now - timedelta(seconds=timeout), seconds=timeout)
    live = _live_task_run_ids()
    for run_id in runs_resumable_ids():
        if run_id in result.approval_expired or (live is not None and str(run_id) not in live):
            run_enqueue(Run.objects.get(pk=run_id))
            result.requeued.append(run_id)
    cutoff = now - (REQUEUE_AFTER if live is not None else REQUEUE_BLIND_AFTER)
    for run_id in runs_queued_ids(created_before=cutoff):
        if live is None or str(run_id) not in live:
            run = Run.objects.get(pk=run_id)
            run_enqueue(run)
            result.requeued.append(run_id)
    if prune:
        result.pruned_tasks = _prune(now)
    for run_id in result.lease_expired:
        LOG.warning("run %s: its worker's lease expired; ended interrupted", run_id)
    for run_id in result.queue_expired:
        LOG.warning("run %s: queued past AGENTCHAT_QUEUED_RUN_EXPIRY_S; ended interrupted", run_id)
    for run_id in result.approval_expired:
        LOG.info("run %s: a tool call waited past AGENTCHAT_APPROVAL_TIMEOUT; denied", run_id)
    for run_id in result.requeued:
        LOG.info("run %s: queued with no live task; enqueued again", run_id)
    return result


def _prune(now: datetime) -> int:
    keep = now - timedelta(seconds=settings.AGENTCHAT_TASK_RESULTS_KEEP_S)
    WorkerBeat.objects.filter(beat_at__lt=now - FORGET_WORKER_AFTER).delete()
    if not isinstance(task_backends["default"], DatabaseBackend):
        return 0
    deleted, _ = DBTaskResult.objects.filter(
        status__in=(TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED), finished_at__lt=keep
    ).delete()
    return deleted
