"""What the bootstrap must show about the last `manage.py load_config`: its file, when it ran, and
each problem with its location, read through `core.config.selectors.config_load_problems()`.

While the last load failed, the database still holds the last configuration that loaded; the
`config` view is blocked and names every problem, so the page can show them beside the records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from tests.runtime.bootstrap_client import bootstrap
from tests.site.test_config_problems import GOOD, load

pytestmark = pytest.mark.django_db

BAD = GOOD.replace("max_output_tokens = 1000", "max_output_tokens = 9000")


@pytest.fixture
def config_file(tmp_path: Path, settings: Any) -> Path:
    """The configuration file, not written yet (no load record exists: tests/conftest.py removes it)."""
    path = tmp_path / "agentchat.toml"
    settings.AGENTCHAT_CONFIG = path
    return path


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

    # The same 7 queries as without a record (tests/runtime/test_bootstrap.py): the record is a file.
    with django_assert_num_queries(7):
        second = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert second["ETag"] != first["ETag"]
    assert api.get("/api/bootstrap/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200
    assert api.get("/api/bootstrap/", HTTP_IF_NONE_MATCH=second["ETag"]).status_code == 304
