"""OpenAI's Chat Completions wire protocol (`/chat/completions`), through the `openai` SDK.

It serves OpenAI itself when its provider sets `options.api = "chat_completions"`, and every
OpenAI-compatible server (vLLM, llama.cpp's server, LM Studio, OpenRouter, Ollama's `/v1`), where it
is the default. The request asks for `stream_options={"include_usage": True}`; a server that sends
no usage chunk (llama.cpp's server while streaming) yields no `Usage` event: not reported, not zero.
Reasoning text that compatible servers stream as `delta.reasoning_content` (vLLM, llama.cpp,
DeepSeek) or `delta.reasoning` (OpenRouter, Ollama) becomes one `Reasoning` event.

`OpenAIAdapter` (kind `openai`) and `OpenAICompatibleAdapter` (kind `openai_compatible`) pick the
protocol from `options.api`: this module's, or the Responses API (`runtime.providers.openai_responses`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import openai

from core.conversation.events import Finish, FinishReason, Reasoning, RuntimeEvent, TextDelta, Usage
from core.models import ProviderKind
from runtime.providers.base import PromptMessage, ToolDefinition
from runtime.providers.live import (
    Failure,
    LiveAdapter,
    ToolNames,
    finish_reason_map,
    http_hooks,
    openai_usage,
    stainless_failure,
    stream_finish,
    tool_call_parse,
)
from runtime.providers.openai_responses import responses_events

NO_KEY = "no-key"  # what the SDK sends as the bearer token to a server that takes none
CHAT_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def openai_client(adapter: LiveAdapter, *, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=key or NO_KEY,
        base_url=adapter.base_url(),
        max_retries=adapter.options.max_retries,
        timeout=adapter.options.timeout_s,
        http_client=openai.DefaultHttpxClient(event_hooks=http_hooks(adapter)),
    )


def chat_messages(messages: Sequence[PromptMessage], names: ToolNames) -> list[dict[str, Any]]:
    """The prompt as Chat Completions messages: tool calls on the assistant, one `tool` message per result."""
    out: list[dict[str, Any]] = []
    for message in messages:
        calls = [part for part in message.parts if part["type"] == "tool_call"]
        results = [part for part in message.parts if part["type"] == "tool_result"]
        if results:
            out.extend(
                {"role": "tool", "tool_call_id": part["tool_call_id"], "content": part["content"]} for part in results
            )
            continue
        if message.role == "assistant" and calls:
            out.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": [
                        {
                            "id": part["id"],
                            "type": "function",
                            "function": {"name": names.wire(part["name"]), "arguments": json.dumps(part["arguments"])},
                        }
                        for part in calls
                    ],
                }
            )
            continue
        role = message.role if message.role in ("system", "user", "assistant") else "user"
        out.append({"role": role, "content": message.content})
    return out


def chat_usage(usage: Any, kind: str) -> Usage:
    """Chat Completions usage: prompt_tokens includes cached reads, completion_tokens includes reasoning;
    OpenAI (`kind` openai) bills no cache writes, other servers' are unknown unless reported."""
    return openai_usage(usage, "prompt", "completion", bills_cache_writes=kind != ProviderKind.OPENAI.value)


def _reasoning_delta(delta: Any) -> str:
    extra = delta.model_extra or {}
    for name in ("reasoning_content", "reasoning"):
        value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def chat_completions_events(
    adapter: LiveAdapter, messages: Sequence[PromptMessage], tools: Sequence[ToolDefinition], *, key: str
) -> Iterator[RuntimeEvent]:
    names = ToolNames(tools, messages)
    request: dict[str, Any] = {
        "model": adapter.route.model_id,
        "messages": chat_messages(messages, names),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if adapter.kind == ProviderKind.OPENAI.value:
        request["max_completion_tokens"] = adapter.route.max_output_tokens
    else:
        request["max_tokens"] = adapter.route.max_output_tokens  # what compatible servers understand
    if names.tools:
        request["tools"] = [
            {
                "type": "function",
                "function": {"name": name, "description": tool.description, "parameters": adapter.tool_schema(tool)},
            }
            for name, tool in names.tools.items()
        ]
    calls: dict[int, dict[str, Any]] = {}
    reasoning: list[str] = []
    refusal: list[str] = []
    provider_reason = ""
    usage: Usage | None = None
    with openai_client(adapter, key=key) as client, client.chat.completions.create(**request) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage = chat_usage(chunk.usage, adapter.kind)
            for choice in chunk.choices:
                if choice.index != 0:
                    continue
                delta = choice.delta
                if delta is not None:
                    thought = _reasoning_delta(delta)
                    if thought:
                        reasoning.append(thought)
                    if delta.content:
                        if reasoning:
                            yield Reasoning(text="".join(reasoning), state={"provider": "openai_chat"})
                            reasoning.clear()
                        yield TextDelta(text=delta.content)
                    if delta.refusal:
                        refusal.append(delta.refusal)
                    for call in delta.tool_calls or []:
                        slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": []})
                        if call.id:
                            slot["id"] = call.id
                        if call.function is not None:
                            if call.function.name:
                                slot["name"] += call.function.name
                            if call.function.arguments:
                                slot["arguments"].append(call.function.arguments)
                if choice.finish_reason:
                    provider_reason = choice.finish_reason
    if reasoning:
        yield Reasoning(text="".join(reasoning), state={"provider": "openai_chat"})
    provider_reason = yield from stream_finish(provider_reason, usage, "no finish_reason arrived")
    reason = finish_reason_map(provider_reason, CHAT_FINISH, tool_calls=bool(calls))
    for index in sorted(calls):
        slot = calls[index]
        yield tool_call_parse(
            slot["id"] or f"call_{index}",
            names.original(slot["name"]),
            "".join(slot["arguments"]),
            cut_short=reason == "length",
        )
    if refusal:
        yield Finish(reason="content_filter", provider_reason=provider_reason, refusal="".join(refusal))
    else:
        yield Finish(reason=reason, provider_reason=provider_reason)
    if usage is not None:
        yield usage


class _OpenAIFamily(LiveAdapter):
    """Both OpenAI kinds: Chat Completions or the Responses API, as `options.api` says."""

    def _events(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolDefinition], *, key: str
    ) -> Iterator[RuntimeEvent]:
        if self.options.api == "responses":
            with openai_client(self, key=key) as client:
                yield from responses_events(self, client, messages, tools)
        else:
            yield from chat_completions_events(self, messages, tools, key=key)

    def _failure(self, exc: Exception) -> Failure:
        return stainless_failure(exc, openai)


class OpenAIAdapter(_OpenAIFamily):
    kind = ProviderKind.OPENAI.value
    default_base_url = "https://api.openai.com/v1"
    label = "OpenAI"


class OpenAICompatibleAdapter(_OpenAIFamily):
    kind = ProviderKind.OPENAI_COMPATIBLE.value
    needs_credential = False
    label = "the OpenAI-compatible server"
