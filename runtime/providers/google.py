"""Google's Gemini protocol (`:streamGenerateContent`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.models import ProviderKind
from runtime.providers.base import LiveAdapter, PromptMessage


class GoogleAdapter(LiveAdapter):
    kind = ProviderKind.GOOGLE.value
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": f"${{{self.provider.api_key_env}}}"}

    def chat_path(self) -> str:
        return f"/models/{self.route.model_id}:streamGenerateContent"

    def chat_body(self, messages: Sequence[PromptMessage]) -> dict[str, Any]:
        return {
            "contents": [
                {"role": "model" if message.role == "assistant" else "user", "parts": [{"text": message.content}]}
                for message in messages
                if message.role != "system"
            ],
            "generationConfig": {"maxOutputTokens": self.route.max_output_tokens},
        }
