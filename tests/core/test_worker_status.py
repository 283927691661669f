"""Worker liveness and queue depth (the bootstrap's `workers`): one fixed statement, equal to the ORM's counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import DjangoAssertNumQueries

from core.conversation.selectors import WorkerStatus, worker_status
from core.conversation.services import run_create, run_finish, session_create
from core.models import ModelRoute, Run, RunStatus, WorkerBeat
from tests.owners import op_user, plain_user

pytestmark = pytest.mark.django_db


def _beat(worker_id: str, seconds_ago: float) -> None:
    at = timezone.now() - timedelta(seconds=seconds_ago)
    WorkerBeat.objects.create(worker_id=worker_id, host="here", pid=1, started_at=at, beat_at=at)


def test_live_workers_and_each_owners_queued_and_running_runs(
    replay_route: ModelRoute, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    _beat("fresh", 1)
    _beat("recent", 20)
    _beat("stale", 45)
    mine, theirs = op_user(), plain_user("other")
    for owner, statuses in ((mine, ["queued", "running", "running"]), (theirs, ["queued", "queued"])):
        for status in statuses:
            # One open chat run per session: each run in a session of its own.
            session = session_create(owner=owner, route_alias=replay_route.alias)
            run_create(session_id=session.pk, status=status)
    finished = run_create(session_id=session_create(owner=mine, route_alias=replay_route.alias).pk, status="running")
    run_finish(run_id=finished.pk, status=RunStatus.COMPLETED)
    since = timezone.now() - timedelta(seconds=30)

    with django_assert_num_queries(1):
        counts = worker_status(live_since=since, owner_id=mine.pk)
    assert counts == WorkerStatus(live_workers=2, queued_runs=1, running_runs=2)
    assert worker_status(live_since=since, owner_id=theirs.pk) == WorkerStatus(2, 2, 0)
    assert worker_status(live_since=since) == WorkerStatus(2, 3, 2)
    # The same counts the ORM gives.
    open_runs = Run.objects.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING), owner=mine)
    assert (counts.queued_runs, counts.running_runs) == (
        open_runs.filter(status=RunStatus.QUEUED).count(),
        open_runs.filter(status=RunStatus.RUNNING).count(),
    )
    assert counts.live_workers == WorkerBeat.objects.filter(beat_at__gte=since).count()


def test_no_workers_and_no_runs_are_zeros(db: None) -> None:
    assert worker_status(live_since=timezone.now()) == WorkerStatus(0, 0, 0)
