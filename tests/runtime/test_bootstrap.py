"""GET /api/bootstrap/: every view state with its reasons, the database situations, the query pin, the ETag."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from core.config.contracts import Kind, McpServerConfig, ToolConfig
from core.config.selectors import config_record_get
from core.config.services import config_record_create, config_record_update
from core.conversation.services import session_create
from core.models import AgentSession, Message, MessageRole, ModelRoute, Provider, SessionStatus, WorkerBeat
from memory.models import DailyEpisode, EpisodeSource, LongTermMemory, MemoryKind
from memory.services import memory_tally_rebuild
from runtime.bootstrap.rules import VIEW_RULES
from runtime.turns import turn_run
from telemetry.services import usage_record
from tests.owners import op_user, plain_user
from tests.runtime.bootstrap_client import EXAMPLE, bootstrap

# The chat view needs a live worker; `test_chat_is_blocked_without_a_worker_heartbeat…` makes it stale.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("live_worker")]

KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No provider key set, the example file as AGENTCHAT_CONFIG, and a PATH holding a fake `npx`."""
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npx = bin_dir / "npx"
    npx.write_text("#!/bin/sh\nexit 0\n")
    npx.chmod(npx.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


def views(body: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {name: (view["state"], view["reasons"]) for name, view in body["views"].items()}


def load_hint() -> str:
    return f"run manage.py load_config {EXAMPLE}"


# --- authentication and shape --------------------------------------------------------------


def test_bootstrap_requires_authentication(anon_api: APIClient) -> None:
    response = anon_api.get("/api/bootstrap/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_bootstrap_sections_and_app(api: APIClient) -> None:
    body = bootstrap(api)
    assert list(body) == ["schema_version", "app", "config", "sessions", "memory", "telemetry", "workers", "views"]
    assert body["schema_version"] == 1
    assert body["app"] == {
        "name": "Agent Chat",
        "version": "0.1.0",
        "schema_version": 1,
        "database_vendor": connection.vendor,
        "migrations_applied": True,
        "pending_migrations": [],
    }
    assert (
        list(body["views"])
        == list(VIEW_RULES)
        == [
            "chat",
            "model",
            "tools",
            "skills",
            "mcp",
            "memory",
            "team",
            "tokens",
            "config",
        ]
    )


def test_view_rules_are_pure(example_loaded: None, django_assert_num_queries: DjangoAssertNumQueries) -> None:
    """Every rule answers from the facts alone: no query, and the same facts give the same answer."""
    from runtime.bootstrap.compose import facts_read

    facts = facts_read((), op_user().pk)
    with django_assert_num_queries(0):
        first = {name: rule(facts) for name, rule in VIEW_RULES.items()}
        assert {name: rule(facts) for name, rule in VIEW_RULES.items()} == first
    assert first["model"].state == "ready"


# --- the three database situations ---------------------------------------------------------


def test_brand_new_database_every_view_empty_or_blocked_with_reasons(api: APIClient, settings: Any) -> None:
    settings.AGENTCHAT_CONFIG = EXAMPLE
    body = bootstrap(api)
    hint = load_hint()
    assert views(body) == {
        "chat": ("blocked", [f"no model route is configured: {hint}"]),
        "model": ("empty", [f"no model route is configured: {hint}"]),
        "tools": ("empty", [f"no tool is configured: {hint}"]),
        "skills": ("empty", [f"no skill is configured: {hint}"]),
        "mcp": ("empty", [f"no MCP server is configured: {hint}"]),
        "memory": ("empty", ["nothing remembered yet: messages, daily episodes and memories appear as you chat"]),
        "team": ("empty", [f"no team is configured: {hint}"]),
        "tokens": ("empty", ["no token usage recorded yet: it appears after the first model reply"]),
        "config": ("blocked", [f"the configuration file {EXAMPLE} was never loaded: {hint}"]),
    }
    assert body["config"]["file"] == {
        "path": str(EXAMPLE),
        "state": "not_loaded",
        "problems": [],
        "problem_count": 0,
        "differences": [],
    }
    assert body["sessions"] == {
        "total": 0,
        "active": 0,
        "archived": 0,
        "needing_compaction": 0,
        "compaction_threshold_percent": 80,
        "recent": [],
    }
    assert body["memory"] == {
        "messages": 0,
        "daily_episodes": 0,
        "long_term": 0,
        "pinned": 0,
        "attachments": 0,
        "latest_episode_day": None,
    }
    zeros = {
        "event_count": 0,
        "priced_event_count": 0,
        "unpriced_event_count": 0,
        "partial_cost_event_count": 0,
        "input_tokens": 0,
        "cached_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 0,
        # Per token field, the events that did not report it (none yet).
        "input_tokens_unknown_events": 0,
        "cached_input_tokens_unknown_events": 0,
        "cache_write_input_tokens_unknown_events": 0,
        "output_tokens_unknown_events": 0,
        "reasoning_tokens_unknown_events": 0,
        "total_tokens_unknown_events": 0,
        "cost": "0.000000000000",
        "cost_partial": False,
    }
    assert body["telemetry"]["today"] == zeros
    assert body["telemetry"]["all_time"] == zeros
    assert body["telemetry"]["by_model"] == []


def test_pending_migrations_block_every_view_and_skip_the_stores(api: APIClient) -> None:
    MigrationRecorder(connection).record_unapplied("telemetry", "0001_initial")
    body = bootstrap(api)
    assert body["app"]["migrations_applied"] is False
    assert "telemetry.0001_initial" in body["app"]["pending_migrations"]
    reason = body["views"]["chat"]["reasons"][0]
    assert reason.startswith("the database schema is not up to date: run manage.py migrate (pending: ")
    assert "telemetry.0001_initial" in reason
    assert {name: view["state"] for name, view in body["views"].items()} == dict.fromkeys(VIEW_RULES, "blocked")
    assert body["sessions"]["total"] == 0


@pytest.mark.persistence
@pytest.mark.django_db(transaction=True)
def test_restart_reads_back_the_same_bootstrap(api: APIClient, example_loaded: None) -> None:
    """Two fresh processes and this one answer with byte-identical bodies (hence the same ETag)."""
    from tests.procs import run_manage

    session = session_create(owner=op_user(), title="kept", route_alias="replay")
    turn_run(session_id=session.pk, user_text="remember me")
    here = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    code = (
        "from rest_framework.renderers import JSONRenderer;"
        "from runtime.bootstrap.compose import bootstrap_read;"
        "from runtime.bootstrap.api import etag_of;"
        "from runtime.bootstrap.serializers import BootstrapSerializer;"
        "import sys;"
        "from django.contrib.auth.models import User;"
        "owner = User.objects.get(username='op').pk;"
        "body = JSONRenderer().render(BootstrapSerializer(bootstrap_read(owner_id=owner)).data);"
        "sys.stdout.write(etag_of(body) + '\\n' + body.decode())"
    )
    env = {"AGENTCHAT_CONFIG": str(EXAMPLE), "PATH": os.environ["PATH"]}
    # Each process starts slowly on a busy machine: the worker's heartbeat is renewed before each.
    WorkerBeat.objects.update(beat_at=timezone.now())
    first = run_manage(["shell", "--no-imports", "-c", code], env=env)
    WorkerBeat.objects.update(beat_at=timezone.now())
    second = run_manage(["shell", "--no-imports", "-c", code], env=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    etag, body = first.stdout.split("\n", 1)
    assert first.stdout == second.stdout
    assert json.loads(body) == here.json()
    assert etag == here.headers["ETag"]
    assert json.loads(body)["sessions"]["recent"][0]["title"] == "kept"


# --- the configuration file ----------------------------------------------------------------


def test_missing_config_file_blocks_config_and_serves_the_rest(
    api: APIClient, example_loaded: None, tmp_path: Path, settings: Any
) -> None:
    missing = tmp_path / "nope.toml"
    settings.AGENTCHAT_CONFIG = missing
    body = bootstrap(api)
    assert body["config"]["file"]["state"] == "missing"
    assert views(body)["config"] == (
        "blocked",
        [f"the configuration file {missing} does not exist: create it or set AGENTCHAT_CONFIG"],
    )
    assert views(body)["chat"][0] == "empty"
    assert [p["name"] for p in body["config"]["providers"]] == ["anthropic", "ollama", "openai", "replay"]


def test_unparsable_config_file_blocks_config(api: APIClient, tmp_path: Path, settings: Any) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[providers]\nname = ")
    settings.AGENTCHAT_CONFIG = broken
    response = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    state, reasons = views(response.json())["config"]
    assert state == "blocked"
    assert reasons[0] == (
        f"the configuration file {broken} is invalid: fix these problems, then run manage.py load_config {broken}"
    )
    assert reasons[1].startswith(f"{broken}: not valid TOML: ")
    assert views(response.json())["chat"] == (
        "blocked",
        [f"no model route is configured: fix {broken} (see the config view), then run manage.py load_config"],
    )


def test_invalid_config_file_lists_its_problems(api: APIClient, tmp_path: Path, settings: Any) -> None:
    invalid = tmp_path / "invalid.toml"
    invalid.write_text('[[providers]]\nname = "x"\nkind = "nope"\n\n[[routez]]\nalias = "a"\n')
    settings.AGENTCHAT_CONFIG = invalid
    body = bootstrap(api)
    file = body["config"]["file"]
    assert file["state"] == "invalid"
    assert file["problem_count"] == len(file["problems"]) >= 2
    assert any(problem.startswith("routez: unknown section") for problem in file["problems"])
    assert any(problem.startswith("providers[0].kind") for problem in file["problems"])
    assert views(body)["config"] == (
        "blocked",
        [
            f"the configuration file {invalid} is invalid: fix these problems, "
            f"then run manage.py load_config {invalid}",
            *file["problems"],
        ],
    )


def test_config_file_changed_after_loading_blocks_config(
    api: APIClient, example_loaded: None, tmp_path: Path, settings: Any
) -> None:
    changed = tmp_path / "changed.toml"
    changed.write_text(EXAMPLE.read_text().replace("context_window_tokens = 128000", "context_window_tokens = 64000"))
    settings.AGENTCHAT_CONFIG = changed
    body = bootstrap(api)
    assert body["config"]["file"]["differences"] == ["route 'fast' differs from the file"]
    assert views(body)["config"] == (
        "blocked",
        [
            f"the database differs from {changed}: run manage.py load_config {changed} (or update the file)",
            "route 'fast' differs from the file",
        ],
    )


def test_empty_config_file_is_the_empty_config_view(api: APIClient, tmp_path: Path, settings: Any) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n")
    settings.AGENTCHAT_CONFIG = empty
    body = bootstrap(api)
    assert views(body)["config"] == (
        "empty",
        [f"the configuration file {empty} defines nothing: add providers and routes to it"],
    )
    assert views(body)["model"] == (
        "empty",
        [f"no model route is configured: add [[routes]] to {empty} and run manage.py load_config"],
    )


# --- view states with the example configuration --------------------------------------------


def test_example_config_without_keys(api: APIClient, example_loaded: None) -> None:
    body = bootstrap(api)
    assert views(body) == {
        "chat": ("empty", ["no session yet: start one (POST /api/sessions/); it will use route 'replay'"]),
        "model": ("ready", []),
        "tools": ("ready", []),
        "skills": ("ready", []),
        # Configured, with its command on PATH, but never started: not ready until a probe lists its tools.
        "mcp": (
            "blocked",
            ["no MCP server is ready", "MCP server 'filesystem': not probed yet: run manage.py check_mcp filesystem"],
        ),
        "memory": ("empty", ["nothing remembered yet: messages, daily episodes and memories appear as you chat"]),
        "team": ("ready", []),
        "tokens": ("empty", ["no token usage recorded yet: it appears after the first model reply"]),
        "config": ("ready", []),
    }
    config = body["config"]
    assert config["default_route"] == "replay"
    providers = {p["name"]: p for p in config["providers"]}
    assert providers["openai"] == {
        "name": "openai",
        "kind": "openai",
        "base_url": "",
        "api_key_env": "OPENAI_API_KEY",
        "credential": "missing",
        "enabled": True,
        "status": "blocked",
        "reasons": ["OPENAI_API_KEY is not set"],
    }
    assert providers["replay"]["credential"] == "not_needed"
    assert providers["ollama"]["status"] == "disabled"
    routes = {r["alias"]: r for r in config["routes"]}
    assert routes["fast"] == {
        "alias": "fast",
        "provider": "openai",
        "model_id": "gpt-4o-mini",
        "context_window_tokens": 128000,
        "max_output_tokens": 16384,
        "price_input_per_mtok": "0.150000",
        "price_cached_input_per_mtok": "0.075000",
        "price_cache_write_per_mtok": None,
        "price_output_per_mtok": "0.600000",
        "is_default": False,
        "enabled": True,
        "probe": None,
        "status": "blocked",
        "reasons": ["route 'fast' uses provider 'openai', which is blocked (OPENAI_API_KEY is not set)"],
    }
    assert routes["replay"]["status"] == "ready"
    assert [t["name"] for t in config["tools"]] == [
        "current_time",
        "memory_forget",
        "memory_remember",
        "memory_search",
        "web_search",
        "write_file",
    ]
    assert [(t["name"], t["status"]) for t in config["tools"] if t["status"] != "ready"] == []
    assert config["skills"][0]["tools"] == ["web_search"]
    assert (config["mcp_servers"][0]["status"], config["mcp_servers"][0]["probe"]) == ("blocked", None)
    assert [a["name"] for a in config["agents"]] == ["researcher", "writer"]
    assert config["teams"][0]["members"] == ["researcher", "writer"]


def test_blocked_chat_names_the_keys_to_set_or_the_replay_provider(api: APIClient, example_loaded: None) -> None:
    replay = config_record_get(Kind.PROVIDER, "replay")
    from dataclasses import replace

    config_record_update(kind=Kind.PROVIDER, key="replay", record=replace(replay, enabled=False))
    body = bootstrap(api)
    assert views(body)["chat"] == (
        "blocked",
        [
            "no enabled model route has a provider with credentials: "
            "set ANTHROPIC_API_KEY or OPENAI_API_KEY or enable the replay provider"
        ],
    )
    assert views(body)["model"] == (
        "blocked",
        [
            "no route is ready",
            "route 'fast' uses provider 'openai', which is blocked (OPENAI_API_KEY is not set)",
            "route 'replay' uses disabled provider 'replay'",
            "route 'smart' uses provider 'anthropic', which is blocked (ANTHROPIC_API_KEY is not set)",
        ],
    )
    state, reasons = views(body)["team"]
    assert state == "blocked"
    assert reasons[0] == "no team is ready"
    assert reasons[1].startswith("team 'research-desk': lead 'researcher' is blocked: ")


def test_a_key_makes_chat_usable_without_replay(
    api: APIClient, example_loaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    for kind, key in ((Kind.PROVIDER, "replay"),):
        record = config_record_get(kind, key)
        config_record_update(kind=kind, key=key, record=replace(record, enabled=False))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-RECOGNISABLE-0002")
    body = bootstrap(api)
    # The default route is the disabled replay one: chat says which route to fix.
    assert views(body)["chat"] == (
        "blocked",
        [
            "the default route 'replay' is blocked: route 'replay' uses disabled provider 'replay'; "
            "fix it or make a ready route the default"
        ],
    )
    assert views(body)["model"] == ("ready", [])


def test_missing_mcp_command_and_variable_block_mcp_and_team(
    api: APIClient, example_loaded: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    body = bootstrap(api)
    assert views(body)["mcp"] == (
        "blocked",
        [
            "no MCP server is ready",
            "MCP server 'filesystem': stdio command 'npx' is not on PATH; install it or give its full path",
        ],
    )
    assert views(body)["team"][0] == "blocked"
    assert views(body)["chat"][0] == "empty"


def test_disabled_tools_block_tools_and_skills(api: APIClient, example_loaded: None) -> None:
    from dataclasses import replace

    for name in ("current_time", "memory_search", "memory_remember", "memory_forget", "web_search", "write_file"):
        record = config_record_get(Kind.TOOL, name)
        config_record_update(kind=Kind.TOOL, key=name, record=replace(record, enabled=False))
    body = bootstrap(api)
    assert views(body)["tools"] == ("blocked", [f"every tool is disabled: set enabled = true on one in {EXAMPLE}"])
    assert views(body)["skills"] == (
        "blocked",
        [
            "no ready agent has a ready skill: give a ready agent one in its skills list in "
            f"{EXAMPLE} and run manage.py load_config",
            "skill 'research-notes' uses disabled tool 'web_search'; enable it",
        ],
    )


def test_route_whose_adapter_rejects_its_options_is_blocked(api: APIClient, example_loaded: None) -> None:
    # A row stored before the replay options were validated on write (the services refuse it now).
    Provider.objects.filter(name="replay").update(options={"chunk_chars": 0})
    body = bootstrap(api)
    route = next(r for r in body["config"]["routes"] if r["alias"] == "replay")
    assert route["status"] == "blocked"
    assert route["reasons"] == [
        "provider 'replay' cannot answer: options.chunk_chars: must be a whole number from 1 to 10000; "
        "fix it in the configuration"
    ]
    assert views(body)["chat"] == (
        "blocked",
        [
            "no enabled model route has a provider with credentials: set ANTHROPIC_API_KEY or OPENAI_API_KEY",
            "route 'replay': provider 'replay' cannot answer: options.chunk_chars: must be a whole number "
            "from 1 to 10000; fix it in the configuration",
        ],
    )


def test_after_a_replay_turn_chat_is_ready_with_the_replay_route(api: APIClient, example_loaded: None) -> None:
    session = session_create(owner=op_user(), title="first", route_alias=None)
    result = turn_run(session_id=session.pk, user_text="hello")
    assert result.run.status == "completed"
    body = bootstrap(api)
    assert views(body)["chat"] == ("ready", [])
    assert views(body)["tokens"] == ("ready", [])
    assert views(body)["memory"] == ("ready", [])
    assert body["config"]["default_route"] == "replay"
    assert next(r for r in body["config"]["routes"] if r["alias"] == "replay")["status"] == "ready"
    recent = body["sessions"]["recent"]
    assert len(recent) == 1
    assert recent[0]["id"] == str(session.pk)
    assert recent[0]["route"] == "replay"
    assert recent[0]["message_count"] == 2
    assert recent[0]["needs_compaction"] is False
    assert body["memory"]["messages"] == 2
    assert body["telemetry"]["all_time"]["event_count"] == 1
    assert body["telemetry"]["all_time"]["input_tokens"] == 12
    assert body["telemetry"]["by_model"][0]["provider"] == "replay"
    assert body["telemetry"]["by_model"][0]["model"] == "replay-1"


def test_sessions_counts_and_context_fullness(api: APIClient, example_loaded: None, settings: Any) -> None:
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 50
    replay = ModelRoute.objects.get(alias="replay")
    full = session_create(owner=op_user(), title="full", route_alias="replay")
    AgentSession.objects.filter(pk=full.pk).update(tokens_since_checkpoint=replay.context_window_tokens // 2)
    archived = session_create(owner=op_user(), title="old", route_alias="replay")
    AgentSession.objects.filter(pk=archived.pk).update(
        status=SessionStatus.ARCHIVED, tokens_since_checkpoint=replay.context_window_tokens
    )
    body = bootstrap(api)
    sessions = body["sessions"]
    assert (sessions["total"], sessions["active"], sessions["archived"]) == (2, 1, 1)
    assert sessions["needing_compaction"] == 1
    assert sessions["compaction_threshold_percent"] == 50
    by_title = {item["title"]: item for item in sessions["recent"]}
    assert by_title["full"]["context_fullness_percent"] == 50.0
    assert by_title["full"]["needs_compaction"] is True
    assert by_title["old"]["needs_compaction"] is False


def test_memory_counts_per_tier(api: APIClient, example_loaded: None) -> None:
    import datetime as dt

    LongTermMemory.objects.bulk_create(
        [LongTermMemory(owner=op_user(), kind=MemoryKind.FACT, content=f"fact {i}", pinned=i == 0) for i in range(3)]
    )
    memory_tally_rebuild()  # a bulk load bypasses the services that keep the tally
    DailyEpisode.objects.create(
        owner=op_user(), day=dt.date(2025, 1, 2), timezone="UTC", summary="a day", source=EpisodeSource.MANUAL
    )
    body = bootstrap(api)
    assert body["memory"] == {
        "messages": 0,
        "daily_episodes": 1,
        "long_term": 3,
        "pinned": 1,
        "attachments": 0,
        "latest_episode_day": "2025-01-02",
    }
    assert views(body)["memory"] == ("ready", [])


# --- ETag -----------------------------------------------------------------------------------


def test_etag_and_not_modified(api: APIClient, example_loaded: None) -> None:
    first = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    etag = first.headers["ETag"]
    assert etag[0] == etag[-1] == '"'
    assert len(etag) == 66
    assert first.headers["Cache-Control"] == "private, no-cache"
    for header in (etag, f'"other", {etag}', f"W/{etag}", f'W/"x" , W/{etag}', "*"):
        again = api.get("/api/bootstrap/", HTTP_IF_NONE_MATCH=header)
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["ETag"] == etag
    assert api.get("/api/bootstrap/", HTTP_IF_NONE_MATCH='"other"').status_code == 200
    assert api.get("/api/bootstrap/", HTTP_IF_NONE_MATCH=etag[:-2] + '"').status_code == 200
    # Any change in the data changes the body, hence the ETag.
    session_create(owner=op_user(), title="new", route_alias="replay")
    changed = api.get("/api/bootstrap/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_every_rendering_carries_the_etag_of_the_compact_json(api: APIClient, example_loaded: None) -> None:
    plain = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert plain["Content-Type"] == "application/json"
    assert plain.headers["ETag"] == '"' + hashlib.sha256(plain.content).hexdigest() + '"'
    assert plain.headers["Vary"].replace(" ", "").split(",")[:2] == ["Cookie", "Authorization"]
    # Indented JSON and the browsable API are other renderings of the same body: same ETag.
    indented = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json; indent=2")
    assert indented.content.startswith(b'{\n  "')
    assert json.loads(indented.content) == json.loads(plain.content)
    assert indented.headers["ETag"] == plain.headers["ETag"]
    page = api.get("/api/bootstrap/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert page.headers["ETag"] == plain.headers["ETag"]


# --- no secret ------------------------------------------------------------------------------


def test_no_secret_in_body_or_headers(api: APIClient, example_loaded: None, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-proj-RECOGNISABLE-0001",
        "ANTHROPIC_API_KEY": "sk-ant-RECOGNISABLE-0001",
        "GITHUB_MCP_TOKEN": "ghp-RECOGNISABLE-0001",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    config_record_create(
        record=McpServerConfig(
            name="github", transport="streamable_http", url="https://mcp.example.com/", env_vars=("GITHUB_MCP_TOKEN",)
        )
    )
    response = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode() + json.dumps(dict(response.headers))
    for value in secrets.values():
        assert value not in text
    assert "RECOGNISABLE" not in text
    body = response.json()
    assert {p["name"]: p["credential"] for p in body["config"]["providers"]} == {
        "anthropic": "present",
        "ollama": "not_needed",
        "openai": "present",
        "replay": "not_needed",
    }
    github = next(m for m in body["config"]["mcp_servers"] if m["name"] == "github")
    assert (github["env_vars"], github["reasons"]) == (
        ["GITHUB_MCP_TOKEN"],
        ["not probed yet: run manage.py check_mcp github"],
    )


# --- a constant number of queries -----------------------------------------------------------


def _fill(sessions: int) -> None:
    """`sessions` sessions with two messages each, plus memories, an episode and usage (bulk where allowed)."""
    import datetime as dt

    route = ModelRoute.objects.get(alias="replay")
    rows = AgentSession.objects.bulk_create(
        [
            AgentSession(
                owner=op_user(), title=f"s{i}", route=route, message_count=2, last_seq=2, tokens_since_checkpoint=i * 10
            )
            for i in range(sessions)
        ],
        batch_size=2_000,
    )
    Message.objects.bulk_create(
        [
            Message(session=row, seq=seq, role=role, content="x")
            for row in rows
            for seq, role in ((1, MessageRole.USER), (2, MessageRole.ASSISTANT))
        ],
        batch_size=2_000,
    )
    LongTermMemory.objects.bulk_create(
        [
            LongTermMemory(owner=op_user(), kind=MemoryKind.FACT, content=f"fact {i}", pinned=i % 7 == 0)
            for i in range(sessions)
        ],
        batch_size=2_000,
    )
    memory_tally_rebuild()
    if sessions:
        DailyEpisode.objects.create(
            owner=op_user(), day=dt.date(2025, 1, 1), timezone="UTC", summary="d", source=EpisodeSource.MANUAL
        )
        for i in range(min(sessions, 5)):
            usage_record(
                owner=op_user(), request_id=f"fill-{i}", route_alias="replay", session_id=rows[i].pk, input_tokens=5
            )


@pytest.mark.parametrize("sessions", [0, 10, 10_000])
def test_bootstrap_query_count_is_constant(
    api: APIClient, example_loaded: None, django_assert_num_queries: DjangoAssertNumQueries, sessions: int
) -> None:
    _fill(sessions)
    bootstrap(api)  # the configuration was just loaded: this request reads its snapshot
    # 7 queries at 0, 10 and 10,000 sessions (authentication is forced: no session/user query):
    #   1  django_migrations (applied migrations)
    #   1  the configuration's and the statuses' version stamps (unchanged: the kept snapshot and the
    #      kept route and MCP server statuses are used)
    #   1  sessions aggregate: total, active, needing compaction, sum of message counts
    #   1  the 5 most recent sessions with their route's alias and window
    #   1  memory: long-term total (the tally row) and pinned, episodes and latest day, attachments
    #   1  telemetry rollups: today's rows and the all-time rows
    #   1  live workers (a heartbeat in the last 30 s) and the user's queued and running runs
    with django_assert_num_queries(7):
        body = bootstrap(api)
    assert body["sessions"]["total"] == sessions
    assert len(body["sessions"]["recent"]) == min(sessions, 5)
    assert body["memory"]["messages"] == 2 * sessions
    assert body["memory"]["long_term"] == sessions


def test_bootstrap_after_a_configuration_change_reads_the_snapshot_once(
    api: APIClient, example_loaded: None, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    from dataclasses import replace

    bootstrap(api)
    web_search = config_record_get(Kind.TOOL, "web_search")
    assert isinstance(web_search, ToolConfig)
    config_record_update(kind=Kind.TOOL, key="web_search", record=replace(web_search, description="Look it up"))
    # 21 queries on the first request after a change, 7 on the next:
    #   1  django_migrations
    #   1  the version stamps (the configuration's renewed by the update: differs from the kept snapshot's)
    #   12 configuration snapshot: providers; routes+provider; tools; skills; their tools; MCP servers;
    #      agents+route; their tools; skills; MCP servers; teams+lead; their members+agent
    #   2  route statuses; MCP server statuses (kept by both stamps: route aliases and server names
    #      are configuration)
    #   5  sessions aggregate; recent sessions; memory counts; telemetry rollups; live workers and open runs
    with django_assert_num_queries(21):
        body = bootstrap(api)
    assert next(t for t in body["config"]["tools"] if t["name"] == "web_search")["description"] == "Look it up"
    with django_assert_num_queries(7):
        assert bootstrap(api) == body


def test_bootstrap_shows_a_status_write_at_once(
    api: APIClient, example_loaded: None, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    """Every service write of a route's or an MCP server's status renews the statuses' stamp: the next
    request reads the statuses again (9 queries: the 7, then route and MCP server statuses), then 7."""
    from core.config.services import mcp_probe_record, route_probe_record, route_turn_outcome
    from core.models import McpServerSpec, ModelRoute

    def route_entry(body: dict[str, Any], alias: str) -> dict[str, Any]:
        return next(item for item in body["config"]["routes"] if item["alias"] == alias)

    before = bootstrap(api)
    route = ModelRoute.objects.select_related("provider").get(alias=before["config"]["routes"][0]["alias"])
    server = McpServerSpec.objects.get(name=before["config"]["mcp_servers"][0]["name"])
    assert route_entry(before, route.alias)["probe"] is None

    route_probe_record(route=route, ok=False, code="timeout", message="no answer", latency_ms=None)
    with django_assert_num_queries(9):
        body = bootstrap(api)
    assert route_entry(body, route.alias)["probe"]["code"] == "timeout"
    with django_assert_num_queries(7):
        assert bootstrap(api) == body

    route_turn_outcome(route=route, code="model_not_found")
    blocked = bootstrap(api)
    assert route_entry(blocked, route.alias)["status"] == "blocked"
    route_turn_outcome(route=route, code="")  # a success lifts the block
    assert route_entry(bootstrap(api), route.alias) == route_entry(body, route.alias)

    mcp_probe_record(server_id=server.pk, ok=False, tools=[], error="refused")
    probed = next(item for item in bootstrap(api)["config"]["mcp_servers"] if item["name"] == server.name)
    assert probed["probe"]["error"] == "refused"


def test_bootstrap_queries_name_no_per_row_lookups(api: APIClient, example_loaded: None) -> None:
    """With records in every configuration table, no query repeats (no N+1 in the readiness)."""
    _fill(10)
    with CaptureQueriesContext(connection) as queries:
        bootstrap(api)
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == len(set(statements)) == 21
    with CaptureQueriesContext(connection) as queries:
        bootstrap(api)
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == len(set(statements)) == 7


@override_settings(AGENTCHAT_CONFIG=EXAMPLE)
def test_bootstrap_capture_writes_the_three_states(tmp_path: Path) -> None:
    from django.core.management import call_command

    out = tmp_path / "evidence"
    call_command("bootstrap_capture", out=str(out), stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert sorted(path.name for path in out.iterdir()) == ["blocked.json", "empty.json", "index.md", "ready.json"]
    captured = {state: json.loads((out / f"{state}.json").read_text()) for state in ("empty", "blocked", "ready")}
    assert captured["empty"]["views"]["chat"]["state"] == "blocked"
    assert captured["empty"]["views"]["config"]["reasons"][0].endswith("was never loaded: " + load_hint())
    assert captured["blocked"]["views"]["chat"] == {
        "state": "blocked",
        "reasons": [
            "no enabled model route has a provider with credentials: "
            "set ANTHROPIC_API_KEY or OPENAI_API_KEY or enable the replay provider"
        ],
    }
    assert captured["ready"]["views"]["chat"] == {"state": "ready", "reasons": []}
    assert captured["ready"]["sessions"]["recent"][0]["route"] == "replay"
    assert all(body["app"]["database_vendor"] == "sqlite" for body in captured.values())
    index = (out / "index.md").read_text()
    assert "manage.py bootstrap_capture" in index
    assert "| `ready.json` | ready |" in index


def test_a_user_who_is_not_staff_sees_no_urls_commands_or_variables(
    api: APIClient, example_loaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    plain = APIClient()
    plain.force_authenticate(user=plain_user("reader"))
    response = plain.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    body = response.json()
    for entries in (value for value in body["config"].values() if isinstance(value, list)):
        for entry in entries:
            assert not set(entry) & {"base_url", "api_key_env", "command", "args", "url", "env_vars"}, entry
    providers = {entry["name"]: entry for entry in body["config"]["providers"]}
    assert providers["openai"]["reasons"] == ["the key of provider 'openai' is not set"]
    for hidden in (b"OPENAI_API_KEY", b"localhost:11434", b"npx"):
        assert hidden not in response.content
    staff = bootstrap(api)
    assert {entry["name"]: entry for entry in staff["config"]["providers"]}["openai"]["api_key_env"] == "OPENAI_API_KEY"


def test_chat_is_blocked_without_a_worker_heartbeat_and_the_bootstrap_shows_the_queue(
    api: APIClient, example_loaded: None
) -> None:
    WorkerBeat.objects.update(beat_at=timezone.now() - timedelta(seconds=31))
    body = api.get("/api/bootstrap/").json()
    assert body["workers"] == {"live": 0, "queued_runs": 0, "running_runs": 0}
    assert views(body)["chat"] == (
        "blocked",
        [
            "no worker heartbeat in the last 30 s: turns would wait in the queue; "
            "start the workers (make serve, or manage.py worker)"
        ],
    )
    WorkerBeat.objects.update(beat_at=timezone.now())
    assert api.get("/api/bootstrap/").json()["workers"]["live"] == 1
