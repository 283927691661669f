"""Each account's `MemoryTally` counted again without its forgotten memories.

Until now a forgotten memory (`forgotten_at` set, hidden from search, lists and the context) was
still counted; from here on `memory.services` counts it down when it is forgotten and up when it
is restored. No memory is changed: only the derived counts are written again.
"""

from typing import Any

from django.db import migrations
from django.db.models import Count


def _refill(apps: Any, schema_editor: Any, *, forgotten_too: bool) -> None:
    """Each account's tally written again from its memories; a row added where one is missing."""
    alias = schema_editor.connection.alias
    memories = apps.get_model("memory", "LongTermMemory").objects.using(alias)
    tally = apps.get_model("memory", "MemoryTally")
    counted = memories if forgotten_too else memories.filter(forgotten_at__isnull=True)
    counts = dict(counted.values_list("owner_id").annotate(n=Count("id")).order_by("owner_id"))
    for row in tally.objects.using(alias).all():
        if row.long_term != counts.get(row.owner_id, 0):
            row.long_term = counts.get(row.owner_id, 0)
            row.save(update_fields=["long_term"])
    kept = set(tally.objects.using(alias).values_list("owner_id", flat=True))
    tally.objects.using(alias).bulk_create(
        [tally(owner_id=owner, long_term=n) for owner, n in sorted(counts.items()) if owner not in kept]
    )


def tallies_refill(apps: Any, schema_editor: Any) -> None:
    _refill(apps, schema_editor, forgotten_too=False)


def tallies_refill_all(apps: Any, schema_editor: Any) -> None:
    """Back to 0010: every memory counted, forgotten ones too (what its services kept)."""
    _refill(apps, schema_editor, forgotten_too=True)


class Migration(migrations.Migration):
    dependencies = [
        ("memory", "0010_episode_session_refs"),
    ]

    operations = [
        migrations.RunPython(tallies_refill, tallies_refill_all),
    ]
