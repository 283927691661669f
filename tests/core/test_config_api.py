"""The configuration API: round trips for every record, the same rejections as the file, 409s, pinned queries."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_django.fixtures import DjangoAssertNumQueries
from rest_framework.test import APIClient

from core.config.contracts import ConfigDocument
from core.models import ModelRoute, Provider, Team

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
def test_round_trip(
    api: APIClient, loaded: ConfigDocument, endpoint: str, key: str, body: dict[str, Any], change: dict[str, Any]
) -> None:
    url = f"/api/config/{endpoint}/"
    created = api.post(url, body, format="json")
    assert created.status_code == 201, created.json()
    for field, value in body.items():
        if field.startswith("price"):
            assert float(created.json()[field]) == float(value)
        else:
            assert created.json()[field] == value
    assert api.get(f"{url}{key}/").json() == created.json()
    patched = api.patch(f"{url}{key}/", change, format="json")
    assert patched.status_code == 200, patched.json()
    for field, value in change.items():
        assert patched.json()[field] == value
    replaced = api.put(f"{url}{key}/", body, format="json")
    assert replaced.status_code == 200, replaced.json()
    for field, value in body.items():
        if not field.startswith("price"):
            assert replaced.json()[field] == value
    assert api.delete(f"{url}{key}/").status_code == 204
    assert api.get(f"{url}{key}/").status_code == 404


def test_unknown_record_is_404_with_the_error_shape(api: APIClient) -> None:
    response = api.get("/api/config/providers/nope/")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "name: no provider named 'nope'; check the name",
        "code": "not_found",
        "fields": {"name": ["no provider named 'nope'; check the name"]},
    }


def test_create_rejects_a_secret_with_the_same_message_as_the_file(api: APIClient, loaded: ConfigDocument) -> None:
    response = api.post(
        "/api/config/providers/",
        {"name": "leaky", "kind": "openai", "api_key_env": "sk-EXAMPLEabcdefghijklmnop"},
        format="json",
    )
    assert response.status_code == 400
    message = "'sk-EX…' looks like a secret; give the name of an environment variable"
    assert response.json() == {
        "detail": f"api_key_env: {message}",
        "code": "invalid",
        "fields": {"api_key_env": [message]},
    }
    assert not Provider.objects.filter(name="leaky").exists()


def test_create_reports_every_problem(api: APIClient, loaded: ConfigDocument) -> None:
    response = api.post(
        "/api/config/routes/",
        {
            "alias": "main",
            "provider": "gone",
            "model_id": "m",
            "context_window_tokens": 10,
            "max_output_tokens": 5,
            "is_default": True,
            "colour": "red",
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "colour": [
            "unknown field for a route (expected one of: alias, provider, model_id, context_window_tokens, "
            "max_output_tokens, price_input_per_mtok, price_cached_input_per_mtok, price_output_per_mtok, "
            "is_default, enabled)"
        ],
    }
    response = api.post(
        "/api/config/routes/",
        {
            "alias": "main",
            "provider": "gone",
            "model_id": "m",
            "context_window_tokens": 10,
            "max_output_tokens": 5,
            "is_default": True,
        },
        format="json",
    )
    assert response.json()["fields"] == {
        "alias": ["a route named 'main' already exists; choose another name"],
        "provider": ["no provider named 'gone'; define it first or fix the name"],
    }


def test_second_default_route_is_rejected(api: APIClient, loaded: ConfigDocument) -> None:
    response = api.patch("/api/config/routes/fast/", {"is_default": True}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "is_default": ["a second default route; 'main' is already the default; unset it there first"]
    }
    assert api.patch("/api/config/routes/main/", {"is_default": False}, format="json").status_code == 200
    assert api.patch("/api/config/routes/fast/", {"is_default": True}, format="json").status_code == 200
    assert list(ModelRoute.objects.filter(is_default=True).values_list("alias", flat=True)) == ["fast"]


def test_team_lead_must_be_member_through_the_api(api: APIClient, loaded: ConfigDocument) -> None:
    response = api.patch("/api/config/teams/desk/", {"members": ["writer"]}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"lead": ["'researcher' is not a member of the team; add it to members"]}
    assert [m.agent.name for m in Team.objects.get(name="desk").members.order_by("position")] == [
        "researcher",
        "writer",
    ]


@pytest.mark.parametrize(
    ("endpoint", "key", "detail"),
    [
        ("providers", "openai", "provider 'openai' is used by routes: fast"),
        ("routes", "main", "route 'main' is used by agents: researcher"),
        ("tools", "web_search", "tool 'web_search' is used by skills: notes; agents: researcher"),
        ("skills", "notes", "skill 'notes' is used by agents: researcher"),
        ("mcp-servers", "files", "MCP server 'files' is used by agents: writer"),
        ("agents", "writer", "agent 'writer' is used by teams: desk"),
    ],
)
def test_delete_refused_while_referenced(
    api: APIClient, loaded: ConfigDocument, endpoint: str, key: str, detail: str
) -> None:
    response = api.delete(f"/api/config/{endpoint}/{key}/")
    assert response.status_code == 409
    assert response.json()["detail"].split(": ", 1)[1] == f"{detail}; remove those references first"
    assert response.json()["code"] == "conflict"
    assert api.get(f"/api/config/{endpoint}/{key}/").status_code == 200


def test_rename_keeps_references(api: APIClient, loaded: ConfigDocument) -> None:
    response = api.patch("/api/config/providers/openai/", {"name": "openai-main"}, format="json")
    assert response.status_code == 200
    assert api.get("/api/config/routes/fast/").json()["provider"] == "openai-main"


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
    # The 12 queries of the configuration snapshot (see core.config.selectors.config_snapshot).
    with django_assert_num_queries(12):
        assert api.get("/api/config/readiness/").status_code == 200
