"""`manage.py export_conversations [--session ID …] [--all] --format json|markdown`: sessions to stdout or a file."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.conversation.exporting import export_json, export_markdown, sessions_for_export
from core.management.base import DomainCommand
from core.management.owner_option import user_argument_add, user_from_options


class Command(DomainCommand):
    help = "Export sessions as JSON (agentchat-export/1, importable again) or Markdown (the active path)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--session", action="append", default=[], metavar="ID", help="a session id (repeatable)")
        parser.add_argument("--all", action="store_true", help="every session of the user")
        parser.add_argument("--format", choices=("json", "markdown"), default="json")
        parser.add_argument("--output", "-o", default="-", help="a file to write (default: standard output)")
        user_argument_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["session"]) == bool(options["all"]):
            raise CommandError("give --session ID (one or more) or --all, not both")
        owner = user_from_options(options)
        try:
            sessions = sessions_for_export(owner=owner, session_ids=None if options["all"] else options["session"])
            pieces = export_json(sessions) if options["format"] == "json" else export_markdown(sessions)
            if options["output"] == "-":
                for piece in pieces:
                    self.stdout.write(piece, ending="")
            else:
                with open(options["output"], "w", encoding="utf-8", newline="") as out:
                    for piece in pieces:
                        out.write(piece)
        except OSError as exc:
            raise CommandError(f"--output: cannot write {options['output']}: {exc.strerror}") from None
