"""The base of the network providers: options, the key read at call time, tools, and failures.

A `LiveAdapter` subclass implements `_events` with its provider's official SDK and `_failure` to
turn that SDK's exceptions into a `Failure`; `stream` does the rest the same way for every kind:

- the key is read from the provider's variable when the turn starts, handed to the SDK only, and
  scrubbed from every error text (a provider that echoes it back cannot leak it);
- 401/403 → `key_refused` naming the variable; 404 → `model_not_found` naming the model and the
  provider; context length exceeded → `context_length_exceeded` with what to do; 429 →
  `rate_limited`, 5xx → `provider_unavailable`, timeouts → `timeout`, no connection →
  `provider_unreachable`, each after the SDK's bounded retries and with the provider's message;
- a stream cut before its terminal event → `stream_interrupted` (the text already streamed stays
  streamed); closing the generator closes the HTTP stream at once;
- tools go out under names every provider accepts (`ToolNames`), and a tool the provider's format
  cannot carry refuses the request before it is sent (`ProviderAdapter.tools_check`).
- `close()` from another thread (a cancel) shuts down the sockets of the turn's HTTP connections
  (each SDK's client gets `http_hooks`, which hand every connection's socket to the adapter's
  `StreamStop`): a read blocked on a silent provider wakes at once and the stream ends, yielding
  nothing more (no error: the stream was stopped on purpose).
"""

from __future__ import annotations

import json
import os
import re
import socket
from abc import abstractmethod
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx2

from core.config.live_options import LiveOptions, live_options_parse
from core.conversation.contracts import ToolResultPart
from core.conversation.events import (
    ErrorEvent,
    FinishReason,
    Reasoning,
    RuntimeEvent,
    TextDelta,
    ToolCall,
    Usage,
)
from core.errors import InvalidInputError
from runtime.providers.base import PromptMessage, ProviderAdapter, ToolDefinition

CONTEXT_LENGTH_MARKERS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "input token count",
    "exceeds the maximum number of tokens",
)
MAX_PROVIDER_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class Failure:
    """What went wrong, before it is worded: an HTTP status, or a timeout / connection problem."""

    message: str
    status: int | None = None
    timeout: bool = False
    connection: bool = False


class StreamInterruptedError(Exception):
    """The provider's stream ended before its terminal event."""


TOOL_NAME_MAX = 64
COMBINERS = ("anyOf", "oneOf", "allOf")


def wire_name(name: str) -> str:
    """`name` as a tool name every provider accepts: `^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$` (OpenAI's and
    Anthropic's `^[a-zA-Z0-9_-]{1,64}$`, and Gemini's rule that a name starts with a letter or `_`)."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", name)
    if not re.match(r"[a-zA-Z_]", cleaned):
        cleaned = "_" + cleaned
    return cleaned[:TOOL_NAME_MAX]


class ToolNames:
    """Each tool name of a request under a name the provider accepts, unique, and back again.

    The tools offered come first, then any other name the prompt's tool calls use, so a history
    call and its tool's definition always go out under the same name. A name that is already valid
    is kept as it is; another is mapped (`wire_name`), with `_2`, `_3`… where two would collide.
    """

    def __init__(self, tools: Sequence[ToolDefinition], messages: Sequence[PromptMessage] = ()) -> None:
        self.tools: dict[str, ToolDefinition] = {}
        self._wire: dict[str, str] = {}
        self._original: dict[str, str] = {}
        for tool in tools:
            self.tools[self._add(tool.name)] = tool
        for message in messages:
            for part in message.parts:
                if part["type"] == "tool_call":
                    self._add(part["name"])

    def _add(self, name: str) -> str:
        if name in self._wire:
            return self._wire[name]
        base = wire_name(name)
        wire, n = base, 1
        while wire in self._original:
            n += 1
            suffix = f"_{n}"
            wire = base[: TOOL_NAME_MAX - len(suffix)] + suffix
        self._wire[name] = wire
        self._original[wire] = name
        return wire

    def wire(self, name: str) -> str:
        """The name `name` goes out under."""
        return self._wire.get(name) or self._add(name)

    def original(self, wire: str) -> str:
        """The tool's own name for a name the provider streamed back (unknown names are kept)."""
        return self._original.get(wire, wire)


