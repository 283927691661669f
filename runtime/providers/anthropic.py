"""Anthropic's Messages protocol (`/v1/messages`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.models import ProviderKind
from runtime.providers.base import LiveAdapter, PromptMessage


class AnthropicAdapter(LiveAdapter):
    kind = ProviderKind.ANTHROPIC.value
    default_base_url = "https://api.anthropic.com"

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": f"${{{self.provider.api_key_env}}}", "anthropic-version": "2023-06-01"}

    def chat_path(self) -> str:
        return "/v1/messages"

    def chat_body(self, messages: Sequence[PromptMessage]) -> dict[str, Any]:
        body = super().chat_body([message for message in messages if message.role != "system"])
        system = "\n\n".join(message.content for message in messages if message.role == "system")
        if system:
            body["system"] = system
        return body
