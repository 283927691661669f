"""The provider adapter contract: credential status, blocked live kinds, options, and the replay provider.

The live kinds' streaming is proven against local servers in `tests/runtime/providers/`."""

from __future__ import annotations

import time
from typing import Any, get_args

import pytest

from core.config.live_options import live_options_parse
from core.config.replay_options import replay_options_parse
from core.config.validation import ConfigInvalidError, document_parse
from core.conversation.contracts import FINISH_REASONS, trace_payload_validate
from core.conversation.events import ErrorEvent, Finish, FinishReason, Reasoning, TextDelta, ToolCall, Usage
from core.errors import InvalidInputError
from core.models import ModelRoute, Provider, ProviderKind
from runtime.providers import (
    AdapterBlockedError,
    OllamaAdapter,
    OpenAIAdapter,
    PromptMessage,
    ToolDefinition,
    adapter_for,
)
from runtime.providers.replay import ReplayAdapter

pytestmark = pytest.mark.django_db

SECRET_VALUE = "sk-test-RECOGNISABLE-adapter-0123456789"


def make_route(
    kind: str, *, api_key_env: str = "", base_url: str = "", options: dict[str, Any] | None = None
) -> ModelRoute:
    provider = Provider.objects.create(
        name=f"p-{kind}".replace("_", "-"), kind=kind, api_key_env=api_key_env, base_url=base_url, options=options or {}
    )
    return ModelRoute.objects.create(
        alias=f"r-{kind}".replace("_", "-"),
        provider=provider,
        model_id="m-1",
        context_window_tokens=1000,
        max_output_tokens=100,
    )


def prompt(*texts: str) -> list[PromptMessage]:
    return [PromptMessage(role="user", content=text) for text in texts]


def test_live_adapter_blocked_when_key_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    adapter = adapter_for(make_route(ProviderKind.OPENAI, api_key_env="OPENAI_API_KEY"))
    assert adapter.credential_status() == "missing"
    assert adapter.status().state == "blocked"
    assert adapter.status().reasons == ("OPENAI_API_KEY is not set",)
    with pytest.raises(AdapterBlockedError, match=r"^blocked: OPENAI_API_KEY is not set$"):
        list(adapter.stream(prompt("hi")))


def test_live_adapter_reads_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_VALUE)
    adapter = adapter_for(make_route(ProviderKind.OPENAI, api_key_env="OPENAI_API_KEY"))
    assert isinstance(adapter, OpenAIAdapter)
    assert adapter.credential_status() == "present"
    assert adapter.status().state == "ready"
    assert (adapter.options.api, adapter.options.max_retries, adapter.options.timeout_s) == ("responses", 2, 60.0)
    assert adapter.base_url() == "https://api.openai.com/v1"
    compatible = adapter_for(make_route(ProviderKind.OPENAI_COMPATIBLE, base_url="http://127.0.0.1:8080/v1"))
    assert compatible.options.api == "chat_completions"  # type: ignore[attr-defined]
    ollama = adapter_for(make_route(ProviderKind.OLLAMA, base_url="http://localhost:11434"))
    assert isinstance(ollama, OllamaAdapter)
    assert ollama.base_url() == "http://localhost:11434/v1"


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        (ProviderKind.OPENAI, {"api": "completions"}, "options.api: 'completions' is not an OpenAI wire protocol"),
        (ProviderKind.ANTHROPIC, {"api": "responses"}, "options.api: only openai and openai_compatible providers"),
        (ProviderKind.GOOGLE, {"max_retries": 11}, "options.max_retries: must be a whole number from 0 to 10"),
        (ProviderKind.OPENAI, {"timeout_s": 0}, "options.timeout_s: must be a number of seconds from 1 to 600"),
        (ProviderKind.OPENAI, {"max_retries": True}, "options.max_retries: must be a whole number"),
    ],
)
def test_live_options_rejected_with_the_field_and_the_fix(kind: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        live_options_parse(kind, options)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        (ProviderKind.OPENAI, {}, "api_key_env: the openai provider 'p-openai' needs the name of its key variable"),
        (ProviderKind.OLLAMA, {}, "base_url: the ollama provider needs a base_url"),
        (ProviderKind.OPENAI_COMPATIBLE, {"base_url": "ftp://x"}, "base_url: 'ftp://x' is not an http(s) URL"),
    ],
)
def test_live_adapter_validation(kind: str, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        adapter_for(make_route(kind, base_url=kwargs.get("base_url", "")))
    assert str(caught.value) == message


def test_disabled_provider_reports_disabled() -> None:
    route = make_route(ProviderKind.REPLAY)
    Provider.objects.filter(pk=route.provider_id).update(enabled=False)
    route.refresh_from_db()
    status = adapter_for(route).status()
    assert (status.state, status.reasons) == ("disabled", ("provider 'p-replay' is disabled",))


def test_replay_echoes_in_chunks_with_usage() -> None:
    adapter = adapter_for(make_route(ProviderKind.REPLAY, options={"chunk_chars": 5}))
    assert isinstance(adapter, ReplayAdapter)
    assert adapter.credential_status() == "not_needed"
    events = list(adapter.stream(prompt("hello world")))
    deltas = [event.text for event in events if isinstance(event, TextDelta)]
    assert deltas == ["repla", "y: he", "llo w", "orld"]
    # 11 and 19 characters; the replay knows every count, so none is unknown.
    usage = Usage(
        input_tokens=3, output_tokens=5, cached_input_tokens=0, reasoning_tokens=0, cache_write_input_tokens=0
    )
    assert events[-2:] == [Finish(reason="stop"), usage]
    assert list(adapter.stream(prompt("hello world"))) == events  # deterministic


def test_replay_tool_calls_fit_the_schema_and_answer_with_the_results() -> None:
    adapter = adapter_for(make_route(ProviderKind.REPLAY))
    schema = {
        "type": "object",
        "required": ["query", "max_results", "exact", "mode"],
        "properties": {
            "query": {"type": "string"},
            "max_results": {"type": "integer"},
            "exact": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["web", "news"]},
        },
    }
    tools = [ToolDefinition(name="search", parameters=schema)]
    events = list(adapter.stream(prompt("/tool search cats"), tools=tools))
    assert events[:2] == [
        ToolCall(
            id="call_1_1_1", name="search", arguments={"query": "cats", "max_results": 1, "exact": True, "mode": "web"}
        ),
        Finish(reason="tool_calls"),
    ]
    # No tool offered under that name: no schema, no arguments (the loop answers "unknown tool").
    assert next(iter(adapter.stream(prompt("/tool nothing here")))) == ToolCall(
        id="call_1_1_1", name="nothing", arguments={}
    )
    # Once the result is in the prompt, the reply quotes it.
    answered = [
        *prompt("/tool search cats"),
        PromptMessage(
            role="assistant",
            content="",
            parts=({"type": "tool_call", "id": "call_1_1_1", "name": "search", "arguments": {}},),
        ),
        PromptMessage(role="tool", content="3 cats found"),
    ]
    text = "".join(e.text for e in adapter.stream(answered, tools=tools) if isinstance(e, TextDelta))
    assert text == "replay: search returned: 3 cats found"
    assert list(adapter.stream(prompt("/error boom"))) == [ErrorEvent(message="boom", code="requested_error")]


