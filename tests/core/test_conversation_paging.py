"""Message pages and restore are bounded in bytes, not only in count.

A page holds messages until their sizes (`message_size_bytes`: content and parts in UTF-8 plus a
fixed allowance for the other fields) would pass `AGENTCHAT_MESSAGE_PAGE_BYTES`; a message larger
than the whole budget is a page of its own. Restore answers the checkpoint and the FIRST page of
the tail, with `next` pointing at the message list for the rest. Following `next` returns every
message exactly once, whatever the sizes, and every response body stays within the budget plus
one message.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import DjangoAssertNumQueries, Settings
from rest_framework.test import APIClient

from core.conversation.selectors import (
    MESSAGE_PAGE_MAX_COUNT,
    message_size_bytes,
    messages_page,
    session_restore,
)
from core.conversation.services import checkpoint_create, message_append, session_leaf_set
from core.models import AgentSession, Message

pytestmark = pytest.mark.django_db

BUDGET = 64 * 1024
# The page's own JSON around its messages: {"next": "http://testserver/api/sessions/<id>/messages/?…", "results": []}
ENVELOPE_BYTES = 512


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=User.objects.create(username="op", is_staff=True, is_superuser=True))
    return client


@pytest.fixture(autouse=True)
def small_budget(settings: Settings) -> None:
    settings.AGENTCHAT_MESSAGE_PAGE_BYTES = BUDGET


def _fill_large(session: AgentSession, count: int, *, seed: int = 7) -> list[int]:
    """`count` messages of 1 to 30 KiB (one of them, the 10th, larger than the whole budget); their sizes."""
    rng = random.Random(seed)
    sizes = []
    for n in range(count):
        length = BUDGET + 5_000 if n == 9 else rng.randint(1_024, 30 * 1_024)
        parts: list[Any] = []
        if n % 7 == 3:
            parts = [{"type": "tool_call", "id": f"call-{n}", "name": "search", "arguments": {"q": "é" * 300}}]
        result = message_append(session_id=session.id, role="assistant", content=f"{n:05d}" + "x" * length, parts=parts)
        sizes.append(message_size_bytes(result.record))
    return sizes


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def _follow(api: APIClient, url: str) -> tuple[list[int], list[dict[str, Any]]]:
    """Every page from `url` on: the seqs in order and, per page, its body size and its messages' sizes."""
    seqs: list[int] = []
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None:
        response = api.get(next_url)
        assert response.status_code == 200, response.content
        body = response.json()
        messages = Message.objects.filter(seq__in=[m["seq"] for m in body["results"]])
        pages.append(
            {
                "bytes": len(response.content),
                "sizes": [message_size_bytes(m) for m in messages],
                "largest_json": max(
                    (len(json.dumps(m, ensure_ascii=False).encode()) for m in body["results"]), default=0
                ),
                "count": len(body["results"]),
            }
        )
        seqs += [m["seq"] for m in body["results"]]
        next_url = body["next"]
        assert len(pages) <= 200, "paging does not end"
    return seqs, pages


def _assert_bounded(pages: list[dict[str, Any]]) -> None:
    for page in pages:
        # Within the budget, or a single message larger than it, alone on its page.
        assert sum(page["sizes"]) <= BUDGET or page["count"] == 1, page
        # The response body: at most the budget plus one message, plus the page's envelope.
        assert page["bytes"] <= BUDGET + page["largest_json"] + ENVELOPE_BYTES, page


def test_message_list_pages_stay_within_the_byte_budget_and_return_every_message_once(
    api: APIClient, chat_session: AgentSession
) -> None:
    sizes = _fill_large(chat_session, 60)
    assert sum(sizes) > 10 * BUDGET
    seqs, pages = _follow(api, f"/api/sessions/{chat_session.id}/messages/")
    assert seqs == list(range(1, 61))
    _assert_bounded(pages)
    assert len(pages) >= 10
    # The message larger than the budget came back, alone.
    assert [page["count"] for page in pages if max(page["sizes"]) > BUDGET] == [1]
    # The last page says so: no `next`.
    assert api.get(f"/api/sessions/{chat_session.id}/messages/?after_seq=60").json() == {"next": None, "results": []}


