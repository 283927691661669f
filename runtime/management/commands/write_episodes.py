"""`manage.py write_episodes [--day YYYY-MM-DD] [--backfill]`: write daily episodes with the model."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.management.base import DomainCommand
from runtime.upkeep import EpisodeOutcome, days_with_messages, episodes_write, local_today


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--day {value!r} is not a date; give it as YYYY-MM-DD, e.g. 2026-01-31") from None


class Command(DomainCommand):
    help = (
        "Write each user's episode of a finished local day (AGENTCHAT_TIMEZONE) with the model: yesterday by "
        "default, --day YYYY-MM-DD for one day, --backfill for every earlier day with messages and no episode "
        "yet. Rewriting a day replaces its episode. Exits 1 when an episode could not be written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", help="the local day to write (YYYY-MM-DD); it must be over")
        parser.add_argument("--backfill", action="store_true", help="write every missing episode of earlier days")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["day"] and options["backfill"]:
            raise CommandError("give --day or --backfill, not both")
        today = local_today()
        if options["backfill"]:
            days = days_with_messages(before=today)
        else:
            days = [_day(options["day"]) if options["day"] else today - dt.timedelta(days=1)]
        outcomes: list[EpisodeOutcome] = []
        for day in days:
            found = episodes_write(day=day, only_missing=bool(options["backfill"]))
            if not found:
                self.stdout.write(f"{day}: no messages in {settings.AGENTCHAT_TIMEZONE}; nothing to write")
            for item in found:
                why = f": {item.run.error}" if item.run is not None and item.run.error else ""
                self.stdout.write(f"{day}: user {item.owner_id}: {item.outcome}{why}")
            outcomes.extend(found)
        failed = [item for item in outcomes if item.outcome in ("failed", "busy")]
        if failed:
            raise CommandError(f"{len(failed)} episode(s) not written; see the lines above for why")
