"""A run's lease, renewed by a timer thread that does not depend on tokens arriving.

The timer ticks every `TICK_S` (at most a third of the lease): each tick reads the run's cancel
flag and, when due, renews the lease with one UPDATE. A provider that thinks silently for minutes
keeps its lease, and a cancel, the run's maximum wall time or the worker's shutdown grace is
noticed within one tick. The turn loop asks `stop()` between events and while it waits for one.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db import connection

from core.conversation.selectors import run_cancel_requested
from core.conversation.services import LeaseState, run_lease_renew

# The cancel-watch's period: a cancel is seen within this (the bound is 1 s).
TICK_S = 0.25

# Set by a worker when SIGINT/SIGTERM arrives: running turns get the grace period, then end `interrupted`.
shutdown_requested = threading.Event()
_shutdown_deadline: list[float] = []


def shutdown_begin(grace_s: float) -> None:
    """Start the shutdown grace period of this process's running turns."""
    if not shutdown_requested.is_set():
        _shutdown_deadline.append(time.monotonic() + grace_s)
        shutdown_requested.set()


def process_worker_id() -> str:
    """A lease owner naming this process: host, pid and a random suffix (a reused pid is another owner)."""
    return f"{socket.gethostname() or 'unknown'}:{os.getpid()}:{os.urandom(4).hex()}"


@dataclass(frozen=True)
class Stop:
    """Why a turn must stop now: `cancel` (run_cancel with `reason`), `interrupt` (run_interrupt with
    `reason`) or `lost` (someone else ended the run; write nothing more)."""

    kind: str
    reason: str


class Lease:
    """The lease `owner` holds on `run_id` while the turn streams, kept alive by a timer thread."""

    def __init__(self, *, run_id: UUID, owner: str, lease_ms: int | None = None, max_wall_s: int | None = None) -> None:
        self.run_id = run_id
        self.owner = owner
        self.lease_ms = lease_ms if lease_ms is not None else settings.AGENTCHAT_RUN_LEASE_MS
        self.max_wall_s = max_wall_s if max_wall_s is not None else settings.AGENTCHAT_RUN_MAX_WALL_S
        self._stop: Stop | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.run_id}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the timer and wait for it (the caller then finishes or releases the run)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def stop(self) -> Stop | None:
        """Why the turn must stop, or None to go on."""
        return self._stop

    def _beat(self) -> None:
        renew_every = min(self.lease_ms / 3000, 5.0)
        last_renew = time.monotonic()
        try:
            while not self._done.wait(TICK_S):
                now = time.monotonic()
                if now - last_renew >= renew_every:
                    state = run_lease_renew(run_id=self.run_id, lease_owner=self.owner, lease_ms=self.lease_ms)
                    last_renew = now
                else:
                    state = LeaseState(held=True, cancel_requested=run_cancel_requested(run_id=self.run_id))
                self._judge(state, now)
                if self._stop is not None and self._stop.kind == "lost":
                    return
        finally:
            connection.close()

    def _judge(self, state: LeaseState, now: float) -> None:
        if self._stop is not None:
            return
        if not state.held:
            self._stop = Stop("lost", "")
        elif state.cancel_requested:
            # The reason the canceller gave is on the run (`cancel_reason`); the turn loop reads it.
            self._stop = Stop("cancel", "")
        elif now - self._started > self.max_wall_s:
            self._stop = Stop("cancel", f"ran longer than the maximum wall time of {self.max_wall_s} s")
        elif shutdown_requested.is_set() and _shutdown_deadline and now > _shutdown_deadline[0]:
            self._stop = Stop("interrupt", "interrupted: the worker shut down before the run finished")
