"""What memory upkeep leaves is traceable: a fact names the run and the message it came from, an
episode the conversations it covers, a failed summary its reason; the API and the pages show them."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from core.conversation.services import session_create
from core.models import AgentSession, Message, ModelRoute, Provider, ProviderKind
from memory.models import LongTermMemory
from memory.services import memory_write
from runtime.turns import turn_run
from runtime.upkeep import episodes_write, facts_extract, session_compact
from tests.owners import plain_user
from tests.runtime.test_upkeep import failing_summary_route, long_session, memory_set, small_route
from tests.web.test_pages import signed_in

pytestmark = pytest.mark.django_db


def scripted_summary_route(*answers: str) -> ModelRoute:
    """A replay route answering each upkeep call with the next of `answers`, made the `[memory]` summary route."""
    provider = Provider.objects.create(
        name="scripted",
        kind=ProviderKind.REPLAY,
        options={"script": [[{"type": "text", "text": answer}] for answer in answers]},
    )
    route = ModelRoute.objects.create(
        alias="scripted", provider=provider, model_id="s", context_window_tokens=4000, max_output_tokens=100
    )
    memory_set(extract_facts=True, summary_route="scripted")
    return route


def test_a_fact_names_the_run_and_the_turns_last_message_it_came_from(
    chat_session: AgentSession, operator: User
) -> None:
    scripted_summary_route("home_city: Lyon\nfavourite_tea: green")
    memory_write(owner=operator, kind="preference", key="favourite_tea", content="black, written by me")
    turn = turn_run(session_id=chat_session.pk, user_text="I live in Lyon and drink green tea")

    result = facts_extract(run_id=turn.run.pk)

    assert result.outcome == "written"
    assert result.run is not None
    assert result.keys == ("home_city",)
    # The model never replaces what the user wrote under the same key.
    assert result.refused == {
        "favourite_tea": (
            "key: 'favourite_tea' names a memory the user wrote; a model may not change it, use another key"
        )
    }
    assert LongTermMemory.objects.get(key="favourite_tea").content == "black, written by me"
    fact = LongTermMemory.objects.get(key="home_city")
    last = chat_session.messages.order_by("-seq").values_list("seq", flat=True).first()
    assert (fact.source, fact.source_run_id, fact.source_session_id) == ("model", result.run.pk, chat_session.pk)
    assert (fact.source_first_seq, fact.source_last_seq) == (1, last)

    api = APIClient()
    api.force_authenticate(user=operator)
    listed = {row["key"]: row for row in api.get("/api/memory/long-term/").json()["results"]}
    assert listed["home_city"]["source_run"] == str(result.run.pk)
    assert listed["home_city"]["source_session"] == str(chat_session.pk)
    assert (listed["home_city"]["source"], listed["home_city"]["source_last_seq"]) == ("model", last)

    page = signed_in(operator).get("/memory/").content.decode()
    assert (
        f'Written by the model from <a href="/chat/{chat_session.pk}/#m{last}">this conversation, message {last}</a>'
        f" · run <code>{str(result.run.pk)[:8]}</code>"
    ) in page


def test_a_whole_day_episode_lists_its_conversations_and_the_memory_page_links_them(
    chat_session: AgentSession, operator: User
) -> None:
    second = session_create(owner=operator, title="Trip planning", route_alias=chat_session.route.alias)
    for session, text in [(chat_session, "tea talk"), (second, "train times"), (second, "hotel near the station")]:
        turn_run(session_id=session.pk, user_text=text)
    elsewhere = session_create(owner=plain_user("eve"), route_alias=chat_session.route.alias)
    turn_run(session_id=elsewhere.pk, user_text="eve's own day")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    Message.objects.update(created=old)

    outcomes = episodes_write(day=old.date())

    mine = next(o.episode for o in outcomes if o.owner_id == operator.pk)
    assert mine is not None
    assert mine.session_refs == [
        {"session": str(chat_session.pk), "first_seq": 1, "last_seq": 2},
        {"session": str(second.pk), "first_seq": 1, "last_seq": 4},
    ]
    api = APIClient()
    api.force_authenticate(user=operator)
    listed = api.get("/api/memory/episodes/").json()["results"]
    assert [row["session_refs"] for row in listed] == [mine.session_refs]

    page = signed_in(operator).get("/memory/").content.decode()
    assert (
        f'Conversations: <a href="/chat/{chat_session.pk}/#m1">test session (messages 1\N{EN DASH}2)</a> · '
        f'<a href="/chat/{second.pk}/#m1">Trip planning (messages 1\N{EN DASH}4)</a>'
    ) in page
    assert str(elsewhere.pk) not in page


def test_an_episodes_session_refs_are_checked_when_written_through_the_api(
    chat_session: AgentSession, api: APIClient
) -> None:
    turn_run(session_id=chat_session.pk, user_text="hello")
    elsewhere = session_create(owner=plain_user("eve"), route_alias=chat_session.route.alias)
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()

    def post(**body: object) -> tuple[int, dict[str, Any]]:
        response = api.post("/api/memory/episodes/", {"day": day, "summary": "a day", **body}, format="json")
        return response.status_code, response.json()

    ref = {"session": str(chat_session.pk), "first_seq": 1, "last_seq": 2}
    status, body = post(session_refs=[ref])
    assert (status, body["session_refs"]) == (201, [ref])
    status, body = post(session_refs=[{**ref, "session": str(elsewhere.pk)}])
    assert (status, body["detail"]) == (404, f"session_refs[0].session: no session {elsewhere.pk}")
    status, body = post(session_refs=[{**ref, "last_seq": 9}])
    assert (status, body["detail"]) == (400, "session_refs[0].last_seq: 9 is past the session's last message (#2)")
    status, body = post(session=str(chat_session.pk), session_refs=[ref])
    assert status == 400
    assert body["fields"] == {
        "session_refs": ["only a whole-day episode lists sessions; a session's episode gives first_seq/last_seq"]
    }


def test_the_memory_page_says_why_upkeep_failed_until_it_succeeds(replay_route: ModelRoute, operator: User) -> None:
    failing_summary_route()
    session = long_session(small_route(replay_route))
    assert session_compact(session_id=session.pk).outcome == "failed"

    page = signed_in(operator).get("/memory/").content.decode()
    assert "<h2>Upkeep that failed</h2>" in page
    assert re.search(
        rf'<td>Compaction \(failed\)</td><td><a href="/chat/{session.pk}/">a+…</a></td>'
        r'<td>[^<]+</td><td style="white-space:pre-wrap">cheap: overloaded</td>',
        page,
    )
    assert "Upkeep that failed" not in signed_in(plain_user("eve")).get("/memory/").content.decode()

    memory_set(summary_route="small")
    assert session_compact(session_id=session.pk).outcome == "written"
    assert "Upkeep that failed" not in signed_in(operator).get("/memory/").content.decode()
