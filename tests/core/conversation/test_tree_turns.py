"""Regenerate and edit make branches through the turns entry; the turn loop and `chat` follow the stored leaf."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from core.conversation.selectors import path_page, session_get
from core.conversation.services import run_create, session_create, session_leaf_set
from core.models import AgentSession, Message, RunStatus, TraceEvent
from runtime.turns import turn_execute, turn_run
from tests.owners import op_user
from tests.procs import run_manage

pytestmark = pytest.mark.django_db


def _path(session: AgentSession) -> list[str]:
    leaf = session_get(session_id=session.pk).leaf
    return [m.content for m in path_page(session_id=session.pk, start_seq=leaf).messages]


def test_regenerate_appends_a_sibling_reply_and_moves_the_leaf(api: APIClient, chat_session: AgentSession) -> None:
    turn_run(session_id=chat_session.pk, user_text="first question")
    answer = api.post(f"/api/sessions/{chat_session.pk}/messages/2/regenerate/", format="json")
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert body["message"]["seq"] == 1  # the user message the new reply answers
    assert body["run"]["status"] == "queued"
    # What the worker does with the queued run (the API enqueued it with the regenerated seq).
    result = turn_execute(run_id=body["run"]["id"], regenerates_seq=2)
    assert result.run.status == RunStatus.COMPLETED
    assert [m.seq for m in result.messages] == [3]
    started = TraceEvent.objects.get(run_id=result.run.pk, type="run_started")
    assert (started.payload["message_seq"], started.payload["regenerates_seq"]) == (1, 2)
    assert session_get(session_id=chat_session.pk).leaf == 3
    siblings = api.get(f"/api/sessions/{chat_session.pk}/messages/3/siblings/").json()
    assert (siblings["position"], siblings["count"]) == (2, 2)
    assert _path(chat_session) == ["first question", "replay: first question"]


def test_edit_appends_a_sibling_user_message_and_answers_it(api: APIClient, chat_session: AgentSession) -> None:
    turn_run(session_id=chat_session.pk, user_text="first")
    turn_run(session_id=chat_session.pk, user_text="second")
    answer = api.post(f"/api/sessions/{chat_session.pk}/messages/3/edit/", {"text": "second, edited"}, format="json")
    assert answer.status_code == 202, answer.json()
    assert answer.json()["message"]["seq"] == 5
    result = turn_execute(run_id=answer.json()["run"]["id"])
    assert [m.seq for m in result.messages] == [5, 6]
    # The model saw the edited branch only: its reply echoes the edited text.
    assert _path(chat_session) == ["first", "replay: first", "second, edited", "replay: second, edited"]
    parents = dict(Message.objects.filter(session=chat_session).values_list("seq", "parent__seq"))
    assert (parents[3], parents[5]) == (2, 2)


@pytest.mark.fault
def test_regenerate_and_edit_wait_for_an_open_run(api: APIClient, chat_session: AgentSession) -> None:
    turn_run(session_id=chat_session.pk, user_text="first")
    run_create(session_id=chat_session.pk)
    base = f"/api/sessions/{chat_session.pk}/messages"
    for answer in (api.post(f"{base}/2/regenerate/"), api.post(f"{base}/1/edit/", {"text": "x"}, format="json")):
        assert answer.status_code == 409
        assert answer.json()["fields"] == {
            "session": ["has a run in progress; wait for it to finish or cancel it first"]
        }
    assert Message.objects.filter(session=chat_session).count() == 2


@pytest.mark.fault
def test_regenerate_of_a_user_message_and_edit_of_a_reply_are_refused(
    api: APIClient, chat_session: AgentSession
) -> None:
    turn_run(session_id=chat_session.pk, user_text="first")
    base = f"/api/sessions/{chat_session.pk}/messages"
    refused = api.post(f"{base}/1/regenerate/")
    assert (refused.status_code, refused.json()["fields"]) == (
        400,
        {"seq": ["message #1 is a user message; regenerate an assistant reply"]},
    )
    assert api.post(f"{base}/2/edit/", {"text": "x"}, format="json").status_code == 400
    assert api.post(f"{base}/9/edit/", {"text": "x"}, format="json").status_code == 404


def test_the_next_turn_continues_the_switched_branch(chat_session: AgentSession) -> None:
    turn_run(session_id=chat_session.pk, user_text="a")
    turn_run(session_id=chat_session.pk, user_text="b")
    session_leaf_set(session_id=chat_session.pk, seq=2)
    result = turn_run(session_id=chat_session.pk, user_text="c")
    assert result.messages[0].parent_id == Message.objects.get(session=chat_session, seq=2).pk
    assert _path(chat_session) == ["a", "replay: a", "c", "replay: c"]


@pytest.mark.persistence
@pytest.mark.django_db(transaction=True)
def test_a_stored_switch_holds_for_the_chat_command_in_a_new_process(replay_route: object) -> None:
    """A new process (as after a restart) reads the stored leaf: LibreChat #3278 and Open WebUI #29299 cannot recur."""
    session = session_create(owner=op_user(), title="t", route_alias="replay")
    turn_run(session_id=session.pk, user_text="a")
    turn_run(session_id=session.pk, user_text="b")
    session_leaf_set(session_id=session.pk, seq=2)
    done = run_manage(["chat", str(session.pk), "c", "--user", op_user().username])
    assert done.returncode == 0, done.stderr
    assert _path(session) == ["a", "replay: a", "c", "replay: c"]
    assert Message.objects.filter(session=session).count() == 6
