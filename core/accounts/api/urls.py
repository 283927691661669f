"""API routes for accounts (registered on the project's router): `/api/auth/tokens/`."""

from __future__ import annotations

from django.urls import URLPattern

from core.accounts.api.views import ApiTokenViewSet
from core.api.routing import Route

routes: list[Route] = [Route("auth/tokens", ApiTokenViewSet, "api-token")]
urlpatterns: list[URLPattern] = []
