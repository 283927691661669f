"""Typed contracts for the structured parts of a message and for the payloads of trace events.

A message's `parts` is a list of objects, each with a `type`:

- `tool_call`: `{"type", "id", "name", "arguments": {...}}` — the model asks for a tool.
- `tool_result`: `{"type", "tool_call_id", "content": str, "is_error": bool}` — the tool's answer.
- `attachment`: `{"type", "sha256", "name", "mime_type"}` — a file or source the message refers to
  (its summary lives in memory's attachment summaries, keyed by sha256).
- `reasoning`: `{"type", "text": str, "state"?: {...}}` — the model's thinking that came with an
  assistant message (never reply text; `text` may be empty) and the provider's opaque reasoning
  state exactly as streamed (the `Reasoning` event's `state`), sent back unchanged on the next
  request of the turn (`runtime.prompt`).

`parts_validate` returns the normalized list or raises `InvalidInputError` naming each bad path;
`trace_payload_validate` does the same for a trace event's payload (contracts listed below).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, NotRequired, TypedDict

from core.errors import InvalidInputError

MAX_CONTENT_CHARS = 1_000_000
MAX_PARTS = 256
SHA256_RE = re.compile(r"[0-9a-f]{64}")


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


class ReasoningPart(TypedDict):
    type: Literal["reasoning"]
    text: str
    state: NotRequired[dict[str, Any]]


MessagePart = ToolCallPart | ToolResultPart | AttachmentPart | ReasoningPart

_PART_FIELDS: dict[str, dict[str, type]] = {
    "tool_call": {"id": str, "name": str, "arguments": dict},
    "tool_result": {"tool_call_id": str, "content": str},
    "attachment": {"sha256": str, "name": str, "mime_type": str},
    "reasoning": {"text": str},
}
_OPTIONAL_FIELDS: dict[str, dict[str, type]] = {"tool_result": {"is_error": bool}, "reasoning": {"state": dict}}
# Strings that may be empty: a tool's answer, and reasoning that came only as opaque state.
_MAY_BE_BLANK = {"content", "text"}
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
            blank = isinstance(value, str) and not value.strip() and name not in _MAY_BE_BLANK
            if not isinstance(value, expected) or blank:
                problems[f"{path}.{name}"] = [f"required {_TYPE_WORDS[expected]}"]
        for name, expected in optional.items():
            if name in part and not isinstance(part[name], expected):
                problems[f"{path}.{name}"] = [f"must be {'an' if expected is dict else 'a'} {_TYPE_WORDS[expected]}"]
        unknown = sorted(set(part) - {"type", *required, *optional})
        if unknown:
            problems[f"{path}"] = [f"unknown keys {', '.join(unknown)} for a {kind} part"]
        if kind == "attachment" and isinstance(part.get("sha256"), str) and not SHA256_RE.fullmatch(part["sha256"]):
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


# --- Trace events ---------------------------------------------------------------------------
#
# Each trace event's `payload` is an object whose keys depend on the event's `type`:
#
# - `run_started`: `{"message_seq"?, "regenerates_seq"?, "worker_host"?, "worker_pid"?, "worker_start"?}` —
#   the message the run answers (and the reply it regenerates), the process running it (host name,
#   pid, and its start as `boot_id:ticks`),
#   so a retry finds the run and recovery can leave a run whose process is alive alone.
# - `text_delta`: `{"text": str}` — a piece of the streamed reply; the trace text is their concatenation.
# - `reasoning`: `{"text": str, "state"?: {...}}` — the model's thinking (never reply text) and the
#   provider's opaque reasoning state, kept unchanged.
# - `tool_call`: `{"id", "name", "arguments": {...}, "raw_arguments"?: str, "arguments_error"?: str}`
#   (the last two when the streamed arguments were cut short or invalid)
# - `tool_result`: `{"tool_call_id", "content": str, "is_error"?: bool}`
# - `usage`: `{"input_tokens", "output_tokens", "cached_input_tokens"?, "reasoning_tokens"?,
#   "cache_write_input_tokens"?}` (integers ≥ 0, or null: the provider did not report it)
# - `finish`: `{"reason", "provider_reason"?: str, "refusal"?: str}`
# - `error`: `{"message": str, "code"?: str}`
# - `run_finished`: `{"status": "completed" | "failed" | "cancelled" | "interrupted"}`

MAX_EVENT_TEXT_CHARS = 200_000
FINISH_STATUSES = ("completed", "failed", "cancelled", "interrupted")
# Why a model stopped (the `finish` event; same values as core.conversation.events.FINISH_REASONS).
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


class RunStartedPayload(TypedDict, total=False):
    """All optional: which user message the run answers and which process runs it."""

    message_seq: int
    worker_host: str
    worker_pid: int
    worker_start: str


class TextDeltaPayload(TypedDict):
    text: str


class ReasoningPayload(TypedDict):
    text: str
    state: NotRequired[dict[str, Any]]


class ToolCallPayload(TypedDict):
    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: NotRequired[str]
    arguments_error: NotRequired[str]


class FinishPayload(TypedDict):
    reason: str
    provider_reason: NotRequired[str]
    refusal: NotRequired[str]


class ToolResultPayload(TypedDict):
    tool_call_id: str
    content: str
    is_error: NotRequired[bool]


class UsagePayload(TypedDict):
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: NotRequired[int | None]
    reasoning_tokens: NotRequired[int | None]
    cache_write_input_tokens: NotRequired[int | None]


class ErrorPayload(TypedDict):
    message: str
    code: NotRequired[str]


class RunFinishedPayload(TypedDict):
    status: str


class DelegateEventPayload(TypedDict):
    type: str
    payload: dict[str, Any]


class DelegatePayload(TypedDict):
    """One event of a delegated (child) run, mirrored into its parent's trace."""

    run_id: str
    member: str
    tool_call_id: str
    event: DelegateEventPayload


