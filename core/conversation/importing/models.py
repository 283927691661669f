"""Imports: the job that brings a file in, and which source conversation became which session."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.conversation.models import AgentSession


class ImportFormat(models.TextChoices):
    AUTO = "auto", "Detect from the file"
    CHATGPT = "chatgpt", "ChatGPT conversations.json"
    OPENWEBUI = "openwebui", "Open WebUI chat export"
    LIBRECHAT = "librechat", "LibreChat conversation export"
    AGENTCHAT = "agentchat", "Agent Chat export (agentchat-export/1)"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """One upload being imported by a worker; its counters say how far it got and its report what happened."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="import_jobs")
    format = models.CharField(max_length=16, choices=ImportFormat.choices, default=ImportFormat.AUTO)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    dry_run = models.BooleanField(default=False)
    # The uploaded files' names as sent, and where the worker reads them (under var/imports/).
    file_names = models.JSONField(default=list, blank=True)
    paths = models.JSONField(default=list, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    conversations_seen = models.PositiveIntegerField(default=0)
    conversations_imported = models.PositiveIntegerField(default=0)
    conversations_skipped = models.PositiveIntegerField(default=0)
    messages_imported = models.PositiveIntegerField(default=0)
    # The report's lines: {"title", "source_id", "outcome", "reason", "messages", "branches", "session"}.
    report = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            # A user's imports, newest first (the admin filters by owner).
            models.Index(fields=["owner", "-created"], name="import_job_owner_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ImportStatus.values), name="import_job_status_valid"),
            models.CheckConstraint(condition=Q(format__in=ImportFormat.values), name="import_job_format_valid"),
        ]

    def __str__(self) -> str:
        return f"import {self.id} ({self.status})"


class ImportedConversation(models.Model):
    """The session a source conversation became: importing it again for the same owner finds it and adds nothing."""

    # PROTECT like every owner column; the row goes with its session (CASCADE).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    source = models.CharField(max_length=16, choices=ImportFormat.choices)
    source_id = models.CharField(max_length=200)
    session = models.OneToOneField(AgentSession, on_delete=models.CASCADE, related_name="imported_from")
    # Per message, in seq order: [source message id, model slug] ("" when the source had none).
    message_sources = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            # The idempotency key: one session per source conversation per owner.
            models.UniqueConstraint(fields=["owner", "source", "source_id"], name="imported_owner_source_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.source_id}"
