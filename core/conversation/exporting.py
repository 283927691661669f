"""Export a user's sessions: JSON in the versioned schema `agentchat-export/1`, or Markdown of the active path.

The JSON holds everything needed to bring a session back: the session's fields, every message of
the tree with its parts, the leaf, the tags and the checkpoints; no export time, so exporting the
same records twice gives the same bytes, and export → import into an empty database → export is
byte-identical. The README documents the schema field by field.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID

from core.conversation.importing.models import ImportedConversation, ImportFormat
from core.conversation.models import AgentSession, Checkpoint, Message
from core.conversation.selectors import OwnerScope, owned, session_get

SCHEMA = "agentchat-export/1"


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def session_record(session: AgentSession) -> dict[str, Any]:
    """One session as its `agentchat-export/1` record (every message of the tree, its tags and checkpoints)."""
    rows: list[dict[str, Any]] = [dict(row) for row in Message.objects.filter(session=session).order_by("seq").values()]
    seq_of = {row["id"]: row["seq"] for row in rows}
    origin = ImportedConversation.objects.filter(session=session).first()
    foreign = origin is not None and origin.source != ImportFormat.AGENTCHAT
    sources: list[list[str]] = origin.message_sources if origin is not None and foreign else []
    messages = []
    for index, row in enumerate(rows):
        message: dict[str, Any] = {
            "seq": row["seq"],
            "parent_seq": seq_of.get(row["parent_id"]) if row["parent_id"] is not None else None,
            **{key: row[key] for key in ("role", "content", "parts", "token_count", "token_count_estimated")},
            "client_id": row["client_id"],
            "created": _time(row["created"]),
        }
        if index < len(sources):
            message["source_id"], message["model"] = sources[index]
        messages.append(message)
    checkpoints = list(Checkpoint.objects.filter(session=session).order_by("id"))
    position = {checkpoint.pk: index for index, checkpoint in enumerate(checkpoints)}
    return {
        "id": str(session.pk),
        "title": session.title,
        "status": session.status,
        "pinned": session.pinned,
        "route": session.route.alias,
        "created": _time(session.created),
        "updated": _time(session.updated),
        "leaf": session.leaf,
        "tokens_since_checkpoint": session.tokens_since_checkpoint,
        "tags": sorted(session.tags.values_list("name", flat=True)),
        "source": {"format": origin.source, "id": origin.source_id} if origin is not None and foreign else None,
        "messages": messages,
        "checkpoints": [
            {
                "parent": position.get(checkpoint.parent_id) if checkpoint.parent_id is not None else None,
                "through_seq": checkpoint.through_seq,
                "summary": checkpoint.summary,
                "state": checkpoint.state,
                "token_count": checkpoint.token_count,
                "reason": checkpoint.reason,
                "created": _time(checkpoint.created),
            }
            for checkpoint in checkpoints
        ],
    }


def sessions_for_export(*, owner: OwnerScope, session_ids: Iterable[UUID | str] | None) -> Iterable[AgentSession]:
    """`owner`'s sessions named (all checked before any is read: another user's is a NotFoundError), or all of
    them oldest first, read as they are written."""
    if session_ids is not None:
        return [session_get(session_id=session_id, owner=owner) for session_id in session_ids]
    return owned(AgentSession.objects.select_related("route"), owner).order_by("created", "id").iterator(chunk_size=100)


def export_json(sessions: Iterable[AgentSession]) -> Iterator[str]:
    """The export document in pieces (one per session), so a large export is written as it is read."""
    yield '{"schema": "' + SCHEMA + '", "sessions": ['
    for index, session in enumerate(sessions):
        yield ("," if index else "") + "\n" + json.dumps(session_record(session), ensure_ascii=False)
    yield "\n]}\n"


def _fenced(text: str, language: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"


def export_markdown(sessions: Iterable[AgentSession]) -> Iterator[str]:
    """Each session's active path (leaf up to the root, shown root first) with its tool calls and results."""
    for index, session in enumerate(sessions):
        record = session_record(session)
        by_seq = {message["seq"]: message for message in record["messages"]}
        path: list[dict[str, Any]] = []
        seq = record["leaf"] or None
        while seq is not None and seq in by_seq:
            path.append(by_seq[seq])
            seq = by_seq[seq]["parent_seq"]
        lines = [f"# {record['title'] or 'Untitled session'}", ""]
        lines += [f"- Session: `{record['id']}`", f"- Route: `{record['route']}`", f"- Created: {record['created']}"]
        if record["tags"]:
            lines.append("- Tags: " + ", ".join(record["tags"]))
        for message in reversed(path):
            model = f" ({message['model']})" if message.get("model") else ""
            lines += ["", f"## {message['role'].capitalize()}{model} · #{message['seq']} · {message['created']}", ""]
            results = [part for part in message["parts"] if part["type"] == "tool_result"]
            if message["content"] and not (message["role"] == "tool" and results):
                lines.append(message["content"])
            for part in message["parts"]:
                if part["type"] == "tool_call":
                    arguments = json.dumps(part["arguments"], ensure_ascii=False, indent=2)
                    lines += ["", f"**Tool call** `{part['name']}` (`{part['id']}`)", "", _fenced(arguments, "json")]
                elif part["type"] == "tool_result":
                    error = " (error)" if part.get("is_error") else ""
                    lines += ["", f"**Tool result**{error} for `{part['tool_call_id']}`", "", _fenced(part["content"])]
                elif part["type"] == "attachment":
                    lines += ["", f"Attachment: {part['name']} ({part['mime_type']}, sha256 `{part['sha256']}`)"]
        yield ("\n\n---\n\n" if index else "") + "\n".join(lines) + "\n"
