"""The import workload: a ChatGPT-shaped export of 1,000 conversations / 100,000 messages vs a raw insert of its rows.

The export is written once per run (`conversations.json`: every conversation with the empty root,
a hidden system node, alternating user and assistant messages with model slugs and times, and a
regenerated reply every 25 messages, so the trees branch). Each repetition, in rotated order, on a
fresh database:

- import: `import_run` (the command's and the worker's path): the file read twice (a checking
  pass, then the import), streamed, each conversation's tree ordered and stored in its own
  transaction (session, messages by one `executemany`, idempotency record);
- raw: the same session and message rows, prepared beforehand, inserted by `executemany` in one
  transaction.

The figure is messages/s of the import over messages/s of the raw insert, paired per repetition
(target ≥ 0.3x).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from bench.db import BENCH_USERNAME
from bench.harness import Target, median, paired_ratio, rotated

T0 = 1_700_000_000.0


def _message(node_id: str, role: str, text: str, at: float, model: str | None) -> dict[str, Any]:
    return {
        "id": node_id,
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": at,
        "update_time": None,
        "content": {"content_type": "text", "parts": [text]},
        "status": "finished_successfully",
        "end_turn": role == "assistant" or None,
        "weight": 1.0,
        "metadata": {"model_slug": model} if model else {},
        "recipient": "all",
        "channel": None,
    }


def chatgpt_export(path: Path, conversations: int, messages: int) -> int:
    """Write a ChatGPT `conversations.json`; answers the number of messages it holds (hidden nodes aside)."""
    per = messages // conversations
    total = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for c in range(conversations):
            start = T0 + c * 10_000
            mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None, "children": ["sys"]}}
            hidden = _message("sys", "system", "", start, None)
            hidden["metadata"] = {"is_visually_hidden_from_conversation": True}
            mapping["sys"] = {"id": "sys", "message": hidden, "parent": "root", "children": []}
            parent = "sys"
            for m in range(per):
                node_id = f"n{m}"
                role = "user" if m % 2 == 0 else "assistant"
                text = f"message {m} of conversation {c}: " + "lorem ipsum dolor sit amet " * 6
                model = "gpt-4o" if role == "assistant" else None
                # Every 25th message is a regenerated reply: a sibling of the previous one.
                under = mapping[parent]["parent"] if m % 25 == 24 and role == "assistant" and m > 1 else parent
                mapping[node_id] = {
                    "id": node_id,
                    "message": _message(node_id, role, text, start + m, model),
                    "parent": under,
                    "children": [],
                }
                mapping[under]["children"].append(node_id)
                parent = node_id
            total += per
            conversation = {
                "title": f"Conversation {c}",
                "create_time": start,
                "update_time": start + per,
                "mapping": mapping,
                "current_node": parent,
                "conversation_id": str(uuid.UUID(int=c + 1)),
                "id": str(uuid.UUID(int=c + 1)),
                "default_model_slug": "gpt-4o",
            }
            out.write(("," if c else "") + json.dumps(conversation))
        out.write("]")
    return total


def _raw_rows(path: Path, owner_id: int, route_id: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The session and message rows the import writes for `path`, ready for `executemany` (ids included)."""
    sessions: list[tuple[Any, ...]] = []
    messages: list[tuple[Any, ...]] = []
    next_id = 1
    pk = connection.ops
    for conversation in json.loads(path.read_text()):
        session = uuid.uuid4()
        key = str(session) if connection.vendor == "postgresql" else session.hex
        created = pk.adapt_datetimefield_value(datetime.fromtimestamp(conversation["create_time"], tz=UTC))
        nodes = [n for n in conversation["mapping"].values() if n["message"] and n["message"]["content"]["parts"][0]]
        ids = {node["id"]: next_id + index for index, node in enumerate(nodes)}
        for seq, node in enumerate(nodes, start=1):
            text = node["message"]["content"]["parts"][0]
            at = pk.adapt_datetimefield_value(datetime.fromtimestamp(node["message"]["create_time"], tz=UTC))
            parent = ids.get(node["parent"])
            messages.append(
                (
                    ids[node["id"]],
                    key,
                    seq,
                    node["message"]["author"]["role"],
                    text,
                    "[]",
                    len(text) // 4,
                    True,
                    None,
                    at,
                    parent,
                )
            )
        next_id += len(nodes)
        n = len(nodes)
        sessions.append((key, conversation["title"], route_id, owner_id, "active", False, n, n, n, 0, created, created))
    return sessions, messages


def _raw_insert(sessions: list[tuple[Any, ...]], messages: list[tuple[Any, ...]]) -> None:
    session_sql = (
        "INSERT INTO core_agentsession (id, title, route_id, owner_id, status, pinned, message_count, last_seq, leaf,"
        " tokens_since_checkpoint, created, updated) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    message_sql = (
        "INSERT INTO core_message (id, session_id, seq, role, content, parts, token_count, token_count_estimated,"
        " client_id, created, parent_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(session_sql, sessions)
        cursor.executemany(message_sql, messages)


def w_import(ctx: Any, number: int) -> list[Any]:
    from django.contrib.auth.models import User

    from core.conversation.importing.jobs import import_run
    from core.models import Message, ModelRoute

    conversations, wanted = ctx.sizes.import_conversations, ctx.sizes.import_messages
    title = f"import a ChatGPT export of {conversations:,} conversations / {wanted:,} messages vs raw executemany"
    path = ctx.work / "chatgpt-conversations.json"
    total = chatgpt_export(path, conversations, wanted)
    seconds: dict[str, list[float]] = {"import": [], "raw": []}
    for rep in range(ctx.sizes.reps):
        for name in rotated(["import", "raw"], rep):
            ctx.dbs.fresh("import")
            owner = User.objects.get(username=BENCH_USERNAME)
            if name == "raw":
                route = ModelRoute.objects.get(is_default=True)
                sessions, messages = _raw_rows(path, owner.pk, route.pk)
                started = time.perf_counter()
                _raw_insert(sessions, messages)
            else:
                started = time.perf_counter()
                report = import_run(owner=owner, paths=[path])
                if report.messages != total or report.skipped:
                    raise RuntimeError(f"the import stored {report.messages} of {total} messages")
            seconds[name].append(time.perf_counter() - started)
            if Message.objects.count() != total:
                raise RuntimeError(f"{name} left {Message.objects.count()} of {total} messages")
    row = ctx.row(
        number,
        f"{number}.import_vs_raw",
        title,
        figure=paired_ratio(seconds["raw"], seconds["import"]),
        reps=ctx.sizes.reps,
        detail={
            "import msg/s": round(total / median(seconds["import"])),
            "raw msg/s": round(total / median(seconds["raw"])),
            "file MB": round(path.stat().st_size / 1_048_576, 1),
        },
    )
    return [ctx.judged(row, Target(">=", 0.3))]
