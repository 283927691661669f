"""Adapters pointed at a local ProviderServer, with their key variable set (or unset)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from core.conversation.events import RuntimeEvent
from core.models import ModelRoute, Provider
from runtime.providers import PromptMessage, ProviderAdapter, ToolDefinition, adapter_for

SECRET = "sk-test-RECOGNISABLE-live-0123456789abcdef"
_names = itertools.count(1)

AdapterFactory = Callable[..., ProviderAdapter]


@pytest.fixture
def make_adapter(monkeypatch: pytest.MonkeyPatch) -> AdapterFactory:
    def make(kind: str, base_url: str, *, key_env: str = "", options: dict[str, Any] | None = None) -> ProviderAdapter:
        if key_env:
            monkeypatch.setenv(key_env, SECRET)
        n = next(_names)
        provider = Provider.objects.create(
            name=f"p{n}",
            kind=kind,
            api_key_env=key_env,
            base_url=base_url,
            options={"max_retries": 0, **(options or {})},
        )
        route = ModelRoute.objects.create(
            alias=f"r{n}", provider=provider, model_id="m-1", context_window_tokens=100_000, max_output_tokens=100
        )
        return adapter_for(route)

    return make


def hello() -> list[PromptMessage]:
    return [PromptMessage(role="system", content="Be brief."), PromptMessage(role="user", content="hi")]


WEATHER = ToolDefinition(
    name="get_weather",
    description="The weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolDefinition(name="get_time", description="The time in a zone", parameters={"type": "object"})


def run(adapter: ProviderAdapter, **kwargs: Any) -> list[RuntimeEvent]:
    return list(adapter.stream(hello(), **kwargs))
