"""A turn on the replay provider calls a real MCP tool through the process's MCP client, as the workers and
the `chat` command run it: the reference server over stdio, its `echo` tool offered as `everything__echo`."""

from __future__ import annotations

import pytest

from core.conversation.services import session_create
from core.models import (
    AgentSession,
    Message,
    MessageRole,
    ModelRoute,
    Provider,
    ProviderKind,
    RunStatus,
    ToolInvocation,
    ToolSpec,
    TraceEvent,
)
from runtime.mcp.gateway import McpGateway
from runtime.turns import turn_accept, turn_execute, turn_run
from tests.owners import op_user
from tests.runtime.mcp.conftest import everything_stdio, py_stdio, server_record
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("npm_installed")
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


def test_a_live_providers_recorded_stream_calls_a_real_mcp_tool_and_finishes(gateway: McpGateway) -> None:
    """OpenAI's recorded stream asks for get_weather twice (and an unknown tool); the SDK-written MCP server
    answers each call over stdio, the results go back in the next request, and the turn finishes."""
    py_stdio("weather", tool_allowlist=("get_weather",))
    ToolSpec.objects.create(
        name="get_weather",
        mcp="weather/get_weather",
        parameters={"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}},
    )
    replies = (Reply.sse("openai_chat/tools.sse"), Reply.sse("openai_chat/text.sse"))
    with ProviderServer(*replies) as server:
        provider = Provider.objects.create(
            name="live", kind=ProviderKind.OPENAI_COMPATIBLE, base_url=server.url + "/v1", options={"max_retries": 0}
        )
        ModelRoute.objects.create(
            alias="live",
            provider=provider,
            model_id="gpt-4o-mini",
            context_window_tokens=100_000,
            max_output_tokens=100,
        )
        session = session_create(owner=op_user(), route_alias="live")
        accepted = turn_accept(session_id=session.pk, user_text="weather in Paris and Tokyo, and the time?")
        result = turn_execute(run_id=accepted.run.pk, gateway=gateway)
        second = server.requests[1].body

    assert result.run.status == RunStatus.COMPLETED
    rows = ToolInvocation.objects.filter(run=result.run).order_by("call_id")
    assert [(row.tool, row.result, row.is_error) for row in rows] == [
        ("get_time", "unknown tool get_time", True),
        ("get_weather", "sunny in Paris", False),
        ("get_weather", "sunny in Tokyo", False),
    ]
    sent = [(m["tool_call_id"], m["content"]) for m in second["messages"] if m["role"] == "tool"]
    assert sent == [
        ("call_weather_paris", "sunny in Paris"),
        ("call_weather_tokyo", "sunny in Tokyo"),
        ("call_time_1", "unknown tool get_time"),
    ]
