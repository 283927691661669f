"""The bootstrap's `skills` and `team` views claim `ready` only when a turn that uses them can succeed.

`skills` is ready only when a ready agent has a ready skill (its instructions reach that agent's
prompts); a skill whose instructions file is missing blocks the skill, every agent using it and so
the teams they are in. `team` is ready only when a team's lead and every member are ready.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.config.contracts import Kind
from core.config.loading import config_file_read
from core.config.services import config_document_apply, config_record_get, config_record_update

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "config" / "agentchat.example.toml"


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


def test_a_team_whose_lead_and_members_are_ready_is_ready(api: APIClient, example_loaded: None) -> None:
    assert view(api, "team") == ("ready", [])


def test_a_ready_agent_with_a_ready_skill_makes_skills_ready(api: APIClient, example_loaded: None) -> None:
    assert view(api, "skills") == ("ready", [])


def test_a_missing_instructions_file_blocks_the_skill_its_agent_and_the_team(
    api: APIClient, example_loaded: None, settings: Any, tmp_path: Path
) -> None:
    # A skills folder without research-notes.md: the file the skill names is gone.
    settings.AGENTCHAT_SKILLS_DIR = tmp_path / "skills"
    (tmp_path / "skills").mkdir()
    state, reasons = view(api, "skills")
    assert state == "blocked"
    assert reasons[1] == (
        "skill 'research-notes': the instructions file of skill 'research-notes' is missing "
        f"('research-notes.md' in {tmp_path / 'skills'}); create it or fix instructions_path"
    )
    team_state, team_reasons = view(api, "team")
    assert team_state == "blocked"
    assert team_reasons[0] == "no team is ready"
    lead_blocked = "lead 'researcher' is blocked: agent 'researcher' uses skill 'research-notes', which is blocked"
    assert lead_blocked in team_reasons[1]
    # Restored, the file makes all of them ready again.
    shutil.copy(ROOT / "skills" / "research-notes.md", tmp_path / "skills" / "research-notes.md")
    assert (view(api, "skills"), view(api, "team")) == (("ready", []), ("ready", []))


def test_a_ready_skill_on_no_ready_agent_leaves_skills_blocked(api: APIClient, example_loaded: None) -> None:
    record = config_record_get(Kind.AGENT, "researcher")
    config_record_update(kind=Kind.AGENT, key="researcher", record=replace(record, enabled=False))
    state, reasons = view(api, "skills")
    assert state == "blocked"
    assert reasons[0].startswith("no ready agent has a ready skill: give a ready agent one in its skills list")


def test_a_disabled_member_blocks_the_team_with_the_reason(api: APIClient, example_loaded: None) -> None:
    record = config_record_get(Kind.AGENT, "writer")
    config_record_update(kind=Kind.AGENT, key="writer", record=replace(record, enabled=False))
    assert view(api, "team") == ("blocked", ["no team is ready", "team 'research-desk': member 'writer' is disabled"])


def test_without_teams_or_skills_both_views_stay_empty(api: APIClient, settings: Any) -> None:
    settings.AGENTCHAT_CONFIG = EXAMPLE
    team_state, _ = view(api, "team")
    skills_state, _ = view(api, "skills")
    assert (team_state, skills_state) == ("empty", "empty")
