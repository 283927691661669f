"""Typed runtime events: what a provider adapter streams for one model turn.

Each event maps one-to-one onto a trace event (`core.models.TraceEventType`) through `payload()`,
so the runner can store the stream as it arrives and the UI can replay it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class TextDelta:
    """A piece of the assistant's reply text."""

    text: str
    type: Literal["text_delta"] = "text_delta"

    def payload(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True)
class ToolCall:
    """The model asks for a tool to be called with `arguments`."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    # Set when the streamed arguments were cut short or are not a JSON object: `arguments` is then
    # empty, `raw_arguments` keeps the text as the provider sent it and `arguments_error` says why.
    raw_arguments: str | None = None
    arguments_error: str | None = None
    type: Literal["tool_call"] = "tool_call"

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.arguments_error is not None:
            payload["raw_arguments"] = self.raw_arguments or ""
            payload["arguments_error"] = self.arguments_error
        return payload


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer to the call `tool_call_id`."""

    tool_call_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"

    def payload(self) -> dict[str, Any]:
        return {"tool_call_id": self.tool_call_id, "content": self.content, "is_error": self.is_error}


@dataclass(frozen=True)
class Usage:
    """Token usage the provider reported, in OpenTelemetry GenAI terms; None means not reported (unknown), never 0.

    `input_tokens` (`gen_ai.usage.input_tokens`) counts every input token, cache reads and cache writes
    included; `cached_input_tokens` (`gen_ai.usage.cache_read.input_tokens`) and
    `cache_write_input_tokens` (`gen_ai.usage.cache_creation.input_tokens`) are parts of it.
    `output_tokens` (`gen_ai.usage.output_tokens`) counts every output token, reasoning included;
    `reasoning_tokens` (`gen_ai.usage.reasoning.output_tokens`) is a part of it.
    """

    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    type: Literal["usage"] = "usage"

    def payload(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in USAGE_TOKEN_FIELDS}


# The token fields of `Usage`, in the order its payload and the usage records list them.
USAGE_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_write_input_tokens",
)


# The values of core.conversation.contracts.FINISH_REASONS, which the trace contract checks (a test keeps them equal).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True)
class Finish:
    """Why the model stopped: `stop` (done), `length` (hit max_output_tokens: the reply is cut short),
    `tool_calls` (it waits for tool results), `content_filter` (the provider withheld the rest)."""

    reason: FinishReason
    # The provider's own word for it (e.g. `end_turn`, `MAX_TOKENS`, `refusal`), kept beside the mapped reason.
    provider_reason: str = ""
    # The model's refusal text, when it declined to answer (then `reason` is `content_filter`).
    refusal: str = ""
    type: Literal["finish"] = "finish"

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"reason": self.reason}
        if self.provider_reason:
            payload["provider_reason"] = self.provider_reason
        if self.refusal:
            payload["refusal"] = self.refusal
        return payload


@dataclass(frozen=True)
class ErrorEvent:
    """The provider failed this turn; the run ends `failed` with `message`."""

    message: str
    code: str = "provider_error"
    type: Literal["error"] = "error"

    def payload(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code}


@dataclass(frozen=True)
class Reasoning:
    """The model's reasoning (thinking) for this turn, never part of the reply text.

    `state` keeps the provider's opaque reasoning data exactly as received (Anthropic thinking
    signatures or redacted thinking, Gemini thought signatures, an OpenAI Responses reasoning item
    with its encrypted content) under a `provider` key naming the wire protocol; a provider that
    requires it back (a tool loop with thinking enabled) is sent it unchanged on the next request.
    """

    text: str
    state: dict[str, Any] = field(default_factory=dict)
    type: Literal["reasoning"] = "reasoning"

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"text": self.text}
        if self.state:
            payload["state"] = self.state
        return payload


RuntimeEvent = TextDelta | Reasoning | ToolCall | ToolResult | Usage | Finish | ErrorEvent
