"""Real MCP servers for the tests and the bench: the reference server (npm) and the SDK-written one here."""

from __future__ import annotations

import os
import signal
import socket
import subprocess  # nosec B404 (the tests' own servers)
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NPM_DIR = ROOT / "var" / "npm"
EVERYTHING = NPM_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
CONFORMANCE = NPM_DIR / "node_modules" / ".bin" / "conformance"
PY_SERVER = Path(__file__).with_name("py_server.py")


def npm_servers() -> None:
    """Install the pinned npm servers into var/npm/ (`scripts/mcp-test-servers`; nothing to do when installed)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "mcp-test-servers")], check=True, timeout=600)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening on {port}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextmanager
def http_server(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run an HTTP MCP server until the block ends (its own process group, so it is stopped whole)."""
    process = subprocess.Popen(  # nosec B603 (the tests' own servers)
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, process)
        yield process
    finally:
        stop(process)


@contextmanager
def everything_http(port: int) -> Iterator[str]:
    """The reference server over streamable HTTP on `port`; yields its URL."""
    with http_server(["node", str(EVERYTHING), "streamableHttp"], port, env={"PORT": str(port)}):
        yield f"http://127.0.0.1:{port}/mcp"


def py_http(port: int, transport: str = "streamable-http") -> list[str]:
    return [sys.executable, str(PY_SERVER), transport, str(port)]
