"""Template context for the admin pages: what the last configuration load found wrong."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest

from core.config.selectors import ConfigLoadProblems, config_load_problems


def config_load(request: HttpRequest) -> dict[str, Callable[[], ConfigLoadProblems | None]]:
    """`config_load_problems` for templates: the selector itself, so the file is read only by a page that shows it."""
    return {"config_load_problems": config_load_problems}
