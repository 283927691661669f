"""Memory is sent to a provider with every prompt: its tiers keep nothing shaped like a credential.

Chat messages are kept exactly as typed; only what memory stores is checked.
"""

from __future__ import annotations

import datetime

import pytest
from rest_framework.test import APIClient

from core.conversation.services import message_append
from core.errors import InvalidInputError
from core.models import AgentSession, Message
from memory.models import AttachmentSummary, DailyEpisode, LongTermMemory
from memory.services import attachment_record, episode_upsert, memory_update, memory_write
from tests.owners import op_user

pytestmark = pytest.mark.django_db

# Built at run time, so that the repository's secret scan finds nothing here.
KEY = "sk" + "-proj-" + "RECOGNISABLE" + "x7Qp2LmZ9aB4"
HINT = "looks like a credential (sk-pr…); store where to find it, not the value"


def refused(call: object, field: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidInputError) as caught:
        call()
    assert caught.value.fields == {field: [HINT]}
    assert "RECOGNISABLE" not in str(caught.value)


def test_long_term_memory_refuses_a_key_in_content_or_key() -> None:
    refused(lambda: memory_write(owner=op_user(), kind="fact", content=f"My OpenAI key is {KEY}"), "content")
    refused(lambda: memory_write(owner=op_user(), kind="fact", content="where the key is", key=KEY), "key")
    memory = memory_write(
        owner=op_user(), kind="fact", content="The OpenAI key is in the OPENAI_API_KEY variable"
    ).memory
    refused(lambda: memory_update(memory_id=memory.pk, content=f"now it is {KEY}"), "content")
    assert list(LongTermMemory.objects.values_list("content", flat=True)) == [
        "The OpenAI key is in the OPENAI_API_KEY variable"
    ]


def test_episodes_and_attachment_summaries_refuse_a_key(chat_session: AgentSession) -> None:
    refused(
        lambda: episode_upsert(
            owner=op_user(),
            day=datetime.date(2024, 5, 1),
            timezone_name="UTC",
            summary=f"set token {KEY}",
            source="manual",
        ),
        "summary",
    )
    message = message_append(session_id=chat_session.id, role="user", content=f"here: {KEY}").record
    refused(
        lambda: attachment_record(
            session_id=chat_session.id,
            message_id=message.pk,
            sha256="c" * 64,
            kind="file",
            display_name=".env",
            mime_type="text/plain",
            size_bytes=10,
            summary=f"OPENAI_API_KEY={KEY}",
        ),
        "summary",
    )
    assert not DailyEpisode.objects.exists()
    assert not AttachmentSummary.objects.exists()
    # The chat message itself is kept as typed.
    assert Message.objects.get(pk=message.pk).content == f"here: {KEY}"


def test_the_api_answers_400_naming_the_field(api: APIClient) -> None:
    response = api.post("/api/memory/long-term/", {"kind": "fact", "content": f"My key is {KEY}"}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"content": [HINT]}
    assert "RECOGNISABLE" not in response.content.decode()
