"""ChatGPT's `conversations.json` (and the newer export split into `conversations-NNN.json` files).

Each conversation: `conversation_id` (or `id`), `title`, `create_time`/`update_time` (Unix seconds,
fractional), `default_model_slug`, `current_node` (the leaf), and `mapping`: node id → `{"id",
"message", "parent", "children"}`. Only `parent` is trusted (newer exports omit some `children`).
A node's `message` has `author.role`/`author.name`, `create_time`, `recipient`, `metadata`
(`model_slug`, `is_visually_hidden_from_conversation`) and `content` (`content_type` with `parts`,
`text` or `result`).

What is kept (the README says the same):
- user, assistant and visible system messages with text; their model slug (the message's, else the
  conversation's `default_model_slug`) and creation time;
- an assistant message addressed to a tool (`recipient` other than "all") as a `tool_call` part
  named after the recipient with `{"input": text}`; a `tool` author's message as a tool message with
  a `tool_result` part answering the nearest call above it;
What is skipped, its replies re-parented to the nearest kept message above:
- the empty root, hidden nodes (`is_visually_hidden_from_conversation`, `user_editable_context`,
  `model_editable_context`), the model's thinking (`thoughts`, `reasoning_recap`), and nodes with no
  text (image-only pointers among them: the export does not carry the images).
"""

from __future__ import annotations

from typing import Any

from core.conversation.contracts import MessagePart
from core.conversation.importing.shapes import (
    Conversation,
    ConversationSkippedError,
    Node,
    conversation_key,
    epoch_time,
    text_of,
)

FORMAT = "chatgpt"
ITEMS = "item"
HIDDEN_CONTENT_TYPES = frozenset({"thoughts", "reasoning_recap", "user_editable_context", "model_editable_context"})
ROLES = frozenset({"user", "assistant", "system", "tool"})


def _text(content: object) -> str:
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if isinstance(parts, list):
        return "\n".join(part for part in parts if isinstance(part, str) and part)
    for key in ("text", "result"):
        if isinstance(content.get(key), str):
            return str(content[key])
    return ""


def _kept(message: object) -> bool:
    if not isinstance(message, dict):
        return False
    metadata = message.get("metadata")
    if isinstance(metadata, dict) and metadata.get("is_visually_hidden_from_conversation"):
        return False
    content = message.get("content")
    if isinstance(content, dict) and content.get("content_type") in HIDDEN_CONTENT_TYPES:
        return False
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    return role in ROLES and bool(_text(content).strip())


def convert(raw: object) -> Conversation:
    """One conversation of the export; ConversationSkippedError naming the field when it cannot be read."""
    raw, source_id = conversation_key(raw, "conversation_id", "id")
    mapping = raw.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise ConversationSkippedError("mapping: missing or empty (a conversation with no messages)")
    default_model = text_of(raw.get("default_model_slug"))
    created = epoch_time(raw.get("create_time"))

    def parent_of(node_id: str) -> str | None:
        entry = mapping.get(node_id)
        parent = entry.get("parent") if isinstance(entry, dict) else None
        return parent if isinstance(parent, str) else None

    def kept_ancestor(node_id: str | None) -> str | None:
        seen: set[str] = set()
        while node_id is not None and node_id not in seen:
            seen.add(node_id)
            entry = mapping.get(node_id)
            if not isinstance(entry, dict):
                return node_id  # a missing parent: the tree order leaves this branch out
            if _kept(entry.get("message")):
                return node_id
            node_id = parent_of(node_id)
        return None

    nodes: list[Node] = []
    calls: dict[str, str] = {}  # node id of a tool call → its id as a part
    for node_id, entry in mapping.items():
        if not isinstance(entry, dict) or not _kept(entry.get("message")):
            continue
        message: dict[str, Any] = entry["message"]
        author: dict[str, Any] = message["author"]
        role = str(author["role"])
        text = _text(message.get("content"))
        raw_metadata = message.get("metadata")
        metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
        recipient = text_of(message.get("recipient")) or "all"
        parts: list[MessagePart] = []
        content = text
        if role == "assistant" and recipient != "all":
            calls[node_id] = node_id
            parts = [{"type": "tool_call", "id": node_id, "name": recipient, "arguments": {"input": text}}]
            content = ""
        nodes.append(
            Node(
                id=node_id,
                parent=kept_ancestor(parent_of(node_id)),
                role=role,
                content=content,
                parts=parts,
                created=epoch_time(message.get("create_time")) or created,
                model=(text_of(metadata.get("model_slug")) or default_model) if role == "assistant" else "",
            )
        )
    by_id = {node.id: node for node in nodes}
    for node in nodes:
        if node.role != "tool":
            continue
        call = node.parent
        while call is not None and call not in calls and call in by_id:
            call = by_id[call].parent
        if call is not None and call in calls:
            node.parts = [{"type": "tool_result", "tool_call_id": call, "content": node.content, "is_error": False}]
    current = raw.get("current_node")
    return Conversation(
        source=FORMAT,
        source_id=source_id,
        title=text_of(raw.get("title")),
        nodes=nodes,
        current=kept_ancestor(current) if isinstance(current, str) else None,
        created=created,
        updated=epoch_time(raw.get("update_time")) or created,
    )
