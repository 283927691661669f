"""The offline `replay` provider: deterministic responses with no network and no credential.

Options (the provider's `options` table in the config file), all optional:

- `prefix` (string, default `"replay: "`): the echo reply starts with it.
- `chunk_chars` (1 to 10,000, default 16): the reply streams in text deltas of this many characters.
- `usage` (object): fixed `input_tokens`, `output_tokens`, `cached_input_tokens`, `reasoning_tokens`
  reported for every turn; each one left out is estimated (about 4 characters a token).
- `script` (list of turns): turn N answers the prompt's N-th user message (1-based); each turn is a
  list of steps `{"type": "text", "text"}`, `{"type": "tool_call", "name", "arguments"}`,
  `{"type": "tool_result", "content", "is_error"}`, `{"type": "error", "message"}`,
  `{"type": "usage", …token fields…}`, `{"type": "finish", "reason"}` (`stop` by default; `length`
  replays a reply cut short at max_output_tokens). A prompt with more user messages than turns gets an error.
  A `usage` step before an `error` step is streamed before the error (usage reported, then a failure).

Without a script, the rule set answers the latest user message:
- `/error [text]` → an `error` event (to exercise failure paths);
- `/tool NAME [arguments]` → a `tool_call` of NAME with `{"input": arguments}`, a replayed
  `tool_result`, then a sentence saying what was called;
- anything else → the prefix followed by the message, echoed back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from core.contracts import FINISH_REASONS, estimate_tokens
from core.errors import InvalidInputError
from core.models import ProviderKind
from core.runtime.adapters import PromptMessage, ProviderAdapter
from core.runtime.events import (
    ErrorEvent,
    Finish,
    FinishReason,
    RuntimeEvent,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)

TOOL_COMMAND = re.compile(r"^/tool\s+([A-Za-z0-9_.-]+)\s*(.*)$", re.DOTALL)
ERROR_COMMAND = re.compile(r"^/error\b\s*(.*)$", re.DOTALL)
USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")
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


def replay_options_parse(options: object, *, field: str = "options") -> ReplayOptions:
    """Validate a replay provider's options; every problem names its path."""
    if not isinstance(options, dict):
        raise InvalidInputError.for_field(field, "must be an object")
    problems: dict[str, list[str]] = {}
    known = {"prefix", "chunk_chars", "usage", "script"}
    for key in sorted(set(options) - known):
        problems[f"{field}.{key}"] = [f"unknown replay option; use one of {', '.join(sorted(known))}"]
    prefix = options.get("prefix", "replay: ")
    if not isinstance(prefix, str):
        problems[f"{field}.prefix"] = ["must be a string"]
    chunk = options.get("chunk_chars", 16)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or not 1 <= chunk <= 10_000:
        problems[f"{field}.chunk_chars"] = ["must be a whole number from 1 to 10000"]
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
    )


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


class ReplayAdapter(ProviderAdapter):
    """Streams deterministic replies offline (see the module docstring for the rules)."""

    kind = ProviderKind.REPLAY.value
    needs_credential = False

    def validate(self) -> None:
        self.options = replay_options_parse(self.provider.options, field="options")

    def stream(self, messages: Sequence[PromptMessage]) -> Iterator[RuntimeEvent]:
        self.ensure_ready()
        user_messages = [message for message in messages if message.role == "user"]
        if not user_messages:
            yield ErrorEvent(message="the replay provider needs a user message to answer", code="no_user_message")
            return
        if self.options.script is not None:
            yield from self._scripted(messages, turn_number=len(user_messages))
        else:
            yield from self._rules(messages, latest=user_messages[-1].content, turn_number=len(user_messages))

    def _scripted(self, messages: Sequence[PromptMessage], *, turn_number: int) -> Iterator[RuntimeEvent]:
        script = self.options.script or ()
        if turn_number > len(script):
            yield ErrorEvent(
                message=f"the replay script has {len(script)} turns; turn {turn_number} was asked for",
                code="script_exhausted",
            )
            return
        reply: list[str] = []
        usage_step: dict[str, Any] | None = None
        reason: FinishReason = "stop"
        calls = 0
        last_call_id = ""
        for step in script[turn_number - 1]:
            kind = step["type"]
            if kind == "text":
                reply.append(step["text"])
                yield from self._chunks(step["text"])
            elif kind == "tool_call":
                calls += 1
                last_call_id = f"call_{turn_number}_{calls}"
                yield ToolCall(id=last_call_id, name=step["name"], arguments=dict(step.get("arguments", {})))
            elif kind == "tool_result":
                yield ToolResult(
                    tool_call_id=last_call_id or f"call_{turn_number}_0",
                    content=step["content"],
                    is_error=bool(step.get("is_error", False)),
                )
            elif kind == "finish":
                reason = step["reason"]
            elif kind == "error":
                if usage_step is not None:
                    # A provider that reported usage and then failed: the usage comes first.
                    yield self._usage(messages, "".join(reply), override=usage_step)
                yield ErrorEvent(message=step["message"], code="scripted_error")
                return
            else:
                usage_step = step
        yield Finish(reason=reason)
        yield self._usage(messages, "".join(reply), override=usage_step)

    def _rules(self, messages: Sequence[PromptMessage], *, latest: str, turn_number: int) -> Iterator[RuntimeEvent]:
        text = latest.strip()
        error = ERROR_COMMAND.match(text)
        if error:
            yield ErrorEvent(message=error.group(1).strip() or "replay error requested", code="requested_error")
            return
        tool = TOOL_COMMAND.match(text)
        if tool:
            name, argument = tool.group(1), tool.group(2).strip()
            call_id = f"call_{turn_number}_1"
            yield ToolCall(id=call_id, name=name, arguments={"input": argument})
            yield ToolResult(tool_call_id=call_id, content=f"replayed result of {name}({argument!r})")
            reply = f"{self.options.prefix}called {name} with {argument!r}"
        else:
            reply = f"{self.options.prefix}{text}"
        yield from self._chunks(reply)
        yield Finish(reason="stop")
        yield self._usage(messages, reply, override=None)

    def _chunks(self, text: str) -> Iterator[TextDelta]:
        size = self.options.chunk_chars
        for start in range(0, len(text), size):
            yield TextDelta(text=text[start : start + size])

    def _usage(self, messages: Sequence[PromptMessage], reply: str, *, override: dict[str, Any] | None) -> Usage:
        values = {
            "input_tokens": sum(estimate_tokens(message.content, list(message.parts)) for message in messages),
            "output_tokens": estimate_tokens(reply),
            "cached_input_tokens": 0,
            "reasoning_tokens": 0,
        }
        values.update(self.options.usage)
        if override:
            values.update({key: int(value) for key, value in override.items() if key in USAGE_FIELDS})
        # Keep the subsets inside their totals whatever the options say.
        values["cached_input_tokens"] = min(values["cached_input_tokens"], values["input_tokens"])
        values["reasoning_tokens"] = min(values["reasoning_tokens"], values["output_tokens"])
        return Usage(
            input_tokens=values["input_tokens"],
            output_tokens=values["output_tokens"],
            cached_input_tokens=values["cached_input_tokens"],
            reasoning_tokens=values["reasoning_tokens"],
        )
