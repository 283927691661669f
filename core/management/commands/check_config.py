"""`manage.py check_config [FILE]`: validate a configuration file and print every problem."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.config.readiness import readiness_report
from core.config.report import document_summary, readiness_lines
from core.management.config_file import document_read, file_argument_add, file_path


class Command(BaseCommand):
    help = "Validate a configuration file (default: AGENTCHAT_CONFIG) and print every problem; changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        file_argument_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        path = file_path(options)
        document = document_read(self, path)
        self.stdout.write(f"{path}: valid ({document_summary(document)})")
        for line in readiness_lines(readiness_report(document)):
            self.stdout.write(f"  {line}")
