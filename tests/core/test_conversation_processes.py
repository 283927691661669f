"""Durability with real OS processes on the real test database: restart read-back, killed writers,
and interrupted-run recovery through `manage.py recover_runs`.
"""

from __future__ import annotations

import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, connections

from core.conversation.selectors import run_text
from core.conversation.services import session_create
from core.models import AgentSession, Checkpoint, Message, ModelRoute, Provider, ProviderKind, Run, TraceEvent
from tests.owners import op_user
from tests.procs import ROOT, run_manage, start_worker, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 120


class LineReader:
    """Reads a worker's stdout on a thread, so a test can wait for a line with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, prefix: str) -> str:
        """The first line starting with `prefix` (every line read is kept in `seen`)."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT_SECONDS)
            except queue.Empty:
                pytest.fail(f"worker printed no {prefix!r} line within {WAIT_SECONDS}s; seen: {self.seen[-5:]}")
            if line is None:
                stderr = self.process.stderr.read() if self.process.stderr else ""
                pytest.fail(f"worker exited before printing {prefix!r}: {stderr[-2000:]}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=WAIT_SECONDS)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.persistence
def test_restart_readback_finds_everything_acknowledged(replay_route: ModelRoute) -> None:
    session = session_create(owner=op_user(), title="durable", route_alias=replay_route.alias)
    connection.close()
    worker = start_worker("tests.workers.conversation_write", [str(session.id), "40"])
    out, err = worker.communicate(timeout=WAIT_SECONDS)
    assert worker.returncode == 0, err
    acked_seqs = [int(line.split()[2]) for line in out.splitlines() if line.startswith("ack message ")]
    checkpoint_id = int(next(line.split()[2] for line in out.splitlines() if line.startswith("ack checkpoint ")))
    run_id = next(line.split()[2] for line in out.splitlines() if line.startswith("ack run "))
    assert acked_seqs == list(range(1, 41))

    # The writer has exited; drop every connection of this process, then read with fresh ones.
    connections.close_all()
    if connection.vendor == "sqlite":
        raw = sqlite3.connect(Path(connection.settings_dict["NAME"]))
        try:
            rows = raw.execute(
                "SELECT seq, content FROM core_message WHERE session_id = ? ORDER BY seq", (session.id.hex,)
            ).fetchall()
        finally:
            raw.close()
        assert rows == [(n, f"line {n}") for n in range(1, 41)]

    stored = AgentSession.objects.get(pk=session.pk)
    assert (stored.last_seq, stored.message_count) == (40, 40)
    assert list(Message.objects.filter(session=stored).order_by("seq").values_list("seq", flat=True)) == acked_seqs
    tail_tokens = sum(Message.objects.filter(session=stored, seq__gt=20).values_list("token_count", flat=True))
    assert stored.tokens_since_checkpoint == tail_tokens
    checkpoint = Checkpoint.objects.get(pk=checkpoint_id)
    assert (checkpoint.through_seq, checkpoint.summary, checkpoint.state) == (20, "first half", {"n": 40})
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.event_count) == ("completed", 5)
    assert run_text(run_id=run.pk) == "durable and ordered"


@pytest.mark.persistence
@pytest.mark.fault
def test_killed_writer_loses_nothing_acknowledged(replay_route: ModelRoute) -> None:
    session = session_create(owner=op_user(), title="killed mid-stream", route_alias=replay_route.alias)
    connection.close()
    worker = start_worker("tests.workers.append", [str(session.id), "100000", "k"])
    reader = LineReader(worker)
    for _ in range(30):
        reader.until("ack ")
    _kill(worker)
    acked = {int(line.split()[1]) for line in reader.seen if line.startswith("ack ")}

    connections.close_all()
    seqs = list(Message.objects.filter(session=session).order_by("seq").values_list("seq", flat=True))
    assert acked <= set(seqs)
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, whatever was in flight
    stored = AgentSession.objects.get(pk=session.pk)
    assert (stored.last_seq, stored.message_count) == (len(seqs), len(seqs))


@pytest.mark.persistence
@pytest.mark.fault
def test_retry_after_a_crash_is_idempotent(replay_route: ModelRoute) -> None:
    session = session_create(owner=op_user(), title="retried", route_alias=replay_route.alias)
    connection.close()
    crashed = start_worker("tests.workers.append", [str(session.id), "60", "r"])
    reader = LineReader(crashed)
    for _ in range(20):
        reader.until("ack ")
    _kill(crashed)
    first_acks = {line.split()[2]: int(line.split()[1]) for line in reader.seen if line.startswith("ack ")}

    # The client retries every message of the batch with the same client_ids, as a UI would.
    retry = start_worker("tests.workers.append", [str(session.id), "60", "r"])
    out, err = retry.communicate(timeout=WAIT_SECONDS)
    assert retry.returncode == 0, err
    second_acks = {line.split()[2]: int(line.split()[1]) for line in out.splitlines() if line.startswith("ack ")}

    connections.close_all()
    stored = {
        str(client_id): seq
        for client_id, seq in Message.objects.filter(session=session).values_list("client_id", "seq")
    }
    assert stored == second_acks
    assert sorted(stored.values()) == list(range(1, 61))
    assert sorted(stored) == sorted(f"r-{n}" for n in range(60))
    assert all(stored[client_id] == seq for client_id, seq in first_acks.items())


