"""`GET /api/runs/{id}/stream/`: a run's trace as Server-Sent Events, resumable by event index.

A plain Django `async def` view (DRF views cannot be async) that signs the request in with DRF's own
authenticators (token, then session), run on a stream read thread. Every answer that is not a stream
is the API's: the same statuses, headers and `{"detail", "code", "fields"}` body
(`core.api.errors.exception_handler`).

The stream sends the stored events after `Last-Event-ID` (or `?after=N`; the header wins, since an
EventSource reconnects to the same URL with the header), then, for a run still open, waits on the
process's hub for more, sending `: keep-alive` every `AGENTCHAT_STREAM_HEARTBEAT_MS`. It ends after
the run's terminal event (`run_finished`), or at once when that was already sent.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from uuid import UUID

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import exception_handler
from core.conversation.selectors import run_events_after, run_get, runs_progress
from core.errors import DomainError, InvalidInputError
from core.models import TraceEventType
from runtime.streaming.hub import db_read, hub
from runtime.streaming.sse import HEARTBEAT, event_frame

# Events read (and sent as one chunk) at a time; a longer trace is read page after page.
PAGE_EVENTS = 500
# TraceEvent.index is a 32-bit column.
MAX_INDEX = 2**31 - 1
_INDEX = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class _Opened:
    run_id: UUID
    after: int


@dataclass(frozen=True)
class _Page:
    frames: bytes
    last_index: int | None
    # The terminal event has been sent (in this page or before the stream started).
    finished: bool
    full: bool


async def run_stream(request: HttpRequest, run_id: str) -> HttpResponseBase:
    """The run's events as `text/event-stream` (or the API's error answer)."""
    opened = await db_read(partial(_open, request, run_id))
    if isinstance(opened, HttpResponseBase):
        return opened
    response = StreamingHttpResponse(_frames(opened.run_id, opened.after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # Proxies that buffer responses (nginx) pass this one through as it is written.
    response["X-Accel-Buffering"] = "no"
    return response


def _open(request: HttpRequest, run_id: str) -> _Opened | HttpResponseBase:
    """Sign in, check the method, the resume point and the run's owner: what DRF's APIView would do."""
    api_request = Request(request, authenticators=APIView().get_authenticators())
    try:
        user = api_request.user
        if user is None or not user.is_authenticated:
            raise exceptions.NotAuthenticated()
        if request.method != "GET":
            raise exceptions.MethodNotAllowed(str(request.method))
        after = _resume_point(request)
        run = run_get(run_id=run_id, owner=user)
        if after > run.event_count:
            field = "Last-Event-ID" if request.headers.get("Last-Event-ID") else "after"
            raise InvalidInputError.for_field(
                field, f"{after} is past the run's last event ({run.event_count}); resume from an id the stream sent"
            )
    except (exceptions.APIException, DomainError) as exc:
        return _error(exc, api_request)
    return _Opened(run.pk, after)


def _resume_point(request: HttpRequest) -> int:
    """The index of the last event the client has (0 for none), from `Last-Event-ID` or `?after`."""
    header = request.headers.get("Last-Event-ID")
    field, raw = ("Last-Event-ID", header) if header else ("after", request.GET.get("after"))
    if raw is None:
        return 0
    if not _INDEX.fullmatch(raw) or int(raw) > MAX_INDEX:
        raise InvalidInputError.for_field(
            field, f"{raw[:40]!r} is not an event index; send the `id:` of the last event received (0 for none)"
        )
    return int(raw)


def _error(exc: exceptions.APIException | DomainError, request: Request) -> HttpResponseBase:
    """The API's answer to `exc`, as APIView.handle_exception gives it (401 with the token's header)."""
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        first = request.authenticators[0] if request.authenticators else None
        header = first.authenticate_header(request) if isinstance(first, BaseAuthentication) else None
        if header:
            exc.auth_header = header  # type: ignore[union-attr]
        else:
            exc.status_code = 403
    response = exception_handler(exc, {"request": request})
    if response is None:  # the handler answers every APIException and DomainError
        raise exc
    if isinstance(response, Response):
        response.accepted_renderer = JSONRenderer()
        response.accepted_media_type = "application/json"
        response.renderer_context = {}  # type: ignore[attr-defined]  # set by APIView.finalize_response; not in the stubs
        response.render()
    return response


def _page(run_id: UUID, after: int) -> _Page:
    events = run_events_after(run_id=run_id, after=after, limit=PAGE_EVENTS)
    if events:
        finished = events[-1].type == TraceEventType.RUN_FINISHED
    else:
        # No event after `after`: done when the run has ended (or is gone).
        progress = runs_progress(run_ids=[run_id]).get(run_id)
        finished = progress is None or progress.finished
    frames = b"".join(event_frame(index=e.index, event_type=e.type, payload=e.payload) for e in events)
    return _Page(frames, events[-1].index if events else None, finished, len(events) == PAGE_EVENTS)


async def _frames(run_id: UUID, after: int) -> AsyncIterator[bytes]:
    page = await db_read(partial(_page, run_id, after))
    if page.frames:
        yield page.frames
    if page.finished:
        # A finished run's replay needs no watching.
        return
    after = page.last_index or after
    heartbeat_s = settings.AGENTCHAT_STREAM_HEARTBEAT_MS / 1000
    the_hub = hub()
    async with the_hub.watch(run_id, after) as watch:
        read = True
        while True:
            if read:
                watch.clear()
                page = await db_read(partial(_page, run_id, after))
                if page.frames:
                    yield page.frames
                if page.finished:
                    return
                if page.last_index is not None:
                    after = watch.after = page.last_index
                if page.full:
                    continue
            read = await watch.wait(heartbeat_s)
            if not read:
                yield HEARTBEAT
                # Without a working hub (its connection lost), each heartbeat is also a look for news.
                read = not the_hub.healthy
