"""`manage.py load_config [FILE] [--prune]`: validate a configuration file, then apply it in one transaction."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.config.contracts import Problem
from core.config.report import plural, readiness_lines
from core.config.selectors import config_load_status_path, config_readiness
from core.config.services import config_document_apply
from core.management.config_file import document_read, file_argument_add, file_path


class Command(BaseCommand):
    help = (
        "Validate a configuration file (default: AGENTCHAT_CONFIG) and apply it in one transaction: "
        "create and update records; with --prune, disable stored records the file does not name."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        file_argument_add(parser)
        parser.add_argument("--prune", action="store_true", help="disable stored records that the file does not name")

    def handle(self, *args: Any, **options: Any) -> None:
        path = file_path(options)
        document = document_read(
            self,
            path,
            on_problems="; the database was not changed",
            problems_seen=lambda problems: record_outcome(path, problems),
        )
        result = config_document_apply(document=document, prune=options["prune"])
        record_outcome(path, [])
        if not result.changed:
            count = plural(result.unchanged, "record")
            self.stdout.write(f"No changes: the database already matches {path} ({count}).")
        else:
            for line in result.lines:
                self.stdout.write(line)
            self.stdout.write(
                f"Loaded {path}: {len(result.created)} created, {len(result.updated)} updated, "
                f"{len(result.disabled)} disabled, {result.unchanged} unchanged."
            )
        for line in readiness_lines(config_readiness()):
            self.stdout.write(f"  {line}")


def record_outcome(path: Path, problems: Sequence[Problem]) -> None:
    """Record this load's problems (none after a clean load) for the admin and the bootstrap.

    Read back by `core.config.selectors.config_load_problems()`. Written whole (a temporary file
    renamed over the old one), so a reader never sees half a record.
    """
    target = config_load_status_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "file": str(path.resolve()),
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "problems": [{"location": p.location, "message": p.message} for p in problems],
    }
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".load-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=2)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
