"""`manage.py check_config [FILE]`: validate a configuration file and print every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.config.loading import ConfigFileError, config_file_read
from core.config.readiness import readiness_report
from core.config.report import document_summary, problems_summary, readiness_lines
from core.config.validation import ConfigInvalidError


class Command(BaseCommand):
    help = "Validate a configuration file (default: AGENTCHAT_CONFIG) and print every problem; changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="the TOML file (default: settings.AGENTCHAT_CONFIG)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"] or settings.AGENTCHAT_CONFIG)
        try:
            document = config_file_read(path)
        except ConfigFileError as exc:
            raise CommandError(str(exc)) from None
        except ConfigInvalidError as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            raise CommandError(problems_summary(path, exc.problems)) from None
        self.stdout.write(f"{path}: valid ({document_summary(document)})")
        for line in readiness_lines(readiness_report(document)):
            self.stdout.write(f"  {line}")
