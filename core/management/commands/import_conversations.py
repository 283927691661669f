"""`manage.py import_conversations FILE…`: conversations exported from ChatGPT, Open WebUI, LibreChat or Agent Chat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.conversation.importing.jobs import import_run
from core.conversation.importing.models import ImportFormat
from core.errors import DomainError
from core.management.owner_option import user_argument_add, user_from_options


class Command(BaseCommand):
    help = (
        "Import conversations (a file, a folder or zip of ChatGPT's split export, or several files as one import); "
        "ends with a report. A malformed file writes nothing; a malformed conversation is skipped with its reason."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="export file(s), folder or zip")
        parser.add_argument("--format", default=ImportFormat.AUTO, choices=ImportFormat.values)
        parser.add_argument("--dry-run", action="store_true", help="read and report; write nothing")
        user_argument_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        owner = user_from_options(options)
        try:
            report = import_run(
                owner=owner,
                paths=[Path(name) for name in options["files"]],
                fmt=options["format"],
                dry_run=options["dry_run"],
            )
        except DomainError as exc:
            raise CommandError(f"{exc.message}; nothing was imported") from None
        for name, found in report.files:
            self.stdout.write(f"{name}: {found}")
        verb = "would import" if options["dry_run"] else "imported"
        for outcome in report.outcomes:
            title = outcome.title or outcome.source_id or "(untitled)"
            if outcome.updated:
                self.stdout.write(f"  {outcome.reason} of {title!r} -> session {outcome.session or '(a dry run)'}")
            elif outcome.imported:
                note = f" ({outcome.reason})" if outcome.reason else ""
                where = f" -> session {outcome.session}" if outcome.session else ""
                self.stdout.write(
                    f"  {verb} {title!r}: {outcome.messages} messages, {outcome.branches} branches{where}{note}"
                )
            else:
                self.stdout.write(f"  skipped {title!r}: {outcome.reason}")
        self.stdout.write(
            f"{len(report.imported)} {verb}, {len(report.skipped)} skipped; "
            f"{report.messages} messages, {report.branches} branches"
        )
