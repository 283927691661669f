"""API routes for the configuration records (registered on the project's router) and readiness."""

from __future__ import annotations

from django.urls import URLPattern, path

from core.api.routing import Route
from core.config.api.views import (
    AgentViewSet,
    McpServerViewSet,
    ProviderViewSet,
    ReadinessView,
    RouteViewSet,
    SkillViewSet,
    TeamViewSet,
    ToolViewSet,
)

routes: list[Route] = [
    Route("config/providers", ProviderViewSet, "config-provider"),
    Route("config/routes", RouteViewSet, "config-route"),
    Route("config/tools", ToolViewSet, "config-tool"),
    Route("config/skills", SkillViewSet, "config-skill"),
    Route("config/mcp-servers", McpServerViewSet, "config-mcp-server"),
    Route("config/agents", AgentViewSet, "config-agent"),
    Route("config/teams", TeamViewSet, "config-team"),
]
urlpatterns: list[URLPattern] = [
    path("config/readiness/", ReadinessView.as_view(), name="config-readiness"),
]
