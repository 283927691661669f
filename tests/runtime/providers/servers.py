"""A local HTTP server on 127.0.0.1 that speaks a provider's wire protocol by replaying recordings.

Each request is answered by the next planned `Reply` (the last one repeats): a status, headers and
a body — a recorded SSE stream from `recordings/`, sent event by event as HTTP/1.1 chunks (so a
`cut_after` reply can drop the connection mid-body, which a client sees as a broken stream), or
a JSON error body. `event_delay_s` makes a slow stream; `disconnected_at` records when the server
found the client gone. Every request (path, headers, JSON body) is kept in `requests`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).parent / "recordings"


def recording(name: str) -> bytes:
    return (RECORDINGS / name).read_bytes()


def sse_events(body: bytes) -> list[bytes]:
    """The events of an SSE body, each with its blank-line terminator."""
    return [block.strip(b"\n") + b"\n\n" for block in body.replace(b"\r\n", b"\n").split(b"\n\n") if block.strip()]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # events sent before the connection is dropped
    event_delay_s: float = 0.0

    @classmethod
    def sse(cls, name: str, **kwargs: Any) -> Reply:
        return cls(body=recording(name), **kwargs)

    @classmethod
    def error(cls, status: int, payload: dict[str, Any], **kwargs: Any) -> Reply:
        return cls(status=status, body=json.dumps(payload).encode(), content_type="application/json", **kwargs)


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class ProviderServer:
    """Start with `with ProviderServer(Reply(...), ...) as server:`; `server.url` is its base URL."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[SeenRequest] = []
        # The access log, kept here instead of on stderr, for a failing test to show.
        self.log_lines: list[str] = []
        self.disconnected_at: float | None = None
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ProviderServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def next_reply(self) -> Reply:
        with self.lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                with server.lock:
                    server.log_lines.append(format % args)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                seen = SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                with server.lock:
                    server.requests.append(seen)
                reply = server.next_reply()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Connection", "close")
                if reply.content_type != "text/event-stream":
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for n, event in enumerate(sse_events(reply.body)):
                        if reply.cut_after is not None and n >= reply.cut_after:
                            self.wfile.flush()
                            self.connection.shutdown(2)  # drop the connection: no final chunk
                            return
                        if reply.event_delay_s:
                            time.sleep(reply.event_delay_s)
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    server.disconnected_at = time.monotonic()

        return Handler
