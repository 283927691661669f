# Message ids become SQLite's plain rowid (see RowIdField): the table is rebuilt once on SQLite
# without AUTOINCREMENT, keeping every id; on PostgreSQL nothing changes.

import core.conversation.models
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0004_indexes_off_the_append_path'),
    ]

    operations = [
        migrations.AlterField(
            model_name='message',
            name='id',
            field=core.conversation.models.RowIdField(primary_key=True, serialize=False),
        ),
    ]
