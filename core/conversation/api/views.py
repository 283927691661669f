"""The conversation API: sessions, their messages, checkpoints and restore; runs and their traces.

Each action parses its input with a serializer, calls one service or selector, and shapes the
answer. Lists use cursor pagination (no COUNT), so they stay constant-cost on large tables.
Unknown or malformed ids are 404, invalid input 400 with field details, state conflicts 409.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import views
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from core.api.acting import acting_user
from core.api.pagination import NewestFirstCursorPagination, SeqCursorPagination
from core.api.schema import INVALID_INPUT, error_response, list_schema, path_parameters
from core.api.views import PagedViewSet, parsed, parsed_query
from core.conversation.api.serializers import (
    CheckpointCreateSerializer,
    CheckpointSerializer,
    LeafSetSerializer,
    MessageAppendSerializer,
    MessageListQuerySerializer,
    MessagePageSerializer,
    MessageSerializer,
    PathQuerySerializer,
    RestoreSerializer,
    RunCancelSerializer,
    RunCreateSerializer,
    RunListQuerySerializer,
    RunSerializer,
    RunTextSerializer,
    SearchPageSerializer,
    SearchQuerySerializer,
    SessionCreateSerializer,
    SessionDeleteSerializer,
    SessionHitsSerializer,
    SessionListQuerySerializer,
    SessionSerializer,
    SessionUpdateSerializer,
    SiblingsSerializer,
    TraceEventAppendSerializer,
    TraceEventListQuerySerializer,
    TraceEventSerializer,
)
from core.conversation.search import DEFAULT_PAGE_SIZE, SearchCursor, SearchFilters, message_search
from core.conversation.selectors import (
    SESSION_LIST_ORDER,
    PathPage,
    checkpoints_list,
    message_seq,
    message_siblings,
    messages_page,
    path_page,
    run_get,
    run_text,
    runs_list,
    session_get,
    session_restore,
    sessions_list,
    trace_events,
)
from core.conversation.services import (
    checkpoint_create,
    message_append,
    run_cancel_request,
    run_create,
    run_event_append,
    session_archive,
    session_create,
    session_delete,
    session_leaf_set,
    session_unarchive,
    session_update,
)
from core.models import AgentSession, Checkpoint, Message, Run, TraceEvent

ERRORS_404 = error_response("Unknown (or malformed) id")
ERRORS_409 = error_response("The record's state forbids this")
SESSION_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The session id")
SESSION_ID_NESTED = OpenApiParameter("session_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Session id")
MESSAGE_SEQ = OpenApiParameter("seq", OpenApiTypes.INT, OpenApiParameter.PATH, description="The message's seq")
RUN_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The run id")
RUN_ID_NESTED = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The run id")


class NewestCheckpointCursorPagination(NewestFirstCursorPagination):
    """A session's checkpoints, newest first."""

    ordering = ("-id",)


