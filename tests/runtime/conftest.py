"""Fixtures of the runtime tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.runtime.bootstrap_client import example_load


@pytest.fixture
def example_loaded(settings: Any) -> None:
    """The example configuration file named by AGENTCHAT_CONFIG and its records written."""
    example_load(settings)


@pytest.fixture
def live_worker(db: None) -> str:
    """A worker whose heartbeat just arrived (the chat view needs one), as `manage.py worker` records it."""
    from django.utils import timezone

    from core.conversation.services import worker_beat

    worker_beat(worker_id="test-worker", host="localhost", pid=1, started_at=timezone.now(), current_run_id=None)
    return "test-worker"
