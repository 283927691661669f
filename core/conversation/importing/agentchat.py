"""Agent Chat's own export (`agentchat-export/1`, written by `core.conversation.exporting`): read back exactly.

Every field the export writes is restored (seqs, parents, parts, token counts, client ids, times,
leaf, tags, checkpoints, status, route by alias when it exists), so export → import into an empty
database → export gives the same bytes. A session that was itself imported keeps its first source
as its key, so bringing it back where it came from adds nothing.
"""

from __future__ import annotations

from typing import Any

from core.conversation.importing.shapes import (
    CheckpointRecord,
    Conversation,
    ConversationSkippedError,
    Node,
    SessionExtras,
    iso_time,
    text_of,
)

FORMAT = "agentchat"
ITEMS = "sessions.item"
SCHEMA = "agentchat-export/1"


def _int(record: dict[str, Any], key: str, where: str) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConversationSkippedError(f"{where}{key}: must be a whole number ≥ 0")
    return value


def _node(message: object, index: int) -> Node:
    where = f"messages[{index}]."
    if not isinstance(message, dict):
        raise ConversationSkippedError(f"messages[{index}]: must be an object")
    seq = _int(message, "seq", where)
    if seq != index + 1:
        raise ConversationSkippedError(f"{where}seq: {seq} breaks the run 1, 2, 3… (expected {index + 1})")
    parent = message.get("parent_seq")
    if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int) or not 1 <= parent < seq):
        raise ConversationSkippedError(f"{where}parent_seq: must name an earlier message's seq, or be null")
    parts = message.get("parts")
    client_id = message.get("client_id")
    return Node(
        id=str(seq),
        parent=str(parent) if parent is not None else None,
        role=text_of(message.get("role")),
        content=text_of(message.get("content")),
        parts=parts if isinstance(parts, list) else [],
        created=iso_time(message.get("created")),
        model=text_of(message.get("model")),
        token_count=_int(message, "token_count", where),
        token_count_estimated=message.get("token_count_estimated") is not False,
        client_id=client_id if isinstance(client_id, str) else None,
    )


def _checkpoint(record: object, index: int) -> CheckpointRecord:
    where = f"checkpoints[{index}]."
    if not isinstance(record, dict):
        raise ConversationSkippedError(f"checkpoints[{index}]: must be an object")
    parent = record.get("parent")
    state = record.get("state")
    return CheckpointRecord(
        parent=parent if isinstance(parent, int) and not isinstance(parent, bool) else None,
        through_seq=_int(record, "through_seq", where),
        summary=text_of(record.get("summary")),
        state=state if isinstance(state, dict) else {},
        token_count=_int(record, "token_count", where),
        reason=text_of(record.get("reason")),
        created=iso_time(record.get("created")),
    )


def convert(raw: object) -> Conversation:
    """One exported session; ConversationSkippedError naming the field when it is not sound."""
    if not isinstance(raw, dict):
        raise ConversationSkippedError("it is not an object")
    session_id = raw.get("id")
    if not isinstance(session_id, str) or len(session_id) != 36:
        raise ConversationSkippedError("id: missing or not a session id")
    messages = raw.get("messages")
    if not isinstance(messages, list):
        raise ConversationSkippedError("messages: missing; an exported session lists its messages")
    source = raw.get("source")
    origin = (
        (text_of(source.get("format")), text_of(source.get("id")))
        if isinstance(source, dict) and source.get("format") and source.get("id")
        else None
    )
    nodes = [_node(message, index) for index, message in enumerate(messages)]
    leaf = _int(raw, "leaf", "")
    if leaf > len(nodes):
        raise ConversationSkippedError(f"leaf: {leaf} is not a message's seq")
    checkpoints = raw.get("checkpoints", [])
    tags = raw.get("tags", [])
    return Conversation(
        source=FORMAT,
        source_id=session_id,
        title=text_of(raw.get("title")),
        nodes=nodes,
        current=str(leaf) if leaf else None,
        created=iso_time(raw.get("created")),
        updated=iso_time(raw.get("updated")),
        pinned=raw.get("pinned") is True,
        tags=tags if isinstance(tags, list) else [],
        keep_order=True,
        extras=SessionExtras(
            status=text_of(raw.get("status")) or "active",
            route=text_of(raw.get("route")) or None,
            tokens_since_checkpoint=_int(raw, "tokens_since_checkpoint", ""),
            checkpoints=[_checkpoint(record, index) for index, record in enumerate(checkpoints or [])],
            origin=origin,
            message_source_ids=[text_of(m.get("source_id")) for m in messages] if origin is not None else None,
        ),
    )
