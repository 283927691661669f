"""What the prompt carries, per provider, as the local wire server receives it from the official SDK.

Tool definitions in each provider's format and within its limits (names mapped to OpenAI's
pattern and back, Gemini's schema subset, Anthropic's `input_schema`, a refusal for what cannot be
expressed); and the next request of a turn after tool calls: the calls, their results and the
provider's reasoning state, sent back exactly as the provider streamed them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from core.conversation.contracts import ToolResultPart, parts_validate
from core.conversation.events import ToolCall
from core.conversation.invocations import invocations_results_post
from core.conversation.services import message_append, session_create
from core.errors import InvalidInputError
from core.models import MessageRole, ProviderKind, RunStatus, ToolSpec, TraceEvent
from memory.context import context_inputs
from runtime.prompt import turn_prompt
from runtime.providers import ProviderAdapter, ToolDefinition
from runtime.providers.base import ToolNotExpressibleError
from runtime.turns import turn_execute, turn_run
from tests.owners import op_user
from tests.runtime.providers.conftest import AdapterFactory, hello
from tests.runtime.providers.servers import RECORDINGS, ProviderServer, Reply

pytestmark = pytest.mark.django_db

# name → (provider kind, path after the server URL, key variable, recordings folder)
KINDS: dict[str, tuple[str, str, str, str]] = {
    "openai_chat": (ProviderKind.OPENAI_COMPATIBLE, "/v1", "", "openai_chat"),
    "ollama": (ProviderKind.OLLAMA, "", "", "ollama"),
    "openai_responses": (ProviderKind.OPENAI, "/v1", "OPENAI_API_KEY", "openai_responses"),
    "anthropic": (ProviderKind.ANTHROPIC, "", "ANTHROPIC_API_KEY", "anthropic"),
    "google": (ProviderKind.GOOGLE, "", "GEMINI_API_KEY", "google"),
}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def spec(name: str, parameters: dict[str, Any] | None = None, description: str = "The weather in a city") -> ToolSpec:
    return ToolSpec(name=name, description=description, parameters=SCHEMA if parameters is None else parameters)


def make(make_adapter: AdapterFactory, name: str, server: ProviderServer) -> ProviderAdapter:
    kind, path, key_env, _ = KINDS[name]
    return make_adapter(kind, server.url + path, key_env=key_env)


def sent_tools(name: str, body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, description, schema) of each tool definition in a request body, read the provider's way."""
    if name in ("openai_chat", "ollama"):
        assert all(tool["type"] == "function" and set(tool) == {"type", "function"} for tool in body["tools"])
        return [
            (t["function"]["name"], t["function"]["description"], t["function"]["parameters"]) for t in body["tools"]
        ]
    if name == "openai_responses":
        assert all(tool["type"] == "function" and tool["strict"] is False for tool in body["tools"])
        return [(tool["name"], tool["description"], tool["parameters"]) for tool in body["tools"]]
    if name == "anthropic":
        assert all(set(tool) == {"name", "description", "input_schema"} for tool in body["tools"])
        return [(tool["name"], tool["description"], tool["input_schema"]) for tool in body["tools"]]
    [declarations] = body["tools"]
    # google-genai sends the proto field name `parameters_json_schema`; the API's JSON parser takes
    # it as it takes `parametersJsonSchema` (proto3 JSON accepts both spellings).
    assert all(
        set(d) == {"name", "description", "parameters_json_schema"} for d in declarations["functionDeclarations"]
    )
    return [(d["name"], d["description"], d["parameters_json_schema"]) for d in declarations["functionDeclarations"]]


def recorded(path: str) -> list[dict[str, Any]]:
    """The JSON of every `data:` line of a recording, as the provider sent it."""
    lines = (RECORDINGS / path).read_text().splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


