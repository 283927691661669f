"""`manage.py check_providers [--route ALIAS]`: probe routes with one minimal real request each."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.config.selectors import route_list
from core.management.base import DomainCommand
from core.models import RouteStatus
from runtime.probes import route_probe


def probe_line(alias: str, status: RouteStatus) -> str:
    """One route's probe result as a line a person reads."""
    took = f"{status.probe_latency_ms} ms" if status.probe_latency_ms is not None else "?"
    if status.probe_ok:
        return f"{alias}: ok, model {status.probe_model!r} answered in {took}"
    return f"{alias}: {status.probe_code}, model {status.probe_model!r} after {took}: {status.probe_message}"


class Command(DomainCommand):
    help = (
        "Probe each enabled route (or --route ALIAS, enabled or not) with one minimal real request through "
        "its provider, store the result and show it in readiness. Exits 1 when a probe fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--route", help="probe only this route alias")

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["route"]
        aliases = [alias] if alias else list(route_list().filter(enabled=True).values_list("alias", flat=True))
        if not aliases:
            self.stdout.write("No enabled routes to probe: add one to the config file and run manage.py load_config.")
            return
        failed = []
        for name in aliases:
            status = route_probe(route_alias=name)
            self.stdout.write(probe_line(name, status))
            if not status.probe_ok:
                failed.append(name)
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(aliases)} route(s) failed their probe: {', '.join(failed)}; "
                "see each line above for what to fix"
            )
