"""OpenAI's Chat Completions wire protocol: OpenAI itself and any OpenAI-compatible server."""

from __future__ import annotations

from core.models import ProviderKind
from runtime.providers.base import LiveAdapter


class OpenAIAdapter(LiveAdapter):
    kind = ProviderKind.OPENAI.value
    default_base_url = "https://api.openai.com/v1"


class OpenAICompatibleAdapter(LiveAdapter):
    kind = ProviderKind.OPENAI_COMPATIBLE.value
    needs_credential = False
