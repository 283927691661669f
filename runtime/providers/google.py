"""Google's Gemini API (`:streamGenerateContent?alt=sse`), through the `google-genai` SDK.

Each streamed `GenerateContentResponse` becomes runtime events: a text part → `TextDelta`, a text
part marked `thought` → `Reasoning`; a `functionCall` part (Gemini sends its arguments whole) →
`ToolCall`; a part's `thoughtSignature` is kept (base64) in the `Reasoning` state with the part it
came on, to be sent back unchanged. `finishReason` → `Finish` (`STOP` → `stop`, `MAX_TOKENS` →
`length`, the safety family → `content_filter`; function calls → `tool_calls`); a prompt blocked
by `promptFeedback.blockReason` is a refusal. `usageMetadata` → `Usage`: input is
`promptTokenCount` (cached content included) plus `toolUsePromptTokenCount`, output is
`candidatesTokenCount` plus `thoughtsTokenCount` (Gemini reports thoughts outside the candidates),
cached is `cachedContentTokenCount` (already inside the prompt count: never added twice).

The SDK retries 408, 429 and 5xx with exponential backoff (its `Retry-After` is not read), as many
times as `max_retries` allows. A base_url ending in an API version (`.../v1beta`) sets that version.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from core.conversation.events import Finish, FinishReason, Reasoning, RuntimeEvent, TextDelta, ToolCall, Usage
from core.models import ProviderKind
from runtime.providers.base import PromptMessage, ToolDefinition, ToolNotExpressibleError
from runtime.providers.live import (
    Failure,
    LiveAdapter,
    ToolNames,
    finish_reason_map,
    http_hooks,
    stream_finish,
    system_put,
    tool_names_by_call,
    turns,
)

GOOGLE_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}
API_VERSIONS = ("v1", "v1beta", "v1alpha")
# JSON Schema keywords outside the subset Gemini's function declarations take, which constrain the
# arguments: a tool using one is refused rather than offered with a looser schema than it declares.
GEMINI_REFUSED_KEYWORDS = frozenset(
    {
        "allOf",
        "not",
        "if",
        "then",
        "else",
        "patternProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedProperties",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "multipleOf",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "$dynamicRef",
        "$dynamicAnchor",
    }
)
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties")


def gemini_schema(schema: dict[str, Any], tool: str, path: str = "parameters") -> dict[str, Any]:
    """`schema` in the JSON Schema subset Gemini's function declarations take (`parametersJsonSchema`).

    `const` becomes a one-value `enum` and `oneOf` an `anyOf` (Gemini reads both that way); every
    other keyword goes through unchanged; a keyword of `GEMINI_REFUSED_KEYWORDS` anywhere raises
    ToolNotExpressibleError naming where it is.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        where = f"{path}.{key}"
        if key in GEMINI_REFUSED_KEYWORDS:
            raise ToolNotExpressibleError(
                f"tool {tool!r} cannot be offered to Google Gemini: {where} uses {key!r}, which Gemini's "
                "function declarations do not support; express the rule without it (or check it in the tool)"
            )
        if key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _gemini_sub(sub, tool, f"{where}.{name}") for name, sub in value.items()}
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            subs = [_gemini_sub(sub, tool, f"{where}[{n}]") for n, sub in enumerate(value)]
            out["anyOf" if key == "oneOf" else key] = subs
        elif key in _SUBSCHEMAS:
            out[key] = _gemini_sub(value, tool, where)
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    return out


def _gemini_sub(value: object, tool: str, path: str) -> object:
    """A subschema through `gemini_schema` (`true` / `false` schemas go through as they are)."""
    return gemini_schema(value, tool, path) if isinstance(value, dict) else value


