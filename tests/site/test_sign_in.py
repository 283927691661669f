"""Signed-out callers: a browser is sent to the sign-in page and back; an API client gets a JSON 401."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PAGES = ["/api/", "/api/docs/", "/api/redoc/", "/api/sessions/?status=active"]


@pytest.mark.parametrize("path", PAGES)
def test_a_signed_out_browser_is_sent_to_sign_in_and_back(path: str) -> None:
    response = Client().get(path, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert response.status_code == 302
    login, _, query = response["Location"].partition("?")
    assert login == "/accounts/login/"
    assert parse_qs(query)["next"] == [path]


def test_after_sign_in_the_browser_lands_on_the_page_it_asked_for(operator: User) -> None:
    client = Client()
    sent = client.get("/api/docs/", HTTP_ACCEPT=BROWSER_ACCEPT)
    signed_in = client.post(
        sent["Location"], {"username": "op", "password": "a-long-test-password-123", "next": "/api/docs/"}
    )
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/api/docs/")
    page = client.get("/api/docs/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert page.status_code == 200
    assert b"swagger-ui" in page.content


@override_settings(LOGIN_URL="/accounts/sign-in/")
def test_the_sign_in_page_is_the_login_url_setting() -> None:
    response = Client().get("/api/docs/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response["Location"] == "/accounts/sign-in/?next=/api/docs/"


@pytest.mark.parametrize("path", PAGES)
def test_an_api_client_without_credentials_gets_a_json_401(anon_api: APIClient, path: str) -> None:
    html_only = path.startswith(("/api/docs/", "/api/redoc/"))  # these two pages render no JSON
    response = anon_api.get(path, HTTP_ACCEPT="*/*" if html_only else "application/json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    if not html_only:
        assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("accept", ["application/json", BROWSER_ACCEPT])
def test_a_bad_token_gets_401_with_www_authenticate(anon_api: APIClient, accept: str) -> None:
    anon_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = anon_api.get("/api/", HTTP_ACCEPT=accept)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    if accept == "application/json":
        assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed", "fields": {}}


def test_a_signed_out_post_is_not_redirected(anon_api: APIClient) -> None:
    response = anon_api.post("/api/sessions/", {}, format="json", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code == 401


def test_redoc_loads_nothing_from_outside(operator: User) -> None:
    client = Client()
    client.force_login(operator)
    response = client.get("/api/redoc/", HTTP_ACCEPT=BROWSER_ACCEPT)

    assert response.status_code == 200
    html = response.content.decode()
    addresses = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert addresses, html
    assert all(address.startswith("/") and not address.startswith("//") for address in addresses), addresses
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in addresses
    assert "fonts.googleapis.com" not in html