class PinnedFirstCursorPagination(NewestFirstCursorPagination):
    """The session list: pinned first, then newest created; the cursor holds all three keys.

    DRF's cursor filters on the first ordering field only (with an offset for ties), and `pinned`
    ties for nearly every row; here the position is (pinned, created, id) and the next page starts
    strictly after it, so every page is one index range, never an offset.
    """

    ordering = SESSION_LIST_ORDER

    def _get_position_from_instance(self, instance: Any, ordering: Any) -> str:
        return json.dumps([getattr(instance, name.lstrip("-")).__str__() for name in ordering])

    def _after(self, queryset: QuerySet[Any], position: str, reverse: bool) -> QuerySet[Any]:
        """Rows strictly after `position` in the list's order (before it when paging backwards)."""
        try:
            raw = json.loads(position)
            if not isinstance(raw, list) or len(raw) != len(self.ordering):
                raise ValueError(position)
            names = [name.lstrip("-") for name in self.ordering]
            values = [
                queryset.model._meta.get_field(name).to_python(value) for name, value in zip(names, raw, strict=True)
            ]
        except (ValueError, TypeError, ValidationError):
            raise NotFound(self.invalid_cursor_message) from None
        condition = Q()
        for index, name in enumerate(self.ordering):
            descending = name.startswith("-") != reverse
            step = Q(**{f"{names[index]}__{'lt' if descending else 'gt'}": values[index]})
            equal = Q(**{names[earlier]: values[earlier] for earlier in range(index)})
            condition |= equal & step
        return queryset.filter(condition)

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> list[Any] | None:
        """DRF's cursor page, with the position compared on every key (its own compares the first only)."""
        self.request = request
        self.page_size = self.get_page_size(request) or NewestFirstCursorPagination.page_size
        self.base_url = request.build_absolute_uri()
        self.cursor = self.decode_cursor(request)
        reverse = bool(self.cursor and self.cursor.reverse)
        # The stubs type a position as an int; DRF keeps the string it decoded.
        position: str | None = (
            None if self.cursor is None or self.cursor.position is None else str(self.cursor.position)
        )
        offset = self.cursor.offset if self.cursor else 0
        flipped = [name[1:] if name.startswith("-") else f"-{name}" for name in self.ordering]
        queryset = queryset.order_by(*(flipped if reverse else self.ordering))
        if position is not None:
            queryset = self._after(queryset, position, reverse)
        rows = list(queryset[offset : offset + self.page_size + 1])
        self.page = rows[: self.page_size]
        following = self._get_position_from_instance(rows[-1], self.ordering) if len(rows) > self.page_size else None
        started_later = position is not None or offset > 0
        if reverse:
            self.page.reverse()
            self.has_next, self.has_previous = started_later, following is not None
            self.next_position, self.previous_position = position, following
        else:
            self.has_next, self.has_previous = following is not None, started_later
            self.next_position, self.previous_position = following, position
        self.display_page_controls = self.has_next or self.has_previous
        return self.page


class EventIndexCursorPagination(SeqCursorPagination):
    """A run's events in index order."""

    ordering = ("index",)


def _messages_next(request: Request, session_id: UUID, after_seq: int | None, page_size: int | None) -> str | None:
    """The absolute URL of the message list page that starts after `after_seq` (None: nothing follows)."""
    if after_seq is None:
        return None
    query = {"after_seq": after_seq} if page_size is None else {"after_seq": after_seq, "page_size": page_size}
    path = reverse("session-messages", kwargs={"session_id": str(session_id)})
    return request.build_absolute_uri(f"{path}?{urlencode(query)}")


def _path_next(request: Request, session_id: UUID, page: PathPage, after_seq: int, page_size: int | None) -> str | None:
    """The absolute URL of the active path's page of older messages (None: the path, above `after_seq`, ends here)."""
    if page.next_before_seq is None:
        return None
    query = {"before_seq": page.next_before_seq, "after_seq": after_seq}
    if page_size is not None:
        query["page_size"] = page_size
    path = reverse("session-path", kwargs={"pk": str(session_id)})
    return request.build_absolute_uri(f"{path}?{urlencode(query)}")


def _path_body(request: Request, session_id: UUID, page: PathPage, after_seq: int, size: int | None) -> dict[str, Any]:
    return {
        "next": _path_next(request, session_id, page, after_seq, size),
        "results": MessageSerializer(page.messages, many=True).data,
    }


