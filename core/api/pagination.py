"""Pagination for every list: pages for small config tables, cursors for logs ordered by seq or time."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination, PageNumberPagination


class PagePagination(PageNumberPagination):
    """Numbered pages for small tables (configuration records)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class NewestFirstCursorPagination(CursorPagination):
    """Cursor pages newest first; no COUNT(*), so it stays fast on large tables.

    A table whose "newest" is another key subclasses this and sets only `ordering`.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering: tuple[str, ...] = ("-created", "-id")


class SeqCursorPagination(CursorPagination):
    """Cursor pages in log order (`seq`, or `index` for trace events)."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering: tuple[str, ...] = ("seq",)
