"""Admin for the memory tiers: read-only records (services own the writes), with search and filters.

The memory settings are the config file's `[memory]` table: read-only here, like every config record.
Long-term memory is searched with the full-text index (every word must match) and can be pinned,
unpinned or forgotten through actions that call the services. Lists count at most COUNT_CAP rows.
"""

from __future__ import annotations

from typing import TypeVar

from django.contrib import admin, messages
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from core.admin_base import ConditionFilter, ReadOnlyAdmin, SessionFilter, choice_conditions, columns, each_selected
from core.models import MemorySettings
from memory.models import (
    IMPORTANCE_MAX,
    IMPORTANCE_MIN,
    AttachmentContent,
    AttachmentSummary,
    DailyEpisode,
    LongTermMemory,
)
from memory.search import memory_search_q
from memory.services import episode_delete, memory_delete, memory_pin

_M = TypeVar("_M", bound=Model)


class _MemoryAdmin(ReadOnlyAdmin[_M]):
    """Records written by services: viewable, never added or edited here."""

    list_per_page = 50


class PinnedFilter(ConditionFilter):
    title = parameter_name = "pinned"
    conditions = {"yes": ("Pinned", Q(pinned=True)), "no": ("Not pinned", Q(pinned=False))}


class ImportanceFilter(ConditionFilter):
    """Fixed choices: the default filter would SELECT DISTINCT over the whole table."""

    title = parameter_name = "importance"
    conditions = choice_conditions(
        "importance", ((value, value) for value in range(IMPORTANCE_MAX, IMPORTANCE_MIN - 1, -1))
    )


class SourceSessionFilter(SessionFilter):
    """A long-term memory's provenance session."""

    title = "source session"
    field = "source_session"


@admin.register(LongTermMemory)
class LongTermMemoryAdmin(_MemoryAdmin[LongTermMemory]):
    list_display = [
        "id",
        "owner",
        "kind",
        "key",
        "short_content",
        "importance",
        "pinned",
        "source_session",
        "updated",
        "last_used_at",
    ]
    list_filter = ["owner", "kind", PinnedFilter, ImportanceFilter, SourceSessionFilter, "created"]
    list_select_related = ["source_session", "owner"]
    search_fields = ["content"]  # answered by the full-text index, see get_search_results
    search_help_text = "Every word must occur (full-text search over content and key)."
    ordering = ["-created", "-id"]
    actions = ["pin", "unpin", "forget"]

    @admin.display(description="content")
    def short_content(self, obj: LongTermMemory) -> str:
        return obj.content if len(obj.content) <= 80 else f"{obj.content[:77]}…"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[LongTermMemory], search_term: str
    ) -> tuple[QuerySet[LongTermMemory], bool]:
        if not search_term.strip():
            return queryset, False
        return queryset.filter(memory_search_q(search_term)), False

    @admin.action(description="Pin selected memories")
    def pin(self, request: HttpRequest, queryset: QuerySet[LongTermMemory]) -> None:
        changed = memory_pin(memory_ids=list(queryset.values_list("id", flat=True)), pinned=True)
        self.message_user(request, f"Pinned {changed} memories.", messages.SUCCESS)

    @admin.action(description="Unpin selected memories")
    def unpin(self, request: HttpRequest, queryset: QuerySet[LongTermMemory]) -> None:
        changed = memory_pin(memory_ids=list(queryset.values_list("id", flat=True)), pinned=False)
        self.message_user(request, f"Unpinned {changed} memories.", messages.SUCCESS)

    @admin.action(description="Forget selected memories")
    def forget(self, request: HttpRequest, queryset: QuerySet[LongTermMemory]) -> None:
        each_selected(self, request, queryset, lambda pk: memory_delete(memory_id=pk), "Forgot {count} memories.")


class ScopeFilter(ConditionFilter):
    title = parameter_name = "scope"
    conditions = {
        "whole_day": ("Whole day", Q(session__isnull=True)),
        "session": ("One session", Q(session__isnull=False)),
    }


@admin.register(DailyEpisode)
class DailyEpisodeAdmin(_MemoryAdmin[DailyEpisode]):
    list_display = ["day", "owner", "timezone", "session", "source", "first_seq", "last_seq", "token_count", "updated"]
    list_filter = ["owner", "source", ScopeFilter, SessionFilter, "day"]
    list_select_related = ["session", "owner"]
    search_fields = ["summary", "=session__id"]
    search_help_text = "Words in the summary, or a session id."
    date_hierarchy = "day"
    ordering = ["-day", "-id"]
    actions = ["forget"]

    @admin.action(description="Delete selected episodes")
    def forget(self, request: HttpRequest, queryset: QuerySet[DailyEpisode]) -> None:
        each_selected(self, request, queryset, lambda pk: episode_delete(episode_id=pk), "Deleted {count} episodes.")


@admin.register(AttachmentSummary)
class AttachmentSummaryAdmin(_MemoryAdmin[AttachmentSummary]):
    list_display = [
        "display_name",
        "owner",
        "kind",
        "mime_type",
        "size",
        "sha256_prefix",
        "session",
        "message_seq",
        "created",
    ]
    # The owner is the session's, which the content carries too.
    list_filter = [("content__owner", admin.RelatedFieldListFilter), "kind", SessionFilter, "created"]
    list_select_related = ["content__owner", "session", "message"]
    search_fields = ["display_name", "=content__sha256", "=session__id"]
    search_help_text = "A display name, a full sha256 or a session id."
    ordering = ["-created", "-id"]

    @admin.display(description="owner", ordering="content__owner__username")
    def owner(self, obj: AttachmentSummary) -> str:
        return str(obj.content.owner)

    @admin.display(description="size (bytes)", ordering="content__size_bytes")
    def size(self, obj: AttachmentSummary) -> int:
        return obj.content.size_bytes

    @admin.display(description="sha256")
    def sha256_prefix(self, obj: AttachmentSummary) -> str:
        return f"{obj.content.sha256[:12]}…"

    @admin.display(description="message", ordering="message__seq")
    def message_seq(self, obj: AttachmentSummary) -> str:
        return f"#{obj.message.seq}"


@admin.register(AttachmentContent)
class AttachmentContentAdmin(_MemoryAdmin[AttachmentContent]):
    list_display = ["sha256", "owner", "size_bytes", "token_count", "has_summary", "created"]
    list_select_related = ["owner"]
    list_filter = ["owner", "created"]
    search_fields = ["=sha256", "summary"]
    ordering = ["-created", "-id"]

    @admin.display(description="summarised", boolean=True)
    def has_summary(self, obj: AttachmentContent) -> bool:
        return bool(obj.summary)


@admin.register(MemorySettings)
class MemorySettingsAdmin(ReadOnlyAdmin[MemorySettings]):
    """The `[memory]` table of the configuration file: shown here, changed in the file (`load_config`)."""

    list_display = ["keep_recent_messages", "summary_route", "extract_facts", "updated"]
    fields = columns(MemorySettings)
