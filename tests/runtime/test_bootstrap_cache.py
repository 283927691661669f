"""The bootstrap's kept results: the configuration snapshot and the validated file are exact after any change."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.config.loading import config_file_read
from core.config.selectors import config_snapshot
from core.config.services import config_document_apply
from core.models import AgentProfile, McpServerSpec, ModelRoute, Provider, SkillSpec, Team, TeamMember, ToolSpec
from runtime.bootstrap.build import _config_content_sql, config_content, stored_config

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "config" / "agentchat.example.toml"


@pytest.fixture
def example_loaded(settings: Any) -> None:
    settings.AGENTCHAT_CONFIG = EXAMPLE
    config_document_apply(document=config_file_read(EXAMPLE), prune=False)


def bootstrap(api: APIClient) -> dict[str, Any]:
    response = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def _tables(sql: str) -> set[str]:
    return set(re.findall(r'(?:FROM|JOIN) "?(\w+)"?', sql))


def test_the_content_covers_every_table_the_snapshot_reads(example_loaded: None) -> None:
    with CaptureQueriesContext(connection) as queries:
        config_snapshot()
    read = set().union(*(_tables(query["sql"]) for query in queries.captured_queries))
    assert read  # the snapshot read something
    assert read <= _tables(_config_content_sql(connection.vendor))


def test_kept_snapshot_equals_a_fresh_one(example_loaded: None) -> None:
    first = stored_config()
    assert stored_config() is first  # unchanged tables: the kept snapshot
    assert first == config_snapshot()


# Writes that bypass the services and leave every `updated` column as it was: only a comparison
# of the whole content notices them.
BYPASSING_WRITES: dict[str, Callable[[], object]] = {
    "provider flag": lambda: Provider.objects.filter(name="openai").update(enabled=False),
    "route number": lambda: ModelRoute.objects.filter(alias="replay").update(context_window_tokens=1_000),
    "tool JSON": lambda: ToolSpec.objects.filter(name="web_search").update(parameters={"type": "object"}),
    "skill text": lambda: SkillSpec.objects.update(description="changed"),
    "skill's tool link": lambda: SkillSpec.tools.through.objects.all().delete(),
    "MCP server list": lambda: McpServerSpec.objects.update(tool_allowlist=["read_file"]),
    "agent's MCP link": lambda: AgentProfile.mcp_servers.through.objects.all().delete(),
    "team member": lambda: TeamMember.objects.filter(position__gt=0).delete(),
    "team lead": lambda: Team.objects.update(description="other"),
}


@pytest.mark.parametrize("write", list(BYPASSING_WRITES))
def test_a_write_behind_the_services_back_is_seen_at_once(example_loaded: None, write: str) -> None:
    before = stored_config()
    content = config_content()
    BYPASSING_WRITES[write]()
    assert config_content() != content
    after = stored_config()
    assert after == config_snapshot()
    assert after != before


def test_bootstrap_shows_a_write_made_without_the_services(api: APIClient, example_loaded: None) -> None:
    assert bootstrap(api)["config"]["providers"][0]["name"] == "anthropic"
    Provider.objects.filter(name="anthropic").update(enabled=False)  # `updated` is not touched
    provider = bootstrap(api)["config"]["providers"][0]
    assert (provider["name"], provider["enabled"], provider["status"]) == ("anthropic", False, "disabled")


def test_a_reverted_change_gives_the_original_answer(api: APIClient, example_loaded: None) -> None:
    original = bootstrap(api)
    ToolSpec.objects.filter(name="web_search").update(enabled=False)
    assert bootstrap(api) != original
    ToolSpec.objects.filter(name="web_search").update(enabled=True)
    assert bootstrap(api) == original


# --- the configuration file ----------------------------------------------------------------


def _file_state(api: APIClient) -> tuple[str, list[str]]:
    file = bootstrap(api)["config"]["file"]
    return file["state"], file["problems"]


def test_a_rewritten_file_is_validated_again(
    api: APIClient, example_loaded: None, tmp_path: Path, settings: Any
) -> None:
    path = tmp_path / "agentchat.toml"
    path.write_text(EXAMPLE.read_text())
    settings.AGENTCHAT_CONFIG = path
    assert _file_state(api) == ("loaded", [])
    path.write_text(EXAMPLE.read_text().replace('name = "writer"', 'name = "Writer!"'))
    state, problems = _file_state(api)
    assert state == "invalid"
    assert problems == [
        "agents[1].name: 'Writer!' is not a valid name; use letters, digits, - and _ (at most 64)",
        "teams[0].members[1]: no agent named 'writer'; define it first or fix the name",
    ]
    path.write_text(EXAMPLE.read_text())
    assert _file_state(api) == ("loaded", [])


def test_a_skill_file_appearing_or_going_changes_the_answer(
    api: APIClient, example_loaded: None, tmp_path: Path, settings: Any
) -> None:
    """The file's bytes stay the same; the instructions file it names is created, then removed."""
    skills = tmp_path / "skills"
    skills.mkdir()
    settings.AGENTCHAT_SKILLS_DIR = skills
    state, problems = _file_state(api)
    assert state == "invalid"
    assert problems == [
        f"skills[0].instructions_path: 'research-notes.md' is not a file in the skills folder ({skills}); "
        "create it or fix the path"
    ]
    (skills / "research-notes.md").write_text("Take notes.")
    assert _file_state(api) == ("loaded", [])
    (skills / "research-notes.md").unlink()
    assert _file_state(api)[0] == "invalid"


def test_another_skills_folder_is_validated_again(
    api: APIClient, example_loaded: None, tmp_path: Path, settings: Any
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _file_state(api) == ("loaded", [])
    settings.AGENTCHAT_SKILLS_DIR = empty
    assert _file_state(api)[0] == "invalid"


# --- the response body ---------------------------------------------------------------------


def test_planned_shape_equals_the_serializer(api: APIClient, example_loaded: None) -> None:
    """Every kind of field (decimal prices, datetimes, UUIDs, nested lists, the views mapping) shaped alike."""
    from core.conversation.services import session_create
    from memory.services import memory_write
    from runtime.bootstrap.api import BootstrapSerializer, bootstrap_data
    from runtime.bootstrap.build import bootstrap_read
    from runtime.turns import turn_run

    session = session_create(title="", route_alias="replay")
    turn_run(session_id=session.pk, user_text="hello")
    memory_write(kind="fact", content="the sky is blue", pinned=True)
    state = bootstrap_read()
    assert state.sessions.recent[0].title == f"session {session.pk}"
    assert any(route.price_input_per_mtok is not None for route in state.config.routes)
    assert bootstrap_data(state) == BootstrapSerializer(state).data
    assert bootstrap(api) == BootstrapSerializer(bootstrap_read()).data
