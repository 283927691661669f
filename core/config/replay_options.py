"""The `replay` provider's options, as the config file gives them (see `runtime.providers.replay`).

They live in core because the config validator checks them before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.conversation.contracts import FINISH_REASONS
from core.errors import InvalidInputError

MAX_DELAY_MS = 10_000
MAX_PAUSE_MS = 600_000
USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cache_write_input_tokens")
STEP_FIELDS: dict[str, dict[str, type]] = {
    "text": {"text": str},
    "tool_call": {"name": str, "arguments": dict},
    "tool_result": {"content": str, "is_error": bool},
    "error": {"message": str},
    "finish": {"reason": str},
    "usage": dict.fromkeys(USAGE_FIELDS, int),
}
REQUIRED_STEP_FIELDS = {
    "text": ("text",),
    "tool_call": ("name",),
    "tool_result": ("content",),
    "error": ("message",),
    "finish": ("reason",),
}


@dataclass(frozen=True)
class ReplayOptions:
    prefix: str
    chunk_chars: int
    usage: dict[str, int]
    script: tuple[tuple[dict[str, Any], ...], ...] | None
    # A pause before each streamed text chunk, and a longer one before chunk `pause_at_chunk` (0-based,
    # counted over the turn's text chunks); both in milliseconds. For exercising slow providers.
    delay_ms: int = 0
    pause_at_chunk: int | None = None
    pause_ms: int = 0


def replay_options_parse(options: object, *, field: str = "options") -> ReplayOptions:
    """Validate a replay provider's options; every problem names its path."""
    if not isinstance(options, dict):
        raise InvalidInputError.for_field(field, "must be an object")
    problems: dict[str, list[str]] = {}
    known = {"prefix", "chunk_chars", "usage", "script", "delay_ms", "pause_at_chunk", "pause_ms"}
    for key in sorted(set(options) - known):
        problems[f"{field}.{key}"] = [f"unknown replay option; use one of {', '.join(sorted(known))}"]
    prefix = options.get("prefix", "replay: ")
    if not isinstance(prefix, str):
        problems[f"{field}.prefix"] = ["must be a string"]
    chunk = options.get("chunk_chars", 16)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or not 1 <= chunk <= 10_000:
        problems[f"{field}.chunk_chars"] = ["must be a whole number from 1 to 10000"]
    delay = options.get("delay_ms", 0)
    if not _whole(delay, MAX_DELAY_MS):
        problems[f"{field}.delay_ms"] = [f"must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}"]
    pause_at = options.get("pause_at_chunk")
    pause = options.get("pause_ms")
    if pause_at is not None and not _whole(pause_at, 1_000_000):
        problems[f"{field}.pause_at_chunk"] = ["must be a whole number from 0 to 1000000 (0 is the first chunk)"]
    if pause is not None and not _whole(pause, MAX_PAUSE_MS):
        problems[f"{field}.pause_ms"] = [f"must be a whole number of milliseconds from 0 to {MAX_PAUSE_MS}"]
    if (pause_at is None) != (pause is None):
        given, missing = ("pause_at_chunk", "pause_ms") if pause is None else ("pause_ms", "pause_at_chunk")
        problems.setdefault(f"{field}.{missing}", []).append(f"required with {given}; give both or neither")
    usage = options.get("usage", {})
    if not isinstance(usage, dict):
        problems[f"{field}.usage"] = ["must be an object of token counts"]
        usage = {}
    _check_usage(usage, f"{field}.usage", problems)
    script = options.get("script")
    turns: list[tuple[dict[str, Any], ...]] | None = None
    if script is not None:
        if not isinstance(script, list) or not script:
            problems[f"{field}.script"] = ["must be a non-empty list of turns (each a list of steps)"]
        else:
            turns = [_check_turn(turn, f"{field}.script[{index}]", problems) for index, turn in enumerate(script)]
    if problems:
        first_path, first_messages = next(iter(problems.items()))
        raise InvalidInputError(f"{first_path}: {first_messages[0]}", fields=problems)
    return ReplayOptions(
        prefix=str(prefix),
        chunk_chars=int(chunk),
        usage={key: int(value) for key, value in usage.items()},
        script=tuple(turns) if turns is not None else None,
        delay_ms=int(delay),
        pause_at_chunk=int(pause_at) if pause_at is not None else None,
        pause_ms=int(pause) if pause is not None else 0,
    )


def _whole(value: object, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _check_usage(usage: dict[str, Any], path: str, problems: dict[str, list[str]]) -> None:
    for key, value in usage.items():
        if key == "type":
            continue
        if key not in USAGE_FIELDS:
            problems[f"{path}.{key}"] = [f"unknown token field; use one of {', '.join(USAGE_FIELDS)}"]
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems[f"{path}.{key}"] = ["must be a whole number of tokens, zero or more"]


def _check_turn(turn: object, path: str, problems: dict[str, list[str]]) -> tuple[dict[str, Any], ...]:
    if not isinstance(turn, list) or not turn:
        problems[path] = ["must be a non-empty list of steps"]
        return ()
    for index, step in enumerate(turn):
        step_path = f"{path}[{index}]"
        if not isinstance(step, dict) or step.get("type") not in STEP_FIELDS:
            problems[f"{step_path}.type"] = [f"must be one of {', '.join(STEP_FIELDS)}"]
            continue
        kind = step["type"]
        if kind == "usage":
            _check_usage(step, step_path, problems)
            continue
        allowed = STEP_FIELDS[kind]
        for key in sorted(set(step) - {"type", *allowed}):
            problems[f"{step_path}.{key}"] = [f"unknown key for a {kind} step"]
        for key in REQUIRED_STEP_FIELDS[kind]:
            if key not in step:
                problems[f"{step_path}.{key}"] = ["required"]
        for key, expected in allowed.items():
            if key in step and not isinstance(step[key], expected):
                problems[f"{step_path}.{key}"] = [f"must be a {expected.__name__}"]
        if kind == "finish" and isinstance(step.get("reason"), str) and step["reason"] not in FINISH_REASONS:
            problems[f"{step_path}.reason"] = [f"must be one of {', '.join(FINISH_REASONS)}"]
    return tuple(turn)
