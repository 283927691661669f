"""Probing MCP servers on demand (`manage.py check_mcp`, `POST /api/config/mcp-servers/{name}/probe/`) and what
readiness and the bootstrap say: `ready: N tools`, `blocked: command … not found`, a failed handshake with
the stderr tail, and never probed; reading a page probes nothing."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.models import McpServerStatus
from runtime.mcp import mcp_gateway
from tests.owners import plain_user
from tests.runtime.bootstrap_client import bootstrap
from tests.runtime.mcp.conftest import py_stdio, server_record
from tests.runtime.mcp.servers import PY_SERVER

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("live_worker")]

TOOLS = ["environment", "pid", "add", "sleep", "echo", "get_weather"]


@pytest.fixture(autouse=True)
def process_gateway() -> Iterator[None]:
    """The command and the endpoint use the process-wide gateway: its servers are stopped after each test."""
    yield
    mcp_gateway().close()


def check_mcp(*names: str) -> tuple[str, str | None]:
    out = io.StringIO()
    try:
        call_command("check_mcp", *names, stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def test_check_mcp_lists_each_server_and_its_tools() -> None:
    py_stdio(tool_allowlist=("add", "echo"))
    out, error = check_mcp()
    assert error is None
    assert out.splitlines() == ["py: ready: 2 tools", "  add: Add two integers", "  echo: Say the text back"]
    status = McpServerStatus.objects.get(server__name="py")
    assert status.ok
    assert status.tools[0] == {
        "name": "add",
        "description": "Add two integers",
        "input_schema": status.tools[0]["input_schema"],
    }
    assert set(status.tools[0]["input_schema"]["properties"]) == {"a", "b"}


def test_check_mcp_fails_with_readable_lines_when_a_server_fails() -> None:
    py_stdio()
    server_record("ghost", transport="stdio", command="agentchat-no-such-command")
    server_record("broken", transport="stdio", command=sys.executable, args=(str(PY_SERVER), "broken"))
    out, error = check_mcp()
    lines = out.splitlines()
    assert lines[0].startswith("broken: blocked: handshake failed: ")
    assert lines[1:] == [
        "  stderr (last lines):",
        "  agentchat test server: starting (broken)",
        "  agentchat test server: EXAMPLE_SETTING is missing; cannot start",
        "ghost: blocked: command 'agentchat-no-such-command' not found",
        "py: ready: 6 tools",
        "  environment: The environment this server process was started with, as a JSON object",
        "  pid: This server's process id",
        "  add: Add two integers",
        "  sleep: Wait, then say how long",
        "  echo: Say the text back",
        "  get_weather: The weather in a city (a fixed answer: the tests read it back)",
    ]
    assert error == ("2 of 3 MCP server(s) failed their probe: broken, ghost; see each line above for what to fix")
    # One named server: only that one.
    out, error = check_mcp("py")
    assert (out.splitlines()[0], error) == ("py: ready: 6 tools", None)
    out, error = check_mcp("nope")
    assert (out, error) == ("", "name: no MCP server named 'nope'; check the name")


def test_probe_endpoint_is_staff_only_and_says_what_it_found(api: APIClient) -> None:
    py_stdio()
    other = APIClient()
    other.force_authenticate(user=plain_user("reader"))
    assert other.post("/api/config/mcp-servers/py/probe/").status_code == 403
    assert not McpServerStatus.objects.exists()
    assert api.post("/api/config/mcp-servers/nope/probe/").status_code == 404
    response = api.post("/api/config/mcp-servers/py/probe/")
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["status"], body["reasons"]) == ("py", "ready", [])
    probe = body["probe"]
    assert (probe["ok"], probe["summary"], probe["error"]) == (True, "ready: 6 tools", "")
    assert [tool["name"] for tool in probe["tools"]] == TOOLS
    assert probe["tools"][2] == {"name": "add", "description": "Add two integers"}


def test_probe_endpoint_reports_a_failed_start_as_a_blocked_server(api: APIClient) -> None:
    server_record("ghost", transport="stdio", command="agentchat-no-such-command")
    body = api.post("/api/config/mcp-servers/ghost/probe/").json()
    assert body["status"] == "blocked"
    assert body["probe"]["summary"] == "blocked: command 'agentchat-no-such-command' not found"
    # readiness also names the static problem: the command is not on PATH
    assert body["reasons"] == [
        "stdio command 'agentchat-no-such-command' is not on PATH; install it or give its full path"
    ]


def test_bootstrap_mcp_view_states(api: APIClient) -> None:
    py_stdio()
    server_record("broken", transport="stdio", command=sys.executable, args=(str(PY_SERVER), "broken"))
    # Never probed: not ready, and reading the bootstrap starts nothing.
    body = bootstrap(api)
    assert body["views"]["mcp"] == {
        "state": "blocked",
        "reasons": [
            "no MCP server is ready",
            "MCP server 'broken': not probed yet: run manage.py check_mcp broken",
            "MCP server 'py': not probed yet: run manage.py check_mcp py",
        ],
    }
    assert not McpServerStatus.objects.exists()
    check_mcp()
    body = bootstrap(api)
    assert body["views"]["mcp"] == {"state": "ready", "reasons": ["MCP server 'py': ready: 6 tools"]}
    servers = {entry["name"]: entry for entry in body["config"]["mcp_servers"]}
    assert [tool["name"] for tool in servers["py"]["probe"]["tools"]] == TOOLS
    assert servers["py"]["probe"]["tools"][4] == {"name": "echo", "description": "Say the text back"}
    broken = servers["broken"]
    assert broken["status"] == "blocked"
    [reason] = broken["reasons"]
    assert reason.startswith("blocked: handshake failed: ")
    assert reason.endswith("agentchat test server: EXAMPLE_SETTING is missing; cannot start")
    assert broken["probe"]["ok"] is False


def test_bootstrap_for_a_user_who_is_not_staff_hides_the_error_and_stderr() -> None:
    server_record("broken", transport="stdio", command=sys.executable, args=(str(PY_SERVER), "broken"))
    check_mcp()
    reader = APIClient()
    reader.force_authenticate(user=plain_user("reader"))
    body = bootstrap(reader)
    [entry] = body["config"]["mcp_servers"]
    assert entry["reasons"] == ["MCP server 'broken' failed its last probe; ask the operator to check it"]
    assert entry["probe"]["error"] == ""
    assert "EXAMPLE_SETTING" not in str(body)
