"""One hub per process wakes the streams that wait for new events of a run.

A waiting stream holds no database connection and no thread: it waits on an `asyncio.Event` that the
hub sets when its run may have new events. The hub is the only thing that watches the database:

- on PostgreSQL, one LISTEN connection on `RUN_EVENTS_CHANNEL` (every commit that adds trace events
  sends a NOTIFY naming the run, `core.conversation.services._run_events_notify`);
- on SQLite, one query for every watched run's progress (`runs_progress`) each
  `AGENTCHAT_STREAM_POLL_MS`.

Every database read of the streams (signing in, a page of events) and the SQLite poll run on ONE
thread (`db_read`). Its connection stays open while a hub runs, so a woken stream does not pay for
a new connection, and is closed when the last stream stops watching (and after each read while none
watches: a finished run's replay). However many streams wait, a process holds at most that
connection and the LISTEN one, and its thread count grows by `DB_THREADS` + 1 (the stream
requests' shared thread, `runtime.streaming.asgi`) at most.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from core.conversation.selectors import RunProgress, runs_progress
from core.conversation.services import RUN_EVENTS_CHANNEL
from runtime.streaming.asgi import stream_served

log = logging.getLogger(__name__)

T = TypeVar("T")

# The thread of every stream read and of the SQLite poll (so their connection is one connection).
DB_THREADS = 1
_db_thread = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="stream-db")
# How many hubs are running (changed on their event loops, read on the db thread).
_hubs_running = 0
# After the LISTEN connection fails, the hub tries again this often; meanwhile streams still catch up
# at every heartbeat.
RECONNECT_S = 1.0
# How often the LISTEN loop looks up from the socket to see whether any stream still watches.
LISTEN_CHECK_S = 1.0
# Connection parameters Django adds for its own synchronous cursor: not for the hub's async connection.
_DJANGO_ONLY_PARAMS = frozenset({"cursor_factory", "context", "prepare_threshold"})


def _close_connections() -> None:
    # A connection inside a transaction is its caller's (a test's), and stays.
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


def _closing(read: Callable[[], T]) -> T:
    failed = True
    try:
        result = read()
        failed = False
        return result
    finally:
        # Kept only while a hub runs (streams wait and will read again); a failed one never.
        if failed or not _hubs_running:
            _close_connections()


async def db_read(read: Callable[[], T]) -> T:
    """Run `read` (ORM work) off the event loop; its connection is closed unless streams are waiting.

    Under the ASGI server (`stream_served`) on the stream db thread; elsewhere (Django's test
    client, runserver) on the request's own thread, as Django runs an async view's sync work.
    """
    if stream_served.get():
        return await sync_to_async(_closing, thread_sensitive=False, executor=_db_thread)(read)
    return await sync_to_async(_closing, thread_sensitive=True)(read)


class Watch:
    """One stream's interest in one run: woken when the run may have events after `after`."""

    def __init__(self, run_id: UUID, after: int) -> None:
        self.run_id = run_id
        self.after = after
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    def clear(self) -> None:
        """Forget earlier wake-ups: call it before reading, so a commit during the read wakes the next wait."""
        self._woken.clear()

    async def wait(self, timeout: float) -> bool:
        """True when woken, False when `timeout` seconds passed first."""
        try:
            await asyncio.wait_for(self._woken.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Hub:
    """The process's watcher of runs (one per event loop; see `hub()`)."""

    def __init__(self) -> None:
        self._watches: dict[UUID, set[Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        # True while the hub sees every commit (LISTEN in place, or the poll answering).
        self._seeing = False

    @property
    def healthy(self) -> bool:
        """Whether a waiting stream can rely on being woken (else it looks again at each heartbeat)."""
        return self._seeing and self._task is not None and not self._task.done()

    @asynccontextmanager
    async def watch(self, run_id: UUID, after: int) -> AsyncIterator[Watch]:
        """Watch `run_id` for the block; it starts once the hub sees every later commit."""
        watch = Watch(run_id, after)
        self._watches.setdefault(run_id, set()).add(watch)
        try:
            if self._task is None or self._task.done():
                self._ready.clear()
                self._task = asyncio.create_task(self._run(), name="stream-hub")
            await self._ready.wait()
            yield watch
        finally:
            watches = self._watches.get(run_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[run_id]

    def _wake_run(self, run_id: UUID) -> None:
        for watch in self._watches.get(run_id, ()):
            watch.wake()

    def _wake_all(self) -> None:
        for watches in self._watches.values():
            for watch in watches:
                watch.wake()

    async def _run(self) -> None:
        global _hubs_running
        _hubs_running += 1
        try:
            if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
                await self._listen()
            else:
                await self._poll()
        except Exception:
            log.exception("stream hub stopped; its streams catch up at each heartbeat until the next starts it")
        finally:
            # Nobody waits for a hub that has stopped; the next watch starts another (and clears this).
            self._seeing = False
            self._ready.set()
            _hubs_running -= 1
            # Queued after every read already submitted: with no stream waiting, no connection stays.
            await sync_to_async(_close_if_idle, thread_sensitive=False, executor=_db_thread)()

    async def _listen(self) -> None:
        while self._watches:
            try:
                conn = await psycopg.AsyncConnection.connect(**_listen_params(), autocommit=True)
                async with conn:
                    # The channel is a constant identifier, not input.
                    await conn.execute(f"LISTEN {RUN_EVENTS_CHANNEL}")
                    self._seeing = True
                    self._ready.set()
                    # Whatever committed before LISTEN took hold is read again by everyone.
                    self._wake_all()
                    while self._watches:
                        async for notify in conn.notifies(timeout=LISTEN_CHECK_S):
                            self._wake_notified(notify.payload)
            except (psycopg.Error, OSError) as exc:
                self._seeing = False
                log.warning("stream hub: LISTEN connection failed (%s); streams catch up at each heartbeat", exc)
                # Streams go on without it (their heartbeat re-reads); none waits for a connection forever.
                self._ready.set()
                self._wake_all()
                await asyncio.sleep(RECONNECT_S)

    def _wake_notified(self, payload: str) -> None:
        try:
            run_id = UUID(payload)
        except ValueError:
            log.warning("stream hub: a notification names no run: %r", payload[:80])
            return
        self._wake_run(run_id)

    async def _poll(self) -> None:
        self._ready.set()
        await self._poll_while_watched()

    async def _poll_while_watched(self) -> None:
        loop = asyncio.get_running_loop()
        while self._watches:
            started = loop.time()
            try:
                progress = await sync_to_async(_progress_read, thread_sensitive=False, executor=_db_thread)(
                    list(self._watches)
                )
            except DatabaseError as exc:
                self._seeing = False
                log.warning("stream hub: the poll failed (%s); trying again", exc)
                self._wake_all()
                await asyncio.sleep(RECONNECT_S)
                continue
            self._seeing = True
            for run_id, watches in list(self._watches.items()):
                found = progress.get(run_id)
                for watch in list(watches):
                    # A vanished run wakes its streams too: their read ends them.
                    if found is None or found.event_count > watch.after or found.finished:
                        watch.wake()
            # One poll every interval, however long the query took.
            await asyncio.sleep(max(0.0, settings.AGENTCHAT_STREAM_POLL_MS / 1000 - (loop.time() - started)))


def _progress_read(run_ids: list[UUID]) -> dict[UUID, RunProgress]:
    try:
        return runs_progress(run_ids=run_ids)
    except DatabaseError:
        _close_connections()
        raise


def _close_if_idle() -> None:
    if not _hubs_running:
        _close_connections()


def _listen_params() -> dict[str, Any]:
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    return {key: value for key, value in params.items() if key not in _DJANGO_ONLY_PARAMS}


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The hub of the running event loop: one per process under the ASGI server."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found