def test_page_size_still_caps_the_count_and_next_keeps_it(api: APIClient, chat_session: AgentSession) -> None:
    for n in range(7):
        message_append(session_id=chat_session.id, role="user", content=f"small {n}")
    url = f"/api/sessions/{chat_session.id}/messages/"
    first = api.get(f"{url}?page_size=3").json()
    assert [m["seq"] for m in first["results"]] == [1, 2, 3]
    assert first["next"] == f"http://testserver{url}?after_seq=3&page_size=3"
    seqs, _ = _follow(api, f"{url}?page_size=3")
    assert seqs == list(range(1, 8))
    response = api.get(f"{url}?page_size={MESSAGE_PAGE_MAX_COUNT + 1}")
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "page_size": [f"Ensure this value is less than or equal to {MESSAGE_PAGE_MAX_COUNT}."]
    }


def test_restore_answers_the_checkpoint_and_the_newest_page_then_next_pages_the_older_rest(
    api: APIClient, chat_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    _fill_large(chat_session, 50)
    checkpoint_create(session_id=chat_session.id, through_seq=5, reason="manual", summary="first five")
    url = f"/api/sessions/{chat_session.id}/restore/"
    # 1: the session joined to its route, provider and latest checkpoint, 2: that checkpoint is on the
    # active path, 3: the newest page of the path after it, walked from the leaf.
    with django_assert_num_queries(3):
        response = api.get(url)
    body = response.json()
    assert body["checkpoint"]["through_seq"] == 5
    newest = [m["seq"] for m in body["messages"]]
    assert newest[-1] == 50
    assert body["next"] == (
        f"http://testserver/api/sessions/{chat_session.id}/path/?before_seq={newest[0]}&after_seq=5"
    )
    sizes = [message_size_bytes(m) for m in Message.objects.filter(seq__in=newest)]
    assert sum(sizes) <= BUDGET or len(newest) == 1
    assert len(response.content) <= len(json.dumps(body["checkpoint"]).encode()) + BUDGET + max(sizes) + ENVELOPE_BYTES
    older, pages = _follow(api, body["next"])
    _assert_bounded(pages)
    assert sorted(older + newest) == list(range(6, 51))
    assert len(older + newest) == 45


def test_restore_of_a_log_within_the_budget_is_whole_with_no_next(api: APIClient, chat_session: AgentSession) -> None:
    for n in range(4):
        message_append(session_id=chat_session.id, role="user", content=f"short {n}")
    body = api.get(f"/api/sessions/{chat_session.id}/restore/").json()
    assert ([m["seq"] for m in body["messages"]], body["next"]) == ([1, 2, 3, 4], None)


def test_a_message_larger_than_the_budget_is_a_page_of_its_own(chat_session: AgentSession) -> None:
    message_append(session_id=chat_session.id, role="user", content="y" * (BUDGET * 2))
    message_append(session_id=chat_session.id, role="user", content="small")
    session = AgentSession.objects.get(pk=chat_session.pk)
    page = messages_page(session=session)
    assert ([m.seq for m in page.messages], page.next_after_seq) == ([1], 1)
    page = messages_page(session=session, after_seq=1)
    assert ([m.seq for m in page.messages], page.next_after_seq) == ([2], None)
    restored = session_restore(session_id=chat_session.id)
    assert ([m.seq for m in restored.messages], restored.next_before_seq) == ([2], 2)
    session_leaf_set(session_id=chat_session.id, seq=1)
    restored = session_restore(session_id=chat_session.id)
    assert ([m.seq for m in restored.messages], restored.next_before_seq) == ([1], None)


def test_the_sql_size_measure_matches_message_size_bytes(chat_session: AgentSession) -> None:
    """The page's cut is computed in SQL; it must agree with the Python measure (multibyte text included)."""
    contents = ["ascii", "é" * 1_000, "中文 🚀" * 500, "z" * 3_000]
    for content in contents:
        message_append(
            session_id=chat_session.id,
            role="assistant",
            content=content,
            parts=[{"type": "tool_result", "tool_call_id": "c", "content": content[:50], "is_error": False}],
        )
    sizes = [message_size_bytes(m) for m in Message.objects.order_by("seq")]
    session = AgentSession.objects.get(pk=chat_session.pk)
    for n in range(1, len(sizes) + 1):
        # A budget of exactly the first n sizes holds exactly n messages; one byte less holds n - 1 (at least 1).
        exact = messages_page(session=session, budget_bytes=sum(sizes[:n]))
        assert len(exact.messages) == n
        short = messages_page(session=session, budget_bytes=sum(sizes[:n]) - 1)
        assert len(short.messages) == max(n - 1, 1)
