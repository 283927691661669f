"""`manage.py telemetry_reconcile`: prove the usage rollups equal the sums of the events, or rebuild them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from telemetry.selectors import rollup_differences
from telemetry.services import usage_rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute every usage rollup (by day, by session, all time) from the usage events and print each "
        "counter that differs (rollup, key, field, stored and recomputed values). Exits 1 if any differs. "
        "With --repair, rebuilds every rollup from the events in one transaction and prints what it fixed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--repair", action="store_true", help="rebuild every rollup from the events (one transaction)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["repair"]:
            fixed = usage_rollups_rebuild()
            for difference in fixed:
                self.stdout.write(f"fixed: {difference}")
            self.stdout.write(
                f"rebuilt every rollup from the events; {len(fixed)} difference(s) fixed"
                if fixed
                else "rebuilt every rollup from the events; they already matched"
            )
            return
        differences = rollup_differences()
        for difference in differences:
            self.stdout.write(f"differs: {difference}")
        if differences:
            raise CommandError(
                f"{len(differences)} rollup counter(s) differ from the events; "
                "run `manage.py telemetry_reconcile --repair` to rebuild them",
                returncode=1,
            )
        self.stdout.write("every rollup equals the sums of its events")
