"""Responses API, Anthropic, Gemini and Ollama adapters against a local server speaking each protocol.

The official SDK is the client; the server replays the recordings in `recordings/`.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.conversation.events import ErrorEvent, Finish, Reasoning, RuntimeEvent, TextDelta, ToolCall, Usage
from core.models import ProviderKind
from runtime.providers import PromptMessage
from tests.runtime.providers.conftest import SECRET, WEATHER, AdapterFactory, hello, run
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db

# name → (kind, path after the server URL, key variable, error body for a status and message)
KINDS: dict[str, tuple[str, str, str]] = {
    "openai_responses": (ProviderKind.OPENAI, "/v1", "OPENAI_API_KEY"),
    "anthropic": (ProviderKind.ANTHROPIC, "", "ANTHROPIC_API_KEY"),
    "google": (ProviderKind.GOOGLE, "", "GEMINI_API_KEY"),
    "ollama": (ProviderKind.OLLAMA, "", ""),
}


def error_body(name: str, status: int, message: str) -> dict[str, Any]:
    if name == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    if name == "google":
        return {"error": {"code": status, "message": message, "status": "UNAVAILABLE"}}
    return {"error": {"message": message, "type": "server_error"}}


def adapter(make_adapter: AdapterFactory, name: str, server: ProviderServer, **options: Any) -> Any:
    kind, path, key_env = KINDS[name]
    return make_adapter(kind, server.url + path, key_env=key_env, options=options)


def text_of(events: list[RuntimeEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


# --- plain text, reasoning and usage ------------------------------------------------------------

EXPECTED_TEXT: dict[str, tuple[str, Finish, Usage | None]] = {
    "openai_responses": (
        "Hello, world!",
        Finish(reason="stop", provider_reason="completed"),
        Usage(
            input_tokens=1500,
            output_tokens=300,
            cached_input_tokens=1280,
            reasoning_tokens=256,
            cache_write_input_tokens=0,
        ),
    ),
    # Anthropic: input 25 + cache reads 3000 + cache writes 1200; cached = the reads only; thinking
    # tokens are not reported apart (reasoning unknown).
    "anthropic": (
        "Hello, world!",
        Finish(reason="stop", provider_reason="end_turn"),
        Usage(input_tokens=4225, output_tokens=120, cached_input_tokens=3000, cache_write_input_tokens=1200),
    ),
    # Gemini: output = candidates 50 + thoughts 200; the cached 1500 are inside the prompt's 2000.
    "google": (
        "Hello, world!",
        Finish(reason="stop", provider_reason="STOP"),
        Usage(
            input_tokens=2000,
            output_tokens=250,
            cached_input_tokens=1500,
            reasoning_tokens=200,
            cache_write_input_tokens=0,
        ),
    ),
    # Ollama reports no cached, cache write or reasoning counts: unknown, not zero.
    "ollama": (
        "Hello from Ollama",
        Finish(reason="stop", provider_reason="stop"),
        Usage(input_tokens=26, output_tokens=11),
    ),
}


@pytest.mark.parametrize("name", KINDS)
def test_text_reasoning_and_usage(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.sse(f"{name}/text.sse")) as server:
        events = run(adapter(make_adapter, name, server))
    text, finish, usage = EXPECTED_TEXT[name]
    assert text_of(events) == text
    assert events[-2:] == [finish, usage]
    reasoning = [event for event in events if isinstance(event, Reasoning) and event.text]
    assert len(reasoning) == 1
    request = server.requests[0]
    if name == "anthropic":
        assert request.path == "/v1/messages"
        # The anthropic SDK sends the key as x-api-key or as a bearer token, depending on its version.
        assert SECRET in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:])
        assert request.body["system"] == "Be brief."
        state = reasoning[0].state
        assert state["block"]["signature"] == "sig-EXAMPLE-thinking-signature-0001"
        assert reasoning[0].text == "The user greets me; reply in kind."
    elif name == "google":
        assert request.path == "/v1beta/models/m-1:streamGenerateContent?alt=sse"
        assert request.headers["x-goog-api-key"] == SECRET
        assert request.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
        signatures = [event.state.get("thought_signature") for event in events if isinstance(event, Reasoning)]
        assert "Q2lZQjBlMmtCOTRlb3E=" in signatures
    elif name == "openai_responses":
        assert request.path == "/v1/responses"
        assert request.body["instructions"] == "Be brief."
        assert request.body["input"] == [{"role": "user", "content": "hi"}]
        assert reasoning[0].state["item"]["encrypted_content"] == "gAAAAABoR3Yx-opaque-encrypted-reasoning=="
    else:
        assert request.path == "/v1/chat/completions"  # Ollama's OpenAI-compatible endpoint
        assert request.body["stream_options"] == {"include_usage": True}


# --- tool calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_parallel_tool_calls(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.sse(f"{name}/tools.sse")) as server:
        events = run(adapter(make_adapter, name, server), tools=[WEATHER])
    calls = [event for event in events if isinstance(event, ToolCall)]
    assert [(call.name, call.arguments) for call in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo"}),
    ]
    assert len({call.id for call in calls}) == 2
    finish = next(event for event in events if isinstance(event, Finish))
    assert finish.reason == "tool_calls"
    body = server.requests[0].body
    if name == "anthropic":
        assert body["tools"][0]["name"] == "get_weather"
        assert body["tools"][0]["input_schema"]["required"] == ["city"]
        assert text_of(events) == "Checking both cities."
    elif name == "google":
        declaration = body["tools"][0]["functionDeclarations"][0]
        schema = (
            declaration.get("parametersJsonSchema") or declaration["parameters_json_schema"]
        )  # as the SDK spells it
        assert declaration["name"] == "get_weather"
        assert schema["required"] == ["city"]
    elif name == "openai_responses":
        assert body["tools"][0]["name"] == "get_weather"
        assert body["tools"][0]["type"] == "function"
    else:
        assert body["tools"][0]["function"]["name"] == "get_weather"


# --- refusal and length -------------------------------------------------------------------------

REFUSALS: dict[str, Finish] = {
    "openai_responses": Finish(
        reason="content_filter", provider_reason="refusal", refusal="I'm sorry, I can't help with that."
    ),
    "anthropic": Finish(reason="content_filter", provider_reason="refusal"),
    "google": Finish(reason="content_filter", provider_reason="SAFETY", refusal="the prompt was blocked (SAFETY)"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_refusal(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.sse(f"{name}/refusal.sse")) as server:
        events = run(adapter(make_adapter, name, server))
    assert REFUSALS[name] in events


@pytest.mark.parametrize("name", KINDS)
def test_length_cut_off(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.sse(f"{name}/length.sse")) as server:
        events = run(adapter(make_adapter, name, server), tools=[WEATHER])
    finish = next(event for event in events if isinstance(event, Finish))
    assert finish.reason == "length"
    assert text_of(events).startswith("Once upon")
    cut = [event for event in events if isinstance(event, ToolCall)]
    if name in ("anthropic", "openai_responses"):  # these recordings end inside a tool call's arguments
        assert len(cut) == 1
        assert cut[0].arguments == {}
        assert (cut[0].raw_arguments or "").startswith('{"city": "Pa')
        assert cut[0].arguments_error is not None
        assert "cut short" in cut[0].arguments_error
    if name == "google":  # thoughts are outside the candidates count
        assert events[-1] == Usage(
            input_tokens=12, output_tokens=100, cached_input_tokens=0, reasoning_tokens=96, cache_write_input_tokens=0
        )


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_connection_cut_mid_stream(make_adapter: AdapterFactory, name: str) -> None:
    cut = {"openai_responses": 8, "anthropic": 9, "google": 2, "ollama": 2}[name]
    with ProviderServer(Reply.sse(f"{name}/text.sse", cut_after=cut)) as server:
        events = run(adapter(make_adapter, name, server))
    assert text_of(events) in ("Hello", "Hello from Ollama"[:5])
    assert isinstance(events[-1], ErrorEvent)
    assert events[-1].code == "stream_interrupted"
    assert "the text streamed so far is kept" in events[-1].message


@pytest.mark.parametrize("name", [name for name in KINDS if KINDS[name][2]])
def test_401_names_the_variable_and_never_the_key(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.error(401, error_body(name, 401, f"invalid key {SECRET}"))) as server:
        events = run(adapter(make_adapter, name, server))
    assert len(events) == 1
    assert isinstance(events[0], ErrorEvent)
    assert events[0].code == "key_refused"
    assert f"the key in {KINDS[name][2]} was refused" in events[0].message
    assert SECRET not in events[0].message


@pytest.mark.parametrize("name", KINDS)
def test_429_then_success(make_adapter: AdapterFactory, name: str) -> None:
    limited = Reply.error(429, error_body(name, 429, "slow down"), headers={"Retry-After": "1"})
    with ProviderServer(limited, Reply.sse(f"{name}/text.sse")) as server:
        events = run(adapter(make_adapter, name, server, max_retries=2))
    assert text_of(events) == EXPECTED_TEXT[name][0]
    assert len(server.requests) == 2
    if name != "google":  # the openai and anthropic SDKs wait as Retry-After says; google-genai backs off on its own
        assert server.requests[1].at - server.requests[0].at >= 0.9


@pytest.mark.parametrize("name", KINDS)
def test_500_fails_with_the_providers_message(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.error(500, error_body(name, 500, "internal trouble"))) as server:
        events = run(adapter(make_adapter, name, server))
    assert len(events) == 1
    assert isinstance(events[0], ErrorEvent)
    assert events[0].code == "provider_unavailable"
    assert "(HTTP 500)" in events[0].message
    assert "internal trouble" in events[0].message
    assert len(server.requests) == 1  # max_retries 0


def test_anthropic_error_event_mid_stream(make_adapter: AdapterFactory) -> None:
    with ProviderServer(Reply.sse("anthropic/overloaded.sse")) as server:
        events = run(adapter(make_adapter, "anthropic", server))
    assert text_of(events) == "Hel"
    assert isinstance(events[-1], ErrorEvent)
    assert "Overloaded" in events[-1].message


@pytest.mark.parametrize("name", KINDS)
def test_closing_a_slow_stream_closes_the_http_stream_within_a_second(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.sse(f"{name}/slow.sse", event_delay_s=0.1)) as server:
        stream = adapter(make_adapter, name, server).stream(hello())
        seen = [next(stream), next(stream)]
        closed = time.monotonic()
        stream.close()
        deadline = closed + 1.0
        while server.disconnected_at is None and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [event.text for event in seen if isinstance(event, TextDelta)] == ["word0 ", "word1 "]
    assert server.disconnected_at is not None
    assert server.disconnected_at - closed < 1.0


# --- the prompt: tool calls and results of earlier steps, in each provider's format -------------

HISTORY = [
    PromptMessage(role="system", content="Be brief."),
    PromptMessage(role="user", content="Weather in Paris?"),
    PromptMessage(
        role="assistant",
        content="",
        parts=({"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},),
    ),
    PromptMessage(
        role="tool", content="", parts=({"type": "tool_result", "tool_call_id": "call_1", "content": "sunny"},)
    ),
]


@pytest.mark.parametrize("name", [*KINDS, "openai_chat"])
def test_tool_calls_and_results_are_sent_in_the_providers_format(make_adapter: AdapterFactory, name: str) -> None:
    recording = "openai_chat" if name == "openai_chat" else name
    with ProviderServer(Reply.sse(f"{recording}/text.sse")) as server:
        if name == "openai_chat":
            made = make_adapter(ProviderKind.OPENAI_COMPATIBLE, server.url)
        else:
            made = adapter(make_adapter, name, server)
        list(made.stream(HISTORY, tools=[WEATHER]))
    body = server.requests[0].body
    if name in ("openai_chat", "ollama"):
        assert body["messages"][1:] == [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
    elif name == "openai_responses":
        assert body["input"] == [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ]
    elif name == "anthropic":
        assert body["messages"] == [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny", "is_error": False}],
            },
        ]
    else:
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {
                "role": "model",
                "parts": [{"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}}],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"id": "call_1", "name": "get_weather", "response": {"output": "sunny"}}}
                ],
            },
        ]


@pytest.mark.parametrize("name", KINDS)
def test_unknown_model_is_named(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.error(404, error_body(name, 404, "model 'm-1' not found"))) as server:
        events = run(adapter(make_adapter, name, server))
    assert len(events) == 1
    assert isinstance(events[0], ErrorEvent)
    assert events[0].code == "model_not_found"
    assert "does not know model 'm-1'" in events[0].message
    assert "check the route's model_id" in events[0].message


@pytest.mark.parametrize("name", KINDS)
def test_a_silent_provider_times_out(make_adapter: AdapterFactory, name: str) -> None:
    with ProviderServer(Reply.sse(f"{name}/text.sse", event_delay_s=1.6)) as server:
        events = run(adapter(make_adapter, name, server, timeout_s=1))
    assert isinstance(events[-1], ErrorEvent)
    assert events[-1].code == "timeout"
    assert "did not answer within 1 s" in events[-1].message
    assert not any(isinstance(event, Finish) for event in events)


@pytest.mark.parametrize("name", ["anthropic", "google", "openai_responses"])
def test_reasoning_state_goes_back_unchanged_on_the_next_request(make_adapter: AdapterFactory, name: str) -> None:
    recording = "tools.sse" if name == "google" else "text.sse"  # Gemini's signature rides on the call
    with ProviderServer(Reply.sse(f"{name}/{recording}"), Reply.sse(f"{name}/text.sse")) as server:
        made = adapter(make_adapter, name, server)
        first = list(made.stream(hello(), tools=[WEATHER]))
        states = [event.state for event in first if isinstance(event, Reasoning) and len(event.state) > 1]
        assert states
        calls = [event for event in first if isinstance(event, ToolCall)]
        parts: tuple[Any, ...] = tuple(
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments} for call in calls
        )
        assistant = PromptMessage(role="assistant", content=text_of(first), parts=parts, reasoning=tuple(states))
        list(made.stream([*hello(), assistant, PromptMessage(role="user", content="and?")], tools=[WEATHER]))
    body = server.requests[1].body
    if name == "anthropic":
        sent = body["messages"][1]["content"][0]
        assert sent == {
            "type": "thinking",
            "thinking": "The user greets me; reply in kind.",
            "signature": "sig-EXAMPLE-thinking-signature-0001",
        }
    elif name == "openai_responses":
        item = body["input"][1]
        assert item["type"] == "reasoning"
        assert item["id"] == "rs_67ccd2bf17f0819081ff3bb2cf6508e6"
        assert item["encrypted_content"] == "gAAAAABoR3Yx-opaque-encrypted-reasoning=="
    else:
        model_parts = body["contents"][1]["parts"]
        assert model_parts[0]["functionCall"]["args"] == {"city": "Paris"}
        assert model_parts[0]["thoughtSignature"] == "Q2lZQjBlMmtCOTRl"
        assert "thoughtSignature" not in model_parts[1]
