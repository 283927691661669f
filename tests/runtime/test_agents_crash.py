"""A child run ends with its parent: a worker killed mid-delegation leaves neither open, whether `recover_runs`
or the sweeper finds it, and a parent that ends failed or interrupted closes its open children in the same pass."""

from __future__ import annotations

import subprocess
import time

import pytest
from django.db import connection
from django.utils import timezone

from core.conversation.services import (
    INTERRUPTED_ERROR,
    run_create,
    run_events_append,
    run_finish,
    run_interrupt,
    session_create,
)
from core.models import AgentSession, InvocationStatus, ModelRoute, Run, RunStatus, ToolInvocation
from runtime.worker.sweeper import sweep
from tests.fault.conftest import kill_hard, restart_connections, stop_if_running
from tests.owners import op_user
from tests.procs import run_manage, start_worker
from tests.runtime.test_agents import agent, replay, running_child, trace
from tests.runtime.test_agents_tools import team_of

pytestmark = [pytest.mark.fault, pytest.mark.django_db(transaction=True)]

ASK = "/tool ask_slow take your time"


def slow_team_session(route: ModelRoute) -> AgentSession:
    """A team whose only member pauses ten minutes before its first word."""
    team_of("pair", agent("lead", route), agent("slow", replay("replay-slow", pause_at_chunk=0, pause_ms=600_000)))
    return session_create(owner=op_user(), team_name="pair")


def delegating_worker(session: AgentSession, **env: str) -> tuple[subprocess.Popen[str], Run, Run]:
    """A worker process running a turn on `session`, and its run and child run once the member streams."""
    connection.close()  # the worker gets the database to itself
    worker = start_worker("tests.workers.delegate_turn", [str(session.pk), ASK], **env)
    deadline = time.monotonic() + 90
    child = None
    while child is None and time.monotonic() < deadline and worker.poll() is None:
        child = Run.objects.filter(parent__isnull=False, status=RunStatus.RUNNING).first()
        time.sleep(0.05)
    if child is None:
        stop_if_running(worker)
        out, err = worker.communicate(timeout=10)
        pytest.fail(f"the member's child run never opened:\n{out}\n{err}")
    assert child.parent_id is not None
    return worker, Run.objects.get(pk=child.parent_id), child


def recover_lines(head: str, label: str, *runs: Run) -> list[str]:
    """What `recover_runs` prints: its summary, then one line per run."""
    return [f"recover_runs: {head}", *(f"  {run.pk} ({label})" for run in runs)]


def ended(run: Run, status: str) -> Run:
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == status
    assert stored.finished_at is not None
    assert trace(stored)[-1] == ("run_finished", {"status": status})
    return stored


def test_recover_runs_ends_a_killed_workers_run_and_its_child_in_one_pass(replay_route: ModelRoute) -> None:
    worker, parent, child = delegating_worker(slow_team_session(replay_route))
    try:
        # While the worker lives, both are left alone: the child lives in its parent's process.
        alive = run_manage(["recover_runs"], timeout=60)
        assert alive.returncode == 0, alive.stderr
        assert alive.stdout.splitlines() == recover_lines(
            "left 2 running run(s) alone: the process streaming each is alive on this host",
            "still running",
            parent,
            child,
        )
        kill_hard(worker)
    finally:
        stop_if_running(worker)
    restart_connections()

    recovered = run_manage(["recover_runs"], timeout=60)
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines() == recover_lines(
        "marked 2 run(s) interrupted (2 running, 0 queued)", "was running", parent, child
    )
    assert ended(parent, RunStatus.INTERRUPTED).error == INTERRUPTED_ERROR
    assert ended(child, RunStatus.INTERRUPTED).error == f"interrupted with its parent run: {INTERRUPTED_ERROR}"
    ask = ToolInvocation.objects.get(run=parent)
    assert (ask.tool, ask.status) == ("ask_slow", InvocationStatus.INTERRUPTED)
    again = run_manage(["recover_runs"], timeout=60)
    assert again.stdout.strip() == "recover_runs: no unfinished runs; nothing to do"


def test_the_sweeper_ends_a_dead_workers_run_and_its_child_together(replay_route: ModelRoute) -> None:
    worker, parent, child = delegating_worker(slow_team_session(replay_route), AGENTCHAT_RUN_LEASE_MS="1000")
    try:
        kill_hard(worker)
    finally:
        stop_if_running(worker)
    restart_connections()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        expires = Run.objects.get(pk=parent.pk).lease_expires_at
        if expires is not None and expires < timezone.now():
            break
        time.sleep(0.1)

    swept = sweep(prune=False)

    assert swept.lease_expired == [parent.pk]  # one pass: the child has no lease of its own
    error = ended(parent, RunStatus.INTERRUPTED).error
    assert error.startswith("interrupted: the worker running this run stopped renewing its lease")
    assert ended(child, RunStatus.INTERRUPTED).error == f"interrupted with its parent run: {error}"


@pytest.mark.parametrize("end", ["failed", "interrupted"])
def test_a_parent_that_fails_or_is_interrupted_ends_its_open_children(chat_session: AgentSession, end: str) -> None:
    parent = run_create(session_id=chat_session.pk, status=RunStatus.RUNNING)
    child = running_child(parent, "c1")
    grandchild = running_child(child, "c1/c2")
    run_events_append(run_id=grandchild.pk, events=[("text_delta", {"text": "half"})])
    if end == "failed":
        run_finish(run_id=parent.pk, status=RunStatus.FAILED, error="the provider refused the key")
        why = "the provider refused the key"
    else:
        run_interrupt(run_id=parent.pk, error="interrupted: the worker stopped")
        why = "interrupted: the worker stopped"
    for run in (child, grandchild):
        assert ended(run, RunStatus.INTERRUPTED).error == f"interrupted with its parent run: {why}"
