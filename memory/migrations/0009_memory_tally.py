"""Each account's count of long-term memories, filled from the memories already stored.

From here on `memory.services` keeps it in the transaction that adds or removes a memory.
"""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Count


def tallies_fill(apps: Any, schema_editor: Any) -> None:
    memories = apps.get_model("memory", "LongTermMemory")
    tally = apps.get_model("memory", "MemoryTally")
    counts = memories.objects.using(schema_editor.connection.alias).values("owner_id").annotate(n=Count("id"))
    tally.objects.using(schema_editor.connection.alias).bulk_create(
        [tally(owner_id=row["owner_id"], long_term=row["n"]) for row in counts.order_by("owner_id")]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("memory", "0008_memory_forgotten"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="MemoryTally",
            fields=[
                (
                    "owner",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="memory_tally",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("long_term", models.BigIntegerField(default=0)),
            ],
            options={
                "verbose_name": "memory tally",
                "verbose_name_plural": "memory tally",
            },
        ),
        migrations.RunPython(tallies_fill, migrations.RunPython.noop),
    ]
