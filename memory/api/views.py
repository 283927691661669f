"""The memory API: long-term memory (with full-text search), daily episodes, attachment summaries,
and a session's context-builder input.

Each action parses its input with a serializer, calls one service or selector, and shapes the
answer. Lists use cursor pagination (no COUNT). Unknown ids are 404, invalid input 400 with field
details, state conflicts (a key held by another memory) 409.
"""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.acting import acting_user
from core.api.pagination import NewestFirstCursorPagination
from core.api.schema import INVALID_INPUT, error_response, list_schema, path_parameters
from core.api.views import PagedViewSet, parsed, parsed_query
from core.conversation.selectors import compaction_failure
from core.errors import NotFoundError
from memory.api.serializers import (
    AttachmentListQuerySerializer,
    AttachmentSummarySerializer,
    AttachmentWriteSerializer,
    ContextQuerySerializer,
    DailyEpisodeListQuerySerializer,
    DailyEpisodeSerializer,
    DailyEpisodeWriteSerializer,
    LongTermMemoryListQuerySerializer,
    LongTermMemoryPatchSerializer,
    LongTermMemorySerializer,
    LongTermMemoryUpdateSerializer,
    LongTermMemoryWriteSerializer,
    SessionContextSerializer,
)
from memory.context import budget_validate, context_inputs
from memory.models import IMPORTANCE_DEFAULT, AttachmentSummary, DailyEpisode, LongTermMemory
from memory.search import memory_search
from memory.selectors import (
    attachment_get,
    attachment_list,
    episode_get,
    episode_list,
    memory_get,
    memory_list,
)
from memory.services import (
    SessionRef,
    attachment_record,
    episode_upsert,
    memory_delete,
    memory_forget,
    memory_restore,
    memory_update,
    memory_write,
)

ERRORS_404 = error_response("Unknown id")
ERRORS_409 = error_response("The key belongs to another memory")
RECORD_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The record id")


class EpisodeCursorPagination(NewestFirstCursorPagination):
    """Daily episodes, newest day first."""

    ordering = ("-day", "-id")


def _pk(value: str, noun: str) -> int:
    """A path id; anything but a positive integer is simply an unknown record (404)."""
    if not value.isdigit() or len(value) > 18:
        raise NotFoundError.for_field(noun, f"no {noun} {value}")
    return int(value)


