"""The security boundary: every URL pattern refuses an anonymous caller, CSRF guards session writes,
the admin admits staff only, and the local data files are private to their owner."""

from __future__ import annotations

import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern
from rest_framework.test import APIClient

from core.accounts.services import token_create
from core.apps import PRIVATE_DIR_MODE, path_make_private
from core.models import AgentSession

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
# A value for every path parameter the URL patterns declare (router groups and path converters).
SAMPLE_VALUES = {
    "pk": str(uuid.uuid4()),
    "session_id": str(uuid.uuid4()),
    "run_id": str(uuid.uuid4()),
    "job_id": str(uuid.uuid4()),
    "seq": "1",
    "name": "openai",
    "alias": "fast",
    "format": "json",
    "app_label": "core",
    "object_id": "1",
    "content_type_id": "1",
    "id": "1",
    "url": "no-such-page/",
}
# The only URLs an anonymous caller may reach, with what each answers: the three login forms, the
# logout endpoints (the admin's sends a signed-out caller to its index, the others are POST-only)
# and the favicon redirect. Everything else is behind sign-in.
PUBLIC = {
    ("favicon.ico", "get"): 301,
    ("accounts/login/", "get"): 200,
    ("accounts/logout/", "get"): 405,
    ("admin/login/", "get"): 200,
    ("admin/logout/", "get"): 302,
    ("api-auth/login/", "get"): 200,
    ("api-auth/logout/", "get"): 405,
}
# Admin URLs that are not behind `admin_view` by Django's design: the login form and logout.
ADMIN_PUBLIC_PATHS = {"admin/login/", "admin/logout/"}


def _url_patterns() -> Iterator[tuple[str, URLPattern]]:
    """(pattern text, pattern) for every endpoint, walking nested includes."""

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, text)
            else:
                yield text, pattern

    yield from walk(get_resolver().url_patterns, "")


def _concrete_path(text: str) -> str:
    """Turn a pattern (path converters or a router's regex) into one URL it matches."""
    # Router regexes: named groups with their sample values; anchors and escapes removed.
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLE_VALUES[m.group(1)], text)
    path = path.replace("<drf_format_suffix:format>", ".json")
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE_VALUES[m.group(1)], path)
    path = path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    return "/" + path


def _every_endpoint() -> list[tuple[str, str]]:
    """(pattern text, concrete URL) for every pattern; the admin by its own app-list regex too."""
    endpoints = []
    for text, pattern in _url_patterns():
        if isinstance(pattern.pattern, RoutePattern) or "(?P<" in text or "^" in text:
            endpoints.append((text, _concrete_path(text)))
        else:
            endpoints.append((text, "/" + text.replace("^", "").replace("$", "")))
    return endpoints


def test_every_url_pattern_is_enumerated() -> None:
    endpoints = _every_endpoint()
    paths = {url for _text, url in endpoints}
    # A sample of what the walk must reach: each app's API, the schema and docs, the admin.
    for expected in (
        "/",
        "/api/",
        "/api/schema/",
        "/api/docs/",
        "/api/redoc/",
        "/api/bootstrap/",
        "/api/config/readiness/",
        f"/api/sessions/{SAMPLE_VALUES['session_id']}/turns/",
        f"/api/sessions/{SAMPLE_VALUES['session_id']}/context/",
        "/api/telemetry/summary/",
        "/api/telemetry/usage/",
        "/api/memory/long-term/",
        "/admin/",
        "/admin/core/agentsession/",
    ):
        assert expected in paths, expected
    # Every pattern became a URL that resolves back to a view (no placeholder left behind).
    for text, url in endpoints:
        assert "<" not in url, text
        assert "(?P" not in url, text
        assert resolve(url.split("?")[0]).func is not None, text


@pytest.mark.parametrize("method", METHODS)
def test_every_api_endpoint_refuses_an_anonymous_caller(anon_api: APIClient, method: str) -> None:
    checked = 0
    for text, url in _every_endpoint():
        if not url.startswith("/api/"):
            continue
        response = getattr(anon_api, method)(url)
        assert response.status_code in (401, 403), f"{method.upper()} {url} ({text}): {response.status_code}"
        if response["Content-Type"].startswith("application/json"):
            assert response.json()["code"] == "not_authenticated", f"{method.upper()} {url}"
        checked += 1
    # 74 API patterns today (router list/detail/actions and their format suffixes, nested
    # collections, schema and docs); a new route only adds to them.
    assert checked >= 74


