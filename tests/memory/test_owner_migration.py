"""The ownership migrations give the records made before accounts to the operator, and leave
memory's full-text search working: on SQLite, making `owner` NOT NULL rebuilds the memory table,
which drops its triggers, so `memory/0004_owners` creates them again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from memory.models import LongTermMemory
from memory.search import memory_search
from telemetry.models import UsageByUserDay
from telemetry.selectors import rollup_differences

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.persistence]

BEFORE = [
    ("core", "0008_config_version"),
    ("memory", "0003_foreign_key_indexes_covered"),
    ("telemetry", "0001_initial"),
]
TRIGGERS = ["memory_longtermmemory_fts_delete", "memory_longtermmemory_fts_insert", "memory_longtermmemory_fts_update"]


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@contextmanager
def migrated_back(targets: list[tuple[str, str]]) -> Iterator[None]:
    """The schema as it was at `targets`, then (whatever happened inside) the latest again."""
    migrate(targets)
    try:
        yield
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.fixture
def before_owners() -> Iterator[None]:
    """The schema as it was before ownership, then (whatever the test did) the latest again."""
    migrate(BEFORE)
    try:
        yield
    finally:
        latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
        migrate(latest)


def old_rows() -> None:
    """Rows written by the old schema's tables (no owner column yet), as an older main wrote them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO memory_longtermmemory (kind, content, key, importance, pinned, created, updated) "
            "VALUES ('fact', 'The upgrade keeps oolong tea notes', 'tea', 3, %s, %s, %s)",
            [False, "2025-01-01 00:00:00", "2025-01-01 00:00:00"],
        )
        cursor.execute(
            "INSERT INTO telemetry_usageevent (request_id, occurred_at, day, day_timezone, provider, model, "
            "input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, created) "
            "VALUES ('old-1', %s, '2025-01-01', 'UTC', 'replay', 'replay-1', 5, 0, 2, 0, 7, %s)",
            ["2025-01-01 00:00:00", "2025-01-01 00:00:00"],
        )


def sqlite_triggers() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'memory_longtermmemory' ORDER BY name"
        )
        return [row[0] for row in cursor.fetchall()]


def test_old_records_go_to_a_new_operator_and_search_still_works(
    before_owners: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTCHAT_OPERATOR_USERNAME", "keeper")
    old_rows()
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    keeper = User.objects.get(username="keeper")
    assert (keeper.is_superuser, keeper.is_staff, keeper.has_usable_password()) == (True, True, False)
    memory = LongTermMemory.objects.get(key="tea")
    assert memory.owner_id == keeper.pk
    if connection.vendor == "sqlite":
        assert sqlite_triggers() == TRIGGERS
    assert [hit.memory.key for hit in memory_search("oolong", owner_id=keeper.pk)] == ["tea"]
    # The triggers (or the generated column) keep indexing writes made after the migration.
    LongTermMemory.objects.filter(pk=memory.pk).update(content="Darjeeling instead")
    assert memory_search("oolong") == []
    assert [hit.memory.key for hit in memory_search("darjeeling")] == ["tea"]
    # The per-user daily rollup was filled from the old event (the raw insert left the older rollups
    # empty, which is theirs to report): its row equals the event.
    assert [d for d in rollup_differences() if d.rollup == "usage by user and day"] == []
    assert UsageByUserDay.objects.values_list("owner_id", "input_tokens", "event_count").get() == (keeper.pk, 5, 1)


def test_an_existing_operator_account_receives_the_records(before_owners: None) -> None:
    operator = User.objects.create_user(username="operator", password="an-existing-password-123")
    old_rows()
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert LongTermMemory.objects.get(key="tea").owner_id == operator.pk
    assert User.objects.get(username="operator").check_password("an-existing-password-123")
    assert User.objects.count() == 1


def test_an_empty_database_gets_no_account(before_owners: None) -> None:
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert not User.objects.exists()
    if connection.vendor == "sqlite":
        assert sqlite_triggers() == TRIGGERS