def tool_call_parse(call_id: str, name: str, raw: str, *, cut_short: bool = False) -> ToolCall:
    """A tool call from its streamed argument text; invalid or cut-short text is kept raw, with why."""
    text = raw.strip()
    if not text:
        return ToolCall(id=call_id, name=name, arguments={})
    hint = " (the reply was cut short before the arguments ended)" if cut_short else ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return ToolCall(
            id=call_id, name=name, raw_arguments=raw, arguments_error=f"not valid JSON: {exc.msg} at {exc.pos}{hint}"
        )
    if not isinstance(value, dict):
        return ToolCall(
            id=call_id,
            name=name,
            raw_arguments=raw,
            arguments_error=f"a JSON {type(value).__name__}, not an object{hint}",
        )
    return ToolCall(id=call_id, name=name, arguments=value)


def stream_finish(provider_reason: str | None, usage: Usage | None, missing: str) -> Generator[Usage, None, str]:
    """The provider's finish reason of a stream that ended with it; one that ended without it yields the
    usage counted so far (when any) and raises StreamInterruptedError saying `missing`.

    `reason = yield from stream_finish(…)` inside an adapter's event stream.
    """
    if not provider_reason:
        if usage is not None:
            yield usage
        raise StreamInterruptedError(missing)
    return provider_reason


def finish_reason_map(provider_reason: str, table: dict[str, FinishReason], *, tool_calls: bool) -> FinishReason:
    """The runtime's finish reason for the provider's own (`stop` when unknown); calls → `tool_calls`."""
    reason = table.get(provider_reason, "stop")
    if tool_calls and reason == "stop":
        return "tool_calls"
    return reason


def tool_names_by_call(messages: Sequence[PromptMessage]) -> dict[str, str]:
    """The tool name of every tool call in the prompt, by call id (Gemini names results by tool)."""
    names: dict[str, str] = {}
    for message in messages:
        for part in message.parts:
            if part["type"] == "tool_call":
                names[part["id"]] = part["name"]
    return names


def turns(messages: Sequence[PromptMessage]) -> Iterator[tuple[PromptMessage, list[ToolResultPart]]]:
    """Each message but the system ones (sent apart: `system_text`), with the tool results it carries."""
    for message in messages:
        if message.role != "system":
            yield message, [part for part in message.parts if part["type"] == "tool_result"]


def _reported(value: object) -> int | None:
    """A count the provider sent, or None when it sent none (not reported is not zero)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _part(part: int | None, whole: int | None) -> int | None:
    """A subset count kept within its whole (a server that reports more than the whole is clipped)."""
    return part if part is None or whole is None else min(part, whole)


def openai_usage(usage: Any, inputs: str, outputs: str, *, bills_cache_writes: bool) -> Usage:
    """OpenAI's usage, its counts named `<inputs>_tokens` and `<outputs>_tokens` (Chat Completions:
    prompt / completion; Responses: input / output).

    The inputs already include cached reads (`<inputs>_tokens_details.cached_tokens`: never added
    again) and the outputs reasoning. A count or details object the server leaves out (Ollama,
    llama.cpp, vLLM send no details) is unknown, not zero. OpenAI itself writes its prompt cache
    for free, so its cache writes are a reported zero (`bills_cache_writes=False`); a compatible
    server's are unknown unless it reports `cache_write_tokens` (OpenRouter).
    """
    input_tokens = _reported(getattr(usage, f"{inputs}_tokens", None))
    output_tokens = _reported(getattr(usage, f"{outputs}_tokens", None))
    input_details = getattr(usage, f"{inputs}_tokens_details", None)
    cached = _part(_reported(getattr(input_details, "cached_tokens", None)), input_tokens)
    written = _reported(getattr(input_details, "cache_write_tokens", None))
    if written is None and not bills_cache_writes and input_tokens is not None:
        written = 0
    if written is not None and input_tokens is not None:
        written = min(written, input_tokens - (cached or 0))
    reasoning = _reported(getattr(getattr(usage, f"{outputs}_tokens_details", None), "reasoning_tokens", None))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        reasoning_tokens=_part(reasoning, output_tokens),
        cache_write_input_tokens=written,
    )


def system_text(messages: Sequence[PromptMessage]) -> str:
    return "\n\n".join(message.content for message in messages if message.role == "system" and message.content)


def system_put(request: dict[str, Any], key: str, messages: Sequence[PromptMessage]) -> None:
    """Sets `request[key]` to the system text, when the prompt has any (for the protocols that send it apart)."""
    system = system_text(messages)
    if system:
        request[key] = system


def body_message(body: object, fallback: str) -> str:
    """The provider's own error message from an error body (`{"error": {"message"}}` and kin)."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code") or error.get("type") or error.get("status")
            return f"{error['message']}" + (f" ({code})" if isinstance(code, str) and code else "")
        if isinstance(error, str):
            return error
    return fallback


