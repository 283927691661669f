"""Authentication everywhere, the OpenAPI document, the landing page and the error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from core.accounts.services import token_create
from core.api.errors import flatten_errors

pytestmark = pytest.mark.django_db


def test_api_root_requires_authentication(anon_api: APIClient) -> None:
    response = anon_api.get("/api/")
    assert (response.status_code, response["WWW-Authenticate"]) == (401, "Token")
    assert response.json() == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
        "fields": {},
    }


def test_api_root_lists_routes_when_signed_in(api: APIClient) -> None:
    response = api.get("/api/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert isinstance(response.json(), dict)


def test_token_authentication(operator: User, anon_api: APIClient) -> None:
    key = token_create(user=operator, name="test").key
    anon_api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert anon_api.get("/api/", HTTP_ACCEPT="application/json").status_code == 200
    anon_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert anon_api.get("/api/").status_code == 401


def test_schema_requires_authentication(anon_api: APIClient) -> None:
    assert anon_api.get("/api/schema/").status_code == 401


def test_schema_is_valid_openapi_3(api: APIClient) -> None:
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    validate_schema(document)  # type: ignore[no-untyped-call]


def test_docs_pages_render_offline(operator: User) -> None:
    client = Client()
    client.force_login(operator)
    for url in ("/api/docs/", "/api/redoc/"):
        response = client.get(url)
        assert response.status_code == 200, url
        # The sidecar serves Swagger UI / Redoc from our own static files, not a CDN.
        assert b"cdn.jsdelivr" not in response.content
        assert b"/static/drf_spectacular_sidecar/" in response.content


def test_index_redirects_to_login_then_is_the_chat_and_the_account_page_links_the_api(operator: User) -> None:
    client = Client()
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
    client.force_login(operator)
    page = client.get("/").content.decode()
    assert '<textarea id="composer"' in page
    assert 'href="/admin/"' in page  # the operator is staff
    account = client.get("/account/").content.decode()
    for link in ("/api/", "/api/docs/", "/api/redoc/", "/api/schema/"):
        assert f'href="{link}"' in account


def test_flatten_errors_paths() -> None:
    assert flatten_errors({"parts": [{"type": ["bad"]}, {}], "role": ["no"]}) == {
        "parts[0].type": ["bad"],
        "role": ["no"],
    }
    assert flatten_errors(["whole object wrong"]) == {"non_field_errors": ["whole object wrong"]}


def test_favicon_is_served(operator: User) -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/web/favicon.svg"


@pytest.mark.django_db
def test_json_nested_past_the_limit_is_a_400_naming_the_limit(client: Client, django_user_model: Any) -> None:
    from core.api.parsers import MAX_JSON_DEPTH, json_depth

    user = django_user_model.objects.create_user("deep", password="pw-deep-1234")
    client.force_login(user)
    at_limit = {"title": "ok", "x": json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)}
    assert json_depth(at_limit) == MAX_JSON_DEPTH
    past = {"title": "ok", "x": json.loads("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))}
    response = client.post("/api/sessions/", json.dumps(past), content_type="application/json")
    assert response.status_code == 400
    assert f"nested more than {MAX_JSON_DEPTH} levels" in response.json()["detail"]
    response = client.post("/api/sessions/", json.dumps(at_limit), content_type="application/json")
    assert response.status_code == 400
    assert "x" in response.json()["fields"]
