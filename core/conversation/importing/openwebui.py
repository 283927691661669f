"""Open WebUI's chat export: a JSON array of chats.

Each chat: `id`, `title`, `created_at`/`updated_at` (Unix seconds), `pinned`, `meta.tags`, and
`chat`: `{"title", "models", "history": {"messages": {id: {"id", "parentId", "childrenIds", "role",
"content", "timestamp", "model"}}, "currentId"}, "messages": [the active path]}`. The tree is
`history.messages` (`parentId`; `childrenIds` is its mirror), the leaf `history.currentId`. Empty
messages (a reply that never arrived) are skipped, their replies re-parented.
"""

from __future__ import annotations

from core.conversation.importing import shapes
from core.conversation.importing.shapes import Conversation, Node

FORMAT = "openwebui"
ITEMS = "item"
ROLES = frozenset({"user", "assistant", "system"})


def convert(raw: object) -> Conversation:
    """One chat of the export; ConversationSkippedError naming the field when it cannot be read."""
    raw, source_id = shapes.conversation_key(raw, "id")
    chat = raw.get("chat")
    history = chat.get("history") if isinstance(chat, dict) else None
    messages = history.get("messages") if isinstance(history, dict) else None
    if not isinstance(chat, dict) or not isinstance(history, dict) or not isinstance(messages, dict):
        raise shapes.ConversationSkippedError("chat.history.messages: missing; the export keeps the tree there")
    created = shapes.epoch_time(raw.get("created_at"))

    def kept(entry: object) -> bool:
        return (
            isinstance(entry, dict)
            and entry.get("role") in ROLES
            and bool(shapes.text_of(entry.get("content")).strip())
        )

    def kept_ancestor(node_id: object) -> str | None:
        seen: set[str] = set()
        while isinstance(node_id, str) and node_id not in seen:
            seen.add(node_id)
            entry = messages.get(node_id)
            if not isinstance(entry, dict) or kept(entry):
                return node_id
            node_id = entry.get("parentId")
        return None

    nodes = [
        Node(
            id=node_id,
            parent=kept_ancestor(entry.get("parentId")),
            role=str(entry["role"]),
            content=str(entry["content"]),
            created=shapes.epoch_time(entry.get("timestamp")) or created,
            model=shapes.text_of(entry.get("model")) if entry["role"] == "assistant" else "",
        )
        for node_id, entry in messages.items()
        if kept(entry)
    ]
    meta = raw.get("meta")
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return Conversation(
        source=FORMAT,
        source_id=source_id,
        title=shapes.text_of(raw.get("title")) or shapes.text_of(chat.get("title")),
        nodes=nodes,
        current=kept_ancestor(history.get("currentId")),
        created=created,
        updated=shapes.epoch_time(raw.get("updated_at")) or created,
        pinned=raw.get("pinned") is True,
        tags=[tag for tag in tags if isinstance(tag, str) and tag.strip()] if isinstance(tags, list) else [],
    )
