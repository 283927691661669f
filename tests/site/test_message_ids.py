"""Every message response carries the message's `id`, the key other endpoints (attachments) ask for."""

from __future__ import annotations

from rest_framework.test import APIClient

from core.models import AgentSession, Message
from runtime.turns import turn_execute


def test_message_id_in_append_list_restore_and_turn_responses(api: APIClient, chat_session: AgentSession) -> None:
    base = f"/api/sessions/{chat_session.id}/"
    appended = api.post(f"{base}messages/", {"role": "user", "content": "first"}, format="json")
    assert appended.status_code == 201, appended.json()
    stored = Message.objects.get(session=chat_session, seq=1)
    assert appended.json()["id"] == stored.pk

    turn = api.post(f"{base}turns/", {"text": "hello"}, format="json")
    assert turn.status_code == 202, turn.json()
    accepted = turn.json()["message"]  # the user message the queued run answers
    assert accepted["id"] == Message.objects.get(session=chat_session, seq=accepted["seq"]).pk
    turn_execute(run_id=turn.json()["run"]["id"])  # what a worker does with it

    ids = dict(Message.objects.filter(session=chat_session).values_list("seq", "pk"))
    listed = api.get(f"{base}messages/").json()["results"]
    assert {m["seq"]: m["id"] for m in listed} == ids
    restored = api.get(f"{base}restore/").json()["messages"]
    assert {m["seq"]: m["id"] for m in restored} == ids
