"""What `check_config` and `load_config` share: the file argument and reading it, or failing readably."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.config.contracts import ConfigDocument, Problem
from core.config.loading import ConfigFileError, config_file_read
from core.config.report import problems_summary
from core.config.validation import ConfigInvalidError


def file_argument_add(parser: CommandParser) -> None:
    parser.add_argument("file", nargs="?", help="the TOML file (default: settings.AGENTCHAT_CONFIG)")


def file_path(options: dict[str, Any]) -> Path:
    """The file the command was given, or AGENTCHAT_CONFIG."""
    return Path(options["file"] or settings.AGENTCHAT_CONFIG)


def document_read(
    command: BaseCommand,
    path: Path,
    *,
    on_problems: str = "",
    problems_seen: Callable[[Sequence[Problem]], None] | None = None,
) -> ConfigDocument:
    """The valid document in `path`; otherwise every problem on stderr, one a line, and a CommandError that
    sums them up (followed by `on_problems`), so the command exits non-zero. `problems_seen` is told
    the problems first (to record them)."""
    try:
        return config_file_read(path)
    except ConfigFileError as exc:
        if problems_seen is not None:
            problems_seen([Problem("", str(exc))])
        raise CommandError(str(exc)) from None
    except ConfigInvalidError as exc:
        if problems_seen is not None:
            problems_seen(exc.problems)
        for problem in exc.problems:
            command.stderr.write(str(problem))
        raise CommandError(f"{problems_summary(path, exc.problems)}{on_problems}") from None
