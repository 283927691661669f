"""What the bootstrap tests share: the example configuration loaded, and the body of one GET."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rest_framework.test import APIClient

from core.config.loading import config_file_read
from core.config.services import config_document_apply

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "config" / "agentchat.example.toml"


def example_load(settings: Any) -> None:
    """Point AGENTCHAT_CONFIG at the example file and write its records (no prune)."""
    settings.AGENTCHAT_CONFIG = EXAMPLE
    config_document_apply(document=config_file_read(EXAMPLE), prune=False)


def bootstrap(api: APIClient) -> dict[str, Any]:
    """The JSON body of `GET /api/bootstrap/`, which must answer 200."""
    response = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body
