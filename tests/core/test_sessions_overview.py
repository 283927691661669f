"""`sessions_counts` and `sessions_recent`: fixed SQL held to what the ORM and the Python rule give."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from django.db.models import Model
from pytest_django.fixtures import DjangoAssertNumQueries, Settings

from core.conversation.selectors import (
    RecentSession,
    compaction_margin,
    context_fullness_percent,
    needs_compaction,
    session_needs_compaction,
    sessions_counts,
    sessions_needing_compaction_count,
    sessions_recent,
)
from core.conversation.services import session_archive, session_create
from core.models import AgentSession, ModelRoute, SessionStatus
from tests.owners import op_user

pytestmark = pytest.mark.django_db


def _fields(instance: Model) -> dict[str, Any]:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


@pytest.fixture
def sessions(replay_route: ModelRoute) -> list[AgentSession]:
    """Sessions on two routes around the 80% boundary, one archived, with message counters."""
    big = ModelRoute.objects.create(
        alias="big",
        provider=replay_route.provider,
        model_id="replay-big",
        context_window_tokens=100_000,
        max_output_tokens=1_000,
    )
    made = []
    # (route, tokens, messages): 8,000-token window → 6,400 is exactly 80%.
    for route, tokens, messages in [
        (replay_route, 6_399, 3),
        (replay_route, 6_400, 5),
        (replay_route, 8_000, 1),
        (big, 79_999, 2),
        (big, 80_000, 0),
        (big, 10, 7),
    ]:
        session = session_create(owner=op_user(), title="", route_alias=route.alias)
        AgentSession.objects.filter(pk=session.pk).update(
            tokens_since_checkpoint=tokens, message_count=messages, last_seq=messages
        )
        made.append(session)
    session_archive(session_id=made[2].pk)  # full, but archived: never needs compaction
    return [AgentSession.objects.select_related("route").get(pk=item.pk) for item in made]


def test_the_rule_is_one_arithmetic_for_python_and_the_database() -> None:
    assert compaction_margin(6_400, 8_000, 80) == 0
    assert compaction_margin(6_399, 8_000, 80) < 0
    assert needs_compaction(SessionStatus.ACTIVE, 6_400, 8_000, 80) is True
    assert needs_compaction(SessionStatus.ARCHIVED, 8_000, 8_000, 80) is False


@pytest.mark.parametrize("threshold", [80, 50, 100])
def test_counts_agree_with_the_orm_and_the_python_rule(
    sessions: list[AgentSession], settings: Settings, threshold: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = threshold
    with django_assert_num_queries(1):
        counts = sessions_counts()
    assert counts.total == AgentSession.objects.count() == 6
    assert counts.active == AgentSession.objects.filter(status=SessionStatus.ACTIVE).count() == 5
    assert counts.messages == sum(item.message_count for item in sessions) == 18
    expected = sum(session_needs_compaction(item) for item in sessions)
    assert counts.needing_compaction == expected == sessions_needing_compaction_count()


def test_counts_follow_a_threshold_changed_at_run_time(sessions: list[AgentSession], settings: Settings) -> None:
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 80
    assert sessions_counts().needing_compaction == 2  # 6,400/8,000 and 80,000/100,000
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 10
    assert sessions_counts().needing_compaction == 4
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = 80
    assert sessions_counts().needing_compaction == 2


def test_counts_of_an_empty_store(db: None) -> None:
    counts = sessions_counts()
    assert (counts.total, counts.active, counts.needing_compaction, counts.messages) == (0, 0, 0, 0)


def _shown(session: AgentSession) -> RecentSession:
    """What a list shows of `session`, from the model instance and the Python rule."""
    return RecentSession(
        id=session.id,
        title=str(session),
        status=session.status,
        route=session.route.alias,
        agent=session.agent.name if session.agent is not None else None,
        team=session.team.name if session.team is not None else None,
        message_count=session.message_count,
        last_activity=session.updated,
        context_fullness_percent=context_fullness_percent(session),
        needs_compaction=session_needs_compaction(session),
    )


@pytest.mark.parametrize("threshold", [80, 50])
def test_recent_sessions_equal_the_orm_and_the_python_rule(
    sessions: list[AgentSession],
    settings: Settings,
    threshold: int,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    settings.AGENTCHAT_COMPACTION_THRESHOLD_PERCENT = threshold
    AgentSession.objects.filter(pk=sessions[1].pk).update(title="Named")
    ordered = AgentSession.objects.select_related("route", "agent", "team").order_by("-updated", "-id")
    expected = [_shown(session) for session in ordered[:4]]
    with django_assert_num_queries(1):
        recent = sessions_recent(limit=4)
    assert recent == expected
    for got in recent:
        assert type(got.id) is UUID
        assert got.last_activity.utcoffset() == expected[0].last_activity.utcoffset()
    owner = op_user()
    everything = sessions_recent(limit=10, owner_id=owner.pk)
    assert everything == [_shown(session) for session in ordered.filter(owner=owner)]
    assert "Named" in [item.title for item in everything]
    assert sessions_recent(limit=10, owner_id=owner.pk + 1000) == []


def test_recent_sessions_when_there_are_none(db: None) -> None:
    assert sessions_recent(limit=5) == []
