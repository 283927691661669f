"""No env var's value ever reaches the database, an admin page, an API response or a log line."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from core.config.secrets import find_secret, redact
from core.models import AgentProfile, McpServerSpec, ModelRoute, Provider, SkillSpec, Team, ToolSpec
from tests.core.conftest import EXAMPLE

pytestmark = pytest.mark.django_db

VALUE = "sk-test-RECOGNISABLE-123456"
MARKERS = (VALUE, "RECOGNISABLE")


def assert_clean(text: str, where: str) -> None:
    for marker in MARKERS:
        assert marker not in text, f"{marker!r} leaked into {where}"


def test_no_env_value_in_database_admin_api_or_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, operator: User, api: APIClient
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", VALUE)
    monkeypatch.setenv("ANTHROPIC_API_KEY", VALUE + "-anthropic")
    caplog.set_level(logging.DEBUG)
    out, err = io.StringIO(), io.StringIO()
    call_command("load_config", str(EXAMPLE), stdout=out, stderr=err)
    call_command("check_config", str(EXAMPLE), stdout=out, stderr=err)
    assert_clean(out.getvalue() + err.getvalue(), "command output")

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert_clean(dump.getvalue(), "the database dump")
    assert "OPENAI_API_KEY" in dump.getvalue()  # the name is stored, the value is not

    for endpoint in ("providers", "routes", "tools", "skills", "mcp-servers", "agents", "teams"):
        listing = api.get(f"/api/config/{endpoint}/")
        assert_clean(listing.content.decode(), f"GET /api/config/{endpoint}/")
        for row in listing.json()["results"]:
            key = row.get("name") or row["alias"]
            assert_clean(api.get(f"/api/config/{endpoint}/{key}/").content.decode(), f"{endpoint}/{key}")
    readiness = api.get("/api/config/readiness/")
    assert_clean(readiness.content.decode(), "readiness")
    assert api.get("/api/config/providers/openai/").json()["credential"] == "present"

    client = Client()
    client.force_login(operator)
    for model in (Provider, ModelRoute, ToolSpec, SkillSpec, McpServerSpec, AgentProfile, Team):
        name = model._meta.model_name
        page = client.get(f"/admin/core/{name}/")
        assert page.status_code == 200
        assert_clean(page.content.decode(), f"admin {name} list")
        for pk in model._default_manager.values_list("pk", flat=True):
            change = client.get(f"/admin/core/{name}/{pk}/change/")
            assert change.status_code == 200
            assert_clean(change.content.decode(), f"admin {name} {pk}")

    # A refused attempt to store the value (configuration is read-only there) does not echo it either.
    rejected = api.patch("/api/config/providers/openai/", {"api_key_env": VALUE}, format="json")
    assert rejected.status_code == 405
    assert_clean(rejected.content.decode(), "the 405 response")
    form = client.post(
        "/admin/core/toolspec/add/",
        {"name": "leak", "description": f"key {VALUE}", "parameters": '{"type": "object"}'},
    )
    assert form.status_code == 403
    assert_clean(form.content.decode(), "the admin's refusal")
    assert_clean("\n".join(record.getMessage() for record in caplog.records), "log lines")


@pytest.mark.parametrize(
    "value",
    [
        "sk-EXAMPLEabcdefghijklmnop",
        "sk-ant-api03-EXAMPLEabcdefghij",
        "ghp_EXAMPLEabcdefghijklmnopqrstu0123",
        "Authorization: Bearer abc.def.ghi-jkl",
        "https://user:pa55word@example.com/v1",
        "https://example.com/v1?api_key=abcdef123456",
        "--token=abcdefgh12345678",
        "0123456789abcdef0123456789abcdef01234567",
    ],
)
def test_secret_shapes_are_recognised(value: str) -> None:
    assert find_secret(value) is not None


@pytest.mark.parametrize(
    "value",
    [
        "OPENAI_API_KEY",
        "gpt-4o-mini-2024-07-18",
        "claude-sonnet-4-20250514",
        "qwen2.5-coder-32b-instruct-q4_k_m",
        "http://localhost:11434/v1",
        "@modelcontextprotocol/server-filesystem",
        "Search the web and return the top results (title, URL, snippet).",
        "The token budget is 4096 tokens.",
    ],
)
def test_ordinary_values_pass(value: str) -> None:
    assert find_secret(value) is None


def test_redact_shows_five_characters() -> None:
    assert redact(VALUE) == "sk-te…"


def test_a_secret_used_as_a_key_is_never_echoed_by_check_config(tmp_path: Path) -> None:
    key = "sk-proj-" + "RECOGNISABLE" + "0123456789abcdef"
    path = tmp_path / "leaky.toml"
    path.write_text(
        f'[[tools]]\nname = "leaky"\nparameters = {{ type = "object", properties = {{ "{key}" = {{}} }} }}\n'
    )
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("check_config", str(path), stdout=io.StringIO(), stderr=err)
    assert "tools[0].parameters.properties.sk-pr…" in err.getvalue()
    assert_clean(err.getvalue(), "check_config")


def test_a_secret_as_a_json_key_in_another_api_is_cut_to_its_prefix(api: APIClient, chat_session: Any) -> None:
    key = "ghp_" + "RECOGNISABLE" + "abcdefghij0123456789"
    response = api.post(
        f"/api/sessions/{chat_session.pk}/messages/",
        {"role": "user", "content": "x", "parts": [{"type": "attachment", key: 1}]},
        format="json",
    )
    assert response.status_code == 400
    assert_clean(response.content.decode(), "the 400 body")
