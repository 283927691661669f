"""Sessions organised by their owner: tags (per user), a pin that puts them first, and a title
taken from the first user message when none was given."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from core.conversation.services import (
    message_append,
    plain_title,
    session_archive,
    session_create,
    session_update,
    title_from_message,
)
from core.errors import InvalidInputError
from core.models import AgentSession, ModelRoute, Tag
from tests.owners import plain_user

pytestmark = pytest.mark.django_db


def _titles(api: APIClient, query: str = "") -> list[str]:
    titles: list[str] = []
    url: str | None = f"/api/sessions/{query}"
    while url:
        body = api.get(url).json()
        titles += [session["title"] for session in body["results"]]
        url = body["next"]
    return titles


def test_a_session_without_a_title_takes_its_first_user_message(replay_route: ModelRoute, operator: User) -> None:
    session = session_create(owner=operator)
    message_append(session_id=session.pk, role="system", content="You are terse.")
    assert AgentSession.objects.get(pk=session.pk).title == ""
    message_append(session_id=session.pk, role="user", content="\n  Plan a  trip to Lisbon  \nin May please")
    message_append(session_id=session.pk, role="user", content="A later question")
    assert AgentSession.objects.get(pk=session.pk).title == "Plan a trip to Lisbon"
    titled = session_create(owner=operator, title="Mine")
    message_append(session_id=titled.pk, role="user", content="Something else")
    assert AgentSession.objects.get(pk=titled.pk).title == "Mine"


def test_a_long_first_line_is_cut_at_a_word_boundary() -> None:
    line = "word " * 30
    title = title_from_message(line + "\nsecond line")
    assert title == ("word " * 15).strip() + "…"
    assert len(title) <= 80
    assert title_from_message("x" * 200) == "x" * 79 + "…"
    assert title_from_message("   \n\n  ") == ""


def test_tags_and_pin_through_the_api(api: APIClient, replay_route: ModelRoute, operator: User) -> None:
    first = session_create(owner=operator, title="first")
    second = session_create(owner=operator, title="second")
    session_create(owner=operator, title="third")
    response = api.patch(f"/api/sessions/{first.pk}/", {"tags": ["work", " trip ", "work"], "pinned": True})
    assert response.status_code == 200, response.content
    assert (response.json()["tags"], response.json()["pinned"]) == (["trip", "work"], True)
    api.patch(f"/api/sessions/{second.pk}/", {"tags": ["trip"]}, format="json")
    assert _titles(api) == ["first", "third", "second"]
    assert _titles(api, "?tag=trip") == ["first", "second"]
    assert _titles(api, "?tag=work") == ["first"]
    assert _titles(api, "?tag=unused") == []
    assert sorted(Tag.objects.filter(owner=operator).values_list("name", flat=True)) == ["trip", "work"]
    cleared = api.patch(f"/api/sessions/{first.pk}/", {"tags": [], "pinned": False}, format="json").json()
    assert (cleared["tags"], cleared["pinned"]) == ([], False)
    assert _titles(api, "?tag=work") == []


@pytest.mark.fault
@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"tags": "work"}, "tags", 'Expected a list of items but got type "str".'),
        ({"tags": [""]}, "tags", "'' is not a tag name; give 1 to 48 printable characters"),
        ({"tags": ["x" * 49]}, "tags", f"{'x' * 49!r} is not a tag name; give 1 to 48 printable characters"),
        ({"tags": ["a\u0007b"]}, "tags", "'a\\x07b' is not a tag name; give 1 to 48 printable characters"),
        ({"tags": [f"t{n}" for n in range(21)]}, "tags", "has 21 tags; at most 20 per session"),
        ({"pinned": "maybe"}, "pinned", "Must be a valid boolean."),
    ],
)
def test_bad_tags_and_pins_are_400_naming_the_field(
    api: APIClient, replay_route: ModelRoute, operator: User, body: dict[str, object], field: str, problem: str
) -> None:
    session = session_create(owner=operator, title="s")
    response = api.patch(f"/api/sessions/{session.pk}/", body, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {field: [problem]}
    assert list(AgentSession.objects.get(pk=session.pk).tags.all()) == []


def test_an_archived_session_can_be_pinned_and_tagged_but_not_renamed(replay_route: ModelRoute, operator: User) -> None:
    session = session_create(owner=operator, title="old")
    session_archive(session_id=session.pk)
    updated = session_update(session_id=session.pk, pinned=True, tags=["done"])
    assert updated.pinned is True
    assert [tag.name for tag in updated.tags.all()] == ["done"]
    with pytest.raises(Exception, match="is archived"):
        session_update(session_id=session.pk, title="new")


def test_another_users_tags_are_invisible(api: APIClient, replay_route: ModelRoute, operator: User) -> None:
    other = plain_user("other")
    theirs = session_create(owner=other, title="theirs")
    session_update(session_id=theirs.pk, tags=["secret"])
    mine = session_create(owner=operator, title="mine")
    assert _titles(api, "?tag=secret") == []
    # The same name makes a tag of the operator's own; theirs is untouched.
    session_update(session_id=mine.pk, owner=operator, tags=["secret"])
    assert Tag.objects.filter(name="secret").count() == 2
    assert _titles(api, "?tag=secret") == ["mine"]
    assert api.patch(f"/api/sessions/{theirs.pk}/", {"pinned": True}, format="json").status_code == 404
    with pytest.raises(InvalidInputError):
        session_update(session_id=mine.pk, tags=[123])  # type: ignore[list-item]


def test_the_pinned_first_list_pages_every_session_once(
    api: APIClient, replay_route: ModelRoute, operator: User
) -> None:
    sessions = [session_create(owner=operator, title=f"s{n}") for n in range(7)]
    for n in (1, 4, 5):
        session_update(session_id=sessions[n].pk, pinned=True)
    expected = ["s5", "s4", "s1", "s6", "s3", "s2", "s0"]
    assert _titles(api, "?page_size=2") == expected
    # And backwards: the previous link of the last page leads back through the same order.
    url: str | None = "/api/sessions/?page_size=2"
    last = None
    while url:
        last = api.get(url).json()
        url = last["next"]
    assert last is not None
    back = api.get(last["previous"]).json()
    assert [session["title"] for session in back["results"]] == ["s3", "s2"]
    assert api.get("/api/sessions/?cursor=cD1bMV0%3D").status_code == 404  # a cursor of another shape


@pytest.mark.parametrize(
    ("first_line", "title"),
    [
        ("hello there, **friend**. How are you?", "hello there, friend. How are you?"),
        ("# Plan a *trip* to [Lisbon](https://example.com/lisbon)", "Plan a trip to Lisbon"),
        ("> - [ ] run `make test` __today__ ~~or not~~", "run make test today or not"),
        ("1. ***first*** and _second_ ![a chart](chart.png)", "first and second a chart"),
        ("2 * 3 * 4 = 24 and snake_case_name stay", "2 * 3 * 4 = 24 and snake_case_name stay"),
    ],
)
def test_a_title_taken_from_a_message_is_plain_text(
    replay_route: ModelRoute, operator: User, first_line: str, title: str
) -> None:
    assert plain_title(first_line) == title
    session = session_create(owner=operator)
    message_append(session_id=session.pk, role="user", content=f"---\n\n{first_line}\nmore")
    assert AgentSession.objects.get(pk=session.pk).title == title
