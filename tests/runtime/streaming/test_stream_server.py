"""The run stream under a real ASGI server (uvicorn), read with a real SSE client (httpx-sse).

Runs are written with the conversation services, from this process or from another one
(`tests.runtime.streaming.writer`), exactly as a turn stores its events.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest
from django.db import connection, connections
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse

from core.conversation.selectors import trace_events
from core.conversation.services import run_event_append, run_finish
from core.models import Run
from runtime.streaming.hub import DB_THREADS
from tests.procs import start_worker
from tests.runtime.streaming.conftest import (
    SERVER_APP_NAME,
    Server,
    owner_signed_in,
    run_opened,
    server_rss_kib,
    server_sqlite_connections,
    server_threads,
)

pytestmark = pytest.mark.django_db(transaction=True)

Event = tuple[int, str, Any]
T = TypeVar("T")


def stored(run: Run) -> list[Event]:
    return [(event.index, event.type, event.payload) for event in trace_events(run_id=run.pk)]


def as_events(received: Iterable[ServerSentEvent]) -> list[Event]:
    return [(int(sse.id or 0), sse.event, json.loads(sse.data)) for sse in received]


def stream_url(server: Server, run: Run) -> str:
    return f"{server.url}/api/runs/{run.pk}/stream/"


def read_all(server: Server, run: Run, headers: dict[str, str], **params: str) -> list[Event]:
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(client, "GET", stream_url(server, run), headers=headers, params=params) as source,
    ):
        assert source.response.headers["content-type"] == "text/event-stream"
        return as_events(source.iter_sse())


def test_a_finished_run_replays_its_whole_trace_and_the_stream_closes(server: Server) -> None:
    owner = owner_signed_in()
    run = run_opened(owner.user)
    for text in ("Hel", "lo\n", ' "world"'):
        run_event_append(run_id=run.pk, event_type="text_delta", payload={"text": text})
    run_finish(run_id=run.pk, status="completed")

    assert read_all(server, run, owner.headers) == stored(run)
    assert [event[0] for event in stored(run)] == [1, 2, 3, 4, 5]
    # Resuming after event 3 gives exactly the rest; the header wins over the query (EventSource keeps the URL).
    assert read_all(server, run, owner.headers, after="3") == stored(run)[3:]
    assert read_all(server, run, {**owner.headers, "Last-Event-ID": "4"}, after="1") == stored(run)[4:]
    # After the terminal event there is nothing left: the stream closes at once, empty.
    assert read_all(server, run, owner.headers, after="5") == []


def test_a_running_run_is_tailed_as_another_process_writes_it_and_closes_after_the_terminal_event(
    server: Server,
) -> None:
    owner = owner_signed_in()
    run = run_opened(owner.user)
    received: list[Event] = []
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(client, "GET", stream_url(server, run), headers=owner.headers) as source,
    ):
        events = source.iter_sse()
        received += as_events([next(events)])  # run_started: the stream is open before the writer starts
        writer = start_worker("tests.runtime.streaming.writer", [str(run.pk), "20", "20"])
        received += as_events(events)  # ends when the server closes the stream
    output, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors
    assert output.splitlines()[-1] == "done"
    assert received == stored(run)
    assert received[-1] == (22, "run_finished", {"status": "completed"})


def test_disconnecting_at_ten_random_points_and_resuming_loses_and_repeats_nothing(server: Server) -> None:
    owner = owner_signed_in()
    run = run_opened(owner.user)
    writer = start_worker("tests.runtime.streaming.writer", [str(run.pk), "120", "8"])
    total = 122  # run_started, 120 deltas, run_finished
    cuts = sorted(random.Random(18).sample(range(1, total), 10))
    received: list[Event] = []
    connections_made = 0
    with httpx.Client(timeout=10) as client:
        while not received or received[-1][1] != "run_finished":
            last = str(received[-1][0]) if received else "0"
            # Half the reconnects resume by the header, half by the query.
            headers = {**owner.headers, "Last-Event-ID": last} if connections_made % 2 else owner.headers
            params = {} if connections_made % 2 else {"after": last}
            connections_made += 1
            cut = next((cut for cut in cuts if cut > len(received)), None)
            with connect_sse(client, "GET", stream_url(server, run), headers=headers, params=params) as source:
                for sse in source.iter_sse():
                    received += as_events([sse])
                    if cut is not None and len(received) == cut:
                        break  # drop the connection mid-stream
    _, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors
    assert connections_made == 11
    assert received == stored(run)
    assert [event[0] for event in received] == list(range(1, total + 1))


def test_an_idle_stream_sends_heartbeat_comments_that_sse_clients_skip(server: Server) -> None:
    owner = owner_signed_in()
    run = run_opened(owner.user)
    lines: list[str] = []
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", stream_url(server, run), headers=owner.headers) as response,
    ):
        started = time.monotonic()
        for line in response.iter_lines():
            lines.append(line)
            if lines.count(": keep-alive") == 2:
                break
        waited = time.monotonic() - started
    # id/event/data of run_started, its blank line, then comments only, each ending its own block.
    assert lines[:4] == ["id: 1", "event: run_started", "data: {}", ""]
    assert [line for line in lines[4:] if line] == [": keep-alive", ": keep-alive"]
    assert waited < 5
    run_finish(run_id=run.pk, status="completed")
    # The SSE client sees the events only.
    assert [event[1] for event in read_all(server, run, owner.headers)] == ["run_started", "run_finished"]


def server_db_connections(server: Server) -> int:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [SERVER_APP_NAME])
            row = cursor.fetchone()
        return int(row[0]) if row else 0
    return server_sqlite_connections(server.pid, str(connection.settings_dict["NAME"]))


def closing_connections(work: Callable[[], T]) -> T:
    """`work` on a helper thread of this process, leaving that thread no database connection."""
    try:
        return work()
    finally:
        connections.close_all()


async def _hundred_streams(server: Server, runs: list[Run], headers: dict[str, str]) -> dict[str, Any]:
    streams = 100
    opened = asyncio.Event()
    first_events = 0
    finished: list[list[Event]] = []
    errors: list[str] = []

    async def one(client: httpx.AsyncClient, run: Run) -> None:
        nonlocal first_events
        seen: list[Event] = []
        try:
            async with aconnect_sse(client, "GET", stream_url(server, run), headers=headers) as source:
                async for sse in source.aiter_sse():
                    seen += as_events([sse])
                    if len(seen) == 1:
                        first_events += 1
                        if first_events == streams:
                            opened.set()
            finished.append(seen)
        except (httpx.HTTPError, ValueError) as exc:
            errors.append(repr(exc))
            opened.set()

    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        before = {"threads": server_threads(server.pid), "rss_kib": server_rss_kib(server.pid)}
        tasks = [asyncio.create_task(one(client, runs[n % len(runs)])) for n in range(streams)]
        await asyncio.wait_for(opened.wait(), 60)
        # Several heartbeats and many hub polls pass while all of them wait.
        await asyncio.sleep(1.5)
        during = {
            "threads": server_threads(server.pid),
            "rss_kib": server_rss_kib(server.pid),
            "db_connections": await asyncio.to_thread(closing_connections, partial(server_db_connections, server)),
        }
        await asyncio.to_thread(
            closing_connections, lambda: [run_finish(run_id=run.pk, status="completed") for run in runs]
        )
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    # With every stream gone the hub stops, and the process keeps no connection.
    deadline = time.monotonic() + 10
    after = await asyncio.to_thread(closing_connections, partial(server_db_connections, server))
    while after and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        after = await asyncio.to_thread(closing_connections, partial(server_db_connections, server))
    return {"before": before, "during": during, "after": after, "finished": finished, "errors": errors}


def test_a_hundred_idle_streams_hold_at_most_two_connections_and_no_thread_each(server: Server) -> None:
    owner = owner_signed_in()
    runs = [run_opened(owner.user) for _ in range(20)]
    figures = asyncio.run(_hundred_streams(server, runs, owner.headers))
    before, during = figures["before"], figures["during"]
    print(
        f"\n100 idle streams ({connection.vendor}): db connections {during['db_connections']}, "
        f"threads {before['threads']} -> {during['threads']}, RSS {before['rss_kib']} -> {during['rss_kib']} KiB"
    )
    assert figures["errors"] == []
    assert during["db_connections"] <= 2
    assert figures["after"] == 0
    # Whatever the number of streams: the stream db thread and the stream requests' thread at most.
    assert during["threads"] - before["threads"] <= DB_THREADS + 1
    # Each stream got run_started, then the terminal event when the runs finished, and closed.
    assert len(figures["finished"]) == 100
    assert all([kind for _, kind, _ in seen] == ["run_started", "run_finished"] for seen in figures["finished"])
