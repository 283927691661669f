"""The admin for configuration records: same validation as the file, readiness shown, pinned changelists."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import DjangoAssertNumQueries

from core.config.contracts import ConfigDocument
from core.models import ModelRoute, Provider, Team, ToolSpec

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    # session, user; COUNT (filtered), COUNT (total), rows (+ joined relations); list filter choices
    ("provider", 5),
    ("modelroute", 6),
    ("toolspec", 5),
    ("skillspec", 5),
    ("mcpserverspec", 5),
    ("agentprofile", 6),
    ("team", 5),
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


def test_admin_form_rejects_a_secret_and_saves_nothing(admin_client: Client, loaded: ConfigDocument) -> None:
    response = admin_client.post(
        "/admin/core/provider/add/",
        {
            "name": "leaky",
            "kind": "openai",
            "base_url": "",
            "api_key_env": "sk-EXAMPLEabcdefghijklmnop",
            "options": "{}",
        },
    )
    assert response.status_code == 200
    assert (
        "&#x27;sk-EX…&#x27; looks like a secret; give the name of an environment variable" in response.content.decode()
    )
    assert "sk-EXAMPLEabcdefghij" not in response.content.decode()
    assert not Provider.objects.filter(name="leaky").exists()


def test_admin_form_rejects_a_malformed_schema(admin_client: Client, loaded: ConfigDocument) -> None:
    response = admin_client.post(
        "/admin/core/toolspec/add/",
        {"name": "calc", "description": "", "parameters": '{"type": "array"}', "enabled": "on"},
    )
    assert response.status_code == 200
    assert "must be a JSON Schema for an object" in response.content.decode()
    assert not ToolSpec.objects.filter(name="calc").exists()


def test_admin_creates_a_route_through_the_service(admin_client: Client, loaded: ConfigDocument) -> None:
    openai = Provider.objects.get(name="openai")
    response = admin_client.post(
        "/admin/core/modelroute/add/",
        {
            "alias": "nano",
            "provider": openai.pk,
            "model_id": "gpt-4.1-nano",
            "context_window_tokens": "1000000",
            "max_output_tokens": "32000",
            "price_input_per_mtok": "0.1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    route = ModelRoute.objects.get(alias="nano")
    assert (route.provider_id, route.is_default, str(route.price_input_per_mtok)) == (openai.pk, False, "0.100000")


def _team_post(lead: int, members: list[tuple[int, int]]) -> dict[str, str]:
    data = {
        "name": "pair",
        "description": "",
        "lead": str(lead),
        "enabled": "on",
        "members-TOTAL_FORMS": str(len(members)),
        "members-INITIAL_FORMS": "0",
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
    }
    for index, (position, agent) in enumerate(members):
        data[f"members-{index}-position"] = str(position)
        data[f"members-{index}-agent"] = str(agent)
    return data


def test_admin_team_inline_is_validated_and_saved_in_order(admin_client: Client, loaded: ConfigDocument) -> None:
    desk = Team.objects.select_related("lead").get(name="desk")
    researcher = desk.lead.pk
    writer = desk.members.get(position=1).agent_id
    refused = admin_client.post("/admin/core/team/add/", _team_post(researcher, [(0, writer)]))
    assert refused.status_code == 200
    assert "lead: &#x27;researcher&#x27; is not a member of the team; add it to members" in refused.content.decode()
    assert not Team.objects.filter(name="pair").exists()
    saved = admin_client.post("/admin/core/team/add/", _team_post(researcher, [(1, researcher), (0, writer)]))
    assert saved.status_code == 302, saved.content.decode()[:3000]
    team = Team.objects.get(name="pair")
    assert [m.agent.name for m in team.members.order_by("position")] == ["writer", "researcher"]


def test_referenced_records_cannot_be_deleted_in_the_admin(admin_client: Client, loaded: ConfigDocument) -> None:
    openai = Provider.objects.get(name="openai")
    assert admin_client.get(f"/admin/core/provider/{openai.pk}/delete/").status_code == 403
    unused = Provider.objects.get(name="replay")
    ModelRoute.objects.filter(provider=unused).update(provider=openai)
    response = admin_client.post(f"/admin/core/provider/{unused.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Provider.objects.filter(name="replay").exists()
