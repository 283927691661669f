"""Django set-up for a worker process: `from tests.workers.setup import django_setup`."""

from __future__ import annotations

import os


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentchat_site.settings")
    import django

    django.setup()
