"""Cancelling a streaming turn closes the provider's stream within a second, even when it is silent.

The turn runs on a real thread against the database (committed rows: `transaction=True`); the
cancel comes from the test's thread, as the API's would. The live kinds stream through their
official SDKs from a local server that sends the start of a recorded stream and then goes silent,
holding the connection open until the client closes it.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connections

from core.conversation.selectors import run_text
from core.conversation.services import run_cancel, session_create
from core.models import AgentSession, Message, ModelRoute, Provider, ProviderKind, Run, RunStatus, TraceEvent
from runtime.turns import TurnResult, turn_run
from runtime.watch import STREAMING_CANCEL_REASON
from tests.owners import op_user
from tests.runtime.providers.conftest import SECRET
from tests.runtime.providers.servers import recording, sse_events

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fault]

CANCEL_WITHIN_S = 1.0


class TurnThread:
    """`turn_run` on a thread of its own (its own database connection, closed when it ends)."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.result: TurnResult | None = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = turn_run(**self.kwargs)
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            connections.close_all()

    def start(self) -> TurnThread:
        self.thread.start()
        return self

    def join(self, timeout: float) -> TurnResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the turn was still running {timeout} s later"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def open_run(session: AgentSession) -> Run:
    wait_for(lambda: Run.objects.filter(session=session).exists())
    return Run.objects.get(session=session)


def trace_types(run: Run) -> list[str]:
    return list(TraceEvent.objects.filter(run=run).order_by("index").values_list("type", flat=True))


def paused_replay(replay_route: ModelRoute) -> AgentSession:
    # "replay: abcdefgh…" in chunks of 4: three chunks stream, then the provider is silent for 30 s.
    Provider.objects.filter(pk=replay_route.provider_id).update(
        options={"chunk_chars": 4, "pause_at_chunk": 3, "pause_ms": 30_000}
    )
    return session_create(owner=op_user(), route_alias=replay_route.alias)


def test_a_cancel_from_outside_stops_a_silent_replay_within_a_second(replay_route: ModelRoute) -> None:
    session = paused_replay(replay_route)
    turn = TurnThread(session_id=session.pk, user_text="abcdefghijklmnop").start()
    run = open_run(session)
    # What streamed before the silence reaches the trace without another token (the timer's flush).
    wait_for(lambda: run_text(run_id=run.pk) == "replay: abcd")
    cancelled_at = time.monotonic()
    run_cancel(run_id=run.pk, reason="stopped from the UI")
    result = turn.join(timeout=5)
    assert turn.ended_at is not None
    assert turn.ended_at - cancelled_at < CANCEL_WITHIN_S
    assert (result.run.status, result.run.cancel_reason) == (RunStatus.CANCELLED, "stopped from the UI")
    assert run_text(run_id=run.pk) == "replay: abcd"
    assert trace_types(run) == ["run_started", "text_delta", "run_finished"]
    assert list(Message.objects.filter(session=session).values_list("role", flat=True)) == ["user"]


def test_the_callers_cancel_stops_a_silent_replay_and_keeps_what_streamed(replay_route: ModelRoute) -> None:
    session = paused_replay(replay_route)
    stop = threading.Event()
    turn = TurnThread(session_id=session.pk, user_text="abcdefghijklmnop", should_cancel=stop.is_set).start()
    run = open_run(session)
    wait_for(lambda: run_text(run_id=run.pk) == "replay: abcd")
    cancelled_at = time.monotonic()
    stop.set()
    result = turn.join(timeout=5)
    assert turn.ended_at is not None
    assert turn.ended_at - cancelled_at < CANCEL_WITHIN_S
    assert (result.run.status, result.run.cancel_reason) == (RunStatus.CANCELLED, STREAMING_CANCEL_REASON)
    assert run_text(run_id=run.pk) == "replay: abcd"
    assert trace_types(run)[-1] == "run_finished"
    assert trace_types(run).count("run_finished") == 1


