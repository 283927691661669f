"""The runtime's API routes: turns, the bootstrap and route probes."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from core.api.routing import Route
from runtime.api.imports import ImportJobView, ImportView
from runtime.api.mcp_views import mcp_server_probe
from runtime.api.views import (
    MessageEditView,
    MessageRegenerateView,
    RouteProbeView,
    RunApproveView,
    RunRetryView,
    RunToolResultsView,
    SessionTurnView,
)
from runtime.bootstrap.api import BootstrapView

routes: list[Route] = []
urlpatterns: list[URLPattern] = [
    path("bootstrap/", BootstrapView.as_view(), name="bootstrap"),
    # With a format suffix (/api/bootstrap.json), as the router served it; the schema lists it once.
    re_path(r"^bootstrap\.(?P<format>[a-z0-9]+)/?$", BootstrapView.as_view(), name="bootstrap"),
    path("sessions/<uuid:session_id>/turns/", SessionTurnView.as_view(), name="session-turns"),
    path(
        "sessions/<uuid:session_id>/messages/<int:seq>/regenerate/",
        MessageRegenerateView.as_view(),
        name="session-message-regenerate",
    ),
    path("sessions/<uuid:session_id>/messages/<int:seq>/edit/", MessageEditView.as_view(), name="session-message-edit"),
    path("config/routes/<slug:alias>/probe/", RouteProbeView.as_view(), name="config-route-probe"),
    path("runs/<uuid:run_id>/retry/", RunRetryView.as_view(), name="run-retry"),
    path("import/", ImportView.as_view(), name="import"),
    path("import/<str:job_id>/", ImportJobView.as_view(), name="import-job"),
    path("runs/<uuid:run_id>/approve/", RunApproveView.as_view(), name="run-approve"),
    path("runs/<uuid:run_id>/tool-results/", RunToolResultsView.as_view(), name="run-tool-results"),
    path("config/mcp-servers/<slug:name>/probe/", mcp_server_probe, name="config-mcp-server-probe"),
]
