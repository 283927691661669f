"""LibreChat's conversation export: one conversation per file (an array of them is accepted too).

`{"conversationId", "title", "endpoint", "options", "recursive", "messagesTree" | "messages"}`.
Each message: `messageId`, `parentMessageId` (the zero UUID for a first message), `isCreatedByUser`,
`sender`, `text`, `model`, `createdAt` (ISO 8601), and for agents `content`: a list of `{"type":
"text", "text"}`, `{"type": "think", "think"}` and `{"type": "tool_call", "tool_call": {"id", "name",
"args", "output"}}`. With `recursive` the messages nest under `children`. LibreChat keeps no current
leaf: the newest message is the leaf. A tool call is kept as a `tool_call` part and its output as a
`tool_result` part on the same message; thinking as a `reasoning` part.
"""

from __future__ import annotations

import json
from typing import Any

from core.conversation.contracts import MessagePart
from core.conversation.importing.shapes import (
    Conversation,
    ConversationSkippedError,
    Node,
    conversation_key,
    iso_time,
    text_of,
)

FORMAT = "librechat"
ITEMS = ""
NO_PARENT = "00000000-0000-0000-0000-000000000000"


def _content(message: dict[str, Any]) -> tuple[str, list[MessagePart]]:
    items = message.get("content")
    if not isinstance(items, list) or not items:
        return text_of(message.get("text")), []
    texts: list[str] = []
    parts: list[MessagePart] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text":
            value = item.get("text")
            texts.append(value.get("value", "") if isinstance(value, dict) else text_of(value))
        elif kind == "think" and text_of(item.get("think")):
            parts.append({"type": "reasoning", "text": text_of(item.get("think"))})
        elif kind == "tool_call" and isinstance(item.get("tool_call"), dict):
            call: dict[str, Any] = item["tool_call"]
            call_id, name = text_of(call.get("id")), text_of(call.get("name"))
            if not call_id or not name:
                continue
            raw_args = call.get("args")
            try:
                arguments = json.loads(raw_args) if isinstance(raw_args, str) else raw_args
            except ValueError:
                arguments = {"input": raw_args}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call_id,
                    "name": name,
                    "arguments": arguments if isinstance(arguments, dict) else {"input": raw_args},
                }
            )
            if isinstance(call.get("output"), str):
                parts.append(
                    {"type": "tool_result", "tool_call_id": call_id, "content": call["output"], "is_error": False}
                )
    return "".join(texts) or text_of(message.get("text")), parts


def _flatten(messages: list[Any], parent: str | None, into: list[tuple[dict[str, Any], str | None]]) -> None:
    stack = [(message, parent) for message in reversed(messages)]
    while stack:
        message, above = stack.pop()
        if not isinstance(message, dict):
            continue
        into.append((message, above))
        children = message.get("children")
        if isinstance(children, list):
            stack.extend((child, text_of(message.get("messageId")) or None) for child in reversed(children))


def convert(raw: object) -> Conversation:
    """One conversation of the export; ConversationSkippedError naming the field when it cannot be read."""
    raw, source_id = conversation_key(raw, "conversationId")
    messages = raw.get("messagesTree", raw.get("messages"))
    if not isinstance(messages, list):
        raise ConversationSkippedError("messages: missing; the export lists them in messages or messagesTree")
    flat: list[tuple[dict[str, Any], str | None]] = []
    _flatten(messages, None, flat)
    nodes: list[Node] = []
    for message, above in flat:
        message_id = message.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise ConversationSkippedError("messages[].messageId: missing on a message")
        parent = message.get("parentMessageId", above)
        content, parts = _content(message)
        user = message.get("isCreatedByUser") is True
        nodes.append(
            Node(
                id=message_id,
                parent=None if parent in (None, NO_PARENT) else str(parent),
                role="user" if user else "assistant",
                content=content,
                parts=parts,
                created=iso_time(message.get("createdAt")),
                model="" if user else text_of(message.get("model")),
            )
        )
    return Conversation(
        source=FORMAT,
        source_id=source_id,
        title=text_of(raw.get("title")),
        nodes=nodes,
        created=min((node.created for node in nodes if node.created), default=None),
        updated=max((node.created for node in nodes if node.created), default=None),
    )
