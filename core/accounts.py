"""The local operator account that `make run` makes sure exists."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from core.errors import InvalidInputError


@dataclass(frozen=True)
class OperatorResult:
    username: str
    created: bool
    generated_password: str | None


def operator_ensure(*, username: str, password: str | None) -> OperatorResult:
    """Create the superuser `username` once; never touch an existing account.

    With no password given, a random one is generated and returned so the caller can show it once.
    """
    if not username.strip():
        raise InvalidInputError.for_field("username", "empty; give the operator's user name")
    user_model = get_user_model()
    with transaction.atomic():
        if user_model._default_manager.filter(username=username).exists():
            return OperatorResult(username=username, created=False, generated_password=None)
        generated = None
        if password is None:
            generated = secrets.token_urlsafe(18)
            password = generated
        candidate = user_model(username=username)
        try:
            validate_password(password, user=candidate)
        except ValidationError as exc:
            raise InvalidInputError.for_field(
                "AGENTCHAT_OPERATOR_PASSWORD", " ".join(exc.messages) + " Choose a stronger password."
            ) from None
        user_model._default_manager.create_superuser(username=username, password=password, email="")
    return OperatorResult(username=username, created=True, generated_password=generated)
