"""The process's MCP client: one session per server, kept open, on one background event loop.

The SDK is async; workers and the `chat` command are sync. Every session lives on one daemon
thread running an asyncio loop (`_Loop`), and sync callers hand it coroutines and wait for the
answer with a deadline. State is touched only on that loop, so no lock guards it.

Sessions recover by themselves:
- a stdio server that exited is started again on the next call (the call it died in reports an error);
- an HTTP server that forgot our session id (it restarted) answers 404 / "session not found":
  the session is opened again and the call is sent once more;
- a server whose record changed (`load_config`) since its session started is restarted before
  the next call (`Target` differs).
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import mcp_types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from runtime.mcp.transports import CommandNotFoundError, StderrTail, Target, http_transport, stdio_transport

if TYPE_CHECKING:
    from core.models import McpServerSpec

T = TypeVar("T")

# How long starting a server and the MCP handshake may take.
CONNECT_TIMEOUT_S = 30.0
LIST_TIMEOUT_S = 30.0
PING_TIMEOUT_S = 5.0
CLIENT_INFO = mcp_types.Implementation(name="agent-chat", version="1")


@dataclass(frozen=True)
class McpTool:
    """One tool a server offers (after the allowlist): its name, description and input schema."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class McpCallOutcome:
    """What a tool call gave: its text, whether it is an error, and its structured content if any."""

    text: str
    is_error: bool
    structured: dict[str, Any] | None = None


class McpUnavailable(Exception):  # noqa: N818  # the name the tool loop imports
    """The server could not be started or did not complete the handshake; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def target_of(server: McpServerSpec) -> Target:
    """What a session of `server` connects with; a different value means its record changed."""
    return Target(
        name=server.name,
        transport=server.transport,
        argv=(server.command, *(str(arg) for arg in server.args)),
        url=server.url,
        env_vars=tuple(str(name) for name in server.env_vars),
    )


def allowed(server: McpServerSpec, tool: str) -> bool:
    """Whether `tool` passes the server's `tool_allowlist` (empty: every tool)."""
    allowlist = [str(name) for name in server.tool_allowlist]
    return not allowlist or tool in allowlist


