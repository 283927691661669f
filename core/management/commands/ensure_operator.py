"""`manage.py ensure_operator`: make sure the local operator account exists, without prompting."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import CommandParser

from core.accounts.services import operator_ensure
from core.management.base import DomainCommand


class Command(DomainCommand):
    help = (
        "Create the operator superuser if missing. The password comes from AGENTCHAT_OPERATOR_PASSWORD, "
        "or is generated and printed once. An existing account is left as it is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--username",
            default=os.environ.get("AGENTCHAT_OPERATOR_USERNAME", "operator"),
            help="user name (default: AGENTCHAT_OPERATOR_USERNAME or 'operator')",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("AGENTCHAT_OPERATOR_PASSWORD") or None
        result = operator_ensure(username=options["username"], password=password)
        verb = (
            f"set the first password of operator account '{result.username}' (it held the records made "
            "before accounts and had none)"
            if result.password_set
            else f"created operator account '{result.username}'"
        )
        if not result.created:
            self.stdout.write(f"operator account '{result.username}' already exists; left unchanged")
        elif result.generated_password is not None:
            self.stdout.write(
                f"{verb} with password: {result.generated_password}\n"
                "  (shown once; change it with `.venv/bin/python manage.py changepassword "
                f"{result.username}`)"
            )
        else:
            self.stdout.write(f"{verb} with the password from AGENTCHAT_OPERATOR_PASSWORD")
