"""Full-text search over long-term memory, maintained by the database on every write.

SQLite: an external-content FTS5 table `memory_longtermmemory_fts` (columns content, key) kept in
sync by AFTER INSERT / UPDATE OF content, key / DELETE triggers. The `unicode61` tokenizer with
`remove_diacritics 0`: words are runs of Unicode letters and digits, case-folded, not stemmed.

PostgreSQL: a stored generated `tsvector` column `search_vector` (config 'simple': lowercased,
not stemmed, no stop words) over content and key with every non-alphanumeric run replaced by a
space first, so that both databases split text into the same words (PostgreSQL's parser would
otherwise keep `example.com` or `3.14` as one token), and a GIN index on it.

Neither object is part of the Django model. On SQLite, a later migration that rebuilds the
`memory_longtermmemory` table drops its triggers: such a migration must run `SQLITE_TRIGGERS` again.
"""

from django.db import migrations

SQLITE_FORWARD = [
    """
    CREATE VIRTUAL TABLE memory_longtermmemory_fts USING fts5(
        content, key,
        content='memory_longtermmemory', content_rowid='id',
        tokenize='unicode61 remove_diacritics 0'
    )
    """,
    """
    CREATE TRIGGER memory_longtermmemory_fts_insert AFTER INSERT ON memory_longtermmemory BEGIN
        INSERT INTO memory_longtermmemory_fts(rowid, content, key)
        VALUES (new.id, new.content, coalesce(new.key, ''));
    END
    """,
    """
    CREATE TRIGGER memory_longtermmemory_fts_delete AFTER DELETE ON memory_longtermmemory BEGIN
        INSERT INTO memory_longtermmemory_fts(memory_longtermmemory_fts, rowid, content, key)
        VALUES ('delete', old.id, old.content, coalesce(old.key, ''));
    END
    """,
    # Only a change to the searched text touches the index (pinning or "last used" does not).
    """
    CREATE TRIGGER memory_longtermmemory_fts_update AFTER UPDATE OF content, key ON memory_longtermmemory BEGIN
        INSERT INTO memory_longtermmemory_fts(memory_longtermmemory_fts, rowid, content, key)
        VALUES ('delete', old.id, old.content, coalesce(old.key, ''));
        INSERT INTO memory_longtermmemory_fts(rowid, content, key)
        VALUES (new.id, new.content, coalesce(new.key, ''));
    END
    """,
    # Index rows that existed before this migration.
    "INSERT INTO memory_longtermmemory_fts(memory_longtermmemory_fts) VALUES ('rebuild')",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS memory_longtermmemory_fts_update",
    "DROP TRIGGER IF EXISTS memory_longtermmemory_fts_delete",
    "DROP TRIGGER IF EXISTS memory_longtermmemory_fts_insert",
    "DROP TABLE IF EXISTS memory_longtermmemory_fts",
]

POSTGRESQL_FORWARD = [
    r"""
    ALTER TABLE memory_longtermmemory ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        to_tsvector(
            'simple'::regconfig,
            regexp_replace(content || ' ' || coalesce(key, ''), '[^[:alnum:]]+', ' ', 'g')
        )
    ) STORED
    """,
    # memory_search: `search_vector @@ query` is a GIN index scan.
    "CREATE INDEX memory_longtermmemory_search_gin ON memory_longtermmemory USING gin (search_vector)",
]
POSTGRESQL_REVERSE = [
    "DROP INDEX IF EXISTS memory_longtermmemory_search_gin",
    "ALTER TABLE memory_longtermmemory DROP COLUMN IF EXISTS search_vector",
]


def _run(schema_editor, statements_by_vendor):
    vendor = schema_editor.connection.vendor
    if vendor not in statements_by_vendor:
        raise RuntimeError(f"memory full-text search supports sqlite and postgresql, not {vendor}")
    for statement in statements_by_vendor[vendor]:
        schema_editor.execute(statement)


def forward(apps, schema_editor):
    _run(schema_editor, {"sqlite": SQLITE_FORWARD, "postgresql": POSTGRESQL_FORWARD})


def reverse(apps, schema_editor):
    _run(schema_editor, {"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE})


class Migration(migrations.Migration):
    dependencies = [
        ("memory", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forward, reverse),
    ]
