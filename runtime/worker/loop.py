"""A worker process: django-tasks-db's worker loop, plus a heartbeat and the sweeper on a thread.

SIGINT/SIGTERM: stop taking tasks; a running turn gets `AGENTCHAT_SHUTDOWN_GRACE_S` to finish,
then its lease timer ends it `interrupted` (see `lease.py`). A second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from datetime import date
from types import FrameType

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker

from core.conversation.services import worker_beat, worker_forget
from runtime.upkeep import episodes_task, local_today
from runtime.worker.lease import shutdown_begin
from runtime.worker.sweeper import sweep
from runtime.worker.tasks import worker_id_set

LOG = logging.getLogger("agentchat.worker")
BEAT_S = 1.0
# Pruning needs not run every beat.
PRUNE_EVERY = 60


class TurnWorker(Worker):
    """The database worker with a heartbeat + sweeper thread and a graceful shutdown for turns."""

    def __init__(self, *, worker_id: str, poll_s: float) -> None:
        super().__init__(
            queue_names=["default"],
            interval=poll_s,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=worker_id,
            excluded_queue_names=[],
        )
        worker_id_set(worker_id)
        self._stopped = threading.Event()
        self._started_at = timezone.now()
        self._episodes_day: date | None = None

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        if not self.running:
            LOG.warning("worker %s: second %s, exiting now", self.worker_id, signal.strsignal(signum))
            self.reset_signals()
            sys.exit(1)
        LOG.info(
            "worker %s: %s, stopping%s",
            self.worker_id,
            signal.strsignal(signum),
            f" after the running turn (grace {settings.AGENTCHAT_SHUTDOWN_GRACE_S} s)" if self.running_task else "",
        )
        self.running = False
        shutdown_begin(settings.AGENTCHAT_SHUTDOWN_GRACE_S)
        if not self.running_task:
            sys.exit(0)

    def serve(self) -> None:
        beats = threading.Thread(target=self._beat_and_sweep, name="worker-beat", daemon=True)
        beats.start()
        self.configure_signals()
        try:
            self.run()
        finally:
            self._stopped.set()
            beats.join(timeout=5)
            worker_forget(worker_id=self.worker_id)

    def _episodes_after_midnight(self) -> None:
        """The first beat of each local day enqueues yesterday's missing episodes (written by a task)."""
        today = local_today()
        if self._episodes_day != today:
            episodes_task.enqueue()
            self._episodes_day = today

    def _beat_and_sweep(self) -> None:
        host, pid = socket.gethostname() or "unknown", os.getpid()
        count = 0
        try:
            while not self._stopped.wait(0 if count == 0 else BEAT_S):
                try:
                    worker_beat(
                        worker_id=self.worker_id, host=host, pid=pid, started_at=self._started_at, current_run_id=None
                    )
                    sweep(prune=count % PRUNE_EVERY == 0)
                    self._episodes_after_midnight()
                except Exception:
                    # A busy or restarting database must not stop the heartbeat: log and try next beat.
                    LOG.exception("worker %s: heartbeat or sweep failed", self.worker_id)
                count += 1
        finally:
            connection.close()
