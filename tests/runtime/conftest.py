"""Fixtures of the runtime tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.runtime.bootstrap_client import example_load


@pytest.fixture
def example_loaded(settings: Any) -> None:
    """The example configuration file named by AGENTCHAT_CONFIG and its records written."""
    example_load(settings)
