"""The trace coalescer: a turn's streamed events written in batches, one transaction per flush.

A provider streams hundreds of small text deltas a second. Writing each one (a transaction, the
run row locked, an index allocated) would cost far more than reading it, so `TraceCoalescer`
buffers them:

- adjacent `TextDelta`s are merged into one pending delta; so are adjacent `Reasoning` pieces whose
  state says no more than which provider sent them (a state with signatures or items is kept on
  its own event, unchanged);
- a merged piece is closed at `flush_bytes` of UTF-8, and the buffer is flushed then, or when its
  oldest piece has waited `flush_interval_s`. With a `writer` (the turn's timer thread,
  `runtime.watch.TurnWatch`), the reading thread only buffers and nudges it, and the timer's
  `flush_due` writes, so the provider's stream is read while the database commits; without one
  (a turn inside a caller's transaction), `add` writes what is due itself. Flushes go one at a
  time, in order, and the buffer's lock is never held across a write;
- any other event (a tool call or result, the finish, usage, an error) is written at once, after
  the buffer, in the same transaction;
- each flush is ONE `run_events_append` call: one transaction, which locks the run row and so also
  reads its state. A run cancelled from outside refuses the batch with a ConflictError: the
  flush is where the runner learns of a cancel without a query of its own.

The merged text is the concatenation of the pieces as received, so `run_text` rebuilds the exact
string the provider sent, whatever the chunking (a delta is a whole `str`: multi-byte characters
are never split). The trace contract is unchanged: a merged delta is a `text_delta` like any other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from core.conversation.events import Reasoning, RuntimeEvent, TextDelta
from core.conversation.services import run_events_append
from core.models import Run

FLUSH_INTERVAL_S = 0.05
FLUSH_BYTES = 4096


def _mergeable(event: RuntimeEvent) -> bool:
    if isinstance(event, TextDelta):
        return True
    return isinstance(event, Reasoning) and set(event.state) <= {"provider"}


class TraceCoalescer:
    """Buffers a run's streamed events and writes them in batches (see the module docstring)."""

    def __init__(
        self,
        run_id: UUID,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_bytes: int = FLUSH_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id = run_id
        self.flush_interval_s = flush_interval_s
        self.flush_bytes = flush_bytes
        self.clock = clock
        # The merged piece being built: its type, its text pieces, the reasoning state it carries.
        self._kind: str | None = None
        self._pieces: list[str] = []
        self._state: dict[str, Any] = {}
        self._bytes = 0
        self._since = 0.0
        # Events complete and waiting for the next flush, in order.
        self._ready: list[tuple[str, dict[str, Any]]] = []
        # `_lock` guards the buffer only (never held across a write, so the reading thread does not
        # wait for the disk); `_write_lock` keeps flushes one at a time, in order.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        # With a writer (the turn's timer thread), `add` only buffers and calls `writer` when a
        # batch is ready; without one, `add` writes what is due itself.
        self.writer: Callable[[], None] | None = None
        self.flushes = 0
        self.events_written = 0
        # When the run's state was last read (by a flush); the watch skips its own read if recent.
        self.checked_at: float | None = None

    def add(self, event: RuntimeEvent) -> None:
        """Take one streamed event; write what is due, or hand it to the writer (ConflictError: the run was ended)."""
        with self._lock:
            if isinstance(event, TextDelta | Reasoning) and _mergeable(event):
                text = event.text
                state = event.state if isinstance(event, Reasoning) else {}
                if self._kind is not None and (self._kind != event.type or self._state != state):
                    self._seal()
                if self._kind is None:
                    self._kind, self._state, self._since = event.type, dict(state), self.clock()
                self._pieces.append(text)
                self._bytes += len(text.encode())
                if self._bytes >= self.flush_bytes:
                    self._seal()  # a stored delta holds about flush_bytes at most
                elif not self._ready and self.clock() - self._since < self.flush_interval_s:
                    return
            else:
                self._seal()
                self._ready.append((event.type, event.payload()))
        if self.writer is not None:
            self.writer()
        else:
            self.flush()

    def flush(self) -> Run | None:
        """Write everything buffered now, in one transaction; the run as it stands (None if nothing was due)."""
        with self._write_lock:
            with self._lock:
                self._seal()
                batch, self._ready = self._ready, []
            return self._write(batch)

    def flush_due(self) -> Run | None:
        """Flush if a batch is ready or the oldest buffered piece has waited `flush_interval_s` (the timer's call)."""
        with self._write_lock:
            with self._lock:
                aged = self._kind is not None and self.clock() - self._since >= self.flush_interval_s
                if not self._ready and not aged:
                    return None
                self._seal()
                batch, self._ready = self._ready, []
            return self._write(batch)

    def _write(self, batch: list[tuple[str, dict[str, Any]]]) -> Run | None:
        if not batch:
            return None
        try:
            run = self._append(batch)
        except BaseException:
            # Kept, in front of what arrived meanwhile: a flush that failed for a passing reason is
            # retried by the next one (a run that was ended refuses them all the same).
            with self._lock:
                self._ready[:0] = batch
            raise
        self.flushes += 1
        self.events_written += len(batch)
        self.checked_at = self.clock()
        return run

    def _append(self, batch: list[tuple[str, dict[str, Any]]]) -> Run:
        """Store one batch in one transaction (a delegated run's coalescer also mirrors it into its parent)."""
        return run_events_append(run_id=self.run_id, events=batch)

    @property
    def pending(self) -> bool:
        return self._kind is not None or bool(self._ready)

    def _seal(self) -> None:
        """Close the merged piece: it becomes one ready event."""
        if self._kind is None:
            return
        payload: dict[str, Any] = {"text": "".join(self._pieces)}
        if self._state:
            payload["state"] = self._state
        self._ready.append((self._kind, payload))
        self._kind, self._pieces, self._state, self._bytes = None, [], {}, 0
