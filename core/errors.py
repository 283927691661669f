"""Domain errors raised by services; the API maps them to 400/404/409 (`core.api.errors`).

Each carries a sentence a person can act on and, for validation, the fields it concerns
(`{"providers[1].api_key_env": ["… looks like a secret; give the name of an environment variable"]}`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, fields: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, list[str]] = {key: list(value) for key, value in (fields or {}).items()}

    @classmethod
    def for_field(cls, field: str, problem: str) -> DomainError:
        """One field's problem, with the message naming the field."""
        return cls(f"{field}: {problem}", fields={field: [problem]})


class InvalidInputError(DomainError):
    """Input that breaks a rule of the record it would write (400)."""


class NotFoundError(DomainError):
    """A referenced record does not exist (404)."""

    status_code = 404
    code = "not_found"


class ConflictError(DomainError):
    """The request is valid but the record's state forbids it (409)."""

    status_code = 409
    code = "conflict"


def chars_at_most(field: str, value: str, limit: int) -> str:
    """`value` itself, or the 400 naming `field` when it has more than `limit` characters."""
    if len(value) > limit:
        raise InvalidInputError.for_field(field, f"has {len(value)} characters; at most {limit} are allowed")
    return value
