"""Core's API routes, composed into the single router by `agentchat_site.urls`."""

from __future__ import annotations

from core.api.routing import Route
from core.config.api.urls import routes as config_routes
from core.config.api.urls import urlpatterns as config_urlpatterns
from core.conversation.api.urls import routes as conversation_routes
from core.conversation.api.urls import urlpatterns as conversation_urlpatterns

routes: list[Route] = [*config_routes, *conversation_routes]
urlpatterns = [*config_urlpatterns, *conversation_urlpatterns]
