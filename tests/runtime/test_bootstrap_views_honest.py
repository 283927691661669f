"""The bootstrap's views claim `ready` only for what the app uses.

Nothing runs teams yet, and no skill's instructions reach a prompt yet: until agents are built,
the `team` and `skills` views say `blocked` for configured records (and stay `empty` without any).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.config.loading import config_file_read
from core.config.services import config_document_apply

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "config" / "agentchat.example.toml"
TEAMS_NOT_RUN = "teams are configured but not run yet"
SKILLS_NOT_USED = "skills are configured but not used in prompts yet"


@pytest.fixture
def example_loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Any) -> None:
    """The example file loaded, no provider key, and an `npx` on PATH (so the MCP server and team are ready)."""
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    npx = tmp_path / "npx"
    npx.write_text("#!/bin/sh\nexit 0\n")
    npx.chmod(npx.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    settings.AGENTCHAT_CONFIG = EXAMPLE
    config_document_apply(document=config_file_read(EXAMPLE), prune=False)


def view(api: APIClient, name: str) -> tuple[str, list[str]]:
    response = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    body = response.json()["views"][name]
    return body["state"], body["reasons"]


def test_a_ready_team_is_still_blocked_because_nothing_runs_teams(api: APIClient, example_loaded: None) -> None:
    assert view(api, "team") == ("blocked", [TEAMS_NOT_RUN])


def test_a_ready_skill_is_still_blocked_because_no_prompt_uses_skills(api: APIClient, example_loaded: None) -> None:
    assert view(api, "skills") == ("blocked", [SKILLS_NOT_USED])


def test_without_teams_or_skills_both_views_stay_empty(api: APIClient, settings: Any) -> None:
    settings.AGENTCHAT_CONFIG = EXAMPLE
    team_state, _ = view(api, "team")
    skills_state, _ = view(api, "skills")
    assert (team_state, skills_state) == ("empty", "empty")