def _flatten(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _described(exc: BaseException) -> str:
    exc = _flatten(exc)
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _stale_session(exc: BaseException) -> bool:
    """An HTTP server that no longer knows our session id (it restarted): open a new session and retry."""
    exc = _flatten(exc)
    if not isinstance(exc, MCPError):
        return False
    message = exc.message.lower()
    return "session" in message and any(word in message for word in ("terminated", "not found", "expired", "unknown"))


def _with_tail(reason: str, tail: str) -> str:
    return f"{reason}\nstderr (last lines):\n{tail}" if tail else reason


class _Connection:
    """One server's session and the task that keeps it open until `stop` or until the server is lost."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.session: ClientSession | None = None
        self.stderr = StderrTail()
        self.ready = asyncio.Event()
        self.stop = anyio.Event()
        self.lost = anyio.Event()
        self.ended = asyncio.Event()
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        # Requests waiting for an answer: cancelled when the session ends (the server is gone).
        self.waiting: set[asyncio.Task[Any]] = set()

    @property
    def alive(self) -> bool:
        return self.session is not None and not self.ended.is_set() and not self.lost.is_set()

    def transport(self) -> Any:
        if self.target.transport == "stdio":
            return stdio_transport(self.target, self.stderr, self.lost)
        return http_transport(self.target)

    async def serve(self) -> None:
        try:
            async with (
                self.transport() as (read, write),
                ClientSession(read, write, client_info=CLIENT_INFO) as session,
            ):
                await session.initialize()
                self.session = session
                self.ready.set()
                async with anyio.create_task_group() as group:

                    async def end_on(event: anyio.Event) -> None:
                        await event.wait()
                        group.cancel_scope.cancel()

                    group.start_soon(end_on, self.stop)
                    group.start_soon(end_on, self.lost)
        except BaseException as exc:  # kept as the reason; the task itself ends quietly
            self.error = exc
        finally:
            self.session = None
            self.ended.set()
            self.ready.set()
            for waiting in list(self.waiting):
                waiting.cancel()

    def failure(self) -> str:
        """Why the session could not start, with the server's last stderr lines."""
        error = _flatten(self.error) if self.error is not None else None
        if isinstance(error, CommandNotFoundError):
            reason = str(error)
        elif error is None:
            reason = "handshake failed: the server closed the connection"
        else:
            reason = f"handshake failed: {_described(error)}"
        return _with_tail(reason, self.stderr.text())

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            with anyio.move_on_after(10):
                await asyncio.shield(self.task)


class _Loop:
    """A daemon thread running one asyncio loop; `run` waits for a coroutine from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mcp-sessions", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class McpGateway:
    """Sessions with MCP servers, kept per server name; safe to call from any thread."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._loop: _Loop | None = None
        self._connections: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # --- sync API ------------------------------------------------------------------------------

    def tools(self, server: McpServerSpec) -> list[McpTool]:
        """The server's tools that pass its allowlist; connects first if needed, and stores the probe.

        Raises `McpUnavailable` when the server cannot be started or the handshake fails.
        """
        from core.config.services import mcp_probe_record

        try:
            tools = self.listed(server)
        except McpUnavailable as exc:
            mcp_probe_record(server_id=server.pk, ok=False, tools=[], error=exc.reason)
            raise
        mcp_probe_record(
            server_id=server.pk,
            ok=True,
            tools=[{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools],
            error="",
        )
        return tools

    def listed(self, server: McpServerSpec) -> list[McpTool]:
        """`tools` without storing the probe: for a server that is not a stored record (the conformance client)."""
        listed = self._run(self._list(target_of(server)), CONNECT_TIMEOUT_S + LIST_TIMEOUT_S + 5)
        return [tool for tool in listed if allowed(server, tool.name)]

    def call(self, server: McpServerSpec, tool: str, arguments: dict[str, Any], *, timeout: float) -> McpCallOutcome:
        """Call `tool` with `arguments`; a tool or server failure is an error outcome, never an exception."""
        if not allowed(server, tool):
            return McpCallOutcome(f"tool {tool!r} is not in the allowlist of MCP server {server.name!r}", True)
        target = target_of(server)
        try:
            return self._run(self._call(target, tool, arguments, timeout), CONNECT_TIMEOUT_S + 2 * timeout + 10)
        except McpUnavailable as exc:
            return McpCallOutcome(f"MCP server {server.name!r} is unavailable: {exc.reason}", True)
        except TimeoutError:
            return McpCallOutcome(f"tool {tool!r} of MCP server {server.name!r} timed out after {timeout:g} s", True)

    def close(self) -> None:
        """End every session (stdio servers are stopped) and the loop's thread."""
        with self._guard:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            loop.run(self._close_all(), 30)
        finally:
            loop.stop()

    # --- on the loop ---------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        with self._guard:
            if self._loop is None:
                self._loop = _Loop()
            loop = self._loop
        return loop.run(coro, timeout)

    async def _close_all(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            await connection.close()

    async def _connected(self, target: Target, *, fresh: bool = False) -> _Connection:
        """The live session for `target`'s server, started (or restarted) if needed."""
        lock = self._locks.setdefault(target.name, asyncio.Lock())
        async with lock:
            current = self._connections.get(target.name)
            if current is not None and current.alive and current.target == target and not fresh:
                return current
            if current is not None:
                self._connections.pop(target.name, None)
                await current.close()
            connection = _Connection(target)
            connection.task = asyncio.get_running_loop().create_task(connection.serve())
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await connection.ready.wait()
            except TimeoutError:
                await connection.close()
                raise McpUnavailable(
                    _with_tail(f"handshake timed out after {CONNECT_TIMEOUT_S:g} s", connection.stderr.text())
                ) from None
            if connection.session is None:
                raise McpUnavailable(connection.failure())
            self._connections[target.name] = connection
            return connection

    async def _session_call(self, connection: _Connection, request: Callable[[ClientSession], Awaitable[T]]) -> T:
        """`request` on the session, ended early with an error if the server is lost meanwhile."""
        session = connection.session
        if session is None or not connection.alive:
            raise _ServerLostError(_with_tail("the session ended", connection.stderr.text()))

        async def run() -> T:
            return await request(session)

        work = asyncio.ensure_future(run())
        connection.waiting.add(work)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.cancelled() and connection.ended.is_set():
                raise _ServerLostError(
                    _with_tail("the server stopped during the call", connection.stderr.text())
                ) from None
            work.cancel()
            raise
        finally:
            connection.waiting.discard(work)

    async def _session_lost(self, connection: _Connection, exc: BaseException) -> bool:
        """Whether `exc` means the session is gone rather than the request refused.

        An HTTP server that restarted answers our old session id with 404 or 400 (which the SDK
        reports as an error of the request): a ping on the same session tells, since it fails too.
        """
        if isinstance(exc, _ServerLostError) or _stale_session(exc):
            return True
        if connection.target.transport == "stdio" or not isinstance(_flatten(exc), MCPError):
            return False

        async def ping(session: ClientSession) -> object:
            return await session.send_ping()

        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await self._session_call(connection, ping)
        except (MCPError, _ServerLostError, TimeoutError, McpUnavailable):
            return True
        return False

    async def _list(self, target: Target) -> list[McpTool]:
        connection = await self._connected(target)
        for attempt in (1, 2):
            try:
                tools: list[McpTool] = []
                cursor: str | None = None
                while True:
                    params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None

                    async def page(session: ClientSession) -> mcp_types.ListToolsResult:
                        return await session.list_tools(params=params)  # noqa: B023  # awaited in this iteration

                    async with asyncio.timeout(LIST_TIMEOUT_S):
                        result = await self._session_call(connection, page)
                    tools += [
                        McpTool(name=t.name, description=t.description or "", input_schema=dict(t.input_schema))
                        for t in result.tools
                    ]
                    cursor = result.next_cursor
                    if not cursor:
                        return tools
            except (MCPError, _ServerLostError, TimeoutError) as exc:
                if attempt == 2 or not await self._session_lost(connection, exc):
                    raise McpUnavailable(
                        _with_tail(f"listing tools failed: {_described(exc)}", connection.stderr.text())
                    ) from exc
                connection = await self._connected(target, fresh=True)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, target: Target, tool: str, arguments: dict[str, Any], timeout: float) -> McpCallOutcome:
        connection = await self._connected(target)
        for attempt in (1, 2):

            async def request(session: ClientSession) -> mcp_types.CallToolResult:
                return await session.call_tool(tool, arguments, read_timeout_seconds=timeout)

            try:
                async with asyncio.timeout(timeout):
                    result = await self._session_call(connection, request)
            except TimeoutError:
                return McpCallOutcome(
                    f"tool {tool!r} of MCP server {target.name!r} timed out after {timeout:g} s", True
                )
            except _ServerLostError as exc:
                return McpCallOutcome(f"MCP server {target.name!r}: {exc}", True)
            except MCPError as exc:
                if exc.code == mcp_types.CONNECTION_CLOSED and target.transport == "stdio":
                    tail = connection.stderr.text()
                    return McpCallOutcome(
                        f"MCP server {target.name!r}: {_with_tail('the server stopped during the call', tail)}", True
                    )
                if attempt == 1 and await self._session_lost(connection, exc):
                    connection = await self._connected(target, fresh=True)
                    continue
                if exc.code == mcp_types.REQUEST_TIMEOUT:
                    return McpCallOutcome(
                        f"tool {tool!r} of MCP server {target.name!r} timed out after {timeout:g} s", True
                    )
                return McpCallOutcome(f"MCP server {target.name!r} refused the call: {_described(exc)}", True)
            return outcome_of(result)
        raise AssertionError("unreachable")  # pragma: no cover


class _ServerLostError(Exception):
    """The server's connection ended while a request waited for its answer."""


def _block_text(block: Any) -> str:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        return f"[{block.type}: {block.mime_type}, {len(block.data)} base64 characters]"
    if isinstance(block, mcp_types.ResourceLink):
        return f"[resource link: {block.uri}]"
    if isinstance(block, mcp_types.EmbeddedResource):
        text = getattr(block.resource, "text", None)
        return text if isinstance(text, str) else f"[resource: {block.resource.uri}]"
    return f"[{getattr(block, 'type', 'content')}]"


def outcome_of(result: mcp_types.CallToolResult) -> McpCallOutcome:
    """A tool result as text (its content blocks, one per line), its error flag and its structured content."""
    structured = result.structured_content if isinstance(result.structured_content, dict) else None
    return McpCallOutcome(
        text="\n".join(_block_text(block) for block in result.content),
        is_error=bool(result.is_error),
        structured=structured,
    )


_gateway: McpGateway | None = None
_gateway_guard = threading.Lock()


def mcp_gateway() -> McpGateway:
    """The process-wide gateway; its sessions end when the process exits."""
    global _gateway
    with _gateway_guard:
        if _gateway is None:
            _gateway = McpGateway()
            atexit.register(_gateway.close)
        return _gateway
