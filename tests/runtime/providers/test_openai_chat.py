"""Chat Completions (kind openai_compatible, and openai with api=chat_completions) against a local server."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import pytest

from core.conversation.events import ErrorEvent, Finish, Reasoning, TextDelta, ToolCall, Usage
from core.models import ProviderKind
from tests.runtime.providers.conftest import SECRET, TIME, WEATHER, AdapterFactory, hello, run
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db

KIND = ProviderKind.OPENAI_COMPATIBLE


def text_of(events: Sequence[object]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def test_text_with_cached_and_reasoning_usage(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("openai_chat/text.sse")) as server:
        events = run(make_adapter(KIND, server.url + "/v1", key_env="LOCAL_KEY"))
    assert text_of(events) == "Hello, world!"
    assert events[-2:] == [
        Finish(reason="stop", provider_reason="stop"),
        Usage(input_tokens=1200, output_tokens=40, cached_input_tokens=1024, reasoning_tokens=16),
    ]
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["max_tokens"] == 100
    assert request.body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


def test_openai_kind_on_chat_completions_option(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("openai_chat/text.sse")) as server:
        adapter = make_adapter(
            ProviderKind.OPENAI, server.url + "/v1", key_env="OPENAI_API_KEY", options={"api": "chat_completions"}
        )
        events = run(adapter)
    assert text_of(events) == "Hello, world!"
    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].body["max_completion_tokens"] == 100


def test_parallel_tool_calls_assembled_and_a_cut_argument_kept_raw(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("openai_chat/tools.sse")) as server:
        events = run(make_adapter(KIND, server.url, options={}), tools=[WEATHER, TIME])
    calls = [event for event in events if isinstance(event, ToolCall)]
    assert calls[0] == ToolCall(id="call_weather_paris", name="get_weather", arguments={"city": "Paris"})
    assert calls[1] == ToolCall(id="call_weather_tokyo", name="get_weather", arguments={"city": "Tokyo"})
    assert calls[2].arguments == {}
    assert calls[2].raw_arguments == '{"zone": '
    assert calls[2].arguments_error is not None
    assert "not valid JSON" in calls[2].arguments_error
    assert Finish(reason="tool_calls", provider_reason="tool_calls") in events
    tools = server.requests[0].body["tools"]
    assert [tool["function"]["name"] for tool in tools] == ["get_weather", "get_time"]
    assert tools[1]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_refusal(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("openai_chat/refusal.sse")) as server:
        events = run(make_adapter(KIND, server.url))
    assert text_of(events) == ""
    assert (
        Finish(reason="content_filter", provider_reason="stop", refusal="I'm sorry, I can't help with that.") in events
    )


def test_length_cut_off(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("openai_chat/length.sse")) as server:
        events = run(make_adapter(KIND, server.url))
    assert text_of(events) == "Once upon a time"
    assert events[-2] == Finish(reason="length", provider_reason="length")


def test_reasoning_content_and_no_usage_chunk(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("openai_chat/reasoning_no_usage.sse")) as server:
        events = run(make_adapter(KIND, server.url))
    assert events[0] == Reasoning(text="The user greets; answer briefly.", state={"provider": "openai_chat"})
    assert text_of(events) == "Hi there."
    assert events[-1] == Finish(reason="stop", provider_reason="stop")
    assert not any(isinstance(event, Usage) for event in events)  # not reported, so no usage event


def test_connection_cut_mid_stream(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("openai_chat/text.sse", cut_after=3)) as server:
        events = run(make_adapter(KIND, server.url))
    assert text_of(events) == "Hello, world"
    assert isinstance(events[-1], ErrorEvent)
    assert events[-1].code == "stream_interrupted"


def test_stream_ending_without_finish(make_adapter: AdapterFactory) -> None:
    body = b"".join(line for line in Reply.sse("openai_chat/text.sse").body.splitlines(keepends=True)[:6])
    with ProviderServer(Reply(body=body)) as server:
        events = run(make_adapter(KIND, server.url))
    assert text_of(events) == "Hello, world"
    assert events[-1].code == "stream_interrupted"  # type: ignore[union-attr]


def test_401_names_the_variable_and_never_the_key(make_adapter: AdapterFactory) -> None:
    body = {
        "error": {
            "message": f"Incorrect API key provided: {SECRET}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    with ProviderServer(Reply.error(401, body)) as server:
        events = run(make_adapter(KIND, server.url, key_env="LOCAL_KEY"))
    assert len(events) == 1
    assert isinstance(events[0], ErrorEvent)
    assert events[0].code == "key_refused"
    assert events[0].message.startswith("the key in LOCAL_KEY was refused by")
    assert SECRET not in events[0].message
    assert "[the key]" in events[0].message


def test_429_then_success_honours_retry_after(make_adapter: AdapterFactory) -> None:
    limited = Reply.error(
        429, {"error": {"message": "Rate limit reached", "type": "requests"}}, headers={"Retry-After": "1"}
    )
    with ProviderServer(limited, Reply.sse("openai_chat/text.sse")) as server:
        events = run(make_adapter(KIND, server.url, options={"max_retries": 2}))
    assert text_of(events) == "Hello, world!"
    assert len(server.requests) == 2
    assert server.requests[1].at - server.requests[0].at >= 0.9  # waited as Retry-After said


def test_429_retries_bounded_then_fails_with_the_providers_message(make_adapter: AdapterFactory) -> None:
    limited = Reply.error(
        429, {"error": {"message": "Rate limit reached", "type": "requests"}}, headers={"retry-after-ms": "10"}
    )
    with ProviderServer(limited) as server:
        events = run(make_adapter(KIND, server.url, options={"max_retries": 2}))
    assert len(server.requests) == 3
    assert events[-1].code == "rate_limited"  # type: ignore[union-attr]
    assert "after 2 retries: Rate limit reached" in events[-1].message  # type: ignore[union-attr]


def test_500(make_adapter: AdapterFactory) -> None:
    with ProviderServer(
        Reply.error(500, {"error": {"message": "The server had an error", "type": "server_error"}})
    ) as server:
        events = run(make_adapter(KIND, server.url))
    assert events == [ErrorEvent(message=events[0].message, code="provider_unavailable")]  # type: ignore[union-attr]
    assert "(HTTP 500): The server had an error" in events[0].message  # type: ignore[union-attr]


def test_context_length_exceeded(make_adapter: AdapterFactory) -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }
    with ProviderServer(Reply.error(400, body)) as server:
        events = run(make_adapter(KIND, server.url))
    assert events[0].code == "context_length_exceeded"  # type: ignore[union-attr]
    assert "compact the session" in events[0].message  # type: ignore[union-attr]


def test_closing_a_slow_stream_closes_the_http_stream_within_a_second(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("openai_chat/slow.sse", event_delay_s=0.1)) as server:
        stream = make_adapter(KIND, server.url).stream(hello())
        seen = [next(stream), next(stream)]
        closed = time.monotonic()
        stream.close()
        deadline = closed + 1.0
        while server.disconnected_at is None and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [event.text for event in seen] == ["word0 ", "word1 "]  # type: ignore[union-attr]
    assert server.disconnected_at is not None
    assert server.disconnected_at - closed < 1.0


def test_an_error_inside_the_stream_fails_with_the_providers_message(make_adapter: AdapterFactory) -> None:
    head = b"\n\n".join(Reply.sse("openai_chat/text.sse").body.split(b"\n\n", 2)[:2]) + b"\n\n"
    body = head + b'data: {"error": {"message": "The model is overloaded", "type": "server_error"}}\n\n'
    with ProviderServer(Reply(body=body)) as server:
        events = run(make_adapter(KIND, server.url))
    assert text_of(events) == "Hello"
    last = events[-1]
    assert isinstance(last, ErrorEvent)
    assert "The model is overloaded" in last.message


def test_responses_failed_with_context_length_is_named(make_adapter: AdapterFactory) -> None:
    failed = {
        "type": "response.failed",
        "sequence_number": 1,
        "response": {
            "id": "resp_1",
            "object": "response",
            "created_at": 1,
            "status": "failed",
            "model": "gpt-5-mini",
            "output": [],
            "error": {"code": "context_length_exceeded", "message": "Your input exceeds the context window."},
            "usage": None,
        },
    }
    body = b"event: response.failed\ndata: " + json.dumps(failed).encode() + b"\n\n"
    with ProviderServer(Reply(body=body)) as server:
        events = run(make_adapter(ProviderKind.OPENAI, server.url + "/v1", key_env="OPENAI_API_KEY"))
    assert len(events) == 1
    assert isinstance(events[0], ErrorEvent)
    assert events[0].code == "context_length_exceeded"
    assert "compact the session" in events[0].message
