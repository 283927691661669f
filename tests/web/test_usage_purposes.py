"""The usage page shows what every purpose and every agent spent, the signed-in user's only."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from core.models import AgentSession
from telemetry.services import usage_record
from tests.owners import plain_user
from tests.web.test_pages import signed_in

pytestmark = pytest.mark.django_db


def test_the_usage_page_shows_every_purpose_and_every_agent(chat_session: AgentSession, operator: User) -> None:
    calls = [("chat", "writer", 30, 12), ("chat", None, 5, 5), ("compaction", None, 100, 20), ("facts", None, 8, 2)]
    for index, (purpose, agent, given, taken) in enumerate(calls):
        usage_record(
            owner=operator,
            request_id=f"web-purpose-{index}",
            session_id=chat_session.pk,
            provider="replay",
            model="replay-1",
            input_tokens=given,
            output_tokens=taken,
            purpose=purpose,
            agent=agent,
        )
    usage_record(
        owner=plain_user("eve"), request_id="eve-1", provider="replay", model="replay-1", input_tokens=999, agent="spy"
    )

    body = signed_in(operator).get("/usage/").content.decode()

    purposes = re.search(r'aria-label="Usage by purpose">.*?<tbody>(.*?)</tbody>', body, re.S)
    assert purposes is not None
    assert re.findall(r"<tr><td>(\w+)</td><td>(\d+)</td><td>(\d+)</td>", purposes.group(1)) == [
        ("Chat", "2", "52"),
        ("Compaction", "1", "120"),
        ("Episode", "0", "0"),
        ("Facts", "1", "10"),
        ("Delegate", "0", "0"),
    ]
    agents = re.search(r'aria-label="Usage by agent">.*?<tbody>(.*?)</tbody>', body, re.S)
    assert agents is not None
    assert re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td>", agents.group(1)) == [("writer", "1", "42")]
    assert '<rect class="bar" ' in body
    assert "<title>Compaction: 120 tokens</title>" in body
    assert "<title>writer: 42 tokens</title>" in body
    assert "<strong>Tokens per purpose (all time)</strong> — total 182 tokens" in body
    assert "spy" not in body
