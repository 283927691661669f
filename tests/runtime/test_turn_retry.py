"""A turn retried with its `client_id` never asks the model twice for the same message."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from core.errors import ConflictError
from core.models import AgentSession, Message, Run, RunStatus
from runtime.turns import turn_run

pytestmark = pytest.mark.django_db


def roles(session: AgentSession) -> list[tuple[int, str]]:
    return list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "role"))


def test_retry_of_an_answered_turn_is_refused_and_writes_nothing(chat_session: AgentSession) -> None:
    turn_run(session_id=chat_session.pk, user_text="hello", client_id="ui-1")
    with pytest.raises(ConflictError) as caught:
        turn_run(session_id=chat_session.pk, user_text="hello", client_id="ui-1")
    assert caught.value.fields == {
        "client_id": [
            "'ui-1' already ran as message #1, which has a reply; read the messages after #1, "
            "or send a new message with a new client_id"
        ]
    }
    assert roles(chat_session) == [(1, "user"), (2, "assistant")]
    assert Run.objects.filter(session=chat_session).count() == 1


def test_retry_after_a_failed_turn_runs_the_model_again(chat_session: AgentSession) -> None:
    failed = turn_run(session_id=chat_session.pk, user_text="/error provider fell over", client_id="ui-2")
    assert failed.run.status == RunStatus.FAILED
    retried = turn_run(session_id=chat_session.pk, user_text="/error provider fell over", client_id="ui-2")
    # The user message is stored once; each attempt has its own run.
    assert retried.messages[0].seq == 1
    assert roles(chat_session) == [(1, "user")]
    assert list(Run.objects.filter(session=chat_session).values_list("status", flat=True)) == [
        RunStatus.FAILED,
        RunStatus.FAILED,
    ]


def test_retry_whose_message_is_still_last_completes_the_turn(chat_session: AgentSession) -> None:
    from core.conversation.services import message_append

    # A process stored the user message and stopped before it opened the run.
    message_append(session_id=chat_session.pk, role="user", content="hi again", client_id="ui-3")
    result = turn_run(session_id=chat_session.pk, user_text="hi again", client_id="ui-3")
    assert result.run.status == RunStatus.COMPLETED
    assert roles(chat_session) == [(1, "user"), (2, "assistant")]


def test_turn_api_retry_is_a_409_naming_the_client_id(api: APIClient, chat_session: AgentSession) -> None:
    url = f"/api/sessions/{chat_session.pk}/turns/"
    first = api.post(url, {"text": "hi", "client_id": "ui-4"}, format="json")
    assert first.status_code == 201, first.json()
    again = api.post(url, {"text": "hi", "client_id": "ui-4"}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    assert list(again.json()["fields"]) == ["client_id"]
    assert roles(chat_session) == [(1, "user"), (2, "assistant")]
