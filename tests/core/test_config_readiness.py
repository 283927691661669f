"""Readiness: env vars present or absent, commands on PATH, disabled dependencies; constant queries."""

from __future__ import annotations

import io
import tomllib

import pytest
from django.core.management import call_command
from pytest_django.fixtures import DjangoAssertNumQueries

from core.config.contracts import ConfigDocument, Kind, RecordReadiness
from core.config.readiness import readiness_report
from core.config.selectors import config_readiness
from core.config.validation import document_parse
from core.models import Provider
from tests.core.conftest import MINIMAL

pytestmark = pytest.mark.django_db


def doc(text: str = MINIMAL) -> ConfigDocument:
    return document_parse(tomllib.loads(text))


def by_name(items: tuple[RecordReadiness, ...]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {item.name: (item.status, item.reasons) for item in items}


def on_path(command: str) -> str | None:
    return f"/usr/bin/{command}" if command == "python3" else None


def test_everything_is_ready_when_the_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-RECOGNISABLE-123456")
    report = readiness_report(doc(), which=on_path)
    assert report.blocked() == ()
    assert by_name(report.providers)["openai"] == ("ready", ())
    assert report.default_route == "main"


def test_a_missing_key_blocks_the_provider_its_routes_agents_and_teams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    report = readiness_report(doc(), which=on_path)
    assert by_name(report.providers) == {"replay": ("ready", ()), "openai": ("blocked", ("OPENAI_API_KEY is not set",))}
    blocked_route = "route 'fast' uses provider 'openai', which is blocked (OPENAI_API_KEY is not set)"
    assert by_name(report.routes)["fast"] == ("blocked", (blocked_route,))
    agent_reason = f"agent 'writer' uses route 'fast', which is blocked ({blocked_route})"
    assert by_name(report.agents) == {"researcher": ("ready", ()), "writer": ("blocked", (agent_reason,))}
    assert by_name(report.teams)["desk"] == ("blocked", (f"member 'writer' is blocked: {agent_reason}",))


def test_an_empty_variable_counts_as_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert by_name(readiness_report(doc(), which=on_path).providers)["openai"][0] == "blocked"


def test_disabled_provider_blocks_its_route_by_name() -> None:
    disabled = MINIMAL.replace('api_key_env = "OPENAI_API_KEY"', 'api_key_env = "OPENAI_API_KEY"\nenabled = false')
    report = readiness_report(doc(disabled), which=on_path)
    assert by_name(report.providers)["openai"] == (
        "disabled",
        ("disabled in the configuration; enable it to use it",),
    )
    assert by_name(report.routes)["fast"] == ("blocked", ("route 'fast' uses disabled provider 'openai'",))


def test_stdio_command_not_on_path_and_missing_mcp_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    monkeypatch.delenv("FILES_ROOT_TOKEN", raising=False)
    text = MINIMAL.replace('command = "python3"', 'command = "npx"\nenv_vars = ["FILES_ROOT_TOKEN"]')
    report = readiness_report(doc(text), which=on_path)
    assert by_name(report.mcp_servers)["files"] == (
        "blocked",
        (
            "stdio command 'npx' is not on PATH; install it or give its full path",
            "FILES_ROOT_TOKEN is not set; MCP server 'files' needs it",
        ),
    )
    assert by_name(report.agents)["writer"][0] == "blocked"


def test_disabled_member_and_disabled_tool_block_team_and_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    text = MINIMAL.replace('description = "Search the web."', 'description = "Search the web."\nenabled = false')
    text = text.replace('mcp_servers = ["files"]', 'mcp_servers = ["files"]\nenabled = false')
    report = readiness_report(doc(text), which=on_path)
    skill_blocked = (
        "agent 'researcher' uses skill 'notes', which is blocked (skill 'notes' uses disabled tool 'web_search'; "
        "enable it)"
    )
    tool_disabled = "agent 'researcher' uses disabled tool 'web_search'"
    assert by_name(report.agents)["researcher"] == ("blocked", (skill_blocked, tool_disabled))
    assert by_name(report.teams)["desk"] == (
        "blocked",
        (f"lead 'researcher' is blocked: {skill_blocked}; {tool_disabled}", "member 'writer' is disabled"),
    )


def test_readiness_reads_only_presence_of_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def is_set(name: str) -> bool:
        seen.append(name)
        return False

    readiness_report(doc(), is_set=is_set, which=on_path)
    assert seen == ["OPENAI_API_KEY"]


def test_stored_readiness_takes_a_constant_number_of_queries(
    django_assert_num_queries: DjangoAssertNumQueries, monkeypatch: pytest.MonkeyPatch, minimal_path: object
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    call_command("load_config", str(minimal_path), stdout=io.StringIO())
    # providers; routes+provider; tools; skills; skills' tools; MCP servers; agents+route; agents' tools,
    # skills and MCP servers; teams+lead; teams' members+agent.
    with django_assert_num_queries(14):  # the snapshot's 12, the route statuses and the MCP server statuses
        report = config_readiness()
    # files: an MCP server never probed is not ready (it does not block the agent that uses it).
    assert [item.name for item in report.blocked()] == ["openai", "fast", "files", "writer", "desk"]
    Provider.objects.filter(name="openai").update(enabled=False)
    with django_assert_num_queries(14):  # the snapshot's 12, the route statuses and the MCP server statuses
        report = config_readiness()
    assert {(item.kind, item.name) for item in report.all() if item.status == "disabled"} == {(Kind.PROVIDER, "openai")}
