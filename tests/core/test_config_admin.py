"""The admin for configuration records: same validation as the file, readiness shown, pinned changelists."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import DjangoAssertNumQueries

from core.config.api.views import READ_ONLY
from core.config.contracts import ConfigDocument
from core.models import Provider

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    # session, user; COUNT (capped; no total COUNT on a ReadOnlyAdmin), rows (+ joined relations);
    # list filter choices
    ("provider", 4),
    ("modelroute", 5),
    ("toolspec", 4),
    ("skillspec", 4),
    ("mcpserverspec", 4),
    ("agentprofile", 5),
    ("team", 4),
]


@pytest.fixture
def admin_client(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.mark.parametrize(("model", "queries"), CHANGELISTS)
def test_changelist_query_counts_are_pinned(
    admin_client: Client,
    loaded: ConfigDocument,
    django_assert_num_queries: DjangoAssertNumQueries,
    model: str,
    queries: int,
) -> None:
    with django_assert_num_queries(queries):
        response = admin_client.get(f"/admin/core/{model}/")
    assert response.status_code == 200


def test_provider_and_route_lists_show_readiness(
    admin_client: Client, loaded: ConfigDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    providers = admin_client.get("/admin/core/provider/").content.decode()
    assert "blocked: OPENAI_API_KEY is not set" in providers
    routes = admin_client.get("/admin/core/modelroute/").content.decode()
    assert "blocked: route &#x27;fast&#x27; uses provider &#x27;openai&#x27;, which is blocked" in routes


@pytest.mark.parametrize(
    "model", ["provider", "modelroute", "toolspec", "skillspec", "mcpserverspec", "agentprofile", "team"]
)
def test_the_admin_shows_configuration_and_refuses_every_write(
    admin_client: Client, loaded: ConfigDocument, model: str
) -> None:
    listed = admin_client.get(f"/admin/core/{model}/")
    assert listed.status_code == 200
    assert READ_ONLY.split(":")[0] in listed.content.decode()
    assert f"/admin/core/{model}/add/" not in listed.content.decode()
    assert admin_client.get(f"/admin/core/{model}/add/").status_code == 403
    assert admin_client.post(f"/admin/core/{model}/add/", {"name": "new"}).status_code == 403


def test_a_record_page_is_view_only_and_a_posted_change_is_refused(
    admin_client: Client, loaded: ConfigDocument
) -> None:
    openai = Provider.objects.get(name="openai")
    page = admin_client.get(f"/admin/core/provider/{openai.pk}/change/")
    assert page.status_code == 200
    assert READ_ONLY.split(":")[0] in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    changed = admin_client.post(
        f"/admin/core/provider/{openai.pk}/change/",
        {
            "name": "openai",
            "kind": "openai",
            "base_url": "https://169.254.169.254/",
            "api_key_env": "X",
            "options": "{}",
        },
    )
    assert changed.status_code == 403
    assert admin_client.post(f"/admin/core/provider/{openai.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Provider.objects.get(pk=openai.pk).base_url == openai.base_url
