"""What every append, event and checkpoint writes: no index that another index already covers.

A foreign key whose column leads another index has no index of its own (each one is a page more
written per row), `updated`, which every append moves, has one index only, and on SQLite the
message table has no AUTOINCREMENT (whose `sqlite_sequence` row is one more page per message).
Migrating back re-creates what the migrations dropped, under the original names.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.conversation.services import message_append, session_create
from core.models import AgentSession, Message
from tests.owners import op_user

pytestmark = pytest.mark.django_db

# (table, column): the foreign keys that rely on another index leading with their column.
COVERED = [
    ("core_message", "session_id"),
    ("core_checkpoint", "session_id"),
    ("core_run", "session_id"),
    ("core_traceevent", "run_id"),
    ("memory_attachmentsummary", "session_id"),
    ("memory_attachmentsummary", "message_id"),
    ("memory_dailyepisode", "session_id"),
]
DROPPED = {
    "core_message_session_id_45a7f8cc",
    "core_checkpoint_session_id_bb4d8ce7",
    "core_run_session_id_59eb8c02",
    "core_traceevent_run_id_043140ce",
    "memory_attachmentsummary_session_id_22454195",
    "memory_attachmentsummary_message_id_a9b35264",
    "memory_dailyepisode_session_id_0b0a88d6",
    "session_status_recent_idx",
}


def _indexes(table: str) -> dict[str, dict[str, Any]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {name: info for name, info in constraints.items() if info["index"] or info["unique"]}


def _all_index_names() -> set[str]:
    tables = {table for table, _ in COVERED} | {"core_agentsession"}
    return {name for table in tables for name in _indexes(table)}


@pytest.mark.parametrize(("table", "column"), COVERED)
def test_a_covered_foreign_key_has_no_index_of_its_own(table: str, column: str) -> None:
    indexes = _indexes(table)
    # A unique constraint on the column alone (the one open chat run per session, a partial one) is no FK index.
    assert not [name for name, info in indexes.items() if info["columns"] == [column] and not info["unique"]]
    assert [name for name, info in indexes.items() if info["columns"][0] == column and len(info["columns"]) > 1]


def test_updated_has_one_index() -> None:
    on_updated = [name for name, info in _indexes("core_agentsession").items() if "updated" in info["columns"]]
    assert on_updated == ["session_owner_recent_idx"]


def _message_table_sql() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'core_message'")
        row = cursor.fetchone()
    assert row is not None
    return str(row[0])


def test_message_ids_are_the_rowid_and_keep_growing(chat_session: AgentSession) -> None:
    first = message_append(session_id=chat_session.id, role="user", content="one").record.pk
    other = session_create(owner=op_user(), title="other", route_alias=chat_session.route.alias)
    second = message_append(session_id=other.id, role="user", content="two").record.pk
    assert second > first
    if connection.vendor == "sqlite":
        assert "AUTOINCREMENT" not in _message_table_sql()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sqlite_sequence WHERE name = 'core_message'")
            assert cursor.fetchone() == (0,)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_migrating_back_restores_the_indexes_and_forward_drops_them(chat_session: AgentSession) -> None:
    for text in ("one", "two", "three"):
        message_append(session_id=chat_session.id, role="user", content=text)
    stored = list(Message.objects.order_by("seq").values_list("id", "seq", "content"))
    assert not DROPPED & _all_index_names()
    if connection.vendor == "sqlite":
        assert "AUTOINCREMENT" not in _message_table_sql()
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([("core", "0003_trace_finish_event"), ("memory", "0002_longterm_fulltext")])
        assert _all_index_names() >= DROPPED
        if connection.vendor == "sqlite":
            assert "AUTOINCREMENT" in _message_table_sql()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    assert not DROPPED & _all_index_names()
    if connection.vendor == "sqlite":
        assert "AUTOINCREMENT" not in _message_table_sql()
    # The rebuilt table kept every message under its id, and appends go on from there.
    assert list(Message.objects.order_by("seq").values_list("id", "seq", "content")) == stored
    assert message_append(session_id=chat_session.id, role="user", content="four").record.pk > stored[-1][0]
