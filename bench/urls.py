"""The project's URLs plus one trivial authenticated DRF endpoint: the bootstrap's yardstick.

Both go through the same middleware, authentication and renderer, so the ratio measures what
the bootstrap itself costs on top of an authenticated request.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class TrivialView(APIView):
    """An authenticated endpoint that does nothing: `{"ok": true}`."""

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/trivial/", TrivialView.as_view(), name="bench-trivial"),
    path("", include("agentchat_site.urls")),
]
