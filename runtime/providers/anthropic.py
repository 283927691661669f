"""Anthropic's Messages protocol (`/v1/messages`), through the `anthropic` SDK.

The raw stream events become runtime events: `text_delta` → `TextDelta`; a `tool_use` block whose
`input_json_delta` pieces are assembled at `content_block_stop` → `ToolCall`; a `thinking` block
(its `signature_delta` kept) or a `redacted_thinking` block (its opaque `data` kept) → `Reasoning`;
`message_delta.stop_reason` → `Finish` (`end_turn`, `stop_sequence`, `pause_turn` → `stop`;
`max_tokens`, `model_context_window_exceeded` → `length`; `tool_use` → `tool_calls`; `refusal` →
`content_filter`); usage from `message_start` updated by `message_delta` → `Usage`, where input is
`input_tokens + cache_read_input_tokens + cache_creation_input_tokens` (Anthropic reports the cache
reads and writes outside `input_tokens`) and cached is the cache reads. A stream without
`message_stop` is interrupted; an `error` event mid-stream (e.g. `overloaded_error`) is a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import anthropic

from core.conversation.events import Finish, FinishReason, Reasoning, RuntimeEvent, TextDelta, Usage
from core.models import ProviderKind
from runtime.providers.base import PromptMessage, ToolDefinition, ToolNotExpressibleError
from runtime.providers.live import (
    COMBINERS,
    Failure,
    LiveAdapter,
    ToolNames,
    finish_reason_map,
    http_hooks,
    stainless_failure,
    stream_finish,
    system_put,
    tool_call_parse,
    turns,
)

ANTHROPIC_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def anthropic_messages(messages: Sequence[PromptMessage], names: ToolNames) -> list[dict[str, Any]]:
    """The prompt as Messages turns: tool_use blocks on the assistant, tool_result blocks on the user."""
    out: list[dict[str, Any]] = []
    # The results of parallel calls (one stored message each) go back in ONE user turn.
    results_turn: list[dict[str, Any]] | None = None
    for message, results in turns(messages):
        if results:
            if results_turn is None:
                results_turn = []
                out.append({"role": "user", "content": results_turn})
            results_turn.extend(
                {
                    "type": "tool_result",
                    "tool_use_id": part["tool_call_id"],
                    "content": part["content"],
                    "is_error": bool(part.get("is_error", False)),
                }
                for part in results
            )
            continue
        results_turn = None
        if message.role == "assistant":
            # Thinking blocks first, exactly as they came (their signatures are checked by Anthropic).
            blocks: list[dict[str, Any]] = [
                dict(state["block"])
                for state in message.reasoning
                if state.get("provider") == "anthropic" and isinstance(state.get("block"), dict)
            ]
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks += [
                {"type": "tool_use", "id": part["id"], "name": names.wire(part["name"]), "input": part["arguments"]}
                for part in message.parts
                if part["type"] == "tool_call"
            ]
            if blocks:
                out.append({"role": "assistant", "content": blocks})
            continue
        out.append({"role": "user", "content": message.content})
    return out


def anthropic_usage(counts: dict[str, int]) -> Usage:
    """The usage of the counts that arrived. Anthropic reports cache reads and cache writes outside
    `input_tokens`, so they are added to it exactly once (LibreChat #13795 billed them twice);
    a cache count it left out is unknown and adds nothing. The output is known only from
    `message_delta` (message_start's is a placeholder): a stream cut before it has no output count.
    Thinking tokens are inside output_tokens and never reported apart, so reasoning is unknown."""
    cache_read = counts.get("cache_read_input_tokens")
    cache_write = counts.get("cache_creation_input_tokens")
    base = counts.get("input_tokens")
    input_tokens = None if base is None else base + (cache_read or 0) + (cache_write or 0)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=counts.get("output_tokens"),
        cached_input_tokens=cache_read,
        cache_write_input_tokens=cache_write,
        reasoning_tokens=None,
    )


def _count(counts: dict[str, int], usage: Any, *, final: bool) -> None:
    """Take every count `usage` reports (message_delta's are cumulative; a missing one keeps its value);
    the output count only from a `final` (message_delta) report."""
    if usage is None:
        return
    for key in USAGE_KEYS:
        value = getattr(usage, key, None)
        if isinstance(value, int) and value >= 0 and (final or key != "output_tokens"):
            counts[key] = value


def _until_cut(stream: Iterable[Any], cut: list[Exception]) -> Iterator[Any]:
    """The stream's events until it ends or fails; a failure is put in `cut` (the caller records the
    usage that arrived before raising it again)."""
    try:
        yield from stream
    except Exception as exc:
        cut.append(exc)


class AnthropicAdapter(LiveAdapter):
    kind = ProviderKind.ANTHROPIC.value
    default_base_url = "https://api.anthropic.com"
    label = "Anthropic"

    def _failure(self, exc: Exception) -> Failure:
        return stainless_failure(exc, anthropic)

    def tool_schema(self, tool: ToolDefinition) -> dict[str, Any]:
        """The tool's `input_schema`: an object schema without a combiner at its top level (Anthropic refuses one)."""
        schema = super().tool_schema(tool)
        for keyword in COMBINERS:
            if keyword in schema:
                raise ToolNotExpressibleError(
                    f"tool {tool.name!r} cannot be offered to Anthropic: its parameters use {keyword!r} at the top "
                    "level, which an input_schema may not; describe the alternatives inside properties instead"
                )
        return schema

    def _events(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolDefinition], *, key: str
    ) -> Iterator[RuntimeEvent]:
        names = ToolNames(tools, messages)
        request: dict[str, Any] = {
            "model": self.route.model_id,
            "max_tokens": self.route.max_output_tokens,
            "messages": anthropic_messages(messages, names),
            "stream": True,
        }
        system_put(request, "system", messages)
        if names.tools:
            request["tools"] = [
                {"name": name, "description": tool.description, "input_schema": self.tool_schema(tool)}
                for name, tool in names.tools.items()
            ]
        blocks: dict[int, dict[str, Any]] = {}
        counts: dict[str, int] = {}
        provider_reason = ""
        calls = 0
        stopped = False
        client = anthropic.Anthropic(
            api_key=key,
            base_url=self.base_url(),
            max_retries=self.options.max_retries,
            timeout=self.options.timeout_s,
            http_client=anthropic.DefaultHttpxClient(event_hooks=http_hooks(self)),
        )
        with client, client.messages.create(**request) as stream:
            cut: list[Exception] = []
            for event in _until_cut(stream, cut):
                kind = event.type
                if kind == "message_start":
                    _count(counts, event.message.usage, final=False)
                elif kind == "content_block_start":
                    block = event.content_block
                    slot: dict[str, Any] = {"type": block.type, "parts": []}
                    if block.type == "tool_use":
                        slot.update(id=block.id, name=block.name)
                    elif block.type == "thinking":
                        slot.update(parts=[block.thinking or ""], signature=block.signature or "")
                    elif block.type == "redacted_thinking":
                        slot.update(data=block.data)
                    elif block.type == "text" and block.text:
                        yield TextDelta(text=block.text)
                    blocks[event.index] = slot
                elif kind == "content_block_delta":
                    delta = event.delta
                    slot = blocks.setdefault(event.index, {"type": "unknown", "parts": []})
                    if delta.type == "text_delta":
                        yield TextDelta(text=delta.text)
                    elif delta.type == "input_json_delta":
                        slot["parts"].append(delta.partial_json)
                    elif delta.type == "thinking_delta":
                        slot["parts"].append(delta.thinking)
                    elif delta.type == "signature_delta":
                        slot["signature"] = slot.get("signature", "") + delta.signature
                elif kind == "content_block_stop":
                    slot = blocks.pop(event.index, {"type": "unknown", "parts": []})
                    if slot["type"] == "tool_use":
                        calls += 1
                        yield tool_call_parse(slot["id"], names.original(slot["name"]), "".join(slot["parts"]))
                    elif slot["type"] == "thinking":
                        thinking = "".join(slot["parts"])
                        block_state = {"type": "thinking", "thinking": thinking, "signature": slot.get("signature", "")}
                        yield Reasoning(text=thinking, state={"provider": "anthropic", "block": block_state})
                    elif slot["type"] == "redacted_thinking":
                        block_state = {"type": "redacted_thinking", "data": slot.get("data", "")}
                        yield Reasoning(text="", state={"provider": "anthropic", "block": block_state})
                elif kind == "message_delta":
                    provider_reason = event.delta.stop_reason or provider_reason
                    _count(counts, event.usage, final=True)
                elif kind == "message_stop":
                    stopped = True
            if cut:
                # A connection cut mid-stream: the counts that arrived (message_start's input) are still usage.
                if counts:
                    yield anthropic_usage(counts)
                raise cut[0]
        # A tool_use block still open when the stream ended was cut short (max_tokens).
        for slot in blocks.values():
            if slot["type"] == "tool_use":
                calls += 1
                name = names.original(slot["name"])
                yield tool_call_parse(slot["id"], name, "".join(slot["parts"]) or "{", cut_short=True)
        provider_reason = yield from stream_finish(
            provider_reason if stopped else None,
            anthropic_usage(counts) if counts else None,
            "no message_stop event arrived",
        )
        reason = finish_reason_map(provider_reason, ANTHROPIC_FINISH, tool_calls=calls > 0)
        yield Finish(reason=reason, provider_reason=provider_reason)
        yield anthropic_usage(counts)