# --- tool definitions ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_tool_definitions_in_the_providers_format_with_names_mapped_and_back(
    make_adapter: AdapterFactory, name: str
) -> None:
    folder = KINDS[name][3]
    specs = [spec("get.weather"), spec("get weather", description="Same, spelled apart"), spec("7day-forecast")]
    with ProviderServer(Reply.sse(f"{folder}/tools.sse")) as server:
        adapter = make(make_adapter, name, server)
        session = session_create(owner=op_user(), route_alias=adapter.route.alias)
        message_append(session_id=session.pk, role=MessageRole.USER, content="Weather in Paris and Tokyo?")
        prompt = turn_prompt(adapter=adapter, bundle=context_inputs(session_id=session.pk), tools=specs)
        events = list(adapter.stream(prompt.messages, tools=prompt.tools))
    # Names outside ^[a-zA-Z0-9_-]{1,64}$ (or not starting with a letter or _, Gemini's rule) are
    # mapped; two that map alike stay apart; the schema goes out as the spec declares it.
    assert sent_tools(name, server.requests[0].body) == [
        ("get_weather", "The weather in a city", SCHEMA),
        ("get_weather_2", "Same, spelled apart", SCHEMA),
        ("_7day-forecast", "The weather in a city", SCHEMA),
    ]
    calls = [event for event in events if isinstance(event, ToolCall)]
    # The provider calls `get_weather`: the turn sees the tool's own name.
    assert [call.name for call in calls][:2] == ["get.weather", "get.weather"]


def test_a_long_name_is_cut_to_64_and_names_that_collide_after_the_cut_stay_apart(make_adapter: AdapterFactory) -> None:
    long = "x" * 70
    with ProviderServer(Reply.sse("openai_chat/text.sse")) as server:
        adapter = make(make_adapter, "openai_chat", server)
        list(adapter.stream(hello(), tools=[ToolDefinition(name=long + "a"), ToolDefinition(name=long + "b")]))
    names = [tool["function"]["name"] for tool in server.requests[0].body["tools"]]
    assert names == ["x" * 64, "x" * 62 + "_2"]


def test_gemini_gets_its_schema_subset(make_adapter: AdapterFactory) -> None:
    parameters = {
        "type": "object",
        "properties": {
            "unit": {"const": "celsius"},
            "place": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"lat": {"type": "number"}}}]},
            "days": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 7}},
        },
        "required": ["place"],
    }
    with ProviderServer(Reply.sse("google/text.sse")) as server:
        adapter = make(make_adapter, "google", server)
        list(adapter.stream(hello(), tools=[ToolDefinition.from_spec(spec("forecast", parameters))]))
    [(_, _, sent)] = sent_tools("google", server.requests[0].body)
    assert sent == {
        "type": "object",
        "properties": {
            "unit": {"enum": ["celsius"]},
            "place": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"lat": {"type": "number"}}}]},
            "days": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 7}},
        },
        "required": ["place"],
    }


REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    (
        "google",
        {"type": "object", "properties": {"when": {"allOf": [{"type": "string"}, {"format": "date"}]}}},
        "tool 'forecast' cannot be offered to Google Gemini: parameters.properties.when.allOf uses 'allOf', which "
        "Gemini's function declarations do not support; express the rule without it (or check it in the tool)",
    ),
    (
        "google",
        {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 0}}},
        "tool 'forecast' cannot be offered to Google Gemini: parameters.properties.n.exclusiveMinimum uses "
        "'exclusiveMinimum', which Gemini's function declarations do not support; express the rule without it "
        "(or check it in the tool)",
    ),
    (
        "anthropic",
        {"type": "object", "anyOf": [{"required": ["city"]}, {"required": ["lat"]}]},
        "tool 'forecast' cannot be offered to Anthropic: its parameters use 'anyOf' at the top level, which an "
        "input_schema may not; describe the alternatives inside properties instead",
    ),
    *[
        (
            name,
            {"type": "array", "items": {"type": "string"}},
            "tool 'forecast' cannot be offered: its parameters must be a JSON Schema for an object (\"type\": "
            '"object"), not "array"; put the arguments under properties',
        )
        for name in KINDS
    ],
]


@pytest.mark.parametrize(("name", "parameters", "problem"), REFUSALS)
def test_a_tool_the_provider_cannot_carry_is_refused_before_any_request(
    make_adapter: AdapterFactory, name: str, parameters: dict[str, Any], problem: str
) -> None:
    with ProviderServer(Reply.sse(f"{KINDS[name][3]}/text.sse")) as server:
        adapter = make(make_adapter, name, server)
        session = session_create(owner=op_user(), route_alias=adapter.route.alias)
        bad, good = spec("forecast", parameters), spec("get_weather")
        with pytest.raises(ToolNotExpressibleError) as refused:
            turn_prompt(adapter=adapter, bundle=context_inputs(session_id=session.pk), tools=[good, bad])
        assert refused.value.message == f"{adapter.route.alias!r} ({adapter.kind}): {problem}"
        assert refused.value.code == "tool_not_expressible"
        assert adapter.tool_problems([ToolDefinition.from_spec(good), ToolDefinition.from_spec(bad)]) == [problem]
        # The adapter refuses it too, whoever calls it: nothing reaches the provider.
        with pytest.raises(ToolNotExpressibleError):
            list(adapter.stream(hello(), tools=[ToolDefinition.from_spec(bad)]))
    assert server.requests == []


