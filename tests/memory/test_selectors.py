"""Cheap counts per tier for the bootstrap, and the list selectors' filters."""

from __future__ import annotations

import datetime

import pytest
from pytest_django import DjangoAssertNumQueries

from core.models import AgentSession, Message
from memory.selectors import MemoryCounts, episode_list, episodes_recent, memory_counts
from memory.services import attachment_record, episode_upsert, memory_write
from tests.owners import op_user

pytestmark = pytest.mark.django_db


def test_counts_of_an_empty_store(db: None, django_assert_num_queries: DjangoAssertNumQueries) -> None:
    # One statement: long-term total and pinned, episodes and the latest day, attachments and contents.
    with django_assert_num_queries(1):
        counts = memory_counts()
    assert counts == MemoryCounts(
        long_term=0, pinned=0, episodes=0, latest_episode_day=None, attachments=0, attachment_contents=0
    )


def test_counts_per_tier(talked_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries) -> None:
    memory_write(owner=op_user(), kind="fact", content="a", pinned=True)
    memory_write(owner=op_user(), kind="fact", content="b")
    memory_write(owner=op_user(), kind="fact", content="c", pinned=True)
    episode_upsert(owner=op_user(), day=datetime.date(2025, 5, 1), timezone_name="UTC", summary="x", source="manual")
    episode_upsert(
        owner=op_user(),
        day=datetime.date(2025, 5, 3),
        timezone_name="UTC",
        summary="y",
        source="manual",
        session_id=talked_session.id,
    )
    for seq in (1, 2):
        attachment_record(
            session_id=talked_session.id,
            message_id=Message.objects.get(session=talked_session, seq=seq).pk,
            sha256="d" * 64,
            kind="image",
            display_name="cat.png",
            mime_type="image/png",
            size_bytes=10,
        )
    with django_assert_num_queries(1):  # the same single statement
        counts = memory_counts()
    assert counts == MemoryCounts(
        long_term=3,
        pinned=2,
        episodes=2,
        latest_episode_day=datetime.date(2025, 5, 3),
        attachments=2,
        attachment_contents=1,
    )


def test_recent_episodes_are_the_sessions_and_whole_day_ones(talked_session: AgentSession) -> None:
    other = AgentSession.objects.create(owner=op_user(), route=talked_session.route)
    for day, session in [(1, talked_session), (2, None), (3, other), (4, talked_session)]:
        episode_upsert(
            owner=op_user(),
            day=datetime.date(2025, 6, day),
            timezone_name="UTC",
            summary=f"d{day}",
            source="manual",
            session_id=session.pk if session else None,
        )
    assert [e.summary for e in episodes_recent(session_id=talked_session.id, owner_id=op_user().pk, limit=10)] == [
        "d4",
        "d2",
        "d1",
    ]
    assert [e.summary for e in episodes_recent(session_id=talked_session.id, owner_id=op_user().pk, limit=2)] == [
        "d4",
        "d2",
    ]
    assert [e.summary for e in episode_list(whole_day=False)] == ["d4", "d3", "d1"]
    assert [e.summary for e in episode_list(session_id=other.pk)] == ["d3"]
