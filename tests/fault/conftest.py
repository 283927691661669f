"""Shared pieces of the fault suite: a configuration written through the services, worker output
readers with timeouts, a hard kill, SQLite's own integrity checks and a whole-database snapshot.

The crash and contention tests start real OS processes (`tests.procs`) on the real test database
file (or the PostgreSQL test database); the bad-input tests compare a snapshot of every table
before and after each request.
"""

from __future__ import annotations

import hashlib
import queue
import signal
import sqlite3
import subprocess
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection, connections
from pytest_django.fixtures import Settings

from core.config.services import config_document_apply
from core.config.validation import document_parse
from core.models import ModelRoute

# Every wait on a worker is bounded: a hung worker fails the test instead of hanging the suite.
WAIT_SECONDS = 60.0

# The configuration the fault tests run against, applied through `config_document_apply` like
# `manage.py load_config` does. `main` is the default route and is priced, so usage has a cost.
FAULT_CONFIG = """
[[providers]]
name = "replay"
kind = "replay"

[[providers]]
name = "openai"
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[[routes]]
alias = "main"
provider = "replay"
model_id = "replay-1"
context_window_tokens = 8000
max_output_tokens = 1000
price_input_per_mtok = 2.5
price_cached_input_per_mtok = 1.25
price_output_per_mtok = 10
is_default = true

[[routes]]
alias = "fast"
provider = "openai"
model_id = "gpt-4o-mini"
context_window_tokens = 128000
max_output_tokens = 16384
price_input_per_mtok = 0.15
price_output_per_mtok = 0.6

[[tools]]
name = "web_search"
description = "Search the web."
parameters = { type = "object", properties = { query = { type = "string" } }, required = ["query"] }

[[tools]]
name = "clock"
description = "Tell the time."

[[skills]]
name = "notes"
instructions = "Keep short notes."
tools = ["web_search"]

[[mcp_servers]]
name = "files"
transport = "stdio"
command = "python3"
args = ["-m", "files_server"]

[[agents]]
name = "researcher"
route = "main"
tools = ["web_search"]
skills = ["notes"]
mcp_servers = ["files"]

[[agents]]
name = "writer"
route = "fast"

[[teams]]
name = "desk"
lead = "researcher"
members = ["researcher", "writer"]
"""


@pytest.fixture
def fault_config(db: None) -> None:
    """FAULT_CONFIG, applied through the configuration service."""
    config_document_apply(document=document_parse(tomllib.loads(FAULT_CONFIG)), prune=False)


@pytest.fixture
def main_route(fault_config: None) -> ModelRoute:
    """The priced default route `main` (replay provider, offline)."""
    return ModelRoute.objects.select_related("provider").get(alias="main")


# --- Worker processes -------------------------------------------------------------------------


class LineReader:
    """Reads a worker's stdout on a thread, so that a test waits for each line with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, what: str) -> str:
        """The next line (kept in `seen`); fails the test on a timeout or if the worker exited."""
        try:
            line = self.lines.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            pytest.fail(
                f"worker printed no line within {WAIT_SECONDS}s while waiting for {what}; seen {self.seen[-5:]}"
            )
        if line is None:
            self.process.wait(timeout=WAIT_SECONDS)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            pytest.fail(f"worker exited ({self.process.returncode}) while waiting for {what}: {stderr[-3000:]}")
        self.seen.append(line)
        return line

    def until(self, prefix: str) -> str:
        """The first line starting with `prefix`."""
        while True:
            line = self.next_line(repr(prefix))
            if line.startswith(prefix):
                return line

    def drain(self) -> None:
        """After the worker ended: keep every line it printed (up to the end of its output)."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT_SECONDS)
            except queue.Empty:
                pytest.fail(f"worker output did not end within {WAIT_SECONDS}s")
            if line is None:
                return
            self.seen.append(line)


def kill_hard(process: subprocess.Popen[str]) -> None:
    """SIGKILL: the process gets no chance to finish, roll back or close anything."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=WAIT_SECONDS)
    assert process.returncode == -signal.SIGKILL


def stop_if_running(process: subprocess.Popen[str]) -> None:
    """Clean-up for a failed test: never leave a worker writing into the next test's database."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=WAIT_SECONDS)


def restart_connections() -> None:
    """What a restart does to this process: every connection closed, the next query opens a new one."""
    connections.close_all()


@dataclass(frozen=True)
class SqliteChecks:
    integrity: list[str]
    foreign_key_violations: list[tuple[object, ...]]


def sqlite_checks() -> SqliteChecks:
    """`PRAGMA integrity_check` and `PRAGMA foreign_key_check` on the test database file, read
    through a fresh sqlite3 connection (not Django's), as a new process would open it."""
    raw = sqlite3.connect(Path(connection.settings_dict["NAME"]), timeout=WAIT_SECONDS)
    try:
        integrity = [str(row[0]) for row in raw.execute("PRAGMA integrity_check").fetchall()]
        violations = [tuple(row) for row in raw.execute("PRAGMA foreign_key_check").fetchall()]
    finally:
        raw.close()
    return SqliteChecks(integrity=integrity, foreign_key_violations=violations)


# --- Database snapshots ----------------------------------------------------------------------


def _cell(value: object) -> object:
    # psycopg returns bytea as memoryview, whose repr names an address; compare the bytes.
    return bytes(value) if isinstance(value, memoryview) else value


def db_snapshot() -> dict[str, tuple[int, str]]:
    """Every table of the database (Django's, the apps', full-text index tables): its row count and
    a SHA-256 of all its rows. The fault fixtures keep the tables small, so reading all is cheap."""
    quote = connection.ops.quote_name
    snapshot: dict[str, tuple[int, str]] = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            # Table names come from the database's own catalogue, never from input.
            cursor.execute(f"SELECT * FROM {quote(table)}")  # nosec B608
            rows = sorted(repr(tuple(_cell(value) for value in row)) for row in cursor.fetchall())
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
            snapshot[table] = (len(rows), digest)
    return snapshot


def snapshot_changes(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    """The tables whose rows differ, with their row counts before and after."""
    return [
        f"{table}: {before.get(table, (0, ''))[0]} rows -> {after.get(table, (0, ''))[0]} rows"
        for table in sorted(set(before) | set(after))
        if before.get(table) != after.get(table)
    ]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Settings) -> None:
    """The `operator` fixture hashes a password per test; a fast hasher keeps the table quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
