"""Workload 10, a streamed turn: a 20,000-token reply through `turn_run` vs the same SDK reading it directly.

A local OpenAI-compatible server (`bench/stream_server.py`) streams the tokens as fast as the socket
takes them. Each repetition, in rotated order, reads the stream twice:

- directly: the `openai` SDK (the client the `openai_compatible` adapter uses) creates the
  request and iterates the chunks, counting the content deltas;
- through `turn_run` on an `openai_compatible` route pointed at the same server: the user message
  and the run, the context, the adapter, every delta into the trace through the coalescer, then
  the reply, the usage and the run's end.

The figure is the paired median of turn tokens/s over direct tokens/s (target ≥ 0.8x). Beside it:
the fixed cost of a turn (ms from the call to the server reading the request, for both), and the
database work of one turn: committed transactions and statements, on every connection the turn
opens (its watch thread's included), counted by wrapping each connection as it is created.

Workload 12, the same turn read by a client: tokens/s through the run's SSE stream vs `turn_run`
directly, side by side in one run. The app is served by uvicorn in a child process on the same
database (as `bench/streaming.py` starts it); each repetition, in rotated order, runs the turn once
with `turn_run`, and once as the API does it (`turn_accept`, then `turn_execute` in a thread, as a
worker runs it) while an httpx-sse client reads `/api/runs/{id}/stream/` to the terminal event and
rebuilds the reply from its text deltas. The figure is the paired median of SSE tokens/s over
`turn_run` tokens/s (reported, no target).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from bench.db import BENCH_USERNAME
from bench.harness import Target, median, paired_ratio, rotated
from bench.stream_server import MODEL, TokenServer, stream_text

STREAM_ALIAS = "bench-stream"


@dataclass
class DbWork:
    """Commits and statements seen on every database connection while counting (all threads)."""

    commits: int = 0
    statements: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, commits: int = 0, statements: int = 0) -> None:
        with self._lock:
            self.commits += commits
            self.statements += statements


@contextmanager
def db_work_counted(counter: DbWork) -> Iterator[None]:
    """Count the commits and statements of every connection in use or opened inside the block."""
    from django.db import connections

    wrapped: list[tuple[BaseDatabaseWrapper, Any]] = []

    def statement(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        counter.add(statements=1)
        return execute(sql, params, many, context)

    def watch(connection: BaseDatabaseWrapper) -> None:
        commit = connection.commit

        def counted_commit() -> None:
            counter.add(commits=1)
            commit()

        connection.commit = counted_commit  # type: ignore[method-assign]
        connection.execute_wrappers.append(statement)
        wrapped.append((connection, commit))

    def created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        watch(connection)

    for connection in connections.all(initialized_only=True):
        watch(connection)
    connection_created.connect(created)
    try:
        yield
    finally:
        connection_created.disconnect(created)
        for connection, commit in wrapped:
            connection.commit = commit  # type: ignore[method-assign]
            if statement in connection.execute_wrappers:
                connection.execute_wrappers.remove(statement)


def _route(url: str) -> None:
    """An `openai_compatible` provider and route pointed at the local server (bench-only rows)."""
    from core.models import ModelRoute, Provider, ProviderKind

    provider = Provider.objects.create(
        name=STREAM_ALIAS,
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=url,
        options={"api": "chat_completions", "max_retries": 0},
    )
    ModelRoute.objects.create(
        alias=STREAM_ALIAS,
        provider=provider,
        model_id=MODEL,
        context_window_tokens=1_000_000,
        max_output_tokens=100_000,
    )


def _direct(server: TokenServer) -> tuple[float, float, int]:
    """Seconds for the whole read, ms before the request reached the server, tokens counted."""
    import openai

    started = time.monotonic()
    tokens = 0
    with openai.OpenAI(api_key="no-key", base_url=server.url, max_retries=0) as client:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "go"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        with stream:
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        tokens += 1
    elapsed = time.monotonic() - started
    return elapsed, (server.arrivals[-1] - started) * 1000, tokens


def _turn(server: TokenServer, expected: str, counter: DbWork) -> tuple[float, float, int]:
    from django.contrib.auth.models import User

    from core.conversation.services import session_create
    from runtime.turns import turn_run

    owner = User.objects.get(username=BENCH_USERNAME)
    session = session_create(owner=owner, title="stream", route_alias=STREAM_ALIAS)
    deltas = 0

    def count(event: Any) -> None:
        nonlocal deltas
        if event.type == "text_delta":
            deltas += 1

    with db_work_counted(counter):
        started = time.monotonic()
        result = turn_run(session_id=session.pk, user_text="go", on_event=count)
        elapsed = time.monotonic() - started
    if result.run.status != "completed" or result.text != expected:
        raise RuntimeError(f"the streamed turn ended {result.run.status} with {len(result.text)} characters")
    return elapsed, (server.arrivals[-1] - started) * 1000, deltas


def _streamed_setup(ctx: Any, database: str, versus: str) -> tuple[int, str, str]:
    """A fresh `database`; the reply's token count, the workload's title and the text it streams."""
    tokens = ctx.sizes.stream_tokens
    ctx.dbs.fresh(database)
    return tokens, f"streaming {tokens:,} tokens: {versus}", stream_text(tokens)


def _rates(tokens: int, seconds: dict[str, list[float]], labels: dict[str, str]) -> dict[str, float]:
    """Tokens/s of each side (its median seconds), under `<label> tok/s`."""
    return {f"{label} tok/s": round(tokens / median(seconds[name])) for name, label in labels.items()}


def w10_turn_stream(ctx: Any) -> list[Any]:
    from core.conversation.selectors import run_text
    from core.models import Run

    tokens, title, expected = _streamed_setup(ctx, "streaming", "turn_run vs the SDK directly")
    seconds: dict[str, list[float]] = {"turn": [], "direct": []}
    fixed: dict[str, list[float]] = {"turn": [], "direct": []}
    work: list[DbWork] = []
    with TokenServer(tokens) as server:
        _route(server.url)
        _direct(server)  # warm up: imports, the SDK's first client
        _turn(server, expected, DbWork())
        for rep in range(ctx.sizes.stream_reps):
            for name in rotated(["turn", "direct"], rep):
                if name == "direct":
                    elapsed, before_ms, counted = _direct(server)
                else:
                    counter = DbWork()
                    elapsed, before_ms, counted = _turn(server, expected, counter)
                    work.append(counter)
                if counted != tokens:
                    raise RuntimeError(f"{name} read {counted} of {tokens} tokens")
                seconds[name].append(elapsed)
                fixed[name].append(before_ms)
    last = Run.objects.order_by("-created").first()
    if last is None or run_text(run_id=last.pk) != expected:
        raise RuntimeError("the trace of the last turn does not rebuild the streamed text")
    # tokens/s ratio = direct seconds / turn seconds, paired per repetition.
    figure = paired_ratio(seconds["direct"], seconds["turn"])
    row = ctx.row(
        10,
        "10.turn_vs_direct",
        title,
        figure=figure,
        reps=ctx.sizes.stream_reps,
        detail={
            **_rates(tokens, seconds, {"turn": "turn", "direct": "direct"}),
            "turn ms before request": round(median(fixed["turn"]), 1),
            "direct ms before request": round(median(fixed["direct"]), 1),
            "transactions/turn": median([float(counter.commits) for counter in work]),
            "statements/turn": median([float(counter.statements) for counter in work]),
            "trace events/turn": float(last.event_count),
        },
    )
    return [ctx.judged(row, Target(">=", 0.8))]


def _sse_turn(url: str, headers: dict[str, str], expected: str) -> float:
    """Seconds from accepting the turn to the client's receipt of its terminal event over SSE."""
    import httpx
    from django.contrib.auth.models import User
    from django.db import connection
    from httpx_sse import connect_sse

    from core.conversation.services import session_create
    from runtime.turns import turn_accept, turn_execute

    owner = User.objects.get(username=BENCH_USERNAME)
    session = session_create(owner=owner, title="stream", route_alias=STREAM_ALIAS)
    failed: list[BaseException] = []

    def work(run_id: Any) -> None:
        try:
            turn_execute(run_id=run_id)
        except BaseException as exc:  # re-raised below, in the bench's own thread
            failed.append(exc)
        finally:
            connection.close()

    text: list[str] = []
    last = ""
    started = time.monotonic()
    run = turn_accept(session_id=session.pk, owner=owner, user_text="go").run
    worker = threading.Thread(target=work, args=(run.pk,))
    worker.start()
    with (
        httpx.Client(timeout=120) as client,
        connect_sse(client, "GET", f"{url}/api/runs/{run.pk}/stream/", headers=headers) as source,
    ):
        for sse in source.iter_sse():
            last = sse.data
            if sse.event == "text_delta":
                text.append(json.loads(sse.data)["text"])
    elapsed = time.monotonic() - started
    worker.join()
    if failed:
        raise failed[0]
    if "".join(text) != expected:
        raise RuntimeError(f"the SSE client rebuilt {len(''.join(text))} of {len(expected)} characters (last: {last})")
    return elapsed


