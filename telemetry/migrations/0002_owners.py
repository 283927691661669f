# Usage events get an owner (existing ones go to the operator account) and a per-user daily
# rollup, filled from the events so the rollup invariant holds from the first moment.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, Q, Sum

from core.migration_operations import owners_to_operator

COUNTERS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "total_tokens", "cost_pico_usd")


def rollup_fill(apps, schema_editor):
    alias = schema_editor.connection.alias
    events = apps.get_model("telemetry", "UsageEvent")._default_manager.using(alias)
    rollup = apps.get_model("telemetry", "UsageByUserDay")._default_manager.using(alias)
    rows = (
        events.order_by()
        .values("owner_id", "day_timezone", "day", "provider", "model")
        .annotate(
            n=Count("id"),
            priced=Count("id", filter=Q(cost_pico_usd__isnull=False)),
            **{f"sum_{name}": Sum(name) for name in COUNTERS},
        )
    )
    rollup.bulk_create(
        rollup.model(
            owner_id=row["owner_id"],
            timezone=row["day_timezone"],
            day=row["day"],
            provider=row["provider"],
            model=row["model"],
            event_count=row["n"],
            priced_event_count=row["priced"],
            **{name: row[f"sum_{name}"] or 0 for name in COUNTERS},
        )
        for row in rows.iterator()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("telemetry", "0001_initial"),
        ("core", "0009_owners"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="usageevent",
            name="owner",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="usage_events",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        owners_to_operator("telemetry.UsageEvent"),
        migrations.AlterField(
            model_name="usageevent",
            name="owner",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="usage_events",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.CreateModel(
            name="UsageByUserDay",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("event_count", models.PositiveBigIntegerField(default=0)),
                ("priced_event_count", models.PositiveBigIntegerField(default=0)),
                ("input_tokens", models.PositiveBigIntegerField(default=0)),
                ("cached_input_tokens", models.PositiveBigIntegerField(default=0)),
                ("output_tokens", models.PositiveBigIntegerField(default=0)),
                ("reasoning_tokens", models.PositiveBigIntegerField(default=0)),
                ("total_tokens", models.PositiveBigIntegerField(default=0)),
                ("cost_pico_usd", models.PositiveBigIntegerField(default=0)),
                ("timezone", models.CharField(max_length=64)),
                ("day", models.DateField()),
                ("provider", models.CharField(max_length=64)),
                ("model", models.CharField(max_length=200)),
                (
                    "owner",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "usage by user and day",
                "verbose_name_plural": "usage by user and day",
                "ordering": ["owner", "-day", "provider", "model"],
                "abstract": False,
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("priced_event_count__lte", models.F("event_count"))),
                        name="usagebyuserday_priced_le_events",
                    ),
                    models.UniqueConstraint(
                        fields=("owner", "timezone", "day", "provider", "model"), name="usage_by_user_day_key"
                    ),
                ],
            },
        ),
        migrations.RunPython(rollup_fill, migrations.RunPython.noop),
    ]
