"""`manage.py drf_create_token USER`: issue an API token and print its key, this once.

The name and the output line are those of DRF's command, which this replaces: keys are now stored
only as their SHA-256, so an existing key can never be printed again, and every call makes a new one.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.accounts.selectors import user_by_username
from core.accounts.services import token_create
from core.management.base import DomainCommand


class Command(DomainCommand):
    help = "Create an API token for USER and print its key once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the account the token signs in as")
        parser.add_argument("-r", "--reset", action="store_true", help="revoke the user's other tokens first")
        parser.add_argument("--name", default="drf_create_token", help="the token's name (default: drf_create_token)")

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        user = user_by_username(username=username)
        if user is None:
            raise CommandError(f"User {username} does not exist; create it first (manage.py createsuperuser).")
        created = token_create(user=user, name=options["name"], revoke_others=options["reset"])
        self.stdout.write(f"Generated token {created.key} for user {username}")