TracePayload = (
    RunStartedPayload
    | TextDeltaPayload
    | ReasoningPayload
    | ToolCallPayload
    | ToolResultPayload
    | UsagePayload
    | FinishPayload
    | ErrorPayload
    | RunFinishedPayload
    | DelegatePayload
)

# Per type: required keys and optional keys with their kind ("text" is a non-empty string,
# "string" may be empty, "count" an integer ≥ 0, "reported" a count or null: not reported).
_EVENT_FIELDS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "run_started": (
        {},
        {
            "message_seq": "count",
            "regenerates_seq": "count",
            "worker_host": "text",
            "worker_pid": "count",
            "worker_start": "text",
        },
    ),
    "text_delta": ({"text": "string"}, {}),
    "reasoning": ({"text": "string"}, {"state": "object"}),
    "tool_call": (
        {"id": "text", "name": "text", "arguments": "object"},
        {"raw_arguments": "string", "arguments_error": "text"},
    ),
    "tool_result": ({"tool_call_id": "text", "content": "string"}, {"is_error": "boolean"}),
    "usage": (
        {"input_tokens": "reported", "output_tokens": "reported"},
        {"cached_input_tokens": "reported", "reasoning_tokens": "reported", "cache_write_input_tokens": "reported"},
    ),
    "finish": ({"reason": "reason"}, {"provider_reason": "text", "refusal": "string"}),
    "error": ({"message": "text"}, {"code": "text"}),
    "run_finished": ({"status": "status"}, {}),
    # The calls the run waits on: [{"id", "name", "arguments", "waits_for": "approval" | "result"}].
    "tools_pending": ({"calls": "list"}, {}),
    "tools_note": ({"message": "text"}, {}),
    # `event` is the child's event as `{"type", "payload"}`, checked against its own type's contract.
    "delegate": ({"run_id": "text", "member": "text", "tool_call_id": "text", "event": "object"}, {}),
}
_KIND_WORDS = {
    "text": "a non-empty string",
    "string": "a string",
    "object": "an object",
    "boolean": "a boolean",
    "list": "a list",
    "count": "an integer of 0 or more",
    "reported": "an integer of 0 or more, or null when the provider did not report it",
    "status": f"one of {', '.join(FINISH_STATUSES)}",
    "reason": f"one of {', '.join(FINISH_REASONS)}",
}


def _kind_ok(kind: str, value: object) -> bool:
    if kind == "text":
        return isinstance(value, str) and bool(value.strip())
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "reported":
        return value is None or _kind_ok("count", value)
    if kind == "count":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "reason":
        return value in FINISH_REASONS
    return value in FINISH_STATUSES  # "status"


def trace_payload_validate(event_type: str, payload: object, *, field: str = "payload") -> TracePayload:
    """Check an event's payload against the contract of `event_type`; every problem names its path."""
    if event_type not in _EVENT_FIELDS:
        raise InvalidInputError.for_field(
            "type", f"{event_type!r} is not an event type; use one of {', '.join(_EVENT_FIELDS)}"
        )
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidInputError.for_field(field, f"must be an object for a {event_type} event")
    required, optional = _EVENT_FIELDS[event_type]
    problems: dict[str, list[str]] = {}
    for name, kind in required.items():
        if name not in payload:
            problems[f"{field}.{name}"] = [f"required: {_KIND_WORDS[kind]}"]
        elif not _kind_ok(kind, payload[name]):
            problems[f"{field}.{name}"] = [f"must be {_KIND_WORDS[kind]}"]
    for name, kind in optional.items():
        if name in payload and not _kind_ok(kind, payload[name]):
            problems[f"{field}.{name}"] = [f"must be {_KIND_WORDS[kind]}"]
    unknown = sorted(set(payload) - {*required, *optional})
    if unknown:
        allowed = ", ".join([*required, *optional]) or "no keys"
        problems[field] = [f"unknown keys {', '.join(unknown)} for a {event_type} event; it takes {allowed}"]
    for name in ("text", "content", "message", "raw_arguments", "refusal"):
        value = payload.get(name)
        if isinstance(value, str) and len(value) > MAX_EVENT_TEXT_CHARS:
            problems[f"{field}.{name}"] = [f"has {len(value)} characters; at most {MAX_EVENT_TEXT_CHARS} are allowed"]
    if event_type == "delegate" and not problems:
        _delegated_check(payload["event"], f"{field}.event", problems)
    if problems:
        first = next(iter(problems.items()))
        raise InvalidInputError(f"{first[0]}: {first[1][0]}", fields=problems)
    return payload  # type: ignore[return-value]  # checked key by key above


def _delegated_check(event: dict[str, Any], field: str, problems: dict[str, list[str]]) -> None:
    """A mirrored child event: `{"type", "payload"}`, its payload checked against that type's contract."""
    if set(event) != {"type", "payload"} or not isinstance(event["type"], str):
        problems[field] = ["must be an object with exactly a string `type` and a `payload`"]
        return
    try:
        trace_payload_validate(event["type"], event["payload"], field=f"{field}.payload")
    except InvalidInputError as exc:
        problems.update(exc.fields)


def json_nul_path(value: object, path: str) -> str | None:
    """The path of the first string (or key) holding a NUL character, which databases cannot store."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                return path
            found = json_nul_path(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = json_nul_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def json_refuse_nul(value: object, field: str) -> None:
    """Raise InvalidInputError naming where `value` holds a NUL character."""
    found = json_nul_path(value, field)
    if found:
        raise InvalidInputError.for_field(found, "contains a NUL character (\\u0000); remove it")
