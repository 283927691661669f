"""Ollama, through its OpenAI-compatible `/v1` endpoint and the `openai` SDK.

Chosen over the native `/api/chat` so Ollama shares the Chat Completions code, retries and error
handling every OpenAI-compatible server gets (`runtime.providers.openai_chat`), with streamed
usage (`stream_options.include_usage`) and tool calls in the same shape. A base_url with no path
(`http://localhost:11434`) gets `/v1`. Ollama reports no cached, cache-write or reasoning token
counts: they are recorded as unknown (None), never as 0. It streams thinking as `delta.reasoning`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import openai

from core.conversation.events import RuntimeEvent
from core.models import ProviderKind
from runtime.providers.base import PromptMessage, ToolDefinition
from runtime.providers.live import Failure, LiveAdapter, stainless_failure
from runtime.providers.openai_chat import chat_completions_events


class OllamaAdapter(LiveAdapter):
    kind = ProviderKind.OLLAMA.value
    needs_credential = False
    label = "Ollama"

    def base_url(self) -> str:
        base = super().base_url()
        if base and urlsplit(base).path in ("", "/"):
            return base + "/v1"
        return base

    def _events(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolDefinition], *, key: str
    ) -> Iterator[RuntimeEvent]:
        yield from chat_completions_events(self, messages, tools, key=key)

    def _failure(self, exc: Exception) -> Failure:
        return stainless_failure(exc, openai)
