"""Turns in workers, against the real processes `manage.py serve` starts (uvicorn + supervised workers).

One server per module (starting uvicorn and the workers takes seconds on a busy machine): its
lease is 2 s, so a dead worker's run ends within it plus one sweep. The SIGTERM test starts a
server of its own. Slow providers are replay routes with `delay_ms` / `pause_at_chunk` + `pause_ms`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from core.accounts.services import token_create
from core.conversation.selectors import trace_events
from core.conversation.services import session_create
from core.models import (
    AgentSession,
    Message,
    ModelRoute,
    Provider,
    ProviderKind,
    Run,
    RunStatus,
    TraceEvent,
    WorkerBeat,
)
from runtime.turns import turn_accept
from tests.owners import op_user
from tests.procs import ROOT, worker_env

LEASE_MS = 2_000
WORKERS = 4
STARTUP_S = 120.0
# Generous: on a machine shared by many test runs the first request imports and connects slowly.
HTTP_TIMEOUT_S = 120.0

pytestmark = [pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4_000:]


def _serve(tmp: Path, **env: str) -> Server:
    port = _free_port()
    log = tmp / f"serve-{port}.log"
    extra = {
        "AGENTCHAT_RUN_LEASE_MS": str(LEASE_MS),
        "AGENTCHAT_WORKERS": str(WORKERS),
        # A burst of 10 turns by one user must not meet the open-run cap (8 by default) on a slow
        # machine, where the first turns are still running when the last are sent (the cap has a test
        # of its own in tests/runtime/test_turns.py).
        "AGENTCHAT_MAX_OPEN_RUNS_PER_USER": "20",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=worker_env(**extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    deadline = time.monotonic() + STARTUP_S
    while True:
        assert process.poll() is None, f"serve exited early:\n{server.output()}"
        assert time.monotonic() < deadline, f"serve did not listen within {STARTUP_S} s:\n{server.output()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.25)
    # The first request loads the URL conf and opens the server's connection: wait for it here.
    with urllib.request.urlopen(server.url("/accounts/login/"), timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
        assert response.status == 200
    return server


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def server(django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = _serve(tmp_path_factory.mktemp("serve"))
    try:
        with django_db_blocker.unblock():
            _wait("every worker's first heartbeat", lambda: WorkerBeat.objects.count() >= WORKERS, STARTUP_S, running)
        yield running
    finally:
        _stop(running)


def _route(alias: str, **options: Any) -> ModelRoute:
    provider = Provider.objects.create(name=f"{alias}-replay", kind=ProviderKind.REPLAY, options=options)
    return ModelRoute.objects.create(
        alias=alias, provider=provider, model_id="replay-1", context_window_tokens=8_000, max_output_tokens=1_000
    )


@dataclass
class Api:
    server: Server
    key: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server.url(path), data=data, method=method)  # noqa: S310 -- 127.0.0.1
        request.add_header("Authorization", f"Token {self.key}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310 -- 127.0.0.1
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def turn(self, session: AgentSession, text: str) -> dict[str, Any]:
        status, body = self.call("POST", f"/api/sessions/{session.pk}/turns/", {"text": text})
        assert status == 202, body
        return body


@pytest.fixture
def api(server: Server) -> Api:
    return Api(server, token_create(user=op_user(), name="serve-test").key)


def _wait(what: str, check: Callable[[], bool], timeout: float, server: Server) -> float:
    """Seconds until `check()` holds; fails naming `what` after `timeout`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout} s:\n{server.output()}"
        time.sleep(0.05)
    return time.monotonic() - started


def _status(run_id: str) -> str:
    return str(Run.objects.values_list("status", flat=True).get(pk=run_id))


def _all_completed(runs: list[str]) -> Callable[[], bool]:
    return lambda: all(_status(run_id) == RunStatus.COMPLETED for run_id in runs)


def _worker_pid(worker_id: str) -> int:
    """The pid of the worker process started with `--worker-id worker_id` (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and worker_id.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no process runs worker {worker_id}")


def test_a_turn_answers_202_and_completes_in_a_worker_and_20_turns_in_10_sessions_leave_no_gap(
    api: Api, server: Server
) -> None:
    route = _route("quick")
    sessions = [session_create(owner=op_user(), route_alias=route.alias) for _ in range(10)]
    for round_number in range(2):
        runs = [
            api.turn(session, f"turn {round_number} of {index}")["run"]["id"] for index, session in enumerate(sessions)
        ]
        _wait("every turn completed", _all_completed(runs), 90, server)
    for index, session in enumerate(sessions):
        contents = list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "content"))
        assert contents == [
            (1, f"turn 0 of {index}"),
            (2, f"replay: turn 0 of {index}"),
            (3, f"turn 1 of {index}"),
            (4, f"replay: turn 1 of {index}"),
        ]
    assert Run.objects.filter(session__in=sessions).exclude(status=RunStatus.COMPLETED).count() == 0


def test_four_slow_turns_in_four_sessions_all_start_before_any_finishes(api: Api, server: Server) -> None:
    # About 13 s a reply (4 characters a second), so a loaded machine still starts all four before one ends.
    route = _route("slow4", delay_ms=1_000, chunk_chars=4)
    sessions = [session_create(owner=op_user(), route_alias=route.alias) for _ in range(4)]
    runs = [api.turn(session, "a reply that takes a few seconds to stream")["run"]["id"] for session in sessions]

    def all_streaming() -> bool:
        statuses = list(Run.objects.filter(pk__in=runs).values_list("status", flat=True))
        assert RunStatus.COMPLETED not in statuses, "a turn finished before all had started"
        return TraceEvent.objects.filter(run_id__in=runs, type="text_delta").values("run_id").distinct().count() == 4

    _wait("all four streaming", all_streaming, 60, server)
    _wait("all four completed", _all_completed(runs), 60, server)


class _StreamReader(threading.Thread):
    """Reads a run's SSE stream to its end in the background, noting when each event arrived."""

    def __init__(self, api: Api, path: str) -> None:
        super().__init__(daemon=True)
        self.api, self.path = api, path
        self.events: list[tuple[int, str, Any]] = []
        self.arrived: list[float] = []
        self.problem: BaseException | None = None

    def run(self) -> None:
        try:
            headers = {"Authorization": f"Token {self.api.key}"}
            with (
                httpx.Client(timeout=HTTP_TIMEOUT_S) as client,
                connect_sse(client, "GET", self.api.server.url(self.path), headers=headers) as source,
            ):
                assert source.response.headers["content-type"] == "text/event-stream"
                for sse in source.iter_sse():
                    self.events.append((int(sse.id), sse.event, json.loads(sse.data)))
                    self.arrived.append(time.monotonic())
        except BaseException as exc:  # handed to the test, which fails naming it
            self.problem = exc

    def all(self, timeout: float) -> list[tuple[int, str, Any]]:
        self.join(timeout)
        assert not self.is_alive(), f"the stream of {self.path} did not close within {timeout} s"
        assert self.problem is None, f"the stream of {self.path} failed: {self.problem!r}"
        return self.events