def stainless_failure(exc: Exception, sdk: Any) -> Failure:
    """A failure from the `openai` or `anthropic` SDK (both share their exception classes' shape)."""
    if isinstance(exc, sdk.APIStatusError):
        return Failure(message=body_message(exc.body, exc.message), status=exc.status_code)
    if isinstance(exc, sdk.APITimeoutError | httpx2.TimeoutException):
        return Failure(message=str(exc) or "the request timed out", timeout=True)
    if isinstance(exc, sdk.APIConnectionError | httpx2.TransportError):
        return Failure(message=str(exc) or type(exc).__name__, connection=True)
    if isinstance(exc, sdk.APIError):
        return Failure(message=body_message(exc.body, exc.message))
    return Failure(message=f"{type(exc).__name__}: {exc}")


TRACE_CONNECTED = "connection.connect_tcp.complete"


# Response headers naming the provider's id of a request (OpenAI's, Anthropic's), first found wins.
REQUEST_ID_HEADERS = ("x-request-id", "request-id")


def http_hooks(adapter: ProviderAdapter) -> dict[str, list[Callable[[Any], None]]]:
    """httpx event hooks handing every connection's socket to the adapter's `stop`, for a cancel to shut it down.

    Each response's request id (`REQUEST_ID_HEADERS`) is kept as `adapter.request_id`, for the run's log line.

    The socket is taken as soon as the connection is made (through httpcore's `trace` request
    extension), so a provider that stays silent before its response headers is stopped too, and
    again from the response (a connection reused from the pool).
    """

    stop = adapter.stop

    def track(stream: Any) -> None:
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            stop.track(sock)

    def on_request(request: httpx2.Request) -> None:
        outer = request.extensions.get("trace")

        def trace(name: str, info: dict[str, Any]) -> None:
            if name == TRACE_CONNECTED:
                track(info.get("return_value"))
            if outer is not None:
                outer(name, info)

        request.extensions["trace"] = trace

    def on_response(response: httpx2.Response) -> None:
        track(response.extensions.get("network_stream"))
        adapter.request_id = next(
            (response.headers[name] for name in REQUEST_ID_HEADERS if response.headers.get(name)), adapter.request_id
        )

    return {"request": [on_request], "response": [on_response]}


