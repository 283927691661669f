"""Fixtures for the memory tests."""

from __future__ import annotations

import pytest

from core.conversation.services import message_append
from core.models import AgentSession


@pytest.fixture
def talked_session(chat_session: AgentSession) -> AgentSession:
    """The chat session with four messages (#1 user, #2 assistant, #3 user, #4 assistant)."""
    for role, content in [("user", "hi"), ("assistant", "hello"), ("user", "coffee?"), ("assistant", "sure")]:
        message_append(session_id=chat_session.id, role=role, content=content, token_count=10)
    chat_session.refresh_from_db()
    return chat_session
