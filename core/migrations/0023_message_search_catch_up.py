"""SQLite: the message index is brought up to date before it is read, not inside every append.

Before, an AFTER INSERT trigger indexed each message in the appending transaction, and FTS5 wrote a
new index segment at every commit: about a third of an append's time. Now the insert trigger is
gone and `message_index_catch_up` (core.conversation.services) indexes, in one statement, the
messages written since it last ran; the search and the admin's search boxes call it first, so a
search still finds every message stored before it.

What is indexed is exactly the rows of the FTS5 shadow table `core_message_fts_docsize` (one per
indexed message, keyed by the message id). The invariant: every message with an id up to the
largest indexed id is indexed. Message ids only grow past the largest stored one, and a catch-up
indexes in id order, so the messages still to index are those above that id. The delete and update
triggers touch the index only for a message it holds (deleting from an external-content FTS5 table
a row it never indexed would corrupt it).

A later migration that rebuilds `core_message` drops its triggers and must run `SQLITE_TRIGGERS`
(from this module) again. PostgreSQL is unchanged: its index is a generated column.
"""

from importlib import import_module

from django.db import migrations

SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER IF NOT EXISTS core_message_fts_delete AFTER DELETE ON core_message
    WHEN EXISTS (SELECT 1 FROM core_message_fts_docsize WHERE id = old.id) BEGIN
        INSERT INTO core_message_fts(core_message_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END
    """,
    # Only a change to the text of an indexed message touches the index.
    """
    CREATE TRIGGER IF NOT EXISTS core_message_fts_update AFTER UPDATE OF content ON core_message
    WHEN EXISTS (SELECT 1 FROM core_message_fts_docsize WHERE id = old.id) BEGIN
        INSERT INTO core_message_fts(core_message_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO core_message_fts(rowid, content) VALUES (new.id, new.content);
    END
    """,
]
# Before (core/0014): every message indexed as it is written.
_BEFORE = import_module("core.migrations.0014_message_search")
_DROP = [statement for statement in _BEFORE.SQLITE_REVERSE if statement.startswith("DROP TRIGGER")]
# Back to indexing on insert: the messages written since the last catch-up are indexed first.
_REBUILD = "INSERT INTO core_message_fts(core_message_fts) VALUES ('rebuild')"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        # The insert trigger indexed every message until now: nothing to catch up.
        for statement in [*_DROP, *SQLITE_TRIGGERS]:
            schema_editor.execute(statement)


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in [*_DROP, *_BEFORE.SQLITE_TRIGGERS, _REBUILD]:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0022_mcp_server_status"),
    ]

    operations = [
        migrations.RunPython(forward, reverse),
    ]
