"""Server-Sent Events framing: one trace event is one SSE event, a heartbeat is a comment."""

from __future__ import annotations

import json
from typing import Any

# A comment line: it keeps proxies from closing an idle stream, and clients skip it. No blank line
# follows it: a blank line ends an event block, and some clients (httpx-sse) dispatch an empty event
# for a block holding only a comment; the comment simply joins the next event's block.
HEARTBEAT = b": keep-alive\n"


def event_frame(*, index: int, event_type: str, payload: Any) -> bytes:
    """`id: <index>`, `event: <type>` and the payload as one line of JSON, then the blank line that ends it.

    `json.dumps` escapes every line break inside strings (and, with ASCII output, any character the
    UTF-8 encoding could refuse), so the data is one `data:` line; the type is a `TraceEventType`
    value.
    """
    data = json.dumps(payload, separators=(",", ":"))
    return f"id: {index}\nevent: {event_type}\ndata: {data}\n\n".encode()
