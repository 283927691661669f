# Runs gain what a worker needs: the message they answer, the agent, a purpose, a lease, a cancel
# request and an attempt number. Existing runs get their message from their `run_started` event;
# where a session has more than one open run, all but its newest end `interrupted` (the new
# partial unique index allows one open chat run per session).

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


INTERRUPTED_BY_UPGRADE = "interrupted: another run of this session was open when runs became one per session"


def backfill_and_close_extra_open_runs(apps: Any, schema_editor: Any) -> None:
    Run = apps.get_model("core", "Run")
    TraceEvent = apps.get_model("core", "TraceEvent")
    Message = apps.get_model("core", "Message")
    started = TraceEvent.objects.filter(type="run_started", payload__has_key="message_seq").values_list(
        "run_id", "run__session_id", "payload"
    )
    for run_id, session_id, payload in started.iterator(chunk_size=2_000):
        seq = payload.get("message_seq")
        if isinstance(seq, int):
            message_id = Message.objects.filter(session_id=session_id, seq=seq).values_list("id", flat=True).first()
            if message_id is not None:
                Run.objects.filter(pk=run_id).update(message_id=message_id)
    now = timezone.now()
    seen: set[Any] = set()
    for run in Run.objects.filter(status__in=("queued", "running")).order_by("session_id", "-created", "-id"):
        if run.session_id not in seen:
            seen.add(run.session_id)
            continue
        index = run.event_count + 1
        TraceEvent.objects.create(run=run, index=index, type="run_finished", payload={"status": "interrupted"})
        Run.objects.filter(pk=run.pk).update(
            status="interrupted",
            event_count=index,
            error=run.error or INTERRUPTED_BY_UPGRADE,
            finished_at=now,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0015_session_tags_pin'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='WorkerBeat',
            fields=[
                ('worker_id', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('host', models.CharField(max_length=255)),
                ('pid', models.PositiveIntegerField()),
                ('started_at', models.DateTimeField()),
                ('beat_at', models.DateTimeField()),
                ('current_run_id', models.UUIDField(blank=True, null=True)),
            ],
        ),
        migrations.AddField(
            model_name='run',
            name='agent',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='runs', to='core.agentprofile'),
        ),
        migrations.AddField(
            model_name='run',
            name='attempt',
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddField(
            model_name='run',
            name='cancel_requested_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='lease_expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='lease_owner',
            field=models.CharField(blank=True, default='', max_length=128),
        ),
        migrations.AddField(
            model_name='run',
            name='message',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='runs', to='core.message'),
        ),
        migrations.AddField(
            model_name='run',
            name='purpose',
            field=models.CharField(choices=[('chat', 'Chat')], default='chat', max_length=16),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(condition=models.Q(('status__in', ('queued', 'running'))), fields=['lease_expires_at'], name='run_open_lease_idx'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['message', '-created'], name='run_message_idx'),
        ),
        migrations.AddConstraint(
            model_name='run',
            constraint=models.CheckConstraint(condition=models.Q(('attempt__gte', 1)), name='run_attempt_positive'),
        ),
        migrations.RunPython(backfill_and_close_extra_open_runs, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='run',
            constraint=models.UniqueConstraint(condition=models.Q(('purpose', 'chat'), ('status__in', ('queued', 'running'))), fields=('session',), name='run_one_open_chat_per_session'),
        ),
        migrations.AddIndex(
            model_name='workerbeat',
            index=models.Index(fields=['-beat_at'], name='worker_beat_recent_idx'),
        ),
    ]
