"""API routes of telemetry (registered on the project's router).

`/api/telemetry/usage/` lists and records usage events; `/api/telemetry/summary/` reads the rollups.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from core.api.routing import Route
from telemetry.api.views import UsageSummaryView, UsageViewSet

routes: list[Route] = [Route("telemetry/usage", UsageViewSet, "telemetry-usage")]
urlpatterns: list[URLPattern] = [
    path("telemetry/summary/", UsageSummaryView.as_view(), name="telemetry-summary"),
]
