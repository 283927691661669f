"""Provider adapters, one module per wire protocol; `adapter_for` picks one by provider kind."""

from __future__ import annotations

from core.errors import InvalidInputError
from core.models import ModelRoute
from runtime.providers.anthropic import AnthropicAdapter
from runtime.providers.base import (
    AdapterBlockedError,
    AdapterError,
    AdapterStatus,
    PromptMessage,
    ProviderAdapter,
    ToolDefinition,
)
from runtime.providers.google import GoogleAdapter
from runtime.providers.live import LiveAdapter
from runtime.providers.ollama import OllamaAdapter
from runtime.providers.openai_chat import OpenAIAdapter, OpenAICompatibleAdapter
from runtime.providers.replay import ReplayAdapter

__all__ = [
    "AdapterBlockedError",
    "AdapterError",
    "AdapterStatus",
    "AnthropicAdapter",
    "GoogleAdapter",
    "LiveAdapter",
    "OllamaAdapter",
    "OpenAIAdapter",
    "OpenAICompatibleAdapter",
    "PromptMessage",
    "ProviderAdapter",
    "ReplayAdapter",
    "ToolDefinition",
    "adapter_classes",
    "adapter_for",
]


def adapter_classes() -> dict[str, type[ProviderAdapter]]:
    """Every adapter class by provider kind."""
    classes: list[type[ProviderAdapter]] = [
        OpenAIAdapter,
        AnthropicAdapter,
        GoogleAdapter,
        OllamaAdapter,
        OpenAICompatibleAdapter,
        ReplayAdapter,
    ]
    return {cls.kind: cls for cls in classes}


def adapter_for(route: ModelRoute) -> ProviderAdapter:
    """The adapter for `route` (its provider must be loaded, e.g. with select_related)."""
    provider = route.provider
    cls = adapter_classes().get(provider.kind)
    if cls is None:
        raise InvalidInputError.for_field("provider.kind", f"no adapter for provider kind {provider.kind!r}")
    return cls(provider=provider, route=route)