@path_parameters(RECORD_ID, "retrieve", "update", "partial_update", "forget", "restore", "destroy")
class LongTermMemoryViewSet(PagedViewSet[LongTermMemory]):
    """Long-term memory: list newest first or search (`?q=`), create (a known key updates), update, delete."""

    serializer_class = LongTermMemorySerializer
    pagination_class = NewestFirstCursorPagination

    @list_schema(
        "List memories newest first, or search them with ?q= (best match first)",
        LongTermMemorySerializer,
        LongTermMemoryListQuerySerializer,
    )
    def list(self, request: Request) -> Response:
        query = parsed_query(LongTermMemoryListQuerySerializer, request)
        if "q" in query:
            # One ranked page: search results are ordered by relevance, which a cursor cannot follow.
            hits = memory_search(query["q"], query["limit"], owner_id=acting_user(request).pk)
            results = LongTermMemorySerializer([hit.memory for hit in hits], many=True).data
            return Response({"next": None, "previous": None, "results": results})
        memories = memory_list(
            owner=acting_user(request),
            kind=query.get("kind"),
            pinned=query.get("pinned"),
            key=query.get("key"),
            forgotten=query["forgotten"],
        )
        return self.page(memories)

    @extend_schema(
        summary="Remember something; a key that exists already updates that memory (200) instead of adding one (201)",
        request=LongTermMemoryWriteSerializer,
        responses={201: LongTermMemorySerializer, 200: LongTermMemorySerializer, 400: INVALID_INPUT, 404: ERRORS_404},
        examples=[
            OpenApiExample(
                "preference",
                value={"kind": "preference", "content": "Prefers metric units.", "key": "units", "pinned": True},
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        data = parsed(LongTermMemoryWriteSerializer, request.data)
        result = memory_write(owner=acting_user(request), **data)
        return self.shown(result.memory, created=result.created)

    @extend_schema(summary="One memory", responses={200: LongTermMemorySerializer, 404: ERRORS_404})
    def retrieve(self, request: Request, pk: str) -> Response:
        return self.shown(memory_get(memory_id=_pk(pk, "memory"), owner=acting_user(request)))

    @extend_schema(
        summary="Replace a memory (absent key: none; importance: 3; pinned: false)",
        request=LongTermMemoryUpdateSerializer,
        responses={200: LongTermMemorySerializer, 400: INVALID_INPUT, 404: ERRORS_404, 409: ERRORS_409},
    )
    def update(self, request: Request, pk: str) -> Response:
        memory_id = _pk(pk, "memory")
        data = parsed(LongTermMemoryUpdateSerializer, request.data)
        memory = memory_update(
            memory_id=memory_id,
            owner=acting_user(request),
            kind=data["kind"],
            content=data["content"],
            key=data.get("key"),
            importance=data.get("importance", IMPORTANCE_DEFAULT),
            pinned=data.get("pinned", False),
        )
        return self.shown(memory)

    @extend_schema(
        summary="Change some fields of a memory (pin or unpin it with `pinned`)",
        request=LongTermMemoryPatchSerializer,
        responses={200: LongTermMemorySerializer, 400: INVALID_INPUT, 404: ERRORS_404, 409: ERRORS_409},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        memory_id = _pk(pk, "memory")
        data = parsed(LongTermMemoryPatchSerializer, request.data, partial=True)
        return self.shown(memory_update(memory_id=memory_id, owner=acting_user(request), **data))

    @extend_schema(
        summary="Forget a memory softly (hidden from search, lists and models; restore undoes it)",
        request=None,
        responses={200: LongTermMemorySerializer, 404: ERRORS_404},
    )
    @action(detail=True, methods=["post"])
    def forget(self, request: Request, pk: str) -> Response:
        memory = memory_forget(memory_id=_pk(pk, "memory"), owner=acting_user(request))
        return self.shown(memory)

    @extend_schema(
        summary="Restore a forgotten memory",
        request=None,
        responses={200: LongTermMemorySerializer, 404: ERRORS_404},
    )
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str) -> Response:
        memory = memory_restore(memory_id=_pk(pk, "memory"), owner=acting_user(request))
        return self.shown(memory)

    @extend_schema(summary="Delete a memory for good", responses={204: None, 404: ERRORS_404})
    def destroy(self, request: Request, pk: str) -> Response:
        memory_delete(memory_id=_pk(pk, "memory"), owner=acting_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@path_parameters(RECORD_ID, "retrieve")
class DailyEpisodeViewSet(PagedViewSet[DailyEpisode]):
    """Daily episodes: list newest day first (filters), create or replace the one for (day, session)."""

    serializer_class = DailyEpisodeSerializer
    pagination_class = EpisodeCursorPagination

    @list_schema("List daily episodes, newest day first", DailyEpisodeSerializer, DailyEpisodeListQuerySerializer)
    def list(self, request: Request) -> Response:
        return self.filtered_page(
            request,
            DailyEpisodeListQuerySerializer,
            episode_list,
            "whole_day",
            "day_from",
            "day_to",
            "source",
            session_id="session",
        )

    @extend_schema(
        summary="Store a day's summary (201); the same day and session again replaces it (200)",
        request=DailyEpisodeWriteSerializer,
        responses={201: DailyEpisodeSerializer, 200: DailyEpisodeSerializer, 400: INVALID_INPUT, 404: ERRORS_404},
    )
    def create(self, request: Request) -> Response:
        data = parsed(DailyEpisodeWriteSerializer, request.data)
        result = episode_upsert(
            owner=acting_user(request),
            day=data["day"],
            timezone_name=data.get("timezone") or settings.AGENTCHAT_TIMEZONE,
            summary=data["summary"],
            source=data["source"],
            session_id=data.get("session"),
            first_seq=data.get("first_seq"),
            last_seq=data.get("last_seq"),
            token_count=data.get("token_count"),
            session_refs=[
                SessionRef(ref["session"], ref["first_seq"], ref["last_seq"]) for ref in data.get("session_refs", [])
            ],
        )
        return self.shown(result.record, created=result.created)

    @extend_schema(summary="One daily episode", responses={200: DailyEpisodeSerializer, 404: ERRORS_404})
    def retrieve(self, request: Request, pk: str) -> Response:
        return self.shown(episode_get(episode_id=_pk(pk, "episode"), owner=acting_user(request)))


@path_parameters(RECORD_ID, "retrieve")
class AttachmentSummaryViewSet(PagedViewSet[AttachmentSummary]):
    """Attachments and sources referenced by messages, each with the summary shared by its content."""

    serializer_class = AttachmentSummarySerializer
    pagination_class = NewestFirstCursorPagination

    @list_schema("List attachment references, newest first", AttachmentSummarySerializer, AttachmentListQuerySerializer)
    def list(self, request: Request) -> Response:
        return self.filtered_page(
            request,
            AttachmentListQuerySerializer,
            attachment_list,
            "sha256",
            "kind",
            session_id="session",
            message_id="message",
        )

    @extend_schema(
        summary="Record a message's attachment (201); the same content for the same message again answers 200",
        request=AttachmentWriteSerializer,
        responses={
            201: AttachmentSummarySerializer,
            200: AttachmentSummarySerializer,
            400: INVALID_INPUT,
            404: ERRORS_404,
            409: error_response("The sha256 was recorded with another size"),
        },
    )
    def create(self, request: Request) -> Response:
        data = parsed(AttachmentWriteSerializer, request.data)
        result = attachment_record(owner=acting_user(request), **data)
        attachment = attachment_get(attachment_id=result.record.pk)
        return self.shown(attachment, created=result.created)

    @extend_schema(
        summary="One attachment reference",
        responses={200: AttachmentSummarySerializer, 404: ERRORS_404},
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return self.shown(attachment_get(attachment_id=_pk(pk, "attachment"), owner=acting_user(request)))


class SessionContextView(APIView):
    """GET a session's context-builder input within a token budget."""

    @extend_schema(
        summary="What the model should see next: memories, checkpoint summary, episodes, attachments, recent messages",
        parameters=[
            OpenApiParameter("session_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The session id"),
            ContextQuerySerializer,
        ],
        responses={200: SessionContextSerializer, 400: INVALID_INPUT, 404: ERRORS_404},
    )
    def get(self, request: Request, session_id: UUID) -> Response:
        query = parsed_query(ContextQuerySerializer, request)
        budget = budget_validate(query["budget"]) if "budget" in query else None
        bundle = context_inputs(session_id=session_id, owner=acting_user(request), budget_tokens=budget)
        shown = dict(vars(bundle), compaction_error=compaction_failure(session_id=session_id))
        return Response(SessionContextSerializer(shown).data)