class LiveAdapter(ProviderAdapter):
    """A network provider streamed through its official SDK (see the module docstring)."""

    default_base_url: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def validate(self) -> None:
        super().validate()
        base = self.base_url()
        if not base:
            raise InvalidInputError.for_field("base_url", f"the {self.kind} provider needs a base_url")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInputError.for_field("base_url", f"{base!r} is not an http(s) URL")
        self.options: LiveOptions = live_options_parse(self.kind, self.provider.options, field="options")

    def base_url(self) -> str:
        return (self.provider.base_url or self.default_base_url).rstrip("/")

    def api_key(self) -> str:
        """The key, read from the provider's variable now (never stored); empty when none is named."""
        name = self.provider.api_key_env
        return os.environ.get(name, "") if name else ""

    def stream(
        self, messages: Sequence[PromptMessage], *, tools: Sequence[ToolDefinition] = ()
    ) -> Generator[RuntimeEvent, None, None]:
        self.ensure_ready()
        self.tools_check(tools)
        key = self.api_key()
        started = False
        try:
            for event in self._events(messages, tools, key=key):
                if self.stop.closed.is_set():
                    return
                if isinstance(event, TextDelta | Reasoning | ToolCall):
                    started = True
                if isinstance(event, ErrorEvent):
                    event = ErrorEvent(message=self._scrub(event.message, key), code=event.code)
                yield event
        except StreamInterruptedError as exc:
            if not self.stop.closed.is_set():
                yield self._interrupted(str(exc), key)
        except Exception as exc:
            if self.stop.closed.is_set():
                return  # the stream was closed on purpose (a cancel): its broken read is no failure
            failure = self._failure(exc)
            if started and (failure.connection or failure.timeout):
                yield self._interrupted(failure.message, key)
            else:
                yield self.error_event(failure, key)

    @abstractmethod
    def _events(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolDefinition], *, key: str
    ) -> Iterator[RuntimeEvent]:
        """The turn's events from the SDK's stream."""

    @abstractmethod
    def _failure(self, exc: Exception) -> Failure:
        """What the SDK's exception means."""

    # --- wording failures -------------------------------------------------------------------

    def _scrub(self, text: str, key: str) -> str:
        if key:
            text = text.replace(key, "[the key]")
        return text[:MAX_PROVIDER_MESSAGE_CHARS]

    def _interrupted(self, detail: str, key: str) -> ErrorEvent:
        message = (
            f"the {self.label} stream for route {self.route.alias!r} ended before the reply was complete"
            + (f" ({detail})" if detail else "")
            + "; the text streamed so far is kept in the trace, send the message again to retry"
        )
        return ErrorEvent(message=self._scrub(message, key), code="stream_interrupted")

    def error_event(self, failure: Failure, key: str) -> ErrorEvent:
        said = self._scrub(failure.message, key)
        retries = self.options.max_retries
        after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
        status = failure.status
        where = f"{self.label} (route {self.route.alias!r})"
        if status in (401, 403):
            variable = self.provider.api_key_env
            if variable:
                message = f"the key in {variable} was refused by {where} (HTTP {status}); set a valid key in {variable}"
            else:
                message = (
                    f"{where} refused the request without a key (HTTP {status}); "
                    "name the variable holding its key in the provider's api_key_env"
                )
            return ErrorEvent(message=f"{message}: {said}", code="key_refused")
        if status in (400, 413, 422) and any(marker in failure.message.lower() for marker in CONTEXT_LENGTH_MARKERS):
            return ErrorEvent(
                message=(
                    f"the prompt is longer than model {self.route.model_id!r} accepts on {where}: {said}; "
                    "compact the session, start a new one, or use a route with a larger context window"
                ),
                code="context_length_exceeded",
            )
        if status == 404:
            return ErrorEvent(
                message=(
                    f"{where} does not know model {self.route.model_id!r} (HTTP 404): {said}; "
                    "check the route's model_id and the provider's base_url"
                ),
                code="model_not_found",
            )
        if status == 429:
            return ErrorEvent(
                message=f"{where} is rate limiting requests (HTTP 429){after}: {said}", code="rate_limited"
            )
        if status is not None and status >= 500:
            return ErrorEvent(message=f"{where} failed (HTTP {status}){after}: {said}", code="provider_unavailable")
        if status is not None:
            return ErrorEvent(message=f"{where} rejected the request (HTTP {status}): {said}", code="provider_rejected")
        if failure.timeout:
            return ErrorEvent(
                message=f"{where} did not answer within {self.options.timeout_s:g} s{after}: {said}", code="timeout"
            )
        if failure.connection:
            return ErrorEvent(
                message=f"cannot reach {where} at {self.base_url()}{after}: {said}", code="provider_unreachable"
            )
        return ErrorEvent(message=f"{where} failed: {said}", code="provider_error")
