"""A turn on the replay provider calls a real MCP tool through the process's MCP client, as the workers and
the `chat` command run it: the reference server over stdio, its `echo` tool offered as `everything__echo`."""

from __future__ import annotations

import pytest

from core.models import AgentSession, Message, MessageRole, RunStatus, ToolInvocation, TraceEvent
from runtime.mcp.gateway import McpGateway
from runtime.turns import turn_run
from tests.runtime.mcp.conftest import everything_stdio, server_record

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("npm_installed")]


def test_a_replay_turn_calls_the_reference_servers_echo_and_finishes(
    chat_session: AgentSession, gateway: McpGateway
) -> None:
    everything_stdio(tool_allowlist=("echo",))
    server_record("gone", transport="stdio", command="agentchat-no-such-command")

    result = turn_run(session_id=chat_session.pk, user_text="/tool everything__echo hi", gateway=gateway)

    assert result.run.status == RunStatus.COMPLETED
    invocation = ToolInvocation.objects.get(run=result.run)
    assert (invocation.tool, invocation.arguments, invocation.result, invocation.is_error) == (
        "everything__echo",
        {"message": "hi"},
        "Echo: hi",
        False,
    )
    roles = list(Message.objects.filter(session=chat_session).order_by("seq").values_list("role", flat=True))
    assert roles == [MessageRole.USER, MessageRole.ASSISTANT, MessageRole.TOOL, MessageRole.ASSISTANT]
    # The server that cannot start is left out of the turn with the reason, and the turn went on.
    notes = [
        e["message"]
        for e in TraceEvent.objects.filter(run=result.run, type="tools_note").values_list("payload", flat=True)
    ]
    assert notes == ["MCP server 'gone' left out: command 'agentchat-no-such-command' not found"]
