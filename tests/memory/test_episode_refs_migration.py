"""`memory/0010_episode_session_refs` keeps every episode and reads the conversations an upkeep
episode named in its text ("Sessions: <uuid> #1-#4; …") into its structured `session_refs`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.conversation.services import session_create
from core.models import ModelRoute
from memory.models import DailyEpisode
from tests.memory.test_owner_migration import migrate, migrated_back
from tests.owners import op_user, plain_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.persistence]

BEFORE = [("memory", "0008_memory_forgotten")]


@pytest.fixture
def before_refs() -> Iterator[None]:
    """The schema as it was before `session_refs`, then (whatever the test did) the latest again."""
    with migrated_back(BEFORE):
        yield


def old_episode(owner_id: int, day: str, summary: str, source: str) -> None:
    """A whole-day episode as the code before the migration stored it (no `session_refs` column)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO memory_dailyepisode (day, timezone, owner_id, summary, token_count, source, created, updated) "
            "VALUES (%s, 'UTC', %s, %s, 7, %s, %s, %s)",
            [day, owner_id, summary, source, "2026-11-02 00:00:00", "2026-11-02 00:00:00"],
        )


def test_upkeep_episodes_get_their_sessions_from_their_text_and_keep_it(
    replay_route: ModelRoute, before_refs: None
) -> None:
    mine = session_create(owner=op_user(), route_alias=replay_route.alias)
    also_mine = session_create(owner=op_user(), route_alias=replay_route.alias)
    theirs = session_create(owner=plain_user("eve"), route_alias=replay_route.alias)
    written = f"Tea and trains.\n\nSessions: {mine.pk} #1-#4; {also_mine.pk} #2-#6; {theirs.pk} #1-#2"
    old_episode(op_user().pk, "2026-11-01", written, "compactor")
    by_hand = f"Written by hand.\n\nSessions: {mine.pk} #1-#4"
    old_episode(op_user().pk, "2026-10-31", by_hand, "manual")

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    episodes = {str(e.day): e for e in DailyEpisode.objects.all()}
    assert sorted(episodes) == ["2026-10-31", "2026-11-01"]
    upkeep = episodes["2026-11-01"]
    # Another user's session is never referred to from this user's memory.
    assert upkeep.session_refs == [
        {"session": str(mine.pk), "first_seq": 1, "last_seq": 4},
        {"session": str(also_mine.pk), "first_seq": 2, "last_seq": 6},
    ]
    assert (upkeep.summary, upkeep.token_count, upkeep.source) == (written, 7, "compactor")
    assert (episodes["2026-10-31"].summary, episodes["2026-10-31"].session_refs) == (by_hand, [])
