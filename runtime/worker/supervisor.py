"""`make serve`: the ASGI server (uvicorn) and `AGENTCHAT_WORKERS` supervised worker processes.

A worker that dies is started again. SIGINT/SIGTERM stops everything: the children are asked to
stop (a worker lets its running turn finish within `AGENTCHAT_SHUTDOWN_GRACE_S`, then ends it
`interrupted`), a child still alive after the grace is killed, and any run a killed worker still
held is ended `interrupted` here, so none stays `running`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from django.conf import settings

from core.conversation.services import run_interrupt
from core.models import Run, RunStatus

LOG = logging.getLogger("agentchat.serve")
ROOT = Path(__file__).resolve().parent.parent.parent
# Beyond the grace, how long a child gets to exit after being asked before it is killed.
EXIT_MARGIN_S = 5.0
RESTART_BACKOFF_S = 1.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, cwd=ROOT)  # noqa: S603 -- our own interpreter and manage.py

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Supervisor:
    host: str
    port: int
    workers: int
    children: list[Child] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        python = sys.executable
        self.children.append(
            Child(
                "asgi",
                [
                    python,
                    "-m",
                    "uvicorn",
                    "agentchat_site.asgi:application",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--lifespan",
                    "off",
                    "--timeout-graceful-shutdown",
                    str(settings.AGENTCHAT_SHUTDOWN_GRACE_S),
                ],
            )
        )
        tag = f"{os.getpid()}"
        for number in range(1, self.workers + 1):
            self.children.append(
                Child(f"worker-{number}", [python, "manage.py", "worker", "--worker-id", f"serve-{tag}-{number}"])
            )

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping.is_set():
            return
        LOG.info("serve: %s, stopping", signal.strsignal(signum))
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._signal)
        signal.signal(signal.SIGTERM, self._signal)
        for child in self.children:
            child.start()
        code = 0
        while not self.stopping.wait(0.5):
            for child in self.children:
                if child.alive() or self.stopping.is_set():
                    continue
                exit_code = child.process.returncode if child.process else None
                if child.name == "asgi":
                    LOG.error("serve: the ASGI server exited (%s); stopping", exit_code)
                    self.stopping.set()
                    code = 1
                    break
                child.restarts += 1
                LOG.warning(
                    "serve: %s exited (%s); starting it again (restart %d)", child.name, exit_code, child.restarts
                )
                time.sleep(RESTART_BACKOFF_S)
                child.start()
        self.stop()
        return code

    def stop(self) -> None:
        for child in self.children:
            if child.alive() and child.process is not None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + settings.AGENTCHAT_SHUTDOWN_GRACE_S + EXIT_MARGIN_S
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                LOG.warning("serve: %s did not stop within the grace; killing it", child.name)
                child.process.kill()
                child.process.wait()
        self._interrupt_orphans()

    def _interrupt_orphans(self) -> None:
        """End `interrupted` any run a worker of ours still held (one killed after the grace)."""
        ours = [child.argv[-1] for child in self.children if child.name.startswith("worker-")]
        for run_id in Run.objects.filter(status=RunStatus.RUNNING, lease_owner__in=ours).values_list("pk", flat=True):
            run_interrupt(run_id=run_id, error="interrupted: the server stopped before the run finished")