def test_the_callers_cancel_writes_the_buffered_text_before_the_cancel(replay_route: ModelRoute) -> None:
    # No timer flush can happen in between: the cancel comes on the event after the buffered ones.
    Provider.objects.filter(pk=replay_route.provider_id).update(options={"chunk_chars": 3})
    session = session_create(owner=op_user(), route_alias=replay_route.alias)
    seen: list[object] = []
    result = turn_run(
        session_id=session.pk, user_text="abcdefghijkl", on_event=seen.append, should_cancel=lambda: len(seen) >= 4
    )
    assert result.run.status == RunStatus.CANCELLED
    assert run_text(run_id=result.run.pk) == "replay: abcd"  # the four chunks of 3 the turn had received
    assert trace_types(result.run)[-1] == "run_finished"


# --- live kinds: the official SDK reading a local server that goes silent ----------------------

# name → (provider kind, path after the server URL, key variable)
KINDS: dict[str, tuple[str, str, str]] = {
    "openai_chat": (ProviderKind.OPENAI_COMPATIBLE, "/v1", ""),
    "openai_responses": (ProviderKind.OPENAI, "/v1", "OPENAI_API_KEY"),
    "anthropic": (ProviderKind.ANTHROPIC, "", "ANTHROPIC_API_KEY"),
    "google": (ProviderKind.GOOGLE, "", "GEMINI_API_KEY"),
    "ollama": (ProviderKind.OLLAMA, "", ""),
}


class SilentServer:
    """Answers a streaming request with a recorded stream's events up to the one holding `word1`,
    then sends nothing and waits for the client to close; `closed_at` is when it did."""

    def __init__(self, name: str) -> None:
        events = sse_events(recording(f"{name}/slow.sse"))
        cut = next(n for n, event in enumerate(events) if b"word1" in event)
        self.events = events[: cut + 1]
        self.closed_at: float | None = None
        self.requests = 0
        self.log_lines: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                server.log_lines.append(format % args)  # kept for a failing test to show, off stderr

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for event in server.events:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                conn: socket.socket = self.connection
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    readable, _, _ = select.select([conn], [], [], 0.05)
                    if readable and not conn.recv(1024):  # end of stream: the client closed
                        server.closed_at = time.monotonic()
                        return

        return Handler

    def __enter__(self) -> SilentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("name", list(KINDS))
def test_a_cancel_closes_a_silent_live_stream_within_a_second(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kind, path, key_env = KINDS[name]
    if key_env:
        monkeypatch.setenv(key_env, SECRET)
    with SilentServer(name) as server:
        options: dict[str, Any] = {"max_retries": 0, "timeout_s": 60}
        if name == "openai_chat":
            options["api"] = "chat_completions"
        provider = Provider.objects.create(
            name=name, kind=kind, api_key_env=key_env, base_url=server.url + path, options=options
        )
        route = ModelRoute.objects.create(
            alias=name, provider=provider, model_id="m-1", context_window_tokens=100_000, max_output_tokens=100
        )
        session = session_create(owner=op_user(), route_alias=route.alias)
        turn = TurnThread(session_id=session.pk, user_text="count slowly").start()
        run = open_run(session)
        wait_for(lambda: run_text(run_id=run.pk) == "word0 word1 ")
        cancelled_at = time.monotonic()
        run_cancel(run_id=run.pk, reason="stopped from the UI")
        result = turn.join(timeout=10)
        wait_for(lambda: server.closed_at is not None, timeout=5)
    assert turn.ended_at is not None
    assert turn.ended_at - cancelled_at < CANCEL_WITHIN_S
    assert server.closed_at is not None
    assert server.closed_at - cancelled_at < CANCEL_WITHIN_S
    assert server.requests == 1
    assert (result.run.status, result.run.cancel_reason) == (RunStatus.CANCELLED, "stopped from the UI")
    # Everything streamed before the cancel is in the trace, and the cut read is not reported as a failure.
    assert run_text(run_id=run.pk) == "word0 word1 "
    types = trace_types(run)
    assert types[-1] == "run_finished"
    assert "error" not in types
