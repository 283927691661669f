# Attachment contents become per owner (#16): a content shared by sessions of several accounts is
# split into one copy per account (same bytes' sha256, size, summary and token count), each
# account's references pointing at its own copy; a content no message refers to goes to the
# operator. Going back merges the copies again (the oldest row of each sha256 is kept).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.migration_operations import owners_to_operator


def contents_split_per_owner(apps, schema_editor):
    alias = schema_editor.connection.alias
    contents = apps.get_model("memory", "AttachmentContent")._default_manager.using(alias)
    references = apps.get_model("memory", "AttachmentSummary")._default_manager.using(alias)
    for content in contents.filter(owner__isnull=True).order_by("pk").iterator():
        owners = sorted(
            set(references.filter(content_id=content.pk).values_list("session__owner_id", flat=True))
        )
        if not owners:
            continue  # referred to by no message: the operator's (next operation)
        contents.filter(pk=content.pk).update(owner_id=owners[0])
        for owner_id in owners[1:]:
            copy = contents.create(
                owner_id=owner_id,
                sha256=content.sha256,
                size_bytes=content.size_bytes,
                summary=content.summary,
                token_count=content.token_count,
            )
            contents.filter(pk=copy.pk).update(created=content.created, updated=content.updated)
            references.filter(content_id=content.pk, session__owner_id=owner_id).update(content_id=copy.pk)


def contents_merge(apps, schema_editor):
    alias = schema_editor.connection.alias
    contents = apps.get_model("memory", "AttachmentContent")._default_manager.using(alias)
    references = apps.get_model("memory", "AttachmentSummary")._default_manager.using(alias)
    kept = {}
    for content in contents.order_by("pk").iterator():
        first = kept.setdefault(content.sha256, content.pk)
        if first != content.pk:
            references.filter(content_id=content.pk).update(content_id=first)
            contents.filter(pk=content.pk).delete()


def _owner(null):
    return models.ForeignKey(
        db_index=False,
        null=null,
        on_delete=django.db.models.deletion.PROTECT,
        related_name="attachment_contents",
        to=settings.AUTH_USER_MODEL,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("memory", "0006_memory_owner_pinned_count_idx"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(model_name="attachmentcontent", name="owner", field=_owner(True)),
        migrations.AlterField(model_name="attachmentcontent", name="sha256", field=models.CharField(max_length=64)),
        migrations.RunPython(contents_split_per_owner, contents_merge),
        owners_to_operator("memory.AttachmentContent"),
        migrations.AlterField(model_name="attachmentcontent", name="owner", field=_owner(False)),
        migrations.AddConstraint(
            model_name="attachmentcontent",
            constraint=models.UniqueConstraint(
                fields=("owner", "sha256"), name="attachment_content_owner_sha256_unique"
            ),
        ),
    ]