# --- the next request of a turn: calls, results and reasoning state -------------------------------

FIRST = {
    "openai_chat": "openai_chat/tools_reasoning.sse",
    "ollama": "openai_chat/tools_reasoning.sse",
    "openai_responses": "openai_responses/tools_reasoning.sse",
    "anthropic": "anthropic/tools_thinking.sse",
    "google": "google/tools_thinking.sse",
}
WEATHER_NOW = {"Paris": "sunny, 21 °C", "Tokyo": "rain, 14 °C"}


def _result(call_id: str, city: str) -> ToolResultPart:
    return {"type": "tool_result", "tool_call_id": call_id, "content": WEATHER_NOW[city], "is_error": False}


@pytest.mark.parametrize("name", KINDS)
def test_the_next_request_carries_the_calls_their_results_and_the_reasoning_state_unchanged(
    make_adapter: AdapterFactory, name: str
) -> None:
    folder = KINDS[name][3]
    # A client tool: the turn waits for its results, which a client posts; the loop then sends the next request.
    weather = spec("get_weather")
    weather.client = True
    weather.save()
    with ProviderServer(Reply.sse(FIRST[name]), Reply.sse(f"{folder}/text.sse")) as server:
        adapter = make(make_adapter, name, server)
        session = session_create(owner=op_user(), route_alias=adapter.route.alias)
        first = turn_run(session_id=session.pk, user_text="Weather in Paris and Tokyo?")
        assert first.run.status == RunStatus.AWAITING_APPROVAL
        finish = TraceEvent.objects.get(run=first.run, type="finish")
        assert finish.payload["reason"] == "tool_calls"
        # One assistant message: the text streamed with the calls, the reasoning (its state as
        # streamed), the calls. The results a client posts become one tool message each.
        [user, assistant] = first.messages
        calls = [part for part in assistant.parts if part["type"] == "tool_call"]
        invocations_results_post(
            run_id=first.run.pk,
            results={call["id"]: (WEATHER_NOW[call["arguments"]["city"]], False) for call in calls},
        )
        second = turn_execute(run_id=first.run.pk)
        assert second.run.status == RunStatus.COMPLETED
    assert [request.body.get("tools") is not None for request in server.requests] == [True, True]
    body = server.requests[1].body
    assert sent_tools(name, body) == [("get_weather", "The weather in a city", SCHEMA)]
    stored_reasoning = [part for part in assistant.parts if part["type"] == "reasoning"]
    raw = recorded(FIRST[name])
    if name in ("openai_chat", "ollama"):
        # Chat Completions has no reasoning state to send back: the thinking stays in the message part.
        assert stored_reasoning == [
            {"type": "reasoning", "text": "Paris needs the weather tool.", "state": {"provider": "openai_chat"}}
        ]
        assert body["messages"] == [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_paris",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_paris", "content": "sunny, 21 °C"},
        ]
    elif name == "openai_responses":
        [reasoning_item] = [
            e["item"] for e in raw if e["type"] == "response.output_item.done" and e["item"]["id"][:3] == "rs_"
        ]
        assert body["input"] == [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            reasoning_item,  # id, summary and encrypted_content exactly as streamed
            {
                "type": "function_call",
                "call_id": "call_paris",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "id": "fc_paris_0001",
            },
            {
                "type": "function_call",
                "call_id": "call_tokyo",
                "name": "get_weather",
                "arguments": '{"city": "Tokyo"}',
                "id": "fc_tokyo_0002",
            },
            {"type": "function_call_output", "call_id": "call_paris", "output": "sunny, 21 °C"},
            {"type": "function_call_output", "call_id": "call_tokyo", "output": "rain, 14 °C"},
        ]
        assert reasoning_item["encrypted_content"] == "gAAAAABoEXAMPLE+encrypted/reasoning-state=="
    elif name == "anthropic":
        signature = "".join(e["delta"]["signature"] for e in raw if e.get("delta", {}).get("type") == "signature_delta")
        [redacted] = [e["content_block"] for e in raw if e.get("content_block", {}).get("type") == "redacted_thinking"]
        assert body["messages"] == [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "Two cities: call the weather tool for each.",
                        "signature": signature,
                    },
                    redacted,
                    {"type": "text", "text": "Checking both cities."},
                    {"type": "tool_use", "id": "toolu_01Paris", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_02Tokyo", "name": "get_weather", "input": {"city": "Tokyo"}},
                ],
            },
            {  # the results of the parallel calls, in ONE user turn
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01Paris",
                        "content": "sunny, 21 °C",
                        "is_error": False,
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_02Tokyo",
                        "content": "rain, 14 °C",
                        "is_error": False,
                    },
                ],
            },
        ]
        assert signature == "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxEXAMPLE+sig/part1=="
        assert redacted == {
            "type": "redacted_thinking",
            "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFEXAMPLE+redacted/opaque==",
        }
    else:
        [signed] = [p for e in raw for p in e["candidates"][0]["content"]["parts"] if "thoughtSignature" in p]
        streamed = signed["thoughtSignature"]
        # Stored exactly as streamed, on the call it came with.
        assert [part.get("state") for part in stored_reasoning] == [
            {"provider": "google"},
            {"provider": "google", "thought_signature": streamed, "call": "fc-paris"},
        ]
        model_parts = body["contents"][1]["parts"]
        sent = model_parts[0].pop("thoughtSignature")
        # google-genai holds a signature as bytes and writes them in URL-safe base64 (the API reads both
        # alphabets): the same bytes go back.
        assert base64.urlsafe_b64decode(sent) == base64.b64decode(streamed)
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "Weather in Paris and Tokyo?"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"id": "fc-paris", "name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"id": "fc-tokyo", "name": "get_weather", "args": {"city": "Tokyo"}}},
                ],
            },
            {  # the responses to the parallel calls, in ONE content
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "fc-paris",
                            "name": "get_weather",
                            "response": {"output": "sunny, 21 °C"},
                        }
                    },
                    {
                        "functionResponse": {
                            "id": "fc-tokyo",
                            "name": "get_weather",
                            "response": {"output": "rain, 14 °C"},
                        }
                    },
                ],
            },
        ]
        assert streamed == "CiQBjz1rX+EXAMPLE/thought+signature/Q2lZQjBl"
    assert user.content == "Weather in Paris and Tokyo?"


