"""`manage.py recover_runs`: mark runs a crash left `running` or `queued` as `interrupted`.

Run it at every start, before serving (`make run` does, once it has checked that the port is free).
A running run whose worker process (named in its `run_started` event) is still alive on this host
is left alone and listed: another server is streaming it. It is idempotent: a second run finds
nothing new and says so.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from core.conversation.services import runs_recover


class Command(BaseCommand):
    help = (
        "Mark runs left running (or queued) by a stopped process as interrupted, ending each trace with "
        "run_finished{interrupted}. Safe to run at every start; run it before the server accepts requests."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = runs_recover()
        if result.alive:
            self.stdout.write(
                f"recover_runs: left {len(result.alive)} running run(s) alone: the process streaming each "
                "is alive on this host"
            )
            for run_id in result.alive:
                self.stdout.write(f"  {run_id} (still running)")
        if not result.total:
            if not result.alive:
                self.stdout.write("recover_runs: no unfinished runs; nothing to do")
            return
        self.stdout.write(
            f"recover_runs: marked {result.total} run(s) interrupted "
            f"({len(result.running)} running, {len(result.queued)} queued)"
        )
        for label, run_ids in (("running", result.running), ("queued", result.queued)):
            for run_id in run_ids:
                self.stdout.write(f"  {run_id} (was {label})")
