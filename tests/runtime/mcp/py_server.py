"""An MCP server written with the SDK (`MCPServer`), run by the tests as a real process.

    python py_server.py stdio
    python py_server.py streamable-http PORT
    python py_server.py sse PORT
    python py_server.py broken      (writes to stderr and exits before the handshake)

Its tools: `environment` (its own environment, as JSON), `pid`, `add`, `sleep` and `echo`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("agentchat-test-server")


@server.tool(description="The environment this server process was started with, as a JSON object")
def environment() -> str:
    return json.dumps(dict(os.environ), sort_keys=True)


@server.tool(description="This server's process id")
def pid() -> int:
    return os.getpid()


@server.tool(description="Add two integers")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Wait, then say how long")
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool(description="Say the text back")
def echo(text: str) -> str:
    return text


@server.tool(description="The weather in a city (a fixed answer: the tests read it back)")
def get_weather(city: str) -> str:
    return f"sunny in {city}"


def main(argv: list[str]) -> None:
    mode = argv[1] if len(argv) > 1 else "stdio"
    print(f"agentchat test server: starting ({mode})", file=sys.stderr, flush=True)
    if mode == "broken":
        print("agentchat test server: EXAMPLE_SETTING is missing; cannot start", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "stdio":
        server.run("stdio")
    elif mode == "streamable-http":
        server.run("streamable-http", host="127.0.0.1", port=int(argv[2]))
    else:
        server.run("sse", host="127.0.0.1", port=int(argv[2]))


if __name__ == "__main__":
    main(sys.argv)
