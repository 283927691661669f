"""The base of the commands that call services."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError


class DomainCommand(BaseCommand):
    """A command whose services' refusals end it as readable lines: a DomainError becomes a
    CommandError with its message (the field, the problem, the fix) and exit status 1, never a traceback."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except DomainError as exc:
            raise CommandError(exc.message) from None
