# Sessions and runs get an owner; existing rows go to the operator account.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.migration_operations import owners_to_operator


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0008_config_version"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="agentsession",
            name="owner",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="agent_sessions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="run",
            name="owner",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        owners_to_operator("core.AgentSession", "core.Run"),
        migrations.AlterField(
            model_name="agentsession",
            name="owner",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="agent_sessions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="run",
            name="owner",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
