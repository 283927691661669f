"""What people would use instead, set up on equal terms: LangGraph's `SqliteSaver`, OpenAI Agents'
`SQLiteSession`, and plain `sqlite3` doing the same logical append as our service.

Fairness: every peer gets its own fresh database file in the same directory as ours, in WAL mode,
at the same `synchronous` level as our connection (`PRAGMA synchronous=…` executed on each of its
connections), and is driven through its public API the way its documentation shows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MESSAGE_TEXT = (
    "Please summarise the attached meeting notes and list the three decisions we made, "
    "with the owner of each and the date we agreed."
)


def message_text(index: int) -> str:
    """The text every system stores for message `index` (the same bytes everywhere)."""
    return f"{index}: {MESSAGE_TEXT}"


def sqlite_connect(path: Path, level: str) -> sqlite3.Connection:
    """A connection with the pragmas our Django connection uses (WAL, the given synchronous level)."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    configure(conn, level)
    return conn


def configure(conn: sqlite3.Connection, level: str) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={level}")
    conn.execute("PRAGMA busy_timeout=30000")


def synchronous_of(conn: sqlite3.Connection) -> str:
    """The level actually in force (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA), to prove the set-up worked."""
    value = conn.execute("PRAGMA synchronous").fetchone()[0]
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[int(value)]


# --- LangGraph ------------------------------------------------------------------------------


class LangGraphThread:
    """One LangGraph thread in a `SqliteSaver`; each `put` chains to the previous checkpoint."""

    def __init__(self, path: Path, level: str, thread_id: str = "bench") -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.conn = sqlite_connect(path, level)
        self.saver = SqliteSaver(self.conn)
        self.saver.setup()  # its own `PRAGMA journal_mode=WAL`; our synchronous level stays in force
        self.config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        self.step = 0

    def put(self, messages: list[dict[str, str]]) -> None:
        """Write one checkpoint whose `messages` channel holds `messages`."""
        from langgraph.checkpoint.base import empty_checkpoint

        self.step += 1
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": messages}
        checkpoint["channel_versions"] = {"messages": self.step}
        self.config = self.saver.put(
            self.config, checkpoint, {"source": "loop", "step": self.step, "parents": {}}, {"messages": self.step}
        )

    def close(self) -> None:
        self.conn.close()


# --- OpenAI Agents --------------------------------------------------------------------------


class AgentsSession:
    """An OpenAI Agents `SQLiteSession` whose every connection runs at `level`.

    The session opens one connection per worker thread (its calls run in `asyncio.to_thread`) and
    configures each with `_configure_connection`; we wrap that hook on the instance so each of its
    connections also gets `PRAGMA synchronous=<level>` right after its own WAL set-up.
    """

    def __init__(self, path: Path, level: str, session_id: str = "bench") -> None:
        from agents.memory.sqlite_session import SQLiteSession

        self.loop = asyncio.new_event_loop()
        self.session = SQLiteSession(session_id, path)
        original: Callable[[sqlite3.Connection], None] = self.session._configure_connection

        def configure_with_level(conn: sqlite3.Connection) -> None:
            original(conn)
            conn.execute(f"PRAGMA synchronous={level}")

        self.session._configure_connection = configure_with_level  # type: ignore[method-assign]

    def add(self, items: list[dict[str, str]]) -> None:
        payload: Any = items  # plain {"role", "content"} dicts: the simplest input item the library accepts
        self.loop.run_until_complete(self.session.add_items(payload))

    def get(self, limit: int) -> list[Any]:
        items: list[Any] = self.loop.run_until_complete(self.session.get_items(limit=limit))
        return items

    def synchronous_levels(self) -> set[str]:
        return {synchronous_of(conn) for conn in self.session._connections}

    def close(self) -> None:
        self.session.close()
        self.loop.close()


# --- Raw sqlite3 ----------------------------------------------------------------------------

RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS session (
    id INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL DEFAULT 0,
    message_count INTEGER NOT NULL DEFAULT 0,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES session (id),
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
"""


class RawAppender:
    """Plain sqlite3, the same logical append: in one transaction read the session's last seq,
    insert the next row and bump the counters."""

    def __init__(self, path: Path, level: str) -> None:
        self.conn = sqlite_connect(path, level)
        self.conn.isolation_level = None  # explicit BEGIN IMMEDIATE, as our Django connection does
        self.conn.executescript(RAW_SCHEMA)
        self.conn.execute("INSERT INTO session (id, updated) VALUES (1, ?)", (datetime.now(UTC).isoformat(),))

    def append(self, role: str, content: str) -> int:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            (last_seq,) = conn.execute("SELECT last_seq FROM session WHERE id = 1").fetchone()
            now = datetime.now(UTC).isoformat()
            conn.execute(
                "INSERT INTO message (session_id, seq, role, content, created) VALUES (1, ?, ?, ?, ?)",
                (last_seq + 1, role, content, now),
            )
            conn.execute(
                "UPDATE session SET last_seq = last_seq + 1, message_count = message_count + 1, updated = ? "
                "WHERE id = 1",
                (now,),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return int(last_seq) + 1

    def close(self) -> None:
        self.conn.close()
