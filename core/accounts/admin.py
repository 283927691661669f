"""API tokens in the admin: who holds which (by name and prefix), never a key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from core.accounts.models import ApiToken

if TYPE_CHECKING:
    _TokenAdminBase = admin.ModelAdmin[ApiToken]
else:  # ModelAdmin is generic only in the type stubs
    _TokenAdminBase = admin.ModelAdmin


@admin.register(ApiToken)
class ApiTokenAdmin(_TokenAdminBase):
    """View-only: tokens are made and revoked by their owners (`/api/auth/tokens/`, `drf_create_token`)."""

    list_display = ["name", "user", "prefix", "created", "last_used"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    fields = readonly_fields = ("user", "name", "prefix", "created", "last_used")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
