"""Typed contracts for the structured parts of a message.

A message's `parts` is a list of objects, each with a `type`:

- `tool_call`: `{"type", "id", "name", "arguments": {...}}` — the model asks for a tool.
- `tool_result`: `{"type", "tool_call_id", "content": str, "is_error": bool}` — the tool's answer.
- `attachment`: `{"type", "sha256", "name", "mime_type"}` — a file or source the message refers to
  (its summary lives in memory's attachment summaries, keyed by sha256).

`parts_validate` returns the normalized list or raises `InvalidInputError` naming each bad path.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, NotRequired, TypedDict

from core.errors import InvalidInputError

MAX_CONTENT_CHARS = 1_000_000
MAX_PARTS = 256
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ToolCallPart(TypedDict):
    type: Literal["tool_call"]
    id: str
    name: str
    arguments: dict[str, Any]


class ToolResultPart(TypedDict):
    type: Literal["tool_result"]
    tool_call_id: str
    content: str
    is_error: NotRequired[bool]


class AttachmentPart(TypedDict):
    type: Literal["attachment"]
    sha256: str
    name: str
    mime_type: str


MessagePart = ToolCallPart | ToolResultPart | AttachmentPart

_PART_FIELDS: dict[str, dict[str, type]] = {
    "tool_call": {"id": str, "name": str, "arguments": dict},
    "tool_result": {"tool_call_id": str, "content": str},
    "attachment": {"sha256": str, "name": str, "mime_type": str},
}
_OPTIONAL_FIELDS: dict[str, dict[str, type]] = {"tool_result": {"is_error": bool}}
_TYPE_WORDS: dict[type, str] = {str: "string", dict: "object", bool: "boolean"}


def parts_validate(parts: object, *, field: str = "parts") -> list[MessagePart]:
    """Check `parts` against the contract; every problem is reported with its path."""
    if parts is None:
        return []
    if not isinstance(parts, list):
        raise InvalidInputError.for_field(field, "must be a list of part objects")
    if len(parts) > MAX_PARTS:
        raise InvalidInputError.for_field(field, f"has {len(parts)} parts; at most {MAX_PARTS} are allowed")
    problems: dict[str, list[str]] = {}
    for index, part in enumerate(parts):
        path = f"{field}[{index}]"
        if not isinstance(part, dict):
            problems[path] = ["must be an object with a 'type'"]
            continue
        kind = part.get("type")
        if kind not in _PART_FIELDS:
            problems[f"{path}.type"] = [f"{kind!r} is not a part type; use one of {', '.join(_PART_FIELDS)}"]
            continue
        required = _PART_FIELDS[kind]
        optional = _OPTIONAL_FIELDS.get(kind, {})
        for name, expected in required.items():
            value = part.get(name)
            blank = isinstance(value, str) and not value.strip() and name != "content"
            if not isinstance(value, expected) or blank:
                problems[f"{path}.{name}"] = [f"required {_TYPE_WORDS[expected]}"]
        for name, expected in optional.items():
            if name in part and not isinstance(part[name], expected):
                problems[f"{path}.{name}"] = [f"must be a {_TYPE_WORDS[expected]}"]
        unknown = sorted(set(part) - {"type", *required, *optional})
        if unknown:
            problems[f"{path}"] = [f"unknown keys {', '.join(unknown)} for a {kind} part"]
        if kind == "attachment" and isinstance(part.get("sha256"), str) and not SHA256_RE.match(part["sha256"]):
            problems[f"{path}.sha256"] = ["must be 64 lowercase hex characters (the content's SHA-256)"]
    if problems:
        first = next(iter(problems.items()))
        raise InvalidInputError(f"{first[0]}: {first[1][0]}", fields=problems)
    return parts  # checked field by field above


def estimate_tokens(text: str, parts: list[MessagePart] | None = None) -> int:
    """A provider-independent estimate (about 4 characters a token), used when none was reported."""
    size = len(text)
    for part in parts or []:
        size += len(str(part))
    return math.ceil(size / 4) if size else 0
