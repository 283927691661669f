# The foreign keys whose column leads another index lose their own index (see DropCoveredForeignKeyIndex).

import django.db.models.deletion
from django.db import migrations, models

from core.migration_operations import DropCoveredForeignKeyIndex


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_indexes_off_the_append_path"),
        ("memory", "0002_longterm_fulltext"),
    ]

    operations = [
        DropCoveredForeignKeyIndex(
            model_name="attachmentsummary",
            name="message",
            index_name="memory_attachmentsummary_message_id_a9b35264",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attachments",
                to="core.message",
            ),
        ),
        DropCoveredForeignKeyIndex(
            model_name="attachmentsummary",
            name="session",
            index_name="memory_attachmentsummary_session_id_22454195",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attachments",
                to="core.agentsession",
            ),
        ),
        DropCoveredForeignKeyIndex(
            model_name="dailyepisode",
            name="session",
            index_name="memory_dailyepisode_session_id_0b0a88d6",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="daily_episodes",
                to="core.agentsession",
            ),
        ),
    ]