def w12_sse_stream(ctx: Any) -> list[Any]:
    from django.contrib.auth.models import User

    from bench.streaming import serve
    from core.accounts.services import token_create

    tokens, title, expected = _streamed_setup(ctx, "sse-stream", "read through the SSE stream vs turn_run directly")
    seconds: dict[str, list[float]] = {"sse": [], "turn": []}
    owner = User.objects.get(username=BENCH_USERNAME)
    headers = {"Authorization": f"Token {token_create(user=owner, name='bench sse').key}"}
    with TokenServer(tokens) as tokens_server:
        _route(tokens_server.url)
        app, url = serve(ctx.dbs.url())
        try:
            _sse_turn(url, headers, expected)  # warm up: the app's first stream, the hub
            _turn(tokens_server, expected, DbWork())
            for rep in range(ctx.sizes.stream_reps):
                for name in rotated(["sse", "turn"], rep):
                    if name == "sse":
                        seconds[name].append(_sse_turn(url, headers, expected))
                    else:
                        seconds[name].append(_turn(tokens_server, expected, DbWork())[0])
        finally:
            app.terminate()
            app.wait(30)
    row = ctx.row(
        12,
        "12.sse_vs_turn",
        title,
        # tokens/s ratio = turn_run seconds / SSE seconds, paired per repetition.
        figure=paired_ratio(seconds["turn"], seconds["sse"]),
        reps=ctx.sizes.stream_reps,
        detail={
            **_rates(tokens, seconds, {"sse": "sse", "turn": "turn_run"}),
            **{f"{label} s": round(median(seconds[name]), 3) for name, label in (("sse", "sse"), ("turn", "turn_run"))},
        },
    )
    return [row]