@pytest.mark.fault
def test_recover_runs_marks_a_killed_runner_interrupted_once(replay_route: ModelRoute) -> None:
    session = session_create(owner=op_user(), title="crash", route_alias=replay_route.alias)
    finished_worker = start_worker("tests.workers.run_stream", [str(session.id), "2", "finish"])
    finished_out, err = finished_worker.communicate(timeout=WAIT_SECONDS)
    assert finished_worker.returncode == 0, err
    finished_id = finished_out.split()[1]
    connection.close()
    worker = start_worker("tests.workers.run_stream", [str(session.id), "3", "hang"])
    reader = LineReader(worker)
    run_id = reader.until("run ").split()[1]
    reader.until("ready")
    assert Run.objects.get(pk=run_id).status == "running"
    _kill(worker)

    first = run_manage(["recover_runs"])
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "recover_runs: marked 1 run(s) interrupted (1 running, 0 queued)",
        f"  {run_id} (was running)",
    ]
    run = Run.objects.get(pk=run_id)
    assert run.status == "interrupted"
    assert run.finished_at is not None
    assert run.error == "interrupted: the process running this run stopped before it finished"
    events = list(TraceEvent.objects.filter(run=run).order_by("index").values_list("index", "type", "payload"))
    assert events == [
        (1, "run_started", {}),
        (2, "text_delta", {"text": "<0>"}),
        (3, "text_delta", {"text": "<1>"}),
        (4, "text_delta", {"text": "<2>"}),
        (5, "run_finished", {"status": "interrupted"}),
    ]
    assert run_text(run_id=run.pk) == "<0><1><2>"
    assert Run.objects.get(pk=finished_id).status == "completed"  # a finished run is never touched

    second = run_manage(["recover_runs"])
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "recover_runs: no unfinished runs; nothing to do"
    assert TraceEvent.objects.filter(run=run).count() == 5


def _slow_session() -> AgentSession:
    """A session on a replay route that streams one chunk, then pauses (far longer than any test waits)."""
    provider = Provider.objects.create(
        name="slow-replay",
        kind=ProviderKind.REPLAY,
        options={"chunk_chars": 4, "pause_at_chunk": 1, "pause_ms": 600_000},
    )
    ModelRoute.objects.create(
        alias="slow", provider=provider, model_id="replay-1", context_window_tokens=8_000, max_output_tokens=1_000
    )
    return session_create(owner=op_user(), title="slow", route_alias="slow")


def _streaming_run(session: AgentSession, chat: subprocess.Popen[str]) -> Run:
    """The session's run once it is running and has streamed its first delta (the worker then pauses)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        run = Run.objects.filter(session=session, status="running").first()
        if run is not None and TraceEvent.objects.filter(run=run, type="text_delta").exists():
            # Read again: the row above may predate the delta (the worker then pauses, so it holds still).
            run.refresh_from_db()
            return run
        if chat.poll() is not None:
            pytest.fail(f"the chat process exited early: {chat.stderr.read() if chat.stderr else ''}")
        if time.monotonic() > deadline:
            pytest.fail("the chat process never started streaming")
        time.sleep(0.05)


@pytest.mark.fault
def test_a_second_start_and_recover_runs_leave_a_live_turn_alone(replay_route: ModelRoute) -> None:
    session = _slow_session()
    connection.close()
    chat = subprocess.Popen(
        [sys.executable, "manage.py", "chat", str(session.pk), "hello there", "--user", "op"],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run = _streaming_run(session, chat)
        events = run.event_count

        # A second start while the port is taken (the first server is listening) stops before anything.
        with socket.socket() as first_server:
            first_server.bind(("127.0.0.1", 0))
            first_server.listen()
            port = first_server.getsockname()[1]
            second = subprocess.run(
                ["make", "--no-print-directory", "run", f"HOST_PORT=127.0.0.1:{port}"],
                cwd=ROOT,
                env=worker_env(),
                capture_output=True,
                text=True,
                timeout=WAIT_SECONDS,
                check=False,
            )
        assert second.returncode != 0
        assert f"port check: 127.0.0.1:{port} is already in use" in second.stderr
        assert "recover_runs" not in second.stdout
        run.refresh_from_db()
        assert (run.status, run.event_count) == ("running", events)

        # recover_runs from another process leaves the run alone: its worker is alive.
        recovered = run_manage(["recover_runs"])
        assert recovered.returncode == 0, recovered.stderr
        assert recovered.stdout.splitlines() == [
            "recover_runs: left 1 running run(s) alone: the process streaming each is alive on this host",
            f"  {run.pk} (still running)",
        ]
        run.refresh_from_db()
        assert (run.status, run.event_count) == ("running", events)
        started = TraceEvent.objects.get(run=run, index=1)
        assert started.payload["worker_pid"] == chat.pid
    finally:
        chat.send_signal(signal.SIGKILL)
        chat.wait(timeout=WAIT_SECONDS)
    assert chat.returncode == -signal.SIGKILL

    # Its worker killed, the run is recovered.
    recovered = run_manage(["recover_runs"])
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.splitlines() == [
        "recover_runs: marked 1 run(s) interrupted (1 running, 0 queued)",
        f"  {run.pk} (was running)",
    ]
    run.refresh_from_db()
    assert run.status == "interrupted"
    assert TraceEvent.objects.filter(run=run).order_by("-index").first().type == "run_finished"  # type: ignore[union-attr]
    assert Message.objects.filter(session=session, role="assistant").count() == 0


def test_a_worker_is_alive_only_as_the_same_process_on_this_host(db: None) -> None:
    import os

    from core.conversation.workers import worker_alive, worker_identity

    me = worker_identity()
    assert worker_alive(me)
    assert not worker_alive({**me, "worker_start": "another-boot:1"})  # the pid reused by another process
    assert not worker_alive({**me, "worker_host": me["worker_host"] + "-elsewhere"})
    assert not worker_alive({})  # a run that did not record its worker
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=WAIT_SECONDS)
    assert not worker_alive({**me, "worker_pid": child.pid, "worker_start": me["worker_start"]})
    assert me["worker_pid"] == os.getpid()
