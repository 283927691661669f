"""The base of the commands that call services: a refusal ends the command as a readable line."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.errors import ConflictError, DomainError, InvalidInputError
from core.management.base import DomainCommand


class _Refusing(DomainCommand):
    help = "Raise the domain error it is given."

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def handle(self, *args: Any, **options: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        InvalidInputError.for_field("day", "is not a date; give it as YYYY-MM-DD"),
        ConflictError.for_field("day", "is not over yet; give an earlier day"),
    ],
)
def test_a_domain_error_ends_the_command_with_its_message_and_status_1(error: DomainError) -> None:
    with pytest.raises(CommandError) as caught:
        call_command(_Refusing(error))
    assert (str(caught.value), caught.value.returncode) == (error.message, 1)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_other_errors_are_not_turned_into_a_command_error() -> None:
    with pytest.raises(ValueError, match=r"^a bug$"):
        call_command(_Refusing(ValueError("a bug")))
