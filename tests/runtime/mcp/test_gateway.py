"""The MCP client against real servers: the reference server (npm) over stdio and streamable HTTP, and an
SDK-written server over stdio, streamable HTTP and SSE; recovery from a killed stdio server, a restarted
HTTP server and a changed record; timeouts, the allowlist, the child's environment and its stderr."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import replace

import pytest

from core.config.contracts import Kind, McpServerConfig
from core.config.selectors import config_record_get, mcp_health
from core.config.services import config_record_update
from core.models import McpServerSpec, McpServerStatus
from runtime.mcp import McpCallOutcome, McpGateway, McpUnavailable
from tests.runtime.mcp.conftest import everything_stdio, py_stdio, server_record
from tests.runtime.mcp.servers import PY_SERVER, everything_http, free_port, http_server, py_http

pytestmark = pytest.mark.django_db


def pid_of(gateway: McpGateway, server: McpServerSpec) -> int:
    outcome = gateway.call(server, "pid", {}, timeout=10)
    assert not outcome.is_error, outcome.text
    return int(outcome.text)


# --- the reference server ------------------------------------------------------------------


@pytest.mark.usefixtures("npm_installed")
def test_reference_server_over_stdio_lists_its_tools_and_calls_echo(gateway: McpGateway) -> None:
    server = everything_stdio()
    tools = gateway.tools(server)
    names = [tool.name for tool in tools]
    assert {"echo", "get-sum", "get-env"} <= set(names)
    echo = next(tool for tool in tools if tool.name == "echo")
    assert echo.input_schema["properties"]["message"]["type"] == "string"
    assert gateway.call(server, "echo", {"message": "hi"}, timeout=10) == McpCallOutcome("Echo: hi", False)
    assert gateway.call(server, "get-sum", {"a": 2, "b": 40}, timeout=10).text == "The sum of 2 and 40 is 42."
    # The probe is stored with the tools' schemas.
    status = McpServerStatus.objects.get(server=server)
    assert (status.ok, status.error, [tool["name"] for tool in status.tools]) == (True, "", names)
    assert mcp_health()["everything"].summary == f"ready: {len(names)} tools"


@pytest.mark.usefixtures("npm_installed")
def test_reference_server_over_streamable_http(gateway: McpGateway) -> None:
    port = free_port()
    with everything_http(port) as url:
        server = server_record("everything-http", transport="streamable_http", url=url)
        assert "echo" in [tool.name for tool in gateway.tools(server)]
        assert gateway.call(server, "echo", {"message": "over http"}, timeout=10).text == "Echo: over http"


@pytest.mark.usefixtures("npm_installed")
def test_restarted_http_server_gets_a_new_session_and_the_call_goes_through(gateway: McpGateway) -> None:
    port = free_port()
    with everything_http(port) as url:
        server = server_record("everything-http", transport="streamable_http", url=url)
        assert gateway.call(server, "echo", {"message": "one"}, timeout=10).text == "Echo: one"
    # The server is gone and back on the same port: it does not know our session id any more.
    with everything_http(port):
        assert gateway.call(server, "echo", {"message": "two"}, timeout=10) == McpCallOutcome("Echo: two", False)
        assert gateway.call(server, "echo", {"message": "three"}, timeout=10).text == "Echo: three"


# --- the SDK-written server ----------------------------------------------------------------


def test_stdio_environment_holds_only_path_home_lang_and_the_named_variables(
    gateway: McpGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://agentchat:EXAMPLE-password@127.0.0.1/agentchat")
    monkeypatch.setenv("SECRET_KEY", "EXAMPLE-secret-key-not-for-the-server")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-RECOGNISABLE-0003")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-RECOGNISABLE-0003")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("FILES_SERVER_TOKEN", "EXAMPLE-token-for-the-server")
    server = py_stdio(env_vars=("FILES_SERVER_TOKEN",))
    outcome = gateway.call(server, "environment", {}, timeout=10)
    assert not outcome.is_error, outcome.text
    seen = json.loads(outcome.text)
    expected = {"PATH", "LANG", "FILES_SERVER_TOKEN"} | ({"HOME"} if "HOME" in os.environ else set())
    assert set(seen) == expected
    assert seen["FILES_SERVER_TOKEN"] == "EXAMPLE-token-for-the-server"
    for value in ("EXAMPLE-password", "EXAMPLE-secret-key", "RECOGNISABLE"):
        assert value not in outcome.text


def test_sdk_server_over_sse_and_streamable_http(gateway: McpGateway) -> None:
    for transport, path in (("sse", "sse"), ("streamable-http", "mcp")):
        port = free_port()
        with http_server(py_http(port, transport), port):
            server = server_record(
                f"py-{path}",
                transport="sse" if transport == "sse" else "streamable_http",
                url=f"http://127.0.0.1:{port}/{path}",
            )
            names = [tool.name for tool in gateway.tools(server)]
            assert names == ["environment", "pid", "add", "sleep", "echo", "get_weather"]
            outcome = gateway.call(server, "add", {"a": 2, "b": 3}, timeout=10)
            assert (outcome.text, outcome.is_error, outcome.structured) == ("5", False, {"result": 5})


def test_stdio_server_killed_mid_call_is_an_error_then_restarted(gateway: McpGateway) -> None:
    server = py_stdio()
    first = pid_of(gateway, server)
    outcomes: list[McpCallOutcome] = []
    call = threading.Thread(target=lambda: outcomes.append(gateway.call(server, "sleep", {"seconds": 30}, timeout=60)))
    call.start()
    threading.Event().wait(0.5)  # the call is under way
    os.kill(first, signal.SIGKILL)
    call.join(20)
    assert not call.is_alive()
    [outcome] = outcomes
    assert outcome.is_error
    assert outcome.text.startswith("MCP server 'py': the server stopped during the call")
    assert "agentchat test server: starting (stdio)" in outcome.text  # its stderr tail
    second = pid_of(gateway, server)
    assert second != first
    assert gateway.call(server, "echo", {"text": "back"}, timeout=10) == McpCallOutcome(
        "back", False, {"result": "back"}
    )


def test_a_changed_record_restarts_the_session_before_the_next_call(gateway: McpGateway) -> None:
    server = py_stdio()
    first = pid_of(gateway, server)
    assert pid_of(gateway, McpServerSpec.objects.get(pk=server.pk)) == first  # unchanged: the same session
    record = config_record_get(Kind.MCP_SERVER, "py")
    assert isinstance(record, McpServerConfig)
    config_record_update(kind=Kind.MCP_SERVER, key="py", record=replace(record, args=(*record.args, "tag-b")))
    changed = McpServerSpec.objects.get(pk=server.pk)
    second = pid_of(gateway, changed)
    assert second != first
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # the old server was stopped


def test_a_call_that_takes_too_long_times_out_and_the_session_stays_usable(gateway: McpGateway) -> None:
    server = py_stdio()
    outcome = gateway.call(server, "sleep", {"seconds": 5}, timeout=0.5)
    assert outcome == McpCallOutcome("tool 'sleep' of MCP server 'py' timed out after 0.5 s", True)
    assert gateway.call(server, "add", {"a": 1, "b": 1}, timeout=10).text == "2"


def test_the_allowlist_filters_the_tools_and_refuses_other_calls(gateway: McpGateway) -> None:
    server = py_stdio(tool_allowlist=("add", "echo"))
    assert [tool.name for tool in gateway.tools(server)] == ["add", "echo"]
    assert [tool["name"] for tool in McpServerStatus.objects.get(server=server).tools] == ["add", "echo"]
    assert gateway.call(server, "environment", {}, timeout=10) == McpCallOutcome(
        "tool 'environment' is not in the allowlist of MCP server 'py'", True
    )


def test_an_unknown_tool_and_bad_arguments_are_error_outcomes(gateway: McpGateway) -> None:
    server = py_stdio()
    unknown = gateway.call(server, "nope", {}, timeout=10)
    assert unknown.is_error
    assert "nope" in unknown.text
    bad = gateway.call(server, "add", {"a": "two"}, timeout=10)
    assert bad.is_error
    assert "add" in bad.text


def test_a_missing_command_is_unavailable_and_stored(gateway: McpGateway) -> None:
    server = server_record("ghost", transport="stdio", command="agentchat-no-such-command")
    with pytest.raises(McpUnavailable) as raised:
        gateway.tools(server)
    assert raised.value.reason == "command 'agentchat-no-such-command' not found"
    status = McpServerStatus.objects.get(server=server)
    assert (status.ok, status.error, status.tools) == (False, "command 'agentchat-no-such-command' not found", [])
    assert mcp_health()["ghost"].summary == "blocked: command 'agentchat-no-such-command' not found"
    outcome = gateway.call(server, "anything", {}, timeout=5)
    assert outcome == McpCallOutcome(
        "MCP server 'ghost' is unavailable: command 'agentchat-no-such-command' not found", True
    )


def test_a_server_that_exits_before_the_handshake_shows_its_stderr_tail(gateway: McpGateway) -> None:
    server = server_record("broken", transport="stdio", command=sys.executable, args=(str(PY_SERVER), "broken"))
    with pytest.raises(McpUnavailable) as raised:
        gateway.tools(server)
    reason = raised.value.reason
    assert reason.startswith("handshake failed: ")
    assert reason.endswith(
        "stderr (last lines):\n"
        "agentchat test server: starting (broken)\n"
        "agentchat test server: EXAMPLE_SETTING is missing; cannot start"
    )
    assert McpServerStatus.objects.get(server=server).error == reason
