"""Full-text search over message content, maintained by the database on every write.

SQLite: an external-content FTS5 table `core_message_fts(content)` over `core_message` kept in sync
by AFTER INSERT / UPDATE OF content / DELETE triggers, tokenizer `unicode61 remove_diacritics 0`
(words are runs of Unicode letters and digits, case-folded, not stemmed), like memory's index.

PostgreSQL: a stored generated `tsvector` column `search_vector` (config 'simple') over the content
with every non-alphanumeric run replaced by a space first, so both databases split text into the
same words, and the GIN index `core_message_search_gin`.

Neither object is part of the Django model. On SQLite a later migration that rebuilds `core_message`
(most `AlterField`s, an `AddField` with a default) drops the triggers: such a migration must run
the latest `SQLITE_TRIGGERS` again, since 0023 that migration's
(`tests/core/conversation/test_search.py` checks they exist after migrating).
"""

from django.db import migrations

SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER IF NOT EXISTS core_message_fts_insert AFTER INSERT ON core_message BEGIN
        INSERT INTO core_message_fts(rowid, content) VALUES (new.id, new.content);
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS core_message_fts_delete AFTER DELETE ON core_message BEGIN
        INSERT INTO core_message_fts(core_message_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END
    """,
    # Only a change to the text touches the index.
    """
    CREATE TRIGGER IF NOT EXISTS core_message_fts_update AFTER UPDATE OF content ON core_message BEGIN
        INSERT INTO core_message_fts(core_message_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO core_message_fts(rowid, content) VALUES (new.id, new.content);
    END
    """,
]
SQLITE_FORWARD = [
    """
    CREATE VIRTUAL TABLE core_message_fts USING fts5(
        content,
        content='core_message', content_rowid='id',
        tokenize='unicode61 remove_diacritics 0'
    )
    """,
    *SQLITE_TRIGGERS,
    # Index the messages that existed before this migration.
    "INSERT INTO core_message_fts(core_message_fts) VALUES ('rebuild')",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS core_message_fts_update",
    "DROP TRIGGER IF EXISTS core_message_fts_delete",
    "DROP TRIGGER IF EXISTS core_message_fts_insert",
    "DROP TABLE IF EXISTS core_message_fts",
]

POSTGRESQL_FORWARD = [
    # Message content is at most 1,000,000 characters; tsvector's own limit is 1 MB of lexemes, so
    # the text indexed is cut at 200,000 characters (a match further on is not found).
    r"""
    ALTER TABLE core_message ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig, regexp_replace(left(content, 200000), '[^[:alnum:]]+', ' ', 'g'))
    ) STORED
    """,
    # message search: `search_vector @@ query` is a GIN index scan.
    "CREATE INDEX core_message_search_gin ON core_message USING gin (search_vector)",
]
POSTGRESQL_REVERSE = [
    "DROP INDEX IF EXISTS core_message_search_gin",
    "ALTER TABLE core_message DROP COLUMN IF EXISTS search_vector",
]


def _run(schema_editor, statements_by_vendor):
    vendor = schema_editor.connection.vendor
    if vendor not in statements_by_vendor:
        raise RuntimeError(f"message full-text search supports sqlite and postgresql, not {vendor}")
    for statement in statements_by_vendor[vendor]:
        schema_editor.execute(statement)


def forward(apps, schema_editor):
    _run(schema_editor, {"sqlite": SQLITE_FORWARD, "postgresql": POSTGRESQL_FORWARD})


def reverse(apps, schema_editor):
    _run(schema_editor, {"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE})


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0013_route_probe"),
    ]

    operations = [
        migrations.RunPython(forward, reverse),
    ]
