"""OpenAI's Responses API (`/responses`), through the `openai` SDK: the default for the `openai` kind.

The stream's typed events become runtime events: `response.output_text.delta` → `TextDelta`;
function calls (arguments streamed by `response.function_call_arguments.delta`, final in
`response.output_item.done`) → `ToolCall`; a reasoning output item → `Reasoning`, its summary text
beside the whole item (id, summary, `encrypted_content`) kept as the opaque state to send back,
and each function call or output message that followed it → a `Reasoning` without text holding
that item's id (the API refuses a reasoning item sent back without the items that followed it,
matched by id);
`response.refusal.delta` → the refusal of a `content_filter` finish; `response.completed` /
`response.incomplete` (`max_output_tokens` → `length`, `content_filter`) → `Finish` and `Usage`
(input_tokens includes cached reads, output_tokens includes reasoning); `response.failed` and
`error` events → `ErrorEvent`. A stream that ends before one of the terminal events is interrupted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from core.conversation.events import ErrorEvent, Finish, FinishReason, Reasoning, RuntimeEvent, TextDelta, Usage
from runtime.providers.base import PromptMessage, ToolDefinition
from runtime.providers.live import (
    CONTEXT_LENGTH_MARKERS,
    Failure,
    LiveAdapter,
    StreamInterruptedError,
    ToolNames,
    openai_usage,
    system_put,
    tool_call_parse,
    turns,
)

if TYPE_CHECKING:
    import openai

INCOMPLETE_FINISH: dict[str, FinishReason] = {"max_output_tokens": "length", "content_filter": "content_filter"}


def responses_input(messages: Sequence[PromptMessage], names: ToolNames) -> list[dict[str, Any]]:
    """The prompt as Responses input items (the system text goes in `instructions`)."""
    items: list[dict[str, Any]] = []
    for message, results in turns(messages):
        if results:
            items.extend(
                {"type": "function_call_output", "call_id": part["tool_call_id"], "output": part["content"]}
                for part in results
            )
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if message.role == "assistant":
            # The reasoning items, unchanged (id, summary, encrypted_content), before what followed them.
            items.extend(
                dict(state["item"])
                for state in message.reasoning
                if state.get("provider") == "openai_responses" and isinstance(state.get("item"), dict)
            )
        message_id = next(
            (
                state["message_id"]
                for state in message.reasoning
                if state.get("provider") == "openai_responses" and isinstance(state.get("message_id"), str)
            ),
            None,
        )
        if message.content and message_id is not None:
            # Text that followed a reasoning item goes back as the output message it was, under its id.
            items.append(
                {
                    "type": "message",
                    "id": message_id,
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": message.content, "annotations": []}],
                }
            )
        elif message.content:
            items.append({"role": role, "content": message.content})
        if message.role == "assistant":
            # A call that followed a reasoning item goes back under its own item id: the API pairs them.
            item_ids = {
                state["call"]: state["item_id"]
                for state in message.reasoning
                if state.get("provider") == "openai_responses" and "call" in state and "item_id" in state
            }
            for part in message.parts:
                if part["type"] == "tool_call":
                    call: dict[str, Any] = {
                        "type": "function_call",
                        "call_id": part["id"],
                        "name": names.wire(part["name"]),
                        "arguments": json.dumps(part["arguments"]),
                    }
                    if part["id"] in item_ids:
                        call["id"] = item_ids[part["id"]]
                    items.append(call)
    return items


def responses_usage(usage: Any) -> Usage:
    """Responses usage: input_tokens includes cached reads, output_tokens includes reasoning; OpenAI
    writes its prompt cache for free (cache writes are a reported 0)."""
    return openai_usage(usage, "input", "output", bills_cache_writes=False)


def _reasoning_text(item: Any) -> str:
    texts = [part.text for part in getattr(item, "summary", None) or [] if getattr(part, "text", "")]
    texts += [part.text for part in getattr(item, "content", None) or [] if getattr(part, "text", "")]
    return "\n\n".join(texts)


def responses_events(
    adapter: LiveAdapter,
    client: openai.OpenAI,
    messages: Sequence[PromptMessage],
    tools: Sequence[ToolDefinition],
) -> Iterator[RuntimeEvent]:
    names = ToolNames(tools, messages)
    request: dict[str, Any] = {
        "model": adapter.route.model_id,
        "input": responses_input(messages, names),
        "max_output_tokens": adapter.route.max_output_tokens,
        "stream": True,
    }
    system_put(request, "instructions", messages)
    if names.tools:
        request["tools"] = [
            {
                "type": "function",
                "name": name,
                "description": tool.description,
                "parameters": adapter.tool_schema(tool),
                "strict": False,
            }
            for name, tool in names.tools.items()
        ]
    # Function calls by output item id, in the order they began: name, call id, streamed arguments, final?
    calls: dict[str, dict[str, Any]] = {}
    refusal: list[str] = []
    final: Any = None
    terminal = ""
    reasoned = False
    with client.responses.create(**request) as stream:
        for event in stream:
            kind = event.type
            if kind == "response.output_text.delta":
                yield TextDelta(text=event.delta)
            elif kind == "response.refusal.delta":
                refusal.append(event.delta)
            elif kind == "response.output_item.added" and event.item.type == "function_call":
                calls[event.item.id or str(event.output_index)] = {
                    "call_id": event.item.call_id,
                    "name": event.item.name,
                    "arguments": [event.item.arguments or ""],
                    "done": False,
                }
            elif kind == "response.function_call_arguments.delta":
                slot = calls.get(event.item_id)
                if slot is not None:
                    slot["arguments"].append(event.delta)
            elif kind == "response.output_item.done":
                item = event.item
                if item.type == "function_call":
                    calls[item.id or str(event.output_index)] = {
                        "call_id": item.call_id,
                        "name": item.name,
                        "arguments": [item.arguments or ""],
                        "done": True,
                    }
                    if reasoned and item.id:
                        # Sent back with the reasoning item, the call must carry its own item id.
                        yield Reasoning(
                            text="", state={"provider": "openai_responses", "call": item.call_id, "item_id": item.id}
                        )
                elif item.type == "message" and reasoned and item.id:
                    yield Reasoning(text="", state={"provider": "openai_responses", "message_id": item.id})
                elif item.type == "reasoning":
                    reasoned = True
                    yield Reasoning(
                        text=_reasoning_text(item),
                        state={"provider": "openai_responses", "item": item.model_dump(mode="json", exclude_none=True)},
                    )
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                final, terminal = event.response, kind
            elif kind == "error":
                yield _error(adapter, getattr(event, "message", "") or "", getattr(event, "code", None))
                return
    if final is None:
        raise StreamInterruptedError("no response.completed event arrived")
    if terminal == "response.failed":
        error = final.error
        yield _error(adapter, error.message if error else "the response failed", error.code if error else None)
        if final.usage is not None:
            yield responses_usage(final.usage)
        return
    provider_reason = "completed"
    reason: FinishReason = "stop"
    if terminal == "response.incomplete":
        details = final.incomplete_details
        provider_reason = (details.reason if details else None) or "incomplete"
        reason = INCOMPLETE_FINISH.get(provider_reason, "length")
    for slot in calls.values():
        yield tool_call_parse(
            slot["call_id"],
            names.original(slot["name"]),
            "".join(slot["arguments"]),
            cut_short=not slot["done"] or reason == "length",
        )
    if calls and reason == "stop":
        reason = "tool_calls"
    if refusal:
        yield Finish(reason="content_filter", provider_reason="refusal", refusal="".join(refusal))
    else:
        yield Finish(reason=reason, provider_reason=provider_reason)
    if final.usage is not None:
        yield responses_usage(final.usage)


def _error(adapter: LiveAdapter, message: str, code: str | None) -> ErrorEvent:
    text = f"{message} ({code})" if code else message
    if any(marker in text.lower() for marker in CONTEXT_LENGTH_MARKERS):
        return adapter.error_event(Failure(message=text, status=400), "")
    return ErrorEvent(message=f"{adapter.label} (route {adapter.route.alias!r}) failed: {text}", code="provider_error")
