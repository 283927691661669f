"""What the bootstrap keeps: the configuration snapshot (by version stamp) and the validated file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from core.config.contracts import ConfigDocument, Kind, ToolConfig
from core.config.loading import config_file_read
from core.config.selectors import config_record_get, config_snapshot, config_version
from core.config.services import (
    config_document_apply,
    config_record_create,
    config_record_delete,
    config_record_update,
)
from core.models import ToolSpec
from runtime.bootstrap.compose import stored_config
from tests.owners import op_user
from tests.runtime.bootstrap_client import EXAMPLE, bootstrap

pytestmark = pytest.mark.django_db


def _web_search() -> ToolConfig:
    record = config_record_get(Kind.TOOL, "web_search")
    assert isinstance(record, ToolConfig)
    return record


def test_kept_snapshot_equals_a_fresh_one(example_loaded: None) -> None:
    first = stored_config()
    assert stored_config() is first  # same version: the kept snapshot
    assert first == config_snapshot()


# Every configuration service that changes a record renews the version stamp in its transaction.
SERVICE_WRITES: dict[str, Any] = {
    "create": lambda: config_record_create(record=ToolConfig(name="calculator", description="Adds")),
    "update": lambda: config_record_update(
        kind=Kind.TOOL, key="web_search", record=replace(_web_search(), enabled=False)
    ),
    "delete": lambda: config_record_delete(kind=Kind.TEAM, key="research-desk"),
    "apply a changed file": lambda: config_document_apply(
        document=replace(config_file_read(EXAMPLE), tools=(replace(_web_search(), description="Changed"),)),
        prune=False,
    ),
    "prune": lambda: config_document_apply(document=ConfigDocument(), prune=True),
}


@pytest.mark.parametrize("write", list(SERVICE_WRITES))
def test_every_service_write_renews_the_version_and_the_snapshot(example_loaded: None, write: str) -> None:
    before = stored_config()
    version = config_version()
    SERVICE_WRITES[write]()
    assert config_version() != version
    after = stored_config()
    assert after == config_snapshot()
    assert after != before


def test_applying_an_unchanged_file_keeps_the_version(example_loaded: None) -> None:
    kept = stored_config()
    version = config_version()
    result = config_document_apply(document=config_file_read(EXAMPLE), prune=False)
    assert not result.changed
    assert config_version() == version
    assert stored_config() is kept


def test_a_rolled_back_write_leaves_no_stale_snapshot(example_loaded: None) -> None:
    """The bootstrap reads a write's snapshot inside its transaction, which is then rolled back."""
    original = stored_config()

    def write_read_and_fail() -> None:
        with transaction.atomic():
            config_record_update(kind=Kind.TOOL, key="web_search", record=replace(_web_search(), enabled=False))
            assert stored_config() != original  # kept, under the write's stamp
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        write_read_and_fail()
    assert stored_config() == original == config_snapshot()
    # A later write cannot meet the rolled-back stamp again (a counter would: 1 → rolled back → 1).
    config_record_update(kind=Kind.TOOL, key="web_search", record=replace(_web_search(), description="Other"))
    assert stored_config() == config_snapshot()


def test_a_write_behind_the_services_back_shows_with_the_next_service_write(example_loaded: None) -> None:
    """What README says: a hand-written change is not seen until a service renews the stamp."""
    kept = stored_config()
    ToolSpec.objects.filter(name="web_search").update(description="by hand")
    assert stored_config() is kept  # same stamp: the kept snapshot
    write_file = config_record_get(Kind.TOOL, "write_file")
    assert isinstance(write_file, ToolConfig)
    config_record_update(kind=Kind.TOOL, key="write_file", record=replace(write_file, description="Writes"))
    assert stored_config() == config_snapshot()
    assert _web_search().description == "by hand"
    assert next(tool for tool in stored_config().tools if tool.name == "web_search").description == "by hand"


def test_bootstrap_shows_a_service_write_at_once(api: APIClient, example_loaded: None) -> None:
    original = bootstrap(api)
    config_record_update(kind=Kind.TOOL, key="web_search", record=replace(_web_search(), enabled=False))
    tool = next(item for item in bootstrap(api)["config"]["tools"] if item["name"] == "web_search")
    assert (tool["enabled"], tool["status"]) == (False, "disabled")
    config_record_update(kind=Kind.TOOL, key="web_search", record=replace(_web_search(), enabled=True))
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
    from runtime.bootstrap.compose import bootstrap_read
    from runtime.bootstrap.serializers import BootstrapSerializer, bootstrap_data
    from runtime.turns import turn_run

    session = session_create(owner=op_user(), title="", route_alias="replay")
    turn_run(session_id=session.pk, user_text="hello")
    memory_write(owner=op_user(), kind="fact", content="the sky is blue", pinned=True)
    state = bootstrap_read(owner_id=op_user().pk)
    assert state.sessions.recent[0].title == "hello"  # an untitled session takes its first message
    assert any(route.record.price_input_per_mtok is not None for route in state.config.routes)
    assert bootstrap_data(state) == BootstrapSerializer(state).data
    assert bootstrap(api) == BootstrapSerializer(bootstrap_read(owner_id=op_user().pk)).data


def test_kept_sections_follow_their_inputs(
    api: APIClient, example_loaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configuration section is rebuilt when a provider's key variable is set or unset, and each
    section's kept data is reused only while that section is unchanged."""
    from memory.services import memory_forget, memory_write
    from runtime.bootstrap.compose import bootstrap_read
    from runtime.bootstrap.serializers import BootstrapSerializer, bootstrap_data

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    first = bootstrap_read(owner_id=op_user().pk)
    assert bootstrap_read(owner_id=op_user().pk).config is first.config  # nothing changed: kept
    assert bootstrap_data(first) == BootstrapSerializer(first).data

    def openai(config: Any) -> Any:
        return next(item for item in config.providers if item.record.api_key_env == "OPENAI_API_KEY")

    assert openai(first.config).credential == "missing"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-EXAMPLE-not-a-key")
    second = bootstrap_read(owner_id=op_user().pk)
    assert openai(second.config).credential == "present"
    assert second.config is not first.config

    written = memory_write(owner=op_user(), kind="fact", content="kept sections are rebuilt").memory
    third = bootstrap_read(owner_id=op_user().pk)
    assert third.memory.long_term == first.memory.long_term + 1
    assert bootstrap_data(third) == BootstrapSerializer(third).data
    assert bootstrap(api)["memory"]["long_term"] == third.memory.long_term
    memory_forget(memory_id=written.pk)  # a forgotten memory is not counted
    assert bootstrap(api)["memory"]["long_term"] == first.memory.long_term
