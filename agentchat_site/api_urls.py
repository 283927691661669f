"""API routes composed by the project itself (the bootstrap), beside the apps' own."""

from __future__ import annotations

from django.urls import URLPattern

from core.api.routing import Route

routes: list[Route] = []
urlpatterns: list[URLPattern] = []