# --- the reasoning message part -----------------------------------------------------------------


def test_a_reasoning_part_keeps_its_state_and_may_have_no_text() -> None:
    parts = [
        {"type": "reasoning", "text": "", "state": {"provider": "anthropic", "block": {"type": "redacted_thinking"}}},
        {"type": "reasoning", "text": "Think first."},
    ]
    assert parts_validate(parts) == parts
    with pytest.raises(InvalidInputError) as bad:
        parts_validate([{"type": "reasoning", "text": "x", "state": "opaque"}])
    assert bad.value.fields == {"parts[0].state": ["must be an object"]}
    with pytest.raises(InvalidInputError) as unknown:
        parts_validate([{"type": "reasoning", "text": "x", "signature": "s"}])
    assert unknown.value.fields == {"parts[0]": ["unknown keys signature for a reasoning part"]}


def test_a_responses_reply_goes_back_as_its_reasoning_item_then_its_output_message_by_id(
    make_adapter: AdapterFactory,
) -> None:
    with ProviderServer(Reply.sse("openai_responses/text.sse")) as server:
        adapter = make(make_adapter, "openai_responses", server)
        session = session_create(owner=op_user(), route_alias=adapter.route.alias)
        turn_run(session_id=session.pk, user_text="hi")
        turn_run(session_id=session.pk, user_text="and again")
    done = [
        event["item"] for event in recorded("openai_responses/text.sse") if event["type"] == "response.output_item.done"
    ]
    [reasoning_item] = [item for item in done if item["type"] == "reasoning"]
    assert server.requests[1].body["input"] == [
        {"role": "user", "content": "hi"},
        reasoning_item,
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e7",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello, world!", "annotations": []}],
        },
        {"role": "user", "content": "and again"},
    ]
