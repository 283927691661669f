# Conversations become trees: every message gets its parent, every session its current leaf.
# Existing sessions are linear, so each message's parent is the message before it in seq order and
# each session's leaf is its last message. Both fills are one set-based statement each (a window
# over the (session, seq) index; a MAX seek per session), the same SQL on SQLite and PostgreSQL,
# and keep every id. The siblings index is built after the fill.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

PARENTS = """
UPDATE core_message SET parent_id = previous.parent_id
FROM (
    SELECT id, LAG(id) OVER (PARTITION BY session_id ORDER BY seq) AS parent_id FROM core_message
) AS previous
WHERE core_message.id = previous.id AND previous.parent_id IS NOT NULL
"""

LEAVES = """
UPDATE core_agentsession SET leaf = COALESCE(
    (SELECT MAX(m.seq) FROM core_message m WHERE m.session_id = core_agentsession.id), 0
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0010_session_owner_recent_idx"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="agentsession",
            name="leaf",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="children",
                to="core.message",
            ),
        ),
        migrations.RunSQL(PARENTS, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(LEAVES, reverse_sql=migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["session", "parent"], name="message_session_parent_idx"),
        ),
        migrations.AddConstraint(
            model_name="agentsession",
            constraint=models.CheckConstraint(
                condition=models.Q(("leaf__lte", models.F("last_seq"))), name="session_leaf_le_seq"
            ),
        ),
    ]
