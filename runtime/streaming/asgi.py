"""ASGI wiring for streams: every stream request shares one thread for Django's thread-sensitive work.

Django's ASGI handler gives each request its own thread for thread-sensitive calls (signals, sync
middleware) and keeps it until the response ends; for a stream that may wait for minutes, that is one
idle thread per open stream. Stream requests do their database work on the stream read threads
(`runtime.streaming.hub.db_read`), so their thread-sensitive work (the request signals and the sync
middleware, each a moment long) can share one thread: however many streams are open, the process's
thread count stays the same. Only this module and the view know the stream's path.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

from asgiref.sync import ThreadSensitiveContext

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

STREAM_PATH = re.compile(r"/api/runs/[^/]+/stream/\Z")
_stream_requests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-requests")
# True while a stream request is served through `streams_share_one_thread`: its reads then go to the
# stream read threads. Elsewhere (Django's test client, runserver) they stay on the request's thread.
stream_served: ContextVar[bool] = ContextVar("agentchat_stream_served", default=False)


def streams_share_one_thread(app: Asgi) -> Asgi:
    """`app`, with every stream request's thread-sensitive work on one shared thread."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and STREAM_PATH.search(scope.get("path", "")):
            token = stream_served.set(True)
            try:
                async with ThreadSensitiveContext(executor=_stream_requests):
                    await app(scope, receive, send)
            finally:
                stream_served.reset(token)
        else:
            await app(scope, receive, send)

    return application
