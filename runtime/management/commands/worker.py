"""`manage.py worker`: one worker process that runs queued turns (see runtime/worker/loop.py)."""

from __future__ import annotations

import logging
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runtime.worker.lease import process_worker_id
from runtime.worker.loop import TurnWorker

MAX_WORKER_ID = 64


class Command(BaseCommand):
    help = "Run queued chat turns (a django-tasks-db worker with the run lease, heartbeat and sweeper)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--worker-id", default="", help="A unique id for this worker (default: host:pid:random)")

    def handle(self, *args: Any, **options: Any) -> None:
        worker_id = options["worker_id"] or process_worker_id()[-MAX_WORKER_ID:]
        if len(worker_id) > MAX_WORKER_ID:
            raise CommandError(f"--worker-id has {len(worker_id)} characters; at most {MAX_WORKER_ID}")
        logging.getLogger("django_tasks_db").setLevel(logging.WARNING)
        poll_s = settings.AGENTCHAT_WORKER_POLL_MS / 1000
        self.stdout.write(f"worker {worker_id}: polling every {poll_s:.2f} s")
        self.stdout.flush()
        TurnWorker(worker_id=worker_id, poll_s=poll_s).serve()
