"""The shape in which each app hands its viewsets to the project's one router."""

from __future__ import annotations

from typing import Any, NamedTuple


class Route(NamedTuple):
    prefix: str
    viewset: Any
    basename: str
