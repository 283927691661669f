"""API routes for the conversation store (registered on the project's router).

`/api/sessions/` and `/api/runs/` are router viewsets; a session's messages and checkpoints and a
run's events are nested collections with their own cursor pagination.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from core.api.routing import Route
from core.conversation.api.export_views import SessionExportView
from core.conversation.api.views import (
    MessageSiblingsView,
    RunEventViewSet,
    RunViewSet,
    SearchView,
    SessionCheckpointViewSet,
    SessionMessageViewSet,
    SessionViewSet,
)

LIST_CREATE: dict[str, Any] = {"get": "list", "post": "create"}

routes: list[Route] = [
    Route("sessions", SessionViewSet, "session"),
    Route("runs", RunViewSet, "run"),
]
urlpatterns: list[URLPattern] = [
    path(
        "sessions/<str:session_id>/messages/",
        SessionMessageViewSet.as_view(LIST_CREATE),
        name="session-messages",
    ),
    path(
        "sessions/<str:session_id>/checkpoints/",
        SessionCheckpointViewSet.as_view(LIST_CREATE),
        name="session-checkpoints",
    ),
    path(
        "sessions/<str:session_id>/messages/<int:seq>/siblings/",
        MessageSiblingsView.as_view(),
        name="session-message-siblings",
    ),
    path("runs/<str:run_id>/events/", RunEventViewSet.as_view(LIST_CREATE), name="run-events"),
    path("search/", SearchView.as_view(), name="search"),
    path("sessions/<str:session_id>/export/", SessionExportView.as_view(), name="session-export"),
]
