"""What every app's admin shares: a paginator that never counts a whole table, read-only changelists
and inlines for the tables the services own, and the list filters several changelists use.

Django autodiscovers `core/admin.py`; this module registers nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from core.conversation.models import AgentSession

_M = TypeVar("_M", bound=Model)

COUNT_CAP = 10_000
PREVIEW_CHARS = 120
RECENT_SESSIONS = 20


class CappedCountPaginator(Paginator[Any]):
    """Counts at most COUNT_CAP rows (a LIMITed subquery, no sort), so a page costs the same on any size.

    A list longer than the cap shows COUNT_CAP results; narrow it with the filters to reach the rest.
    """

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if isinstance(rows, QuerySet):
            return rows.order_by()[:COUNT_CAP].count()
        return len(rows)


def preview(text: str) -> str:
    """One line of at most PREVIEW_CHARS characters, for a list column."""
    return Truncator(text.replace("\n", " ")).chars(PREVIEW_CHARS)


def preview_column(description: str, text_of: Callable[[Any], str]) -> Callable[[Any, Any], str]:
    """A list or inline column (an admin attribute) showing `text_of(row)` as a `preview`."""

    @admin.display(description=description)
    def column(admin_: object, row: Any) -> str:
        return preview(text_of(row))

    return column


def columns(model: type[Model], *extra: str) -> tuple[str, ...]:
    """Every stored column of `model` but its primary key, in declaration order, then `extra` (display
    methods): what the change page of a read-only record shows."""
    return (*(field.name for field in model._meta.concrete_fields if not field.primary_key), *extra)


def each_selected(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    call: Callable[[Any], object],
    done: str,
) -> None:
    """An admin action over the selected rows: `call(pk)` for each (one service call, its own transaction),
    then `done` (with `{count}`) as the success message."""
    ids = list(queryset.values_list("pk", flat=True))
    for pk in ids:
        call(pk)
    model_admin.message_user(request, done.format(count=len(ids)), messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin[_M]):
    """A view-only changelist for a table the services own; it never COUNTs the whole table."""

    show_full_result_count = False
    paginator: ClassVar[type[Paginator[Any]]] = CappedCountPaginator
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False


class ReadOnlyInlineMixin:
    """Put before `admin.TabularInline[...]`: rows shown, never added, changed or deleted; every field in
    `fields` is read-only (so a column may be a display method)."""

    extra = 0
    max_num: int | None = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return getattr(self, "fields", None) or ()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ConditionFilter(admin.SimpleListFilter):
    """A filter over fixed choices, each a label and the condition it selects (no query to list them); a value
    it does not know (a hand-edited URL) leaves the list unfiltered."""

    conditions: ClassVar[Mapping[str, tuple[str, Q]]] = {}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _) in self.conditions.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        chosen = self.conditions.get(self.value() or "")
        return queryset.filter(chosen[1]) if chosen else queryset


def choice_conditions(field: str, choices: Iterable[tuple[Any, Any]]) -> dict[str, tuple[str, Q]]:
    """`ConditionFilter.conditions` selecting each of a field's `(value, label)` choices."""
    return {str(value): (str(label), Q(**{field: value})) for value, label in choices}


class SessionFilter(admin.SimpleListFilter):
    """The RECENT_SESSIONS most recently active sessions; any session works as `?session=<id>` (no COUNT).

    `field` is the foreign key to the session; a subclass may list other sessions in `lookups`.
    """

    title = "session"
    parameter_name = "session"
    field: ClassVar[str] = "session"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Iterable[tuple[str, str]]:
        recent = AgentSession.objects.order_by("-updated", "-id").only("id", "title")[:RECENT_SESSIONS]
        return [(str(session.pk), str(session)) for session in recent]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(**{f"{self.field}_id": UUID(value)})
        except ValueError:  # a malformed id in the URL selects nothing
            return queryset.none()
