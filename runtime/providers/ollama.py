"""Ollama's native chat protocol (`/api/chat`), for a local model server."""

from __future__ import annotations

from core.models import ProviderKind
from runtime.providers.base import LiveAdapter


class OllamaAdapter(LiveAdapter):
    kind = ProviderKind.OLLAMA.value
    needs_credential = False

    def chat_path(self) -> str:
        return "/api/chat"