def test_replay_script_turns_and_usage_override() -> None:
    script = [
        [{"type": "text", "text": "first"}, {"type": "usage", "input_tokens": 10, "output_tokens": 2}],
        [
            {"type": "tool_call", "name": "calc", "arguments": {"x": 1}},
            {"type": "tool_result", "content": "2"},
            {"type": "text", "text": "two"},
        ],
    ]
    adapter = adapter_for(make_route(ProviderKind.REPLAY, options={"script": script, "usage": {"reasoning_tokens": 1}}))
    first = list(adapter.stream(prompt("a")))
    assert first == [
        TextDelta(text="first"),
        Finish(reason="stop"),
        Usage(input_tokens=10, output_tokens=2, cached_input_tokens=0, reasoning_tokens=1, cache_write_input_tokens=0),
    ]
    second = list(adapter.stream(prompt("a", "b")))
    assert second[:2] == [ToolCall(id="call_2_1_1", name="calc", arguments={"x": 1}), Finish(reason="tool_calls")]
    # The model call made with the tool's result plays the steps after the calls.
    after = [*prompt("a", "b"), PromptMessage(role="assistant", content=""), PromptMessage(role="tool", content="2")]
    assert next(iter(adapter.stream(after))) == TextDelta(text="two")
    third = list(adapter.stream(prompt("a", "b", "c")))
    assert third == [ErrorEvent(message="the replay script has 2 turns; turn 3 was asked for", code="script_exhausted")]


