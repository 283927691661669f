"""The pages a person uses in the browser (every one requires sign-in)."""

from __future__ import annotations

from django.urls import URLPattern, path

from web import pages, transfer
from web.views import ChatView, SearchView

urlpatterns: list[URLPattern] = [
    path("", ChatView.as_view(), name="index"),
    path("chat/<uuid:session_id>/", ChatView.as_view(), name="web-chat"),
    path("search/", SearchView.as_view(), name="web-search"),
    path("usage/", pages.UsageView.as_view(), name="web-usage"),
    path("memory/", pages.MemoryView.as_view(), name="web-memory"),
    path("configuration/", pages.ConfigView.as_view(), name="web-config"),
    path("account/", pages.AccountView.as_view(), name="web-account"),
    path("import/", transfer.ImportPage.as_view(), name="web-import"),
    path("import/<uuid:job_id>/", transfer.ImportJobPage.as_view(), name="web-import-job"),
    path("export/", transfer.ExportAllView.as_view(), name="web-export"),
]