def test_every_page_outside_the_api_sends_an_anonymous_caller_to_sign_in() -> None:
    client = Client()
    for text, url in _every_endpoint():
        if url.startswith("/api/"):
            continue
        key = (url.lstrip("/"), "get")
        response = client.get(url)
        if key in PUBLIC:
            assert response.status_code == PUBLIC[key], f"{url}: {response.status_code}"
            continue
        assert response.status_code == 302, f"GET {url} ({text}): {response.status_code}"
        # The admin sends to its own (staff-only) form; every other page to the accounts' one.
        login = "/admin/login/" if url.startswith("/admin/") else "/accounts/login/"
        assert response["Location"].startswith(login), f"GET {url} → {response['Location']}"
        # Writes are refused too: CSRF (403) or the same redirect to sign in.
        assert client.post(url).status_code in (302, 403), f"POST {url}"


def test_public_urls_are_exactly_the_sign_in_pages() -> None:
    public_paths = {path for path, _method in PUBLIC}
    found = {url.lstrip("/") for _text, url in _every_endpoint() if url.lstrip("/") in public_paths}
    assert found == public_paths
    assert {path for path in public_paths if path.startswith("admin/")} == ADMIN_PUBLIC_PATHS


def test_session_signed_in_write_needs_the_csrf_token(operator: User, replay_route: object) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(operator)
    refused = client.post("/api/sessions/", {"title": "no token"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert refused.json()["detail"].startswith("CSRF Failed")
    assert not AgentSession.objects.filter(title="no token").exists()
    # Reads need no token; a page read sets the cookie the browsable API then echoes back.
    assert client.get("/api/sessions/").status_code == 200
    client.get("/admin/")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    accepted = client.post("/api/sessions/", {"title": "with token"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201
    assert AgentSession.objects.filter(title="with token").count() == 1


def test_token_authenticated_write_needs_no_csrf_token(operator: User, replay_route: object) -> None:
    client = APIClient(enforce_csrf_checks=True)
    key = token_create(user=operator, name="test").key
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.post("/api/sessions/", {"title": "by token"}, format="json")
    assert response.status_code == 201
    assert AgentSession.objects.filter(title="by token").count() == 1


def test_admin_login_form_is_csrf_protected(operator: User) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "op", "password": "a-long-test-password-123"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_admin_admits_staff_only(django_user_model: type[User]) -> None:
    django_user_model.objects.create_user("plain", password="a-long-test-password-456")
    client = Client()
    signed_in = client.post("/accounts/login/", {"username": "plain", "password": "a-long-test-password-456"})
    assert signed_in.status_code == 302
    assert "_auth_user_id" in client.session
    for url in ("/admin/", "/admin/core/agentsession/", "/admin/core/provider/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


def test_var_directory_is_private_to_its_owner() -> None:
    var_dir = Path(settings.VAR_DIR)
    assert stat.S_IMODE(var_dir.stat().st_mode) == PRIVATE_DIR_MODE
    key_file = var_dir / "secret_key"
    if key_file.exists():
        assert stat.S_IMODE(key_file.stat().st_mode) & 0o077 == 0


def test_sqlite_database_file_is_private_to_its_owner() -> None:
    if connection.vendor != "sqlite":
        pytest.skip(f"file permissions concern the SQLite file, not the {connection.vendor} server")
    connection.ensure_connection()
    database = Path(str(connection.settings_dict["NAME"]))
    assert stat.S_IMODE(database.stat().st_mode) & 0o077 == 0
    wal = Path(f"{database}-wal")
    if wal.exists():
        assert stat.S_IMODE(wal.stat().st_mode) & 0o077 == 0


def test_path_make_private_drops_group_and_other_bits(tmp_path: Path) -> None:
    shared = tmp_path / "shared.sqlite3"
    shared.write_text("x")
    shared.chmod(0o644)
    assert path_make_private(shared, 0o600) is True
    assert stat.S_IMODE(shared.stat().st_mode) == 0o600
    assert path_make_private(shared, 0o600) is False  # already private: left alone
    assert path_make_private(tmp_path / "missing", 0o600) is False
