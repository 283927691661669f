"""What memory upkeep leaves is traceable: a fact names the run and the message it came from, an
episode the conversations it covers, a failed summary its reason; the API and the pages show them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from core.config.contracts import ConfigDocument, MemoryConfig
from core.config.services import config_document_apply
from core.models import AgentSession, ModelRoute, Provider, ProviderKind
from memory.models import LongTermMemory
from memory.services import memory_write
from runtime.turns import turn_run
from runtime.upkeep import facts_extract
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
    config_document_apply(
        document=ConfigDocument(memory=MemoryConfig(extract_facts=True, summary_route="scripted")), prune=False
    )
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
