# The foreign keys whose column leads another index lose their own index (see DropCoveredForeignKeyIndex),
# and the session's second index on `updated` goes.

import django.db.models.deletion
from django.db import migrations, models

from core.migration_operations import DropCoveredForeignKeyIndex


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_trace_finish_event"),
    ]

    operations = [
        # Every append writes `updated`; the admin's status filter walks session_recent_idx instead.
        migrations.RemoveIndex(
            model_name="agentsession",
            name="session_status_recent_idx",
        ),
        DropCoveredForeignKeyIndex(
            model_name="checkpoint",
            name="session",
            index_name="core_checkpoint_session_id_bb4d8ce7",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="checkpoints",
                to="core.agentsession",
            ),
        ),
        DropCoveredForeignKeyIndex(
            model_name="message",
            name="session",
            index_name="core_message_session_id_45a7f8cc",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="messages",
                to="core.agentsession",
            ),
        ),
        DropCoveredForeignKeyIndex(
            model_name="run",
            name="session",
            index_name="core_run_session_id_59eb8c02",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="runs", to="core.agentsession"
            ),
        ),
        DropCoveredForeignKeyIndex(
            model_name="traceevent",
            name="run",
            index_name="core_traceevent_run_id_043140ce",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="events", to="core.run"
            ),
        ),
    ]