def _stored(run_id: str) -> list[tuple[int, str, Any]]:
    return [(event.index, event.type, event.payload) for event in trace_events(run_id=run_id)]


@pytest.mark.fault
def test_a_worker_killed_mid_turn_ends_its_stream_interrupted_within_the_lease_and_a_retry_streams_to_completion(
    api: Api, server: Server
) -> None:
    route = _route("stall", pause_at_chunk=1, pause_ms=60_000)
    session = session_create(owner=op_user(), route_alias=route.alias)
    accepted = api.turn(session, "hello there, worker")
    run_id = accepted["run"]["id"]
    reader = _StreamReader(api, accepted["stream_url"])
    reader.start()
    _wait("the first streamed delta", lambda: any(event[1] == "text_delta" for event in reader.events), 60, server)
    owner = Run.objects.values_list("lease_owner", flat=True).get(pk=run_id)
    os.kill(_worker_pid(owner), signal.SIGKILL)
    killed = time.monotonic()
    received = reader.all(30)
    # The SSE client sees the run end `interrupted` within the lease (plus one sweep), and every event
    # it received is the stored trace, in order, with nothing lost or repeated.
    assert received[-1][1:] == ("run_finished", {"status": "interrupted"})
    took = reader.arrived[-1] - killed
    assert took <= LEASE_MS / 1000 + 2.5, (
        f"interrupted reached the client after {took:.1f} s; the lease is {LEASE_MS} ms"
    )
    assert received == _stored(run_id)
    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.INTERRUPTED
    assert run.error == f"interrupted: the worker running this run stopped renewing its lease ({owner})"
    Provider.objects.filter(pk=route.provider_id).update(options={})
    status, body = api.call("POST", f"/api/runs/{run_id}/retry/")
    assert status == 202, body
    assert body["run"]["attempt"] == 2
    retry_id = body["run"]["id"]
    # The retry's stream tails it live to its end, and a later replay of the finished run is the same trace.
    tailed = _StreamReader(api, body["stream_url"])
    tailed.start()
    live = tailed.all(60)
    assert _status(retry_id) == RunStatus.COMPLETED
    assert live[-1][1:] == ("run_finished", {"status": "completed"})
    assert live == _stored(retry_id)
    replayed = _StreamReader(api, body["stream_url"])
    replayed.start()
    assert replayed.all(30) == live
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("role", "content")) == [
        ("user", "hello there, worker"),
        ("assistant", "replay: hello there, worker"),
    ]


@pytest.mark.fault
def test_a_turn_committed_but_never_enqueued_is_run_by_the_sweeper(api: Api, server: Server) -> None:
    route = _route("lost")
    session = session_create(owner=op_user(), route_alias=route.alias)
    # The API's transaction committed, and the process died before its on_commit enqueue ran.
    accepted = turn_accept(session_id=session.pk, user_text="never enqueued")
    _wait("the sweeper ran it", lambda: _status(str(accepted.run.pk)) == RunStatus.COMPLETED, 60, server)
    assert Run.objects.get(pk=accepted.run.pk).attempt == 1


@pytest.mark.fault
def test_a_provider_silent_for_three_leases_keeps_its_run_and_still_cancels_within_a_second(
    api: Api, server: Server
) -> None:
    route = _route("thinker", pause_at_chunk=1, pause_ms=3 * LEASE_MS + 60_000)
    session = session_create(owner=op_user(), route_alias=route.alias)
    run_id = api.turn(session, "think about it")["run"]["id"]
    _wait("the first delta", lambda: TraceEvent.objects.filter(run_id=run_id, type="text_delta").exists(), 60, server)
    time.sleep(3 * LEASE_MS / 1000)
    assert _status(run_id) == RunStatus.RUNNING
    status, body = api.call("POST", f"/api/runs/{run_id}/cancel/", {"reason": "enough"})
    assert status == 200, body
    asked = time.monotonic()
    _wait("cancelled", lambda: _status(run_id) == RunStatus.CANCELLED, 10, server)
    assert time.monotonic() - asked <= 1.0
    run = Run.objects.get(pk=run_id)
    assert run.cancel_reason == "enough"
    # Every character streamed before the cancel is in the trace.
    assert TraceEvent.objects.filter(run=run, type="text_delta").get().payload == {"text": "replay: think ab"}
