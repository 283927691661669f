"""What every format module produces: a conversation as a set of nodes pointing at their parents.

`tree_order` decides what of a tree is sound: the nodes reachable from a root, parents before
children, oldest first among the nodes that may come next (so seqs follow the order the messages
were written). Nodes under a missing parent (or in a cycle) are left out and counted.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass, field
from typing import Any

from core.conversation.contracts import MessagePart
from core.errors import InvalidInputError


class ConversationSkippedError(Exception):
    """A conversation that cannot be imported; the others of the file still are."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FileMalformedError(InvalidInputError):
    """A file that is not what its format says: nothing of it is written."""

    def __init__(self, name: str, field: str, problem: str) -> None:
        super().__init__(f"{name}: {field}: {problem}", fields={field: [problem]})


@dataclass
class Node:
    """One message of a source tree."""

    id: str
    parent: str | None
    role: str
    content: str
    parts: list[MessagePart] = field(default_factory=list)
    created: dt.datetime | None = None
    model: str = ""
    # Agent Chat's own export carries these exactly; other formats leave them to the estimate.
    token_count: int | None = None
    token_count_estimated: bool = True
    client_id: str | None = None


@dataclass
class CheckpointRecord:
    """An exported checkpoint (Agent Chat's own format only)."""

    parent: int | None  # index into the session's checkpoint list
    through_seq: int
    summary: str
    state: dict[str, Any]
    token_count: int
    reason: str
    created: dt.datetime | None


@dataclass
class SessionExtras:
    """What only Agent Chat's export says about a session."""

    status: str = "active"
    route: str | None = None
    tokens_since_checkpoint: int | None = None
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    # Kept when the exported session itself came from an import: (source, source id).
    origin: tuple[str, str] | None = None
    # The source's message ids, in seq order, when `origin` is set.
    message_source_ids: list[str] | None = None


@dataclass
class Conversation:
    source: str
    source_id: str
    title: str
    nodes: list[Node]
    current: str | None = None
    created: dt.datetime | None = None
    updated: dt.datetime | None = None
    pinned: bool = False
    tags: list[str] = field(default_factory=list)
    extras: SessionExtras | None = None
    # The nodes are already in the order they were written (Agent Chat's seqs): keep it.
    keep_order: bool = False


@dataclass
class Tree:
    """A conversation's sound part, parents first; `leaf` indexes `nodes`."""

    nodes: list[Node]
    parents: list[int | None]
    leaf: int
    branches: int
    dropped: int


def tree_order(conversation: Conversation) -> Tree:
    """The nodes reachable from a root, parents first, oldest first; ConversationSkippedError when none is."""
    by_id: dict[str, int] = {}
    for index, node in enumerate(conversation.nodes):
        if node.id in by_id:
            raise ConversationSkippedError(f"message id {node.id!r} appears twice")
        by_id[node.id] = index
    children: dict[str | None, list[int]] = {}
    missing: list[str] = []
    for index, node in enumerate(conversation.nodes):
        parent = node.parent if node.parent in by_id else None
        if node.parent is not None and parent is None:
            missing.append(node.parent)
            continue
        children.setdefault(parent, []).append(index)
    if not conversation.nodes:
        if conversation.keep_order:  # an exported session without messages comes back as one
            return Tree(nodes=[], parents=[], leaf=-1, branches=0, dropped=0)
        raise ConversationSkippedError("it has no messages")
    if None not in children:
        raise ConversationSkippedError(f"no message is a root: each points at a missing parent (e.g. {missing[0]!r})")

    def key(index: int) -> tuple[float, int]:
        created = conversation.nodes[index].created
        if conversation.keep_order:
            return (0.0, index)
        return (created.timestamp() if created is not None else float("inf"), index)

    ready = [key(index) for index in children[None]]
    heapq.heapify(ready)
    order: list[int] = []
    position: dict[int, int] = {}
    while ready:
        _, index = heapq.heappop(ready)
        position[index] = len(order)
        order.append(index)
        for child in children.get(conversation.nodes[index].id, ()):
            heapq.heappush(ready, key(child))
    nodes = [conversation.nodes[index] for index in order]
    parents = [position[by_id[node.parent]] if node.parent is not None else None for node in nodes]
    has_child = {parent for parent in parents if parent is not None}
    current = by_id.get(conversation.current) if conversation.current is not None else None
    leaf = position[current] if current is not None and current in position else len(nodes) - 1
    return Tree(
        nodes=nodes,
        parents=parents,
        leaf=leaf,
        branches=sum(1 for index in range(len(nodes)) if index not in has_child),
        dropped=len(conversation.nodes) - len(nodes),
    )


def conversation_key(raw: object, *keys: str) -> tuple[dict[str, Any], str]:
    """A conversation object and its id (the first of `keys` it has); ConversationSkippedError naming the field."""
    if not isinstance(raw, dict):
        raise ConversationSkippedError("it is not an object")
    source_id = next((raw[key] for key in keys if isinstance(raw.get(key), str) and raw[key]), None)
    if source_id is None:
        raise ConversationSkippedError(f"{keys[0]}: missing; every conversation of the export has one")
    return raw, source_id


def epoch_time(value: object) -> dt.datetime | None:
    """A Unix time in seconds (or milliseconds, when it is too large for seconds) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if value > 100_000_000_000 else value
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_time(value: object) -> dt.datetime | None:
    """An ISO 8601 time (a trailing Z allowed) as an aware UTC datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def text_of(value: object) -> str:
    """A string field, or "" when it is absent or not a string."""
    return value if isinstance(value, str) else ""
