"""API tokens of the project's own: only the SHA-256 of each key is stored."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A named API key of one user; the key itself is shown once and never stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_sha256 = models.CharField(max_length=64)
    prefix = models.CharField(max_length=8, help_text="The key's first characters, to recognise it in a list.")
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # Every request with a token looks it up by this hash.
            models.UniqueConstraint(fields=["key_sha256"], name="apitoken_key_sha256_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
