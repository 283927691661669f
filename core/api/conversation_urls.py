"""API routes for this area of core (registered on the project's router)."""

from __future__ import annotations

from django.urls import URLPattern

from core.api.routing import Route

routes: list[Route] = []
urlpatterns: list[URLPattern] = []
