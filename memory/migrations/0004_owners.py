# Episodes and long-term memories get an owner (existing rows go to the operator account);
# uniqueness becomes per owner. Making `owner` NOT NULL rebuilds memory_longtermmemory on
# SQLite, which drops its full-text triggers: the last operation creates them again.

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.migration_operations import owners_to_operator

# The module name starts with a digit: import it by name.
_fulltext = importlib.import_module("memory.migrations.0002_longterm_fulltext")
# SQLITE_FORWARD is [create the FTS table, three triggers, rebuild]; the table outlives the rebuild.
SQLITE_TRIGGERS = [
    "DROP TRIGGER IF EXISTS memory_longtermmemory_fts_insert",
    "DROP TRIGGER IF EXISTS memory_longtermmemory_fts_delete",
    "DROP TRIGGER IF EXISTS memory_longtermmemory_fts_update",
    *_fulltext.SQLITE_FORWARD[1:],
]


def triggers_create(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)


def _owner(related_name):
    return models.ForeignKey(
        on_delete=django.db.models.deletion.PROTECT, related_name=related_name, to=settings.AUTH_USER_MODEL
    )


def _owner_nullable(related_name):
    return models.ForeignKey(
        null=True, on_delete=django.db.models.deletion.PROTECT, related_name=related_name, to=settings.AUTH_USER_MODEL
    )


class Migration(migrations.Migration):
    dependencies = [
        ("memory", "0003_foreign_key_indexes_covered"),
        ("core", "0009_owners"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Going backwards, the table is rebuilt again before this runs: the triggers come back here.
        migrations.RunPython(migrations.RunPython.noop, triggers_create),
        migrations.AddField(model_name="dailyepisode", name="owner", field=_owner_nullable("daily_episodes")),
        migrations.AddField(model_name="longtermmemory", name="owner", field=_owner_nullable("long_term_memories")),
        owners_to_operator("memory.DailyEpisode", "memory.LongTermMemory"),
        migrations.AlterField(model_name="dailyepisode", name="owner", field=_owner("daily_episodes")),
        migrations.AlterField(model_name="longtermmemory", name="owner", field=_owner("long_term_memories")),
        migrations.RemoveConstraint(model_name="dailyepisode", name="episode_day_session_unique"),
        migrations.RemoveConstraint(model_name="dailyepisode", name="episode_day_whole_unique"),
        migrations.RemoveConstraint(model_name="longtermmemory", name="memory_key_unique"),
        migrations.AddConstraint(
            model_name="dailyepisode",
            constraint=models.UniqueConstraint(
                condition=models.Q(("session__isnull", False)),
                fields=("owner", "day", "session"),
                name="episode_owner_day_session_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="dailyepisode",
            constraint=models.UniqueConstraint(
                condition=models.Q(("session__isnull", True)),
                fields=("owner", "day"),
                name="episode_owner_day_whole_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="longtermmemory",
            constraint=models.UniqueConstraint(
                condition=models.Q(("key__isnull", False)), fields=("owner", "key"), name="memory_owner_key_unique"
            ),
        ),
        migrations.RunPython(triggers_create, migrations.RunPython.noop),
    ]