def gemini_contents(messages: Sequence[PromptMessage], names: ToolNames) -> list[types.Content]:
    """The prompt as Gemini contents (`user` / `model`), calls and responses as function parts."""
    call_names = tool_names_by_call(messages)
    contents: list[types.Content] = []
    for message, results in turns(messages):
        if results and contents and contents[-1].role == "user" and _responses_only(contents[-1]):
            # The responses to parallel calls (one stored message each) go back in ONE content.
            parts = contents.pop().parts or []
        else:
            parts = []
        for result in results:
            name = names.wire(call_names.get(result["tool_call_id"], "tool"))
            key = "error" if result.get("is_error") else "output"
            parts.append(
                types.Part(
                    function_response=types.FunctionResponse(
                        id=result["tool_call_id"], name=name, response={key: result["content"]}
                    )
                )
            )
        if not results and message.content:
            parts.append(types.Part(text=message.content))
        if message.role == "assistant":
            parts += [
                types.Part(
                    function_call=types.FunctionCall(
                        id=part["id"], name=names.wire(part["name"]), args=part["arguments"]
                    )
                )
                for part in message.parts
                if part["type"] == "tool_call"
            ]
        _attach_signatures(parts, message.reasoning)
        if parts:
            contents.append(types.Content(role="model" if message.role == "assistant" else "user", parts=parts))
    return contents


def _responses_only(content: types.Content) -> bool:
    return bool(content.parts) and all(part.function_response is not None for part in content.parts or [])


def _attach_signatures(parts: list[types.Part], reasoning: Sequence[dict[str, Any]]) -> None:
    """Put each thought signature back on the part it came with: its function call, else the first part."""
    for state in reasoning:
        signature = state.get("thought_signature")
        if state.get("provider") != "google" or not isinstance(signature, str) or not parts:
            continue
        target = next(
            (part for part in parts if part.function_call is not None and part.function_call.id == state.get("call")),
            parts[0],
        )
        target.thought_signature = base64.b64decode(signature)


def gemini_usage(meta: Any) -> Usage:
    """Gemini's `usageMetadata`. Its JSON leaves out counts that are zero (proto3), so within a
    reported usageMetadata an absent count is a reported 0. `cachedContentTokenCount` is already
    inside `promptTokenCount`: it is never added again (LibreChat #12855 double-counted it).
    `thoughtsTokenCount` is NOT inside `candidatesTokenCount`: it is added to the output. Gemini
    bills no cache writes per request (an explicit cache is created and billed apart)."""
    prompt = meta.prompt_token_count or 0
    tool_prompt = meta.tool_use_prompt_token_count or 0
    candidates = meta.candidates_token_count or 0
    thoughts = meta.thoughts_token_count or 0
    cached = meta.cached_content_token_count or 0
    input_tokens = prompt + tool_prompt
    return Usage(
        input_tokens=input_tokens,
        output_tokens=candidates + thoughts,
        cached_input_tokens=min(cached, input_tokens),
        reasoning_tokens=thoughts,
        cache_write_input_tokens=0,
    )


def gemini_usage_cut(usage: Usage) -> Usage:
    """The usage of a stream cut before its last chunk: the prompt counts are final in every chunk, the
    output counts only in the last one, so the output is unknown (never the running count as if final)."""
    return dataclasses.replace(usage, output_tokens=None, reasoning_tokens=None)


def _signature(value: bytes | None) -> str:
    return base64.b64encode(value).decode("ascii") if value else ""


