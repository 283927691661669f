"""API tokens of the project's own, stored as the SHA-256 of their keys.

The keys DRF's `authtoken` app stored in clear (table `authtoken_token`, when it exists) are
hashed into the new table, so they keep working, and then that table is dropped: no key stays in
clear. Irreversible by design: reversing drops the new table and its tokens.
"""

from __future__ import annotations

import datetime
import hashlib

import django.db.models.deletion
import django.utils.timezone
from django.apps.registry import Apps
from django.conf import settings
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.utils.dateparse import parse_datetime

OLD_TABLE = "authtoken_token"


def _aware(value: object) -> datetime.datetime:
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime.datetime):
        return django.utils.timezone.now()
    if django.utils.timezone.is_naive(moment):
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def hash_drf_tokens(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if OLD_TABLE not in connection.introspection.table_names(cursor):
            return
        cursor.execute(f"SELECT key, user_id, created FROM {OLD_TABLE}")  # nosec B608: a fixed table name
        rows = cursor.fetchall()
    api_token = apps.get_model("core", "ApiToken")
    api_token.objects.bulk_create(
        api_token(
            user_id=user_id,
            name="drf_create_token",
            key_sha256=hashlib.sha256(str(key).encode()).hexdigest(),
            prefix=str(key)[:8],
            created=_aware(created),
        )
        for key, user_id, created in rows
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {OLD_TABLE}")  # nosec B608: a fixed table name


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0005_message_rowid"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("key_sha256", models.CharField(max_length=64)),
                (
                    "prefix",
                    models.CharField(help_text="The key's first characters, to recognise it in a list.", max_length=8),
                ),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_used", models.DateTimeField(blank=True, null=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created", "-id"],
                "constraints": [models.UniqueConstraint(fields=("key_sha256",), name="apitoken_key_sha256_unique")],
            },
        ),
        migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop),
    ]
