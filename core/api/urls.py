"""Core's API routes, composed into the single router by `agentchat_site.urls`."""

from __future__ import annotations

from core.api.config_urls import routes as config_routes
from core.api.config_urls import urlpatterns as config_urlpatterns
from core.api.conversation_urls import routes as conversation_routes
from core.api.conversation_urls import urlpatterns as conversation_urlpatterns
from core.api.routing import Route

routes: list[Route] = [*config_routes, *conversation_routes]
urlpatterns = [*config_urlpatterns, *conversation_urlpatterns]
