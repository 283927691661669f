"""The `--user NAME` option of the commands that act for one account (import, export)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import CommandError, CommandParser

from core.accounts.selectors import operator_username, user_by_username


def user_argument_add(parser: CommandParser) -> None:
    parser.add_argument(
        "--user",
        default=None,
        help="the account whose records these are (default: AGENTCHAT_OPERATOR_USERNAME or 'operator')",
    )


def user_from_options(options: dict[str, Any]) -> AbstractBaseUser:
    """The account `--user` names (or the operator's); a CommandError saying how to make one otherwise."""
    username = options["user"] or operator_username()
    owner = user_by_username(username=username)
    if owner is None:
        raise CommandError(
            f"--user: no account {username!r}; give an existing user name "
            "(`manage.py ensure_operator` creates the operator's)"
        )
    return owner
