"""`memory/0011_memory_tally_remembered` counts each account's memories again without the forgotten
ones, and changes no memory."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from memory.models import LongTermMemory, MemoryTally
from tests.memory.test_owner_migration import migrate, migrated_back
from tests.owners import op_user, plain_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.persistence]

BEFORE = [("memory", "0010_episode_session_refs")]


def old_memory(owner: User, content: str, *, forgotten: bool) -> None:
    """A memory, forgotten or not, as the code before the migration stored it."""
    forgotten_at = "2026-11-03 00:00:00" if forgotten else None
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO memory_longtermmemory (kind, content, importance, pinned, created, updated, owner_id, "
            "source, forgotten_at) VALUES ('fact', %s, 3, %s, %s, %s, %s, 'user', %s)",
            [content, False, "2026-11-02 00:00:00", "2026-11-02 00:00:00", owner.pk, forgotten_at],
        )


def tallies() -> dict[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT owner_id, long_term FROM memory_memorytally")
        return {int(owner): int(count) for owner, count in cursor.fetchall()}


def test_the_tally_leaves_forgotten_memories_out_and_every_memory_is_kept() -> None:
    with migrated_back(BEFORE):  # the schema before the refill, then the latest again
        me, eve, bob = op_user(), plain_user("eve"), plain_user("bob")
        for content, forgotten in [("a", False), ("b", True), ("c", False), ("d", True)]:
            old_memory(me, content, forgotten=forgotten)
        old_memory(eve, "only forgotten", forgotten=True)
        old_memory(bob, "remembered", forgotten=False)
        with connection.cursor() as cursor:  # what the services before the fix kept: forgotten ones counted
            cursor.execute(
                "INSERT INTO memory_memorytally (owner_id, long_term) VALUES (%s, 4), (%s, 1)", [me.pk, eve.pk]
            )  # bob's row is missing, as after a bulk load
        assert tallies() == {me.pk: 4, eve.pk: 1}

        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

        assert tallies() == {me.pk: 2, eve.pk: 0, bob.pk: 1}
        assert MemoryTally.objects.count() == 3
        stored = {(m.owner_id, m.content, m.forgotten_at is not None) for m in LongTermMemory.objects.all()}
        assert stored == {
            (me.pk, "a", False),
            (me.pk, "b", True),
            (me.pk, "c", False),
            (me.pk, "d", True),
            (eve.pk, "only forgotten", True),
            (bob.pk, "remembered", False),
        }


def test_going_back_counts_forgotten_memories_again() -> None:
    with migrated_back(BEFORE):  # the schema before the refill, then the latest again
        me = op_user()
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
        old_memory(me, "a", forgotten=False)
        old_memory(me, "b", forgotten=True)
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO memory_memorytally (owner_id, long_term) VALUES (%s, 1)", [me.pk])
        migrate(BEFORE)
        assert tallies() == {me.pk: 2}
