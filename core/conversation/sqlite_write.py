"""One write transaction driven on the SQLite connection itself, for the hottest write path.

`message_append` runs on every message of every turn. On SQLite its two statements cost about a
fifth of the call; `transaction.atomic()` and Django's cursor wrappers cost most of the rest
(bench/RESULTS.md, workload 1). `SqliteWrite` runs the same statements in the same kind of
transaction Django would open, without those layers:

- It is used only where Django would itself open a new transaction for the call: the connection is
  SQLite, in autocommit (not turned off by `transaction.set_autocommit(False)`) and outside any
  atomic block, and no execute wrapper is installed (an
  installed wrapper expects to see every statement, so the caller takes Django's path instead).
- It begins the way the configured `transaction_mode` makes Django begin (`BEGIN IMMEDIATE`), so a
  writer takes the database write lock at BEGIN and queues on the busy timeout.
- Any exception rolls the transaction back; a database error comes out as Django's
  (`django.db.IntegrityError`, …), exactly as from a Django cursor.
- Whenever Django logs queries (DEBUG, `assertNumQueries`, `CaptureQueriesContext`), every
  statement, BEGIN and COMMIT included, is logged into `connection.queries_log` as Django logs
  them, so pinned query counts see this path too.

Statements use the sqlite3 `?` placeholder style; `qmark()` converts the fixed `%s` SQL once.
"""

from __future__ import annotations

import sqlite3
import time
from types import TracebackType
from typing import Any, Protocol

from django.db.backends.base.base import BaseDatabaseWrapper


class Statements(Protocol):
    """What the hot paths ask of a cursor: a Django cursor, a sqlite3 cursor or `_LoggedCursor`."""

    def execute(self, sql: str, params: list[Any], /) -> object: ...

    def fetchone(self) -> Any: ...


def sqlite_write_possible(db: BaseDatabaseWrapper) -> bool:
    """Whether `db` would open a transaction of its own for a write now, with nothing watching its cursors."""
    return db.vendor == "sqlite" and not db.in_atomic_block and not db.execute_wrappers and db.get_autocommit()


def qmark(sql: str) -> str:
    """`sql` written with Django's `%s` placeholders, in sqlite3's `?` style (fixed SQL holds no other `%`)."""
    if sql.replace("%s", "").count("%"):
        raise ValueError(f"fixed SQL must hold no '%' besides its placeholders: {sql}")
    return sql.replace("%s", "?")


class _LoggedCursor:
    """A sqlite3 cursor whose statements land in `connection.queries_log`, as a Django debug cursor's do."""

    def __init__(self, db: BaseDatabaseWrapper, cursor: sqlite3.Cursor) -> None:
        self.db = db
        self.cursor = cursor

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = (), /) -> _LoggedCursor:
        start = time.monotonic()
        try:
            self.cursor.execute(sql, params)
        finally:
            self.db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})
        return self

    def fetchone(self) -> Any:
        return self.cursor.fetchone()


class SqliteWrite:
    """`with SqliteWrite(db) as cursor:` one `BEGIN IMMEDIATE … COMMIT` on `db`'s sqlite3 connection.

    Only where `sqlite_write_possible(db)`; the cursor takes `?` SQL (see `qmark`).
    """

    def __init__(self, db: BaseDatabaseWrapper) -> None:
        self.db = db
        self.logged = db.queries_logged

    def __enter__(self) -> Statements:
        db = self.db
        db.ensure_connection()
        conn: sqlite3.Connection = db.connection
        self.conn = conn
        cursor = conn.cursor()
        self.cursor: _LoggedCursor | sqlite3.Cursor = _LoggedCursor(db, cursor) if self.logged else cursor
        with db.wrap_database_errors:
            self.cursor.execute("BEGIN IMMEDIATE")
        return self.cursor

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        db = self.db
        if exc_type is None:
            try:
                with db.wrap_database_errors:
                    self.cursor.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return
        self._rollback()
        # A sqlite3 error raised by a statement of the block comes out as Django's equivalent.
        db.wrap_database_errors.__exit__(exc_type, exc, tb)

    def _rollback(self) -> None:
        if not self.conn.in_transaction:
            return
        try:
            self.cursor.execute("ROLLBACK")
        except sqlite3.Error:
            # The connection cannot even roll back; closing it discards the transaction.
            self.db.close()