def test_a_scripted_finish_reason_reaches_the_stream_and_the_contract_agrees() -> None:
    script = [[{"type": "text", "text": "cut"}, {"type": "finish", "reason": "length"}]]
    adapter = adapter_for(make_route(ProviderKind.REPLAY, options={"script": script}))
    events = list(adapter.stream(prompt("a")))
    assert events[:2] == [TextDelta(text="cut"), Finish(reason="length")]
    assert isinstance(events[2], Usage)
    # The typed events and the trace contract list the same reasons.
    assert get_args(FinishReason) == FINISH_REASONS


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"speed": 1},
            "options.speed: unknown replay option; use one of chunk_chars, delay_ms, pause_at_chunk, pause_ms, "
            "prefix, script, usage",
        ),
        ({"chunk_chars": 0}, "options.chunk_chars: must be a whole number from 1 to 10000"),
        ({"delay_ms": -1}, "options.delay_ms: must be a whole number of milliseconds from 0 to 10000"),
        ({"delay_ms": 10_001}, "options.delay_ms: must be a whole number of milliseconds from 0 to 10000"),
        ({"delay_ms": 1.5}, "options.delay_ms: must be a whole number of milliseconds from 0 to 10000"),
        ({"delay_ms": True}, "options.delay_ms: must be a whole number of milliseconds from 0 to 10000"),
        ({"pause_at_chunk": 2}, "options.pause_ms: required with pause_at_chunk; give both or neither"),
        ({"pause_ms": 100}, "options.pause_at_chunk: required with pause_ms; give both or neither"),
        (
            {"pause_at_chunk": -1, "pause_ms": 5},
            "options.pause_at_chunk: must be a whole number from 0 to 1000000 (0 is the first chunk)",
        ),
        (
            {"pause_at_chunk": 0, "pause_ms": "5s"},
            "options.pause_ms: must be a whole number of milliseconds from 0 to 600000",
        ),
        ({"usage": {"input_tokens": -1}}, "options.usage.input_tokens: must be a whole number of tokens, zero or more"),
        ({"script": []}, "options.script: must be a non-empty list of turns (each a list of steps)"),
        ({"script": [[{"type": "dance"}]]}, "options.script[0][0].type: must be one of text, tool_call"),
        ({"script": [[{"type": "text"}]]}, "options.script[0][0].text: required"),
        (
            {"script": [[{"type": "finish", "reason": "tired"}]]},
            "options.script[0][0].reason: must be one of stop, length, tool_calls, content_filter",
        ),
    ],
)
def test_replay_options_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        replay_options_parse(options)
    assert str(caught.value).startswith(message)


def test_replay_pauses_before_chunks_as_configured() -> None:
    # delay_ms before each of the 3 chunks, plus pause_ms before chunk 1: at least 3 * 40 + 300 ms.
    options = {"chunk_chars": 8, "delay_ms": 40, "pause_at_chunk": 1, "pause_ms": 300}
    adapter = adapter_for(make_route(ProviderKind.REPLAY, options=options))
    arrived: list[tuple[str, float]] = []
    started = time.monotonic()
    for event in adapter.stream([PromptMessage(role="user", content="hi there, you")]):
        if isinstance(event, TextDelta):
            arrived.append((event.text, time.monotonic() - started))
    assert [text for text, _ in arrived] == ["replay: ", "hi there", ", you"]
    # Lower bounds only (a sleep never returns early): the pause falls before the second chunk.
    assert arrived[0][1] >= 0.04
    assert arrived[1][1] - arrived[0][1] >= 0.34
    assert arrived[2][1] - arrived[1][1] >= 0.04


def test_replay_options_accept_the_pause_settings() -> None:
    parsed = replay_options_parse({"delay_ms": 0, "pause_at_chunk": 0, "pause_ms": 600_000})
    assert (parsed.delay_ms, parsed.pause_at_chunk, parsed.pause_ms) == (0, 0, 600_000)
    default = replay_options_parse({})
    assert (default.delay_ms, default.pause_at_chunk, default.pause_ms) == (0, None, 0)


def test_a_config_file_with_a_bad_live_option_names_the_field() -> None:
    raw = {
        "providers": [
            {"name": "openai", "kind": "openai", "api_key_env": "OPENAI_API_KEY", "options": {"api": "legacy"}},
            {"name": "claude", "kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY", "options": {"timeout_s": -1}},
        ]
    }
    with pytest.raises(ConfigInvalidError) as caught:
        document_parse(raw)
    found = [f"{problem.location}: {problem.message}" for problem in caught.value.problems]
    assert any(line.startswith("providers[0].options.api: 'legacy' is not an OpenAI wire protocol") for line in found)
    assert any(line.startswith("providers[1].options.timeout_s: must be a number of seconds") for line in found)


def test_the_new_event_payloads_pass_the_trace_contract() -> None:
    reasoning = Reasoning(text="thinking", state={"provider": "anthropic", "block": {"signature": "sig"}})
    cut = ToolCall(id="c1", name="f", raw_arguments='{"a": ', arguments_error="not valid JSON")
    refused = Finish(reason="content_filter", provider_reason="refusal", refusal="no")
    for event in (reasoning, cut, refused, Finish(reason="stop")):
        assert dict(trace_payload_validate(event.type, event.payload())) == event.payload()
    assert cut.payload()["raw_arguments"] == '{"a": '
    assert Finish(reason="stop").payload() == {"reason": "stop"}
    with pytest.raises(InvalidInputError, match=r"payload.state: must be an object"):
        trace_payload_validate("reasoning", {"text": "x", "state": "opaque"})
    with pytest.raises(InvalidInputError, match=r"payload.arguments_error: must be a non-empty string"):
        trace_payload_validate("tool_call", {"id": "c", "name": "f", "arguments": {}, "arguments_error": ""})