class GoogleAdapter(LiveAdapter):
    kind = ProviderKind.GOOGLE.value
    default_base_url = "https://generativelanguage.googleapis.com"
    label = "Google Gemini"

    def _client(self, key: str) -> genai.Client:
        base = self.base_url()
        parts = urlsplit(base)
        segments = [segment for segment in parts.path.split("/") if segment]
        options: dict[str, Any] = {
            "timeout": int(self.options.timeout_s * 1000),
            "retry_options": types.HttpRetryOptions(attempts=self.options.max_retries + 1),
            "api_version": "v1beta",  # the Gemini API's current surface (thinking, JSON Schema tools)
            "client_args": {"event_hooks": http_hooks(self)},
        }
        if segments and segments[-1] in API_VERSIONS:
            options["api_version"] = segments[-1]
            base = base[: -len(segments[-1])].rstrip("/")
        options["base_url"] = base + "/"
        return genai.Client(api_key=key, http_options=types.HttpOptions(**options))

    def tool_schema(self, tool: ToolDefinition) -> dict[str, Any]:
        """The tool's parameters in Gemini's schema subset (`gemini_schema`)."""
        return gemini_schema(super().tool_schema(tool), tool.name)

    def _failure(self, exc: Exception) -> Failure:
        if isinstance(exc, genai_errors.APIError):
            message = exc.message or str(exc)
            if exc.status:
                message = f"{message} ({exc.status})"
            return Failure(message=message, status=exc.code if isinstance(exc.code, int) else None)
        if isinstance(exc, httpx2.TimeoutException):
            return Failure(message=str(exc) or "the request timed out", timeout=True)
        if isinstance(exc, httpx2.TransportError):
            return Failure(message=str(exc) or type(exc).__name__, connection=True)
        return Failure(message=f"{type(exc).__name__}: {exc}")

    def _events(
        self, messages: Sequence[PromptMessage], tools: Sequence[ToolDefinition], *, key: str
    ) -> Iterator[RuntimeEvent]:
        names = ToolNames(tools, messages)
        config: dict[str, Any] = {"max_output_tokens": self.route.max_output_tokens}
        system_put(config, "system_instruction", messages)
        if names.tools:
            config["tools"] = [
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=name, description=tool.description, parameters_json_schema=self.tool_schema(tool)
                        )
                        for name, tool in names.tools.items()
                    ]
                )
            ]
        provider_reason = ""
        calls = 0
        usage: Usage | None = None
        refusal = ""
        client = self._client(key)
        try:
            stream = client.models.generate_content_stream(
                model=self.route.model_id,
                contents=gemini_contents(messages, names),
                config=types.GenerateContentConfig(**config),
            )
            try:
                for chunk in stream:
                    if chunk.usage_metadata is not None:
                        usage = gemini_usage(chunk.usage_metadata)
                    feedback = chunk.prompt_feedback
                    if feedback is not None and feedback.block_reason:
                        provider_reason = str(feedback.block_reason.value)
                        refusal = feedback.block_reason_message or f"the prompt was blocked ({provider_reason})"
                    for candidate in (chunk.candidates or [])[:1]:
                        for part in (candidate.content.parts if candidate.content else None) or []:
                            signature = _signature(part.thought_signature)
                            if part.thought and part.text is not None:
                                state: dict[str, Any] = {"provider": "google"}
                                if signature:
                                    state["thought_signature"] = signature
                                yield Reasoning(text=part.text, state=state)
                            elif part.function_call is not None:
                                calls += 1
                                call = part.function_call
                                call_id = call.id or f"call_{uuid.uuid4().hex[:12]}"
                                yield ToolCall(
                                    id=call_id,
                                    name=names.original(call.name or ""),
                                    arguments=dict(call.args or {}),
                                )
                                if signature:
                                    yield Reasoning(
                                        text="",
                                        state={"provider": "google", "thought_signature": signature, "call": call_id},
                                    )
                            elif part.text:
                                yield TextDelta(text=part.text)
                                if signature:
                                    yield Reasoning(
                                        text="", state={"provider": "google", "thought_signature": signature}
                                    )
                        if candidate.finish_reason is not None:
                            provider_reason = str(candidate.finish_reason.value)
            except Exception:
                # A connection cut mid-stream: the prompt counts that arrived are still usage.
                if usage is not None:
                    yield gemini_usage_cut(usage)
                raise
            finally:
                # Closing the SDK's generator closes its HTTP response (the stream stops at once).
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        finally:
            client.close()
        provider_reason = yield from stream_finish(
            provider_reason, gemini_usage_cut(usage) if usage is not None else None, "no finishReason arrived"
        )
        if refusal:
            yield Finish(reason="content_filter", provider_reason=provider_reason, refusal=refusal)
        else:
            yield Finish(
                reason=finish_reason_map(provider_reason, GOOGLE_FINISH, tool_calls=calls > 0),
                provider_reason=provider_reason,
            )
        if usage is not None:
            yield usage
