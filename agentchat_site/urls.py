"""The project's URLs: one DRF router for every app's API, the admin, the schema and its docs."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from core.accounts.api import urls as accounts_api
from core.api import urls as core_api
from memory.api import urls as memory_api
from runtime.api import urls as runtime_api
from runtime.streaming.views import run_stream
from telemetry.api import urls as telemetry_api
from web import urls as web_urls

router = DefaultRouter()
for route in [*accounts_api.routes, *core_api.routes, *memory_api.routes, *telemetry_api.routes, *runtime_api.routes]:
    router.register(route.prefix, route.viewset, basename=route.basename)

api_patterns: list[URLPattern | URLResolver] = [
    *core_api.urlpatterns,
    *memory_api.urlpatterns,
    *telemetry_api.urlpatterns,
    *runtime_api.urlpatterns,
    path("runs/<str:run_id>/stream/", run_stream, name="run-stream"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Served from local files only (no Google Fonts link): see web/templates/web/redoc.html.
    path("redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="web/redoc.html"), name="redoc"),
    path("", include(router.urls)),
]

urlpatterns = [
    # Browsers ask every site for /favicon.ico; answer with the static icon instead of a 404.
    path("favicon.ico", RedirectView.as_view(url=static("web/favicon.svg"), permanent=True)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("api-auth/", include("rest_framework.urls", namespace="rest_framework")),
    # The pages: the chat at /, usage, memory, configuration, account (web/urls.py).
    path("", include(web_urls)),
]

admin.site.site_header = "Agent Chat"
admin.site.site_title = "Agent Chat admin"
admin.site.index_title = "Everything Agent Chat stores"
# The index shows the problems of the last `load_config` above the apps (web/templates/web/admin_index.html).
admin.site.index_template = "web/admin_index.html"