@path_parameters(SESSION_ID, "retrieve", "partial_update", "destroy", "archive", "unarchive", "restore", "leaf", "path")
class SessionViewSet(PagedViewSet[AgentSession]):
    """Conversations: list newest first, create on a route, rename, move, archive and delete."""

    serializer_class = SessionSerializer
    pagination_class = PinnedFirstCursorPagination

    @list_schema("List sessions, pinned first, then newest first", SessionSerializer, SessionListQuerySerializer)
    def list(self, request: Request) -> Response:
        return self.filtered_page(
            request, SessionListQuerySerializer, sessions_list, "status", "needs_compaction", "tag"
        )

    @extend_schema(
        summary="Start a session, with an agent or a team (on its route unless `route` names one)",
        request=SessionCreateSerializer,
        responses={201: SessionSerializer, 400: INVALID_INPUT},
        examples=[OpenApiExample("create", value={"title": "Trip planning", "route": "replay"}, request_only=True)],
    )
    def create(self, request: Request) -> Response:
        data = parsed(SessionCreateSerializer, request.data)
        session = session_create(
            owner=acting_user(request),
            title=data["title"],
            route_alias=data["route"] or None,
            agent_name=data["agent"] or None,
            team_name=data["team"] or None,
        )
        return self.shown(session_get(session_id=session.pk), created=True)

    @extend_schema(summary="One session with its counters", responses={200: SessionSerializer, 404: ERRORS_404})
    def retrieve(self, request: Request, pk: str) -> Response:
        return self.shown(session_get(session_id=pk, owner=acting_user(request)))

    @extend_schema(
        summary="Rename a session, move it to another route, pin it, set its tags or bind an agent or team",
        request=SessionUpdateSerializer,
        responses={200: SessionSerializer, 400: INVALID_INPUT, 404: ERRORS_404, 409: ERRORS_409},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        data = parsed(SessionUpdateSerializer, request.data)
        return self.shown(session_update(session_id=pk, owner=acting_user(request), **data))

    @extend_schema(
        summary="Delete a session with its messages, checkpoints, runs and events (explicit; archive is the default)",
        responses={200: SessionDeleteSerializer, 404: ERRORS_404, 409: ERRORS_409},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        result = session_delete(session_id=pk, owner=acting_user(request))
        return Response(SessionDeleteSerializer(result).data)

    @extend_schema(
        summary="Archive a session (it keeps everything and takes no new writes)",
        request=None,
        responses={200: SessionSerializer, 404: ERRORS_404, 409: ERRORS_409},
    )
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str) -> Response:
        return self.shown(session_archive(session_id=pk, owner=acting_user(request)))

    @extend_schema(
        summary="Make an archived session active again",
        request=None,
        responses={200: SessionSerializer, 404: ERRORS_404, 409: ERRORS_409},
    )
    @action(detail=True, methods=["post"])
    def unarchive(self, request: Request, pk: str) -> Response:
        return self.shown(session_unarchive(session_id=pk, owner=acting_user(request)))

    @extend_schema(
        summary=(
            "The latest checkpoint and the first page of the messages after its through_seq "
            "(`next` pages the rest of the tail)"
        ),
        responses={200: RestoreSerializer, 404: ERRORS_404},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def restore(self, request: Request, pk: str) -> Response:
        restored = session_restore(session_id=pk, owner=acting_user(request))
        body = RestoreSerializer(restored).data
        after_seq = restored.checkpoint.through_seq if restored.checkpoint is not None else 0
        page = PathPage(messages=restored.messages, next_before_seq=restored.next_before_seq)
        body["next"] = _path_next(request, restored.session.pk, page, after_seq, None)
        return Response(body)

    @extend_schema(
        summary="Switch branches: the message `seq` becomes the session's stored leaf (the active path ends there)",
        request=LeafSetSerializer,
        responses={200: SessionSerializer, 400: INVALID_INPUT, 404: ERRORS_404, 409: ERRORS_409},
        examples=[OpenApiExample("switch", value={"seq": 4}, request_only=True)],
    )
    @action(detail=True, methods=["post"])
    def leaf(self, request: Request, pk: str) -> Response:
        data = parsed(LeafSetSerializer, request.data)
        return Response(
            SessionSerializer(session_leaf_set(session_id=pk, owner=acting_user(request), seq=data["seq"])).data
        )

    @extend_schema(
        summary=(
            "The active path from the leaf backwards: the newest page first, each page in seq order, bounded by "
            "count and bytes (`next` reads the older messages)"
        ),
        parameters=[PathQuerySerializer],
        responses={200: MessagePageSerializer, 400: INVALID_INPUT, 404: ERRORS_404},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def path(self, request: Request, pk: str) -> Response:
        query = parsed_query(PathQuerySerializer, request)
        session = session_get(session_id=pk, owner=acting_user(request))
        before = query["before_seq"]
        page = path_page(
            session_id=session.pk,
            start_seq=session.leaf if before is None else before,
            before=before is not None,
            after_seq=query["after_seq"],
            limit=query["page_size"],
        )
        size = query["page_size"] if "page_size" in request.query_params else None
        return Response(_path_body(request, session.pk, page, query["after_seq"], size))


class MessageSiblingsView(APIView):
    """A message among its siblings: the alternatives an edit or a regenerated reply made."""

    @extend_schema(
        operation_id="sessions_messages_siblings_retrieve",
        summary="A message's siblings (`2 of 3`), each with the newest message of its branch",
        parameters=[SESSION_ID_NESTED, MESSAGE_SEQ],
        responses={200: SiblingsSerializer, 404: ERRORS_404},
    )
    def get(self, request: Request, session_id: str, seq: int) -> Response:
        found = message_siblings(session_id=session_id, owner=acting_user(request), seq=message_seq(seq))
        siblings = [
            {"seq": m.seq, "role": m.role, "content": m.content, "created": m.created, "leaf": found.leaves[m.seq]}
            for m in found.siblings
        ]
        body = {"seq": found.message.seq, "position": found.position, "count": len(siblings), "siblings": siblings}
        return Response(SiblingsSerializer(body).data)


@path_parameters(SESSION_ID_NESTED, "list", "create")
class SessionMessageViewSet(PagedViewSet[Message]):
    """A session's message log: read it in seq order, append to it."""

    serializer_class = MessageSerializer
    pagination_class = None

    @extend_schema(
        summary=(
            "Messages in seq order, pages bounded by count and bytes (`after_seq` reads only the tail; "
            "`next` continues)"
        ),
        parameters=[MessageListQuerySerializer],
        responses={200: MessagePageSerializer, 400: INVALID_INPUT, 404: ERRORS_404},
    )
    def list(self, request: Request, session_id: str) -> Response:
        query = parsed_query(MessageListQuerySerializer, request)
        session = session_get(session_id=session_id, owner=acting_user(request))
        page = messages_page(session=session, after_seq=query["after_seq"], limit=query["page_size"])
        explicit_size = query["page_size"] if "page_size" in request.query_params else None
        return Response(
            {
                "next": _messages_next(request, session.pk, page.next_after_seq, explicit_size),
                "results": MessageSerializer(page.messages, many=True).data,
            }
        )

    @extend_schema(
        summary="Append a message (201); a retry with the same client_id returns the stored one (200)",
        request=MessageAppendSerializer,
        responses={
            201: MessageSerializer,
            200: OpenApiResponse(MessageSerializer, description="Idempotent retry: the message already stored"),
            400: INVALID_INPUT,
            404: ERRORS_404,
            409: ERRORS_409,
        },
        examples=[
            OpenApiExample(
                "append", value={"role": "user", "content": "Hello", "client_id": "ui-7f3a"}, request_only=True
            )
        ],
    )
    def create(self, request: Request, session_id: str) -> Response:
        data = parsed(MessageAppendSerializer, request.data)
        result = message_append(session_id=session_id, owner=acting_user(request), **data)
        return self.shown(result.record, created=result.created)


@path_parameters(SESSION_ID_NESTED, "list", "create")
class SessionCheckpointViewSet(PagedViewSet[Checkpoint]):
    """A session's checkpoints: list newest first, write one."""

    serializer_class = CheckpointSerializer
    pagination_class = NewestCheckpointCursorPagination

    @list_schema("Checkpoints, newest first", CheckpointSerializer, not_found=ERRORS_404)
    def list(self, request: Request, session_id: str) -> Response:
        session = session_get(session_id=session_id, owner=acting_user(request))
        return self.page(checkpoints_list(session_id=session.pk))

    @extend_schema(
        summary="Write a checkpoint covering the log up to through_seq",
        request=CheckpointCreateSerializer,
        responses={201: CheckpointSerializer, 400: INVALID_INPUT, 404: ERRORS_404, 409: ERRORS_409},
        examples=[
            OpenApiExample(
                "compaction",
                value={"through_seq": 120, "summary": "We planned the trip…", "state": {}, "reason": "compaction"},
                request_only=True,
            )
        ],
    )
    def create(self, request: Request, session_id: str) -> Response:
        data = parsed(CheckpointCreateSerializer, request.data)
        checkpoint = checkpoint_create(session_id=session_id, owner=acting_user(request), **data)
        return self.shown(checkpoint, created=True)


@path_parameters(RUN_ID, "retrieve", "cancel", "text")
class RunViewSet(PagedViewSet[Run]):
    """Runs (one model turn each): open, list, read, cancel, and the text their trace streamed."""

    serializer_class = RunSerializer
    pagination_class = NewestFirstCursorPagination

    @list_schema(
        "List runs newest first (filter by session, status and purpose: chat turns unless asked)",
        RunSerializer,
        RunListQuerySerializer,
    )
    def list(self, request: Request) -> Response:
        return self.filtered_page(request, RunListQuerySerializer, runs_list, "status", "purpose", session_id="session")

    @extend_schema(
        summary="Open a run on a session (queued, or running)",
        request=RunCreateSerializer,
        responses={201: RunSerializer, 400: INVALID_INPUT, 404: ERRORS_404, 409: ERRORS_409},
    )
    def create(self, request: Request) -> Response:
        data = parsed(RunCreateSerializer, request.data)
        run = run_create(owner=acting_user(request), **data)
        return self.shown(run_get(run_id=run.pk), created=True)

    @extend_schema(summary="One run", responses={200: RunSerializer, 404: ERRORS_404})
    def retrieve(self, request: Request, pk: str) -> Response:
        return self.shown(run_get(run_id=pk, owner=acting_user(request)))

    @extend_schema(
        summary="Cancel a queued or running run, recording why",
        description="A run a worker holds (a live lease) only gets `cancel_requested_at`: the worker ends it "
        "`cancelled` within a second, keeping every character streamed so far. A run nobody holds is "
        "cancelled at once.",
        request=RunCancelSerializer,
        responses={200: RunSerializer, 400: INVALID_INPUT, 404: ERRORS_404, 409: ERRORS_409},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        data = parsed(RunCancelSerializer, request.data)
        run = run_cancel_request(run_id=pk, owner=acting_user(request), reason=data["reason"])
        return self.shown(run_get(run_id=run.pk))

    @extend_schema(
        summary="The streamed text rebuilt from the run's text_delta events",
        responses={200: RunTextSerializer, 404: ERRORS_404},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def text(self, request: Request, pk: str) -> Response:
        run = run_get(run_id=pk, owner=acting_user(request))
        return Response(RunTextSerializer({"run": run.pk, "text": run_text(run_id=run.pk)}).data)


@path_parameters(RUN_ID_NESTED, "list", "create")
class RunEventViewSet(PagedViewSet[TraceEvent]):
    """A run's stream trace: read it in index order, append the next event."""

    serializer_class = TraceEventSerializer
    pagination_class = EventIndexCursorPagination

    @list_schema(
        "Events in index order (cursor pages; `after_index` reads only what follows)",
        TraceEventSerializer,
        TraceEventListQuerySerializer,
        not_found=ERRORS_404,
    )
    def list(self, request: Request, run_id: str) -> Response:
        query = parsed_query(TraceEventListQuerySerializer, request)
        run = run_get(run_id=run_id, owner=acting_user(request))
        return self.page(trace_events(run_id=run.pk, after_index=query["after_index"]))

    @extend_schema(
        summary="Append the next event; run_finished (or error, then run_finished) ends the run",
        request=TraceEventAppendSerializer,
        responses={201: TraceEventSerializer, 400: INVALID_INPUT, 404: ERRORS_404, 409: ERRORS_409},
        examples=[OpenApiExample("delta", value={"type": "text_delta", "payload": {"text": "Hel"}}, request_only=True)],
    )
    def create(self, request: Request, run_id: str) -> Response:
        data = parsed(TraceEventAppendSerializer, request.data)
        event = run_event_append(run_id=run_id, owner=acting_user(request), **data)
        return self.shown(event, created=True)


class SearchView(views.APIView):
    """Full-text search over every message of the requesting user's sessions."""

    @extend_schema(
        summary=(
            'Sessions whose messages match `q` (words, "phrases", prefix*), best first, each with its best '
            "matches: seq to jump to and an HTML-escaped snippet with <mark>…</mark> around matching words"
        ),
        parameters=[SearchQuerySerializer],
        responses={200: SearchPageSerializer, 400: INVALID_INPUT},
    )
    def get(self, request: Request) -> Response:
        query = parsed_query(SearchQuerySerializer, request)
        page = message_search(
            owner=acting_user(request),
            query=query["q"],
            filters=SearchFilters(
                session_id=query.get("session"),
                role=query.get("role"),
                date_from=query.get("from"),
                date_to=query.get("to"),
                tag=query.get("tag"),
                include_archived=query["include_archived"],
            ),
            cursor=SearchCursor.decode(query["cursor"]) if "cursor" in query else None,
            page_size=query.get("page_size", DEFAULT_PAGE_SIZE),
        )
        following = None
        if page.next_cursor is not None:
            params = request.query_params.copy()
            params["cursor"] = page.next_cursor.encode()
            following = request.build_absolute_uri(f"{reverse('search')}?{params.urlencode()}")
        return Response({"next": following, "results": SessionHitsSerializer(page.results, many=True).data})
