"""Timers beside a streaming turn: they run on their own thread, whether or not tokens arrive.

`Ticker` calls `tick()` every `interval_s` from `start()` to `stop()` on a daemon thread, and closes
that thread's database connection when it ends. `TurnWatch` is the one a turn runs, every 50 ms:

- it is the turn's writer: the coalescer only buffers on the reading thread and nudges the watch
  when a batch is ready; each tick flushes what is ready or due (`flush_due`), so the SDK's reads
  and the database's commits overlap, and text a provider sent before going silent reaches the
  trace within about 100 ms;
- it asks `cancel_requested()` and, the first time that answers, trips: it sets `cancelled`, keeps
  the reason and closes the provider's stream (`ProviderAdapter.close`), which wakes a runner
  blocked on a silent provider at once.

A worker that holds a lease on the run extends it: override `tick()` to renew the lease as well
(calling `super().tick()`), and `cancel_requested()` to read its own cancel request.

Today the cancel request is the run's status, set by `run_cancel` (API, admin), and the caller's
`should_cancel()`. The status is read at most every 0.25 s, and not at all while the coalescer
flushes (a flush locks the run row, so it read the status then: a cancelled run refuses it).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from uuid import UUID

from django.db import connections

from core.errors import ConflictError
from core.models import Run, RunStatus
from runtime.coalescer import TraceCoalescer

TICK_S = 0.05
CANCEL_CHECK_S = 0.25
STREAMING_CANCEL_REASON = "cancelled while the reply was streaming"

log = logging.getLogger(__name__)


def run_cancelled(run_id: UUID) -> bool:
    """Whether the run was cancelled (its status; `run_cancel` sets it)."""
    return Run.objects.filter(pk=run_id, status=RunStatus.CANCELLED).exists()


class Ticker(ABC):
    """Calls `tick()` every `interval_s` on a thread of its own, from `start()` until `stop()`."""

    def __init__(self, *, interval_s: float, name: str) -> None:
        self.interval_s = interval_s
        self.ticks = 0
        self.failures = 0
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def __enter__(self) -> Ticker:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and wait for a tick in progress to end."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def nudge(self) -> None:
        """Tick now rather than at the end of the interval (from any thread)."""
        self._wake.set()

    @abstractmethod
    def tick(self) -> None:
        """One round of the timer's work; an exception is logged and the next tick still runs."""

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait(self.interval_s)
                self._wake.clear()
                if self._stopping.is_set():
                    break
                self.ticks += 1
                try:
                    self.tick()
                except Exception:
                    # A failed check (the database briefly unavailable) is retried at the next tick.
                    self.failures += 1
                    log.exception("%s: tick %d failed", self._thread.name, self.ticks)
        finally:
            connections.close_all()  # this thread's own connections only


class TurnWatch(Ticker):
    """Watches one streaming run for a cancel and closes the provider's stream when it comes."""

    def __init__(
        self,
        *,
        run_id: UUID,
        close_stream: Callable[[], None],
        should_cancel: Callable[[], bool] | None = None,
        coalescer: TraceCoalescer | None = None,
        read_store: bool = True,
        interval_s: float = TICK_S,
        cancel_check_s: float = CANCEL_CHECK_S,
    ) -> None:
        super().__init__(interval_s=interval_s, name=f"turn-watch-{run_id}")
        self.run_id = run_id
        self.close_stream = close_stream
        self.should_cancel = should_cancel
        self.coalescer = coalescer
        # False when the run is not committed yet (the turn runs inside a caller's transaction):
        # no other connection can see it, so none can cancel it, and there is nothing to read.
        self.read_store = read_store
        self.cancel_check_s = cancel_check_s
        self._read_at = 0.0
        self.cancelled = threading.Event()
        self._trip_lock = threading.Lock()
        # Why the turn stops: the caller's reason, or "" when the run was cancelled on the store.
        self.reason = ""
        self.tripped_at: float | None = None
        self.store_reads = 0

    def start(self) -> None:
        super().start()
        if self.coalescer is not None and self.read_store:
            # The writes move to this thread: the reading thread never waits for the disk.
            self.coalescer.writer = self.nudge

    def stop(self) -> None:
        if self.coalescer is not None:
            self.coalescer.writer = None
        super().stop()

    def cancel_requested(self) -> str | None:
        """Why the run must stop now ("" when it was already cancelled on the store), or None to go on."""
        if self.should_cancel is not None and self.should_cancel():
            return STREAMING_CANCEL_REASON
        if not self.read_store:
            return None
        now = time.monotonic()
        checked = max(self._read_at, (self.coalescer.checked_at if self.coalescer is not None else None) or 0.0)
        if now - checked < self.cancel_check_s:
            return None
        self._read_at = now
        self.store_reads += 1
        return "" if run_cancelled(self.run_id) else None

    def tick(self) -> None:
        if self.cancelled.is_set():
            return
        if self.read_store and self.coalescer is not None:
            try:
                self.coalescer.flush_due()
            except ConflictError:
                # The run was ended meanwhile; cancelled, it stops here (any other end is the runner's to report).
                if run_cancelled(self.run_id):
                    self.trip("")
                    return
        reason = self.cancel_requested()
        if reason is not None:
            self.trip(reason)

    def trip(self, reason: str) -> None:
        """Stop the turn: remember why, then close the provider's stream (once, whichever thread trips first)."""
        with self._trip_lock:
            if self.cancelled.is_set():
                return
            self.reason = reason
            self.tripped_at = time.monotonic()
            self.cancelled.set()
        self.close_stream()
