"""How a session reaches its MCP server: a stdio child process, streamable HTTP, or SSE.

HTTP and SSE are the SDK's own transports. stdio is ours, on the SDK's framing (one JSON-RPC
message per line, `SessionMessage`): the SDK's `stdio_client` always adds its own inherited
variables (LOGNAME, SHELL, TERM, USER) to the child's environment, and ours must hold only PATH,
HOME, LANG and the variables the server's `env_vars` names. It also keeps the last lines of the
child's stderr, which the SDK sends to a file.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from subprocess import PIPE  # nosec B404 (the child is the operator's configured server; no shell)
from typing import Any

import anyio
import mcp_types
from anyio.abc import Process
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.message import SessionMessage

# What a stdio server inherits from Agent Chat's environment, whatever else is set there.
INHERITED_ENV = ("PATH", "HOME", "LANG")
STDERR_LINES = 40
STDERR_LINE_CHARS = 500
# After stdin closes, how long a server may take to exit before its process group is killed.
EXIT_GRACE_S = 2.0


@dataclass(frozen=True)
class Target:
    """What connecting needs from an `McpServerSpec`: read from the record when the session starts."""

    name: str
    transport: str
    argv: tuple[str, ...]  # stdio: the command and its arguments
    url: str  # streamable_http / sse
    env_vars: tuple[str, ...]


class StderrTail:
    """The last lines a stdio server wrote to stderr, each cut to a bounded length."""

    def __init__(self) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)

    def add(self, line: str) -> None:
        line = line.rstrip()
        if line:
            self._lines.append(line[:STDERR_LINE_CHARS])

    def text(self, lines: int = 10) -> str:
        return "\n".join(list(self._lines)[-lines:])


class CommandNotFoundError(Exception):
    """The stdio command is not installed (nothing on PATH by that name)."""


def child_environment(env_vars: Sequence[str]) -> dict[str, str]:
    """PATH, HOME, LANG and the named variables, with their values now; nothing else of ours."""
    names = (*INHERITED_ENV, *env_vars)
    return {name: os.environ[name] for name in names if name in os.environ}


async def _read_stderr(process: Process, tail: StderrTail) -> None:
    assert process.stderr is not None  # noqa: S101  # spawned with a pipe
    buffer = b""
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        async for chunk in process.stderr:
            lines = (buffer + chunk).split(b"\n")
            buffer = lines.pop()[-STDERR_LINE_CHARS * 4 :]
            for line in lines:
                tail.add(line.decode("utf-8", "replace"))
    tail.add(buffer.decode("utf-8", "replace"))


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


async def _stop(process: Process) -> None:
    """Close stdin, give the server `EXIT_GRACE_S` to exit, then end its whole process group."""
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        if process.stdin is not None:
            await process.stdin.aclose()
    with anyio.move_on_after(EXIT_GRACE_S):
        while process.returncode is None:
            await anyio.sleep(0.02)
    if process.returncode is None:
        await terminate_posix_process_tree(process, EXIT_GRACE_S)


@contextlib.asynccontextmanager
async def stdio_transport(target: Target, tail: StderrTail, lost: anyio.Event) -> AsyncIterator[Any]:
    """Start the server's command (no shell, its own process group) and exchange messages over its pipes.

    `lost` is set when its stdout ends (the server exited or closed it): the session is dead.
    """
    try:
        process = await anyio.open_process(
            list(target.argv),
            env=child_environment(target.env_vars),
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise CommandNotFoundError(f"command {target.argv[0]!r} not found") from exc
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def stdout_reader() -> None:
        assert process.stdout is not None  # noqa: S101  # spawned with a pipe
        buffer = b""
        try:
            async with read_writer:
                async for chunk in process.stdout:
                    lines = (buffer + chunk).split(b"\n")
                    buffer = lines.pop()
                    for line in lines:
                        if line.strip():
                            await read_writer.send(_parse(line))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            pass
        finally:
            lost.set()

    async def stdin_writer() -> None:
        assert process.stdin is not None  # noqa: S101  # spawned with a pipe
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode("utf-8"))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(stdout_reader)
        group.start_soon(stdin_writer)
        group.start_soon(_read_stderr, process, tail)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                write_stream.close()
                read_stream.close()
                await _stop(process)
            group.cancel_scope.cancel()


def http_transport(target: Target) -> contextlib.AbstractAsyncContextManager[Any]:
    """The SDK's client for a streamable HTTP or an SSE server."""
    if target.transport == "sse":
        return sse_client(target.url)
    return streamable_http_client(target.url)
