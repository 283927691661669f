"""What the bootstrap must show about the last `manage.py load_config`: its file, when it ran, and
each problem with its location, read through `core.config.selectors.config_load_problems()`.

While the last load failed, the database still holds the last configuration that loaded; the
`config` view is blocked and names every problem, so the page can show them beside the records.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from core.config.selectors import config_load_status_path

pytestmark = pytest.mark.django_db

GOOD = """
[[providers]]
name = "replay"
kind = "replay"

[[routes]]
alias = "main"
provider = "replay"
model_id = "replay-1"
context_window_tokens = 8000
max_output_tokens = 1000
is_default = true
"""
BAD = GOOD.replace("max_output_tokens = 1000", "max_output_tokens = 9000")


@pytest.fixture
def config_file(tmp_path: Path, settings: Any) -> Iterator[Path]:
    path = tmp_path / "agentchat.toml"
    settings.AGENTCHAT_CONFIG = path
    config_load_status_path().unlink(missing_ok=True)
    yield path
    config_load_status_path().unlink(missing_ok=True)


def load(path: Path) -> None:
    call_command("load_config", str(path), stdout=io.StringIO(), stderr=io.StringIO())


def bootstrap(api: APIClient) -> dict[str, Any]:
    response = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def test_the_config_section_shows_the_last_loads_problems_with_their_locations(
    api: APIClient, config_file: Path
) -> None:
    config_file.write_text(GOOD)
    load(config_file)
    config_file.write_text(BAD)
    with pytest.raises(CommandError):
        load(config_file)

    body = bootstrap(api)

    last = body["config"]["last_load"]
    assert last["file"] == str(config_file)
    assert last["checked_at"].endswith("Z")
    assert last["problems"] == [
        {"location": "routes[0].max_output_tokens", "message": last["problems"][0]["message"]},
    ]
    assert "8000" in last["problems"][0]["message"]
    view = body["views"]["config"]
    assert view["state"] == "blocked"
    assert any(reason.startswith("routes[0].max_output_tokens: ") for reason in view["reasons"])
    # The last good configuration is what the app serves with.
    assert [route["alias"] for route in body["config"]["routes"]] == ["main"]


def test_a_clean_load_shows_no_problems(api: APIClient, config_file: Path) -> None:
    config_file.write_text(GOOD)
    load(config_file)

    last = bootstrap(api)["config"]["last_load"]

    assert (last["file"], last["problems"]) == (str(config_file), [])


def test_no_load_yet_is_null(api: APIClient, config_file: Path) -> None:
    assert bootstrap(api)["config"]["last_load"] is None


def test_a_new_load_record_changes_the_etag_without_a_query(
    api: APIClient, config_file: Path, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    config_file.write_text(GOOD)
    load(config_file)
    first = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    config_file.write_text(BAD)
    with pytest.raises(CommandError):
        load(config_file)
    bootstrap(api)  # the failed load changed nothing in the database; the kept snapshot serves

    # The same 6 queries as without a record (tests/runtime/test_bootstrap.py): the record is a file.
    with django_assert_num_queries(6):
        second = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert second["ETag"] != first["ETag"]
    assert api.get("/api/bootstrap/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200
    assert api.get("/api/bootstrap/", HTTP_IF_NONE_MATCH=second["ETag"]).status_code == 304
