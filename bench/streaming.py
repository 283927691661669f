"""The run stream, side by side in one run: flush→delivery delay, and 100 concurrent streams.

    .venv/bin/python -m bench.streaming                 # SQLite: a fresh file under bench/.work/streaming/
    DATABASE_URL=postgres://…/agentchat_bench .venv/bin/python -m bench.streaming   # PostgreSQL (flushed first)

The app is served by uvicorn (`agentchat_site.asgi:application`, default heartbeat and poll) in a
child process; this process writes trace events through the conversation services, as a worker
does, and reads the streams with httpx-sse. Figures are printed and written to
`bench/.work/streaming-<vendor>.json`; they are recorded by hand in RESULTS.md ("Notes kept by hand").

- Delay: each of `DELAY_SAMPLES` text deltas is appended after a random 20-40 ms pause (so writes do
  not fall into step with the SQLite hub's poll); the delay of an event runs from the commit of its
  append (the flush: one transaction) to the moment the client has parsed it, and is also given
  from the start of the append (the write's own time included).
- 100 streams: 100 clients on 10 running runs; the server's RSS and threads before and while they
  wait; then 10 deltas and the finish are written to each run, and every client must receive
  exactly the stored trace (errors counted: failed requests, missing or repeated events).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
DELAY_SAMPLES = 300
STREAMS = 100
STREAM_RUNS = 10


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url:
        return url
    folder = WORK / "streaming"
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob("bench.sqlite3*"):
        leftover.unlink()
    return f"sqlite:///{folder / 'bench.sqlite3'}"


def _setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentchat_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    if connection.vendor == "postgresql":
        call_command("flush", "--noinput", verbosity=0)


def serve(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "uvicorn", "agentchat_site.asgi:application", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--no-access-log", "--lifespan", "off", "--log-level", "warning"], cwd=ROOT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 180
    while True:
        try:
            httpx.get(f"{url}/api/bootstrap/", timeout=180)  # also imports the URLconf before timing
            return server, url
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("uvicorn did not answer") from None
            time.sleep(0.2)


def _proc(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def _owner() -> tuple[Any, dict[str, str]]:
    from django.contrib.auth.models import User

    from core.accounts.services import token_create
    from core.models import ModelRoute, Provider, ProviderKind

    user = User.objects.create_user(username="stream-bench", password=None)
    provider = Provider.objects.create(name="replay", kind=ProviderKind.REPLAY)
    ModelRoute.objects.create(
        alias="replay",
        provider=provider,
        model_id="replay-1",
        context_window_tokens=8_000,
        max_output_tokens=1_000,
        is_default=True,
    )
    return user, {"Authorization": f"Token {token_create(user=user, name='bench').key}"}


def _run(user: Any) -> Any:
    from core.conversation.services import run_create, session_create

    session = session_create(owner=user, title="bench", route_alias="replay")
    return run_create(session_id=session.pk, status="running")


def measure_delay(url: str, user: Any, headers: dict[str, str]) -> dict[str, Any]:
    import httpx
    from httpx_sse import connect_sse

    from core.conversation.services import run_event_append, run_finish

    run = _run(user)
    flushed: dict[int, float] = {}
    committed: dict[int, float] = {}
    delivered: dict[int, float] = {}
    connected = threading.Event()

    def read() -> None:
        with (
            httpx.Client(timeout=60) as client,
            connect_sse(client, "GET", f"{url}/api/runs/{run.pk}/stream/", headers=headers) as source,
        ):
            for sse in source.iter_sse():
                delivered[int(sse.id or 0)] = time.perf_counter()
                connected.set()

    reader = threading.Thread(target=read)
    reader.start()
    connected.wait(60)  # run_started has arrived: the stream is waiting on the hub
    rng = random.Random(18)
    for n in range(DELAY_SAMPLES):
        time.sleep(rng.uniform(0.020, 0.040))
        started = time.perf_counter()
        event = run_event_append(run_id=run.pk, event_type="text_delta", payload={"text": f"token {n} "})
        flushed[event.index] = started
        committed[event.index] = time.perf_counter()
    run_finish(run_id=run.pk, status="completed")
    reader.join(60)
    return {
        "samples": len(flushed),
        "from_commit": _spread([delivered[index] - committed[index] for index in committed]),
        "from_write_start": _spread([delivered[index] - flushed[index] for index in flushed]),
    }


def _spread(seconds: list[float]) -> dict[str, float]:
    delays = sorted(value * 1000 for value in seconds)
    return {
        "median_ms": round(statistics.median(delays), 2),
        "p99_ms": round(delays[int(len(delays) * 0.99) - 1], 2),
        "max_ms": round(delays[-1], 2),
    }


async def _streams(url: str, runs: list[Any], headers: dict[str, str], pid: int) -> dict[str, Any]:
    import httpx
    from asgiref.sync import sync_to_async
    from httpx_sse import aconnect_sse

    from core.conversation.selectors import trace_events
    from core.conversation.services import run_event_append, run_finish

    received: list[tuple[Any, list[int]]] = []
    errors: list[str] = []
    opened = 0
    all_open = asyncio.Event()

    async def one(client: httpx.AsyncClient, run: Any) -> None:
        nonlocal opened
        ids: list[int] = []
        try:
            async with aconnect_sse(client, "GET", f"{url}/api/runs/{run.pk}/stream/", headers=headers) as source:
                async for sse in source.aiter_sse():
                    ids.append(int(sse.id or 0))
                    if len(ids) == 1:
                        opened += 1
                        if opened == STREAMS:
                            all_open.set()
        except (httpx.HTTPError, ValueError) as exc:
            errors.append(repr(exc))
        received.append((run, ids))

    limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=STREAMS + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        before = {"rss_kib": _proc(pid, "VmRSS"), "threads": _proc(pid, "Threads")}
        tasks = [asyncio.create_task(one(client, runs[n % len(runs)])) for n in range(STREAMS)]
        await asyncio.wait_for(all_open.wait(), 120)
        await asyncio.sleep(2)
        waiting = {"rss_kib": _proc(pid, "VmRSS"), "threads": _proc(pid, "Threads")}

        def write() -> None:
            for n in range(10):
                for run in runs:
                    run_event_append(run_id=run.pk, event_type="text_delta", payload={"text": f"<{n}>"})
            for run in runs:
                run_finish(run_id=run.pk, status="completed")

        await sync_to_async(write, thread_sensitive=True)()
        await asyncio.wait_for(asyncio.gather(*tasks), 120)

    def expected(run: Any) -> list[int]:
        return [event.index for event in trace_events(run_id=run.pk)]

    wanted = {run.pk: await sync_to_async(expected, thread_sensitive=True)(run) for run in runs}
    wrong = sum(1 for run, ids in received if ids != wanted[run.pk])
    return {
        "streams": STREAMS,
        "errors": len(errors) + wrong,
        "rss_kib_before": before["rss_kib"],
        "rss_kib_waiting": waiting["rss_kib"],
        "rss_kib_per_stream": round((waiting["rss_kib"] - before["rss_kib"]) / STREAMS, 1),
        "threads_before": before["threads"],
        "threads_waiting": waiting["threads"],
    }


def main() -> None:
    database_url = _database_url()
    _setup(database_url)
    from django.db import connection

    server, url = serve(database_url)
    try:
        user, headers = _owner()
        delay = measure_delay(url, user, headers)
        runs = [_run(user) for _ in range(STREAM_RUNS)]
        streams = asyncio.run(_streams(url, runs, headers, server.pid))
    finally:
        server.terminate()
        server.wait(30)
    results = {"database": connection.vendor, "flush_to_delivery": delay, "concurrent_streams": streams}
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"streaming-{connection.vendor}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
