"""The offline `replay` provider: deterministic responses with no network and no credential.

Options (the provider's `options` table in the config file), all optional:

- `prefix` (string, default `"replay: "`): the echo reply starts with it.
- `chunk_chars` (1 to 10,000, default 16): the reply streams in text deltas of this many characters.
- `usage` (object): fixed `input_tokens`, `output_tokens`, `cached_input_tokens`, `reasoning_tokens`,
  `cache_write_input_tokens` reported for every turn; each one left out is estimated (about 4 characters a token).
- `script` (list of turns): turn N answers the prompt's N-th user message (1-based); each turn is a
  list of steps `{"type": "text", "text"}`, `{"type": "tool_call", "name", "arguments"}`,
  `{"type": "tool_result", "content", "is_error"}`, `{"type": "error", "message"}`,
  `{"type": "usage", …token fields…}`, `{"type": "finish", "reason"}` (`stop` by default; `length`
  replays a reply cut short at max_output_tokens). A prompt with more user messages than turns gets an error.
  A `usage` step before an `error` step is streamed before the error (usage reported, then a failure).

- `delay_ms` (0 to 10,000, default 0): a pause before each streamed text chunk.
- `pause_at_chunk` with `pause_ms` (0 to 600,000): one longer pause before that text chunk of the
  turn (0 is the first); give both or neither. These make a slow provider for tests of races
  (a retry or a recovery while a reply is still streaming).

Without a script, the rule set answers the latest user message:
- `/error [text]` → an `error` event (to exercise failure paths);
- `/tool NAME [arguments]` → a `tool_call` of NAME with `{"input": arguments}`, a replayed
  `tool_result`, then a sentence saying what was called;
- anything else → the prefix followed by the message, echoed back.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Sequence
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
    ToolResult,
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
        if self.options.script is not None:
            events = self._scripted(messages, turn_number=len(user_messages))
        else:
            events = self._rules(messages, latest=user_messages[-1].content, turn_number=len(user_messages))
        for event in events:
            if self.stop.closed.is_set():
                return  # closed (a cancel) during a pause: nothing more is streamed
            yield event

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
            pause_ms = self.options.delay_ms
            if self._chunk_index == self.options.pause_at_chunk:
                pause_ms += self.options.pause_ms
            # A pause waits on the stop flag, so closing the stream ends it at once.
            if pause_ms and self.stop.closed.wait(pause_ms / 1000):
                return
            self._chunk_index += 1
            yield TextDelta(text=text[start : start + size])

    def _usage(self, messages: Sequence[PromptMessage], reply: str, *, override: dict[str, Any] | None) -> Usage:
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
