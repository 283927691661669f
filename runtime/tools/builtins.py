"""The tools Agent Chat runs itself: a clock and long-term memory. No shell tool is built in.

Each takes the call's context (whose run, which message asked) and its checked arguments, and
returns its result text; a problem is a `ToolFailedError` whose text goes back to the model as an
error result. Memories a model writes carry `source = model` and the run and message that wrote
them, pass the secret check, are never pinned by it, and a forget is a soft delete the user can undo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.base_user import AbstractBaseUser

from core.errors import DomainError
from memory.models import MemoryKind, MemorySource
from memory.search import MatchMode, memory_search
from memory.services import memory_forget, memory_write

SEARCH_LIMIT_DEFAULT = 5


class ToolFailedError(Exception):
    """A tool could not do what it was asked; the text goes to the model as an error result."""


@dataclass(frozen=True)
class ToolContext:
    """Who a call runs for: the run's owner, its session and run, and the assistant message that asked."""

    owner: AbstractBaseUser
    session_id: UUID
    run_id: UUID
    message_seq: int


def current_time(context: ToolContext, arguments: Mapping[str, Any]) -> str:
    name = str(arguments.get("timezone") or "UTC")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolFailedError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris") from None
    now = datetime.now(UTC).astimezone(zone)
    return f"{now.isoformat(timespec='seconds')} ({name}, {now:%A})"


def _memory_search(context: ToolContext, arguments: Mapping[str, Any]) -> str:
    limit = int(arguments.get("limit") or SEARCH_LIMIT_DEFAULT)
    hits = memory_search(
        str(arguments["query"]), max(1, min(limit, 20)), owner_id=int(context.owner.pk), mode=MatchMode.ANY
    )
    if not hits:
        return "no memory matches"
    return "\n".join(f"#{hit.memory.pk} ({hit.memory.kind}) {hit.memory.content}" for hit in hits)


def _memory_remember(context: ToolContext, arguments: Mapping[str, Any]) -> str:
    result = memory_write(
        owner=context.owner,
        kind=str(arguments.get("kind") or MemoryKind.FACT),
        content=str(arguments["content"]),
        key=arguments.get("key"),
        source=MemorySource.MODEL,
        source_run_id=context.run_id,
        source_session_id=context.session_id,
        source_first_seq=context.message_seq,
        source_last_seq=context.message_seq,
    )
    verb = "remembered" if result.created else "updated"
    return f"{verb} memory #{result.memory.pk}"


def _memory_forget(context: ToolContext, arguments: Mapping[str, Any]) -> str:
    memory = memory_forget(memory_id=int(arguments["id"]), owner=context.owner)
    return f"forgot memory #{memory.pk} (the user can restore it)"


BUILTINS: dict[str, Callable[[ToolContext, Mapping[str, Any]], str]] = {
    "current_time": current_time,
    "memory_search": _memory_search,
    "memory_remember": _memory_remember,
    "memory_forget": _memory_forget,
}


def builtin_run(name: str, context: ToolContext, arguments: Mapping[str, Any]) -> str:
    """Run built-in `name`; a domain error (a secret, an unknown memory) becomes a ToolFailedError with its message."""
    try:
        return BUILTINS[name](context, arguments)
    except DomainError as exc:
        raise ToolFailedError(exc.message) from None
