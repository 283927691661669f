"""The offline `replay` provider: deterministic responses with no network and no credential.

Options (the provider's `options` table in the config file), all optional:

- `prefix` (string, default `"replay: "`): the echo reply starts with it.
- `chunk_chars` (1 to 10,000, default 16): the reply streams in text deltas of this many characters.
- `usage` (object): fixed `input_tokens`, `output_tokens`, `cached_input_tokens`, `reasoning_tokens`,
  `cache_write_input_tokens` reported for every turn; each one left out is estimated (about 4 characters a token).
- `script` (list of turns): turn N answers the prompt's N-th user message (1-based); each turn is a
  list of steps `{"type": "text", "text"}`, `{"type": "tool_call", "name", "arguments"}` (arguments
  left out: built from the tool's schema, as below), `{"type": "error", "message"}`,
  `{"type": "usage", …token fields…}`, `{"type": "finish", "reason"}` (`stop` by default; `length`
  replays a reply cut short at max_output_tokens). A prompt with more user messages than turns gets an error.
  A `usage` step before an `error` step is streamed before the error (usage reported, then a failure).
  Tool calls go through the turn's tool loop: the steps up to a run of `tool_call` steps answer the
  first model call of the turn, the steps after it the call made with the tools' results, and so
  on. (`tool_result` steps are skipped: the tools answer for themselves.)

- `delay_ms` (0 to 10,000, default 0): a pause before each streamed text chunk.
- `pause_at_chunk` with `pause_ms` (0 to 600,000): one longer pause before that text chunk of the
  turn (0 is the first); give both or neither. These make a slow provider for tests of races
  (a retry or a recovery while a reply is still streaming).

Without a script, the rule set answers the latest user message:
- `/error [text]` → an `error` event (to exercise failure paths);
- `/tool NAME [text]` → a `tool_call` of NAME whose arguments are built from the offered tool's
  schema (every required property filled by its type: the text for the first string, 1 for a
  number, true, [] or {}; no schema: no arguments); once the results are in the prompt, a sentence
  quoting what each tool returned;
- anything else → the prefix followed by the message, echoed back.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any

from core.config.replay_options import USAGE_FIELDS, replay_options_parse
from core.conversation.contracts import estimate_tokens
from core.conversation.events import (
    ErrorEvent,
    Finish,
    FinishReason,
    RuntimeEvent,
    TextDelta,
    ToolCall,
    Usage,
)
from core.models import ProviderKind
from runtime.providers.base import PromptMessage, ProviderAdapter, ToolDefinition

TOOL_COMMAND = re.compile(r"^/tool\s+([A-Za-z0-9_.-]+)\s*(.*)$", re.DOTALL)
ERROR_COMMAND = re.compile(r"^/error\b\s*(.*)$", re.DOTALL)


class ReplayAdapter(ProviderAdapter):
    """Streams deterministic replies offline (see the module docstring for the rules)."""

    kind = ProviderKind.REPLAY.value
    needs_credential = False
    _chunk_index = 0

    def validate(self) -> None:
        self.options = replay_options_parse(self.provider.options, field="options")

    def stream(
        self, messages: Sequence[PromptMessage], *, tools: Sequence[ToolDefinition] = ()
    ) -> Generator[RuntimeEvent, None, None]:
        self.ensure_ready()
        self._chunk_index = 0
        user_messages = [message for message in messages if message.role == "user"]
        if not user_messages:
            yield ErrorEvent(message="the replay provider needs a user message to answer", code="no_user_message")
            return
        schemas = {tool.name: tool.parameters for tool in tools}
        if self.options.script is not None:
            events = self._scripted(messages, turn_number=len(user_messages), schemas=schemas)
        else:
            events = self._rules(
                messages, latest=user_messages[-1].content, turn_number=len(user_messages), schemas=schemas
            )
        for event in events:
            if self.stop.closed.is_set():
                return  # closed (a cancel) during a pause: nothing more is streamed
            yield event

    def _scripted(
        self, messages: Sequence[PromptMessage], *, turn_number: int, schemas: Mapping[str, Mapping[str, Any]]
    ) -> Iterator[RuntimeEvent]:
        script = self.options.script or ()
        if turn_number > len(script):
            yield ErrorEvent(
                message=f"the replay script has {len(script)} turns; turn {turn_number} was asked for",
                code="script_exhausted",
            )
            return
        reply: list[str] = []
        usage_step: Mapping[str, Any] | None = None
        reason: FinishReason = "stop"
        calls = 0
        round_number = _round_of(messages)
        segments = _segments(script[turn_number - 1])
        if round_number >= len(segments):
            yield ErrorEvent(
                message=f"the replay script's turn {turn_number} has {len(segments)} model calls; "
                f"call {round_number + 1} was asked for",
                code="script_exhausted",
            )
            return
        for step in segments[round_number]:
            kind = step["type"]
            if kind == "text":
                reply.append(step["text"])
                yield from self._chunks(step["text"])
            elif kind == "tool_call":
                calls += 1
                arguments: Mapping[str, Any] | None = step.get("arguments")
                if arguments is None:
                    arguments = arguments_from_schema(schemas.get(step["name"]), "")
                yield ToolCall(
                    id=f"call_{turn_number}_{round_number + 1}_{calls}", name=step["name"], arguments=dict(arguments)
                )
            elif kind == "tool_result":
                continue
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
        yield Finish(reason="tool_calls" if calls and reason == "stop" else reason)
        yield self._usage(messages, "".join(reply), override=usage_step)

    def _rules(
        self,
        messages: Sequence[PromptMessage],
        *,
        latest: str,
        turn_number: int,
        schemas: Mapping[str, Mapping[str, Any]],
    ) -> Iterator[RuntimeEvent]:
        text = latest.strip()
        error = ERROR_COMMAND.match(text)
        if error:
            yield ErrorEvent(message=error.group(1).strip() or "replay error requested", code="requested_error")
            return
        tool = TOOL_COMMAND.match(text)
        results = _results_since_user(messages)
        if tool and not results:
            name, argument = tool.group(1), tool.group(2).strip()
            call_id = f"call_{turn_number}_{_round_of(messages) + 1}_1"
            yield ToolCall(id=call_id, name=name, arguments=arguments_from_schema(schemas.get(name), argument))
            yield Finish(reason="tool_calls")
            yield self._usage(messages, "", override=None)
            return
        if tool:
            reply = f"{self.options.prefix}{tool.group(1)} returned: " + "; ".join(results)
        else:
            reply = f"{self.options.prefix}{text}"
        yield from self._chunks(reply)
        yield Finish(reason="stop")
        yield self._usage(messages, reply, override=None)

    def _chunks(self, text: str) -> Iterator[TextDelta]:
        size = self.options.chunk_chars
        for start in range(0, len(text), size):
            pause_ms = self.options.delay_ms
            if self._chunk_index == self.options.pause_at_chunk:
                pause_ms += self.options.pause_ms
            # A pause waits on the stop flag, so closing the stream ends it at once.
            if pause_ms and self.stop.closed.wait(pause_ms / 1000):
                return
            self._chunk_index += 1
            yield TextDelta(text=text[start : start + size])

    def _usage(self, messages: Sequence[PromptMessage], reply: str, *, override: Mapping[str, Any] | None) -> Usage:
        values = {
            "input_tokens": sum(estimate_tokens(message.content, list(message.parts)) for message in messages),
            "output_tokens": estimate_tokens(reply),
            "cached_input_tokens": 0,
            "reasoning_tokens": 0,
            "cache_write_input_tokens": 0,
        }
        values.update(self.options.usage)
        if override:
            values.update({key: int(value) for key, value in override.items() if key in USAGE_FIELDS})
        # Keep the subsets inside their totals whatever the options say.
        values["cached_input_tokens"] = min(values["cached_input_tokens"], values["input_tokens"])
        values["reasoning_tokens"] = min(values["reasoning_tokens"], values["output_tokens"])
        values["cache_write_input_tokens"] = min(
            values["cache_write_input_tokens"], values["input_tokens"] - values["cached_input_tokens"]
        )
        # The replay knows every count exactly: none is unknown.
        return Usage(
            input_tokens=values["input_tokens"],
            output_tokens=values["output_tokens"],
            cached_input_tokens=values["cached_input_tokens"],
            reasoning_tokens=values["reasoning_tokens"],
            cache_write_input_tokens=values["cache_write_input_tokens"],
        )


def _round_of(messages: Sequence[PromptMessage]) -> int:
    """How many model calls of this turn came before: the assistant messages after the last user message."""
    count = 0
    for message in reversed(messages):
        if message.role == "user":
            break
        count += message.role == "assistant"
    return count


def _results_since_user(messages: Sequence[PromptMessage]) -> list[str]:
    """The tool results in the prompt after its last user message, as their text."""
    results: list[str] = []
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "tool":
            results.insert(0, message.content)
    return results


def _segments(steps: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """A scripted turn cut into model calls: each ends after a run of tool_call (and tool_result) steps."""
    segments: list[list[Mapping[str, Any]]] = [[]]
    for index, step in enumerate(steps):
        segments[-1].append(step)
        following = steps[index + 1]["type"] if index + 1 < len(steps) else None
        if step["type"] in ("tool_call", "tool_result") and following not in ("tool_call", "tool_result", None):
            segments.append([])
    return segments


_FILLERS: dict[str, Any] = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}, "null": None}


def arguments_from_schema(schema: Mapping[str, Any] | None, text: str) -> dict[str, Any]:
    """Arguments that fit `schema`: each required property filled by its type (the text for the first string)."""
    if not schema:
        return {}
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    text_used = False
    for name in schema.get("required") or ():
        spec = properties.get(name) or {}
        if spec.get("enum"):
            arguments[name] = spec["enum"][0]
            continue
        kind = spec.get("type", "string")
        kind = kind[0] if isinstance(kind, list) and kind else kind
        if kind == "string":
            arguments[name] = text if not text_used and text else (text or name)
            text_used = True
        else:
            arguments[name] = _FILLERS.get(kind, text)
    return arguments
