"""API routes of the memory app (registered on the project's router, under /api/)."""

from __future__ import annotations

from django.urls import URLPattern, path

from core.api.routing import Route
from memory.api.views import AttachmentSummaryViewSet, DailyEpisodeViewSet, LongTermMemoryViewSet, SessionContextView

routes: list[Route] = [
    Route("memory/long-term", LongTermMemoryViewSet, "memory-long-term"),
    Route("memory/episodes", DailyEpisodeViewSet, "memory-episode"),
    Route("memory/attachments", AttachmentSummaryViewSet, "memory-attachment"),
]
urlpatterns: list[URLPattern] = [
    path("sessions/<uuid:session_id>/context/", SessionContextView.as_view(), name="session-context"),
]
