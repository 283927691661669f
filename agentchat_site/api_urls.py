"""API routes composed by the project itself (turns, the bootstrap), beside the apps' own."""

from __future__ import annotations

from django.urls import URLPattern, path

from agentchat_site.bootstrap_api import BootstrapViewSet
from agentchat_site.turn_api import SessionTurnView
from core.api.routing import Route

routes: list[Route] = [Route("bootstrap", BootstrapViewSet, "bootstrap")]
urlpatterns: list[URLPattern] = [
    path("sessions/<uuid:session_id>/turns/", SessionTurnView.as_view(), name="session-turns"),
]
