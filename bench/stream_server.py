"""A local OpenAI-compatible server for the streaming workload (9): one Chat Completions stream
of `tokens` content chunks, built once and sent as fast as the socket takes it.

Each chunk is the shape OpenAI's Chat Completions stream sends (`chat.completion.chunk`, one
`delta.content` each), then a chunk with `finish_reason: "stop"`, a usage chunk (what
`stream_options.include_usage` asks for) and `data: [DONE]`. `arrivals` keeps when each request
was read (`time.monotonic()`, the same clock as the bench's process), for the fixed cost of a turn.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "bench-stream-1"


def token_text(n: int) -> str:
    """The n-th token: a short word with its leading space, about four characters like a real token."""
    return f" w{n % 997}"


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": choices,
        **extra,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def stream_body(tokens: int) -> bytes:
    parts = [
        _chunk([{"index": 0, "delta": {"content": token_text(n)}, "logprobs": None, "finish_reason": None}])
        for n in range(tokens)
    ]
    parts.append(_chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": tokens + 12}
    parts.append(_chunk([], usage=usage))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def stream_text(tokens: int) -> str:
    return "".join(token_text(n) for n in range(tokens))


class TokenServer:
    """`with TokenServer(20_000) as server:`; `server.url` is its base URL (`…/v1`)."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.body = stream_body(tokens)
        self.arrivals: list[float] = []
        self.log_lines: list[str] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> TokenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                # Kept here instead of on stderr, off the bench's output.
                with server.lock:
                    server.log_lines.append(format % args)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server.lock:
                    server.arrivals.append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(server.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(server.body)
                self.wfile.flush()

        return Handler
