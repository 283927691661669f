"""The turn task: Django's task framework (the django-tasks backport) carries a run id to a worker."""

from __future__ import annotations

from uuid import UUID

from django_tasks import task

from core.models import Run
from runtime.mcp import mcp_gateway
from runtime.turns import turn_execute
from runtime.worker.lease import process_worker_id

# The lease owner this process writes on the runs it takes; `manage.py worker` sets it to its worker id.
_worker_id: list[str] = []


def worker_id() -> str:
    """This process's worker id (made once when no worker command set it)."""
    if not _worker_id:
        _worker_id.append(process_worker_id())
    return _worker_id[0]


def worker_id_set(value: str) -> None:
    _worker_id[:] = [value]


@task()
def run_turn(run_id: str, regenerates_seq: int | None = None) -> str:
    """Run the queued turn `run_id` under this worker's lease; answers the run's final status.

    `regenerates_seq`: the reply a regeneration answers again (recorded in its `run_started` event; a
    regeneration the sweeper enqueues again runs without it).
    """
    result = turn_execute(
        run_id=UUID(run_id), lease_owner=worker_id(), regenerates_seq=regenerates_seq, gateway=mcp_gateway()
    )
    return str(result.run.status)


def run_enqueue(run: Run, *, regenerates_seq: int | None = None) -> None:
    """Hand a queued run to the workers (called after the commit that queued it)."""
    run_turn.enqueue(str(run.pk), regenerates_seq)
