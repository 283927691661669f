"""A real ASGI server (uvicorn, the app's `agentchat_site.asgi:application`) on the test database."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import connection

from core.accounts.services import token_create
from core.conversation.services import run_create, session_create
from core.models import ModelRoute, Provider, ProviderKind, Run
from tests.owners import plain_user
from tests.procs import ROOT, database_url_for_tests, worker_env

# The server's connections carry this name, so pg_stat_activity can tell them from the test's own.
SERVER_APP_NAME = "agentchat-stream-test"
HEARTBEAT_MS = 300


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    database_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_database_url() -> str:
    url = database_url_for_tests()
    return f"{url}?application_name={SERVER_APP_NAME}" if connection.vendor == "postgresql" else url


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Server]:
    """uvicorn serving the app on a free port, with a short heartbeat; stopped after the module."""
    port = _free_port()
    database_url = _server_database_url()
    env = worker_env(DATABASE_URL=database_url, AGENTCHAT_STREAM_HEARTBEAT_MS=str(HEARTBEAT_MS))
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "agentchat_site.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("uvicorn did not listen within 60 s") from None
            time.sleep(0.1)
    # The first request imports the URLconf (and the provider SDKs with it): slow on a busy machine,
    # so it is made here rather than inside a test's read timeout.
    httpx.get(f"http://127.0.0.1:{port}/api/bootstrap/", timeout=180)
    try:
        yield Server(f"http://127.0.0.1:{port}", process.pid, database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


@dataclass(frozen=True)
class Owner:
    user: User
    headers: dict[str, str]


def owner_signed_in(username: str = "streamer") -> Owner:
    """A plain user and the `Authorization` header of a fresh API token of theirs."""
    user = plain_user(username)
    key = token_create(user=user, name="stream test").key
    return Owner(user, {"Authorization": f"Token {key}"})


def run_opened(owner: User, *, running: bool = True) -> Run:
    """A run on a new session of `owner` on an offline route, `running` (or `queued`)."""
    route = ModelRoute.objects.filter(alias="replay").first()
    if route is None:
        provider = Provider.objects.create(name="replay", kind=ProviderKind.REPLAY)
        route = ModelRoute.objects.create(
            alias="replay",
            provider=provider,
            model_id="replay-1",
            context_window_tokens=8_000,
            max_output_tokens=1_000,
            is_default=True,
        )
    session = session_create(owner=owner, title="streamed", route_alias=route.alias)
    return run_create(session_id=session.pk, status="running" if running else "queued")


def server_threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def server_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def server_sqlite_connections(pid: int, database: str) -> int:
    """How many SQLite connections the process holds: its file descriptors on the database's `-wal` file.

    Each connection in WAL mode opens the `-wal` file once and closes it when it closes. The database
    file itself is no measure: SQLite keeps a closed connection's descriptor of it open (for reuse)
    while another connection of the process holds a lock on it.
    """
    target = str(Path(database).resolve()) + "-wal"
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if str(fd.readlink()) == target:
                count += 1
        except OSError:
            continue  # closed between listing and reading
    return count
