"""What the admin shows, without a browser: token-count sources in words, times to the second,
costs without trailing zeros, and inline rows on a session page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.conversation.services import message_append
from core.models import AgentSession
from telemetry.admin import usd_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def test_session_page_says_reported_or_estimated_and_shows_seconds(
    admin_client: Client, chat_session: AgentSession
) -> None:
    message_append(session_id=chat_session.pk, role="user", content="hi")
    message_append(session_id=chat_session.pk, role="assistant", content="hello", token_count=9)

    page = admin_client.get(f"/admin/core/agentsession/{chat_session.pk}/change/").content.decode()

    group = page[page.index('id="messages-group"') :]
    group = group[: group.index("</fieldset>")]
    cells = re.findall(r'<td class="field-token_source">\s*<p>(\w+)</p>', group)
    assert cells == ["reported", "estimated"], cells
    assert "icon-no" not in group
    assert "icon-yes" not in group
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", group), "times are shown without seconds"
    assert "core/conversation-admin.css" in page


def test_message_changelist_says_where_the_token_count_came_from(
    admin_client: Client, chat_session: AgentSession
) -> None:
    message_append(session_id=chat_session.pk, role="user", content="hi")
    page = admin_client.get("/admin/core/message/").content.decode()
    assert re.search(r'<td class="field-token_source">estimated</td>', page), page[-3000:]


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "unpriced"), ("0E-12", "0"), ("7.500000000000", "7.5"), ("0.000000420000", "0.00000042")],
)
def test_costs_are_shown_exactly_without_trailing_zeros(value: str | None, text: str) -> None:
    from decimal import Decimal

    assert usd_text(None if value is None else Decimal(value)) == text
