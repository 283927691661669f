"""Workload 16, an MCP tool round trip: `McpGateway.call` vs the `mcp` SDK calling the same server directly.

The server is the reference `@modelcontextprotocol/server-everything` over stdio (installed by
`scripts/mcp-test-servers` into var/npm/), its `echo` tool. Each repetition, in rotated order, times
`mcp_calls` calls back to back on a session that is already open:

- directly: an SDK `ClientSession` on the SDK's own `stdio_client`, awaited on the bench's own event loop;
- through the gateway, from sync code as a worker calls it: the call is handed to the gateway's
  event-loop thread and waited for, with its deadline, the allowlist check and the outcome built.

The figure is the paired median of gateway calls/s over direct calls/s (target >= 0.5x: the gateway
pays a thread hand-off per call that an async caller does not).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.harness import Target, median, paired_ratio, rotated

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING = ROOT / "var" / "npm" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
ARGS = [str(EVERYTHING), "stdio"]


async def _direct_batch(session: Any, calls: int) -> float:
    """Seconds per call over `calls` SDK calls on an open session."""
    started = time.perf_counter()
    for index in range(calls):
        result = await session.call_tool("echo", {"message": f"m{index}"})
        if result.is_error:
            raise RuntimeError(f"the direct call failed: {result.content}")
    return (time.perf_counter() - started) / calls


def _gateway_batch(gateway: Any, server: Any, calls: int) -> float:
    """Seconds per call over `calls` gateway calls, from sync code (a worker thread of the bench's loop)."""
    started = time.perf_counter()
    for index in range(calls):
        outcome = gateway.call(server, "echo", {"message": f"m{index}"}, timeout=10)
        if outcome.is_error or outcome.text != f"Echo: m{index}":
            raise RuntimeError(f"the gateway call failed: {outcome.text}")
    return (time.perf_counter() - started) / calls


async def _measure(gateway: Any, server: Any, calls: int, reps: int) -> dict[str, list[float]]:
    """Both sessions open side by side; each repetition times one batch of each, in rotated order."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    seconds: dict[str, list[float]] = {"gateway": [], "direct": []}
    async with (
        stdio_client(StdioServerParameters(command="node", args=ARGS)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await _direct_batch(session, 5)  # warm
        await asyncio.to_thread(_gateway_batch, gateway, server, 5)  # warm: its server started, its session open
        for rep in range(reps):
            for name in rotated(["gateway", "direct"], rep):
                if name == "gateway":
                    seconds[name].append(await asyncio.to_thread(_gateway_batch, gateway, server, calls))
                else:
                    seconds[name].append(await _direct_batch(session, calls))
    return seconds


def w16_mcp_roundtrip(ctx: Any) -> list[Any]:
    from core.models import McpServerSpec, McpTransport
    from runtime.mcp import McpGateway

    title = "MCP tool round trip (server-everything echo, stdio): McpGateway.call vs the SDK directly"
    if not EVERYTHING.is_file():
        return [ctx.row(16, "16.mcp_call", title, status="not available: run scripts/mcp-test-servers")]
    calls, reps = ctx.sizes.mcp_calls, ctx.sizes.reps
    server = McpServerSpec(name="bench-everything", transport=McpTransport.STDIO, command="node", args=ARGS)
    gateway = McpGateway()
    try:
        seconds = asyncio.run(_measure(gateway, server, calls, reps))
    finally:
        gateway.close()
    detail = {f"{name} ms/call": round(median(seconds[name]) * 1000, 3) for name in ("gateway", "direct")}
    # calls/s ratio = direct seconds / gateway seconds, paired per repetition.
    figure = paired_ratio(seconds["direct"], seconds["gateway"])
    row = ctx.row(16, "16.mcp_call", title, figure=figure, reps=reps, detail={**detail, "calls/rep": calls})
    return [ctx.judged(row, Target(">=", 0.5))]
