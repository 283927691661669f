"""The configuration API: reads, every write refused (the file is the one source of truth), readiness."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_django.fixtures import DjangoAssertNumQueries
from rest_framework.test import APIClient

from core.config.api.views import READ_ONLY
from core.config.contracts import ConfigDocument
from core.models import McpServerSpec
from tests.owners import plain_user

pytestmark = pytest.mark.django_db

# endpoint, key, body to create, a change for PATCH
ROUND_TRIPS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "providers",
        "local",
        {"name": "local", "kind": "ollama", "base_url": "http://localhost:11434", "options": {"keep_alive": "5m"}},
        {"enabled": False},
    ),
    (
        "routes",
        "cheap",
        {
            "alias": "cheap",
            "provider": "openai",
            "model_id": "gpt-4.1-nano",
            "context_window_tokens": 1000000,
            "max_output_tokens": 32000,
            "price_input_per_mtok": "0.1",
            "price_output_per_mtok": 0.4,
        },
        {"model_id": "gpt-4.1-mini"},
    ),
    (
        "tools",
        "calculator",
        {"name": "calculator", "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}}},
        {"requires_approval": True},
    ),
    ("skills", "tidy", {"name": "tidy", "instructions": "Be tidy.", "tools": ["web_search"]}, {"tools": []}),
    (
        "mcp-servers",
        "remote",
        {
            "name": "remote",
            "transport": "streamable_http",
            "url": "https://mcp.example.com/mcp",
            "env_vars": ["REMOTE_TOKEN"],
        },
        {"tool_allowlist": ["search"]},
    ),
    ("agents", "critic", {"name": "critic", "route": "main", "tools": ["web_search"]}, {"skills": ["notes"]}),
    ("teams", "pair", {"name": "pair", "lead": "writer", "members": ["writer", "researcher"]}, {"description": "Two."}),
]


@pytest.mark.parametrize(("endpoint", "key", "body", "change"), ROUND_TRIPS)
def test_every_write_is_refused_with_where_configuration_changes(
    api: APIClient, loaded: ConfigDocument, endpoint: str, key: str, body: dict[str, Any], change: dict[str, Any]
) -> None:
    url = f"/api/config/{endpoint}/"
    before = api.get(url).json()
    existing = before["results"][0]
    existing_key = existing.get("name", existing.get("alias"))
    attempts = [
        api.post(url, body, format="json"),
        api.put(f"{url}{existing_key}/", body, format="json"),
        api.patch(f"{url}{existing_key}/", change, format="json"),
        api.delete(f"{url}{existing_key}/"),
    ]
    for response in attempts:
        assert response.status_code == 405, response.content
        assert response.json() == {"detail": READ_ONLY, "code": "method_not_allowed", "fields": {}}
        assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert api.get(url).json() == before
    assert api.get(f"{url}{key}/").status_code == 404


def test_an_mcp_command_created_over_the_api_is_refused(api: APIClient, loaded: ConfigDocument) -> None:
    response = api.post(
        "/api/config/mcp-servers/",
        {"name": "shell", "transport": "stdio", "command": "/bin/sh", "args": ["-c", "id"]},
        format="json",
    )
    assert response.status_code == 405
    assert "Edit the file (AGENTCHAT_CONFIG) and run `manage.py load_config`" in response.json()["detail"]
    assert not McpServerSpec.objects.filter(name="shell").exists()


def test_unknown_record_is_404_with_the_error_shape(api: APIClient) -> None:
    response = api.get("/api/config/providers/nope/")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "name: no provider named 'nope'; check the name",
        "code": "not_found",
        "fields": {"name": ["no provider named 'nope'; check the name"]},
    }


def test_provider_credential_and_readiness(
    api: APIClient, loaded: ConfigDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rows = {row["name"]: row for row in api.get("/api/config/providers/").json()["results"]}
    assert rows["openai"]["credential"] == "missing"
    assert rows["openai"]["readiness"] == {"status": "blocked", "reasons": ["OPENAI_API_KEY is not set"]}
    assert rows["replay"]["credential"] == "not_needed"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-RECOGNISABLE-123456")
    rows = {row["name"]: row for row in api.get("/api/config/providers/").json()["results"]}
    assert rows["openai"]["credential"] == "present"
    assert rows["openai"]["readiness"] == {"status": "ready", "reasons": []}


def test_readiness_endpoint(api: APIClient, loaded: ConfigDocument, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    body = api.get("/api/config/readiness/").json()
    assert body["default_route"] == "main"
    assert body["providers"] == [
        {"kind": "providers", "name": "openai", "status": "blocked", "reasons": ["OPENAI_API_KEY is not set"]},
        {"kind": "providers", "name": "replay", "status": "ready", "reasons": []},
    ]
    assert [(team["name"], team["status"]) for team in body["teams"]] == [("desk", "blocked")]


def test_every_config_endpoint_requires_authentication(anon_api: APIClient) -> None:
    for endpoint in ("providers", "routes", "tools", "skills", "mcp-servers", "agents", "teams", "readiness"):
        assert anon_api.get(f"/api/config/{endpoint}/").status_code == 401


@pytest.mark.parametrize(
    ("endpoint", "queries"),
    [
        # COUNT for the page; the rows.
        ("providers", 2),
        # COUNT; routes joined with their provider.
        ("routes", 2),
        ("tools", 2),
        # COUNT; skills; their tools.
        ("skills", 3),
        ("mcp-servers", 2),
        # COUNT; agents joined with their route; their tools; skills; MCP servers.
        ("agents", 5),
        # COUNT; teams joined with their lead; their members joined with the agent.
        ("teams", 3),
    ],
)
def test_list_query_counts_are_pinned(
    api: APIClient,
    loaded: ConfigDocument,
    django_assert_num_queries: DjangoAssertNumQueries,
    endpoint: str,
    queries: int,
) -> None:
    with django_assert_num_queries(queries):
        response = api.get(f"/api/config/{endpoint}/")
    assert response.status_code == 200
    assert response.json()["count"] >= 1


def test_readiness_endpoint_query_count(
    api: APIClient, loaded: ConfigDocument, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    # The 12 queries of the configuration snapshot (see core.config.selectors.config_snapshot) and
    # the route statuses (probes, refused keys, unknown models), the MCP server statuses (probes).
    with django_assert_num_queries(14):
        assert api.get("/api/config/readiness/").status_code == 200


def test_readiness_for_a_user_who_is_not_staff_names_records_only(
    api: APIClient, loaded: ConfigDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # the files server's python3 is not found
    plain = APIClient()
    plain.force_authenticate(user=plain_user("reader"))
    theirs = plain.get("/api/config/readiness/")
    assert theirs.status_code == 200
    providers = {item["name"]: item for item in theirs.json()["providers"]}
    assert providers["openai"]["reasons"] == ["the key of provider 'openai' is not set"]
    servers = {item["name"]: item for item in theirs.json()["mcp_servers"]}
    assert servers["files"]["reasons"] == ["the command of MCP server 'files' is not installed"]
    for secretish in (b"OPENAI_API_KEY", b"python3", b"files_server"):
        assert secretish not in theirs.content
    staff = api.get("/api/config/readiness/").json()
    assert {item["name"]: item["reasons"] for item in staff["providers"]}["openai"] == ["OPENAI_API_KEY is not set"]


@pytest.mark.parametrize("endpoint", ["providers", "routes", "tools", "skills", "mcp-servers", "agents", "teams"])
def test_configuration_records_are_for_staff_only(loaded: ConfigDocument, endpoint: str) -> None:
    plain = APIClient()
    plain.force_authenticate(user=plain_user("reader"))
    assert plain.get(f"/api/config/{endpoint}/").status_code == 403
    assert plain.post(f"/api/config/{endpoint}/", {"name": "x"}, format="json").status_code == 403
