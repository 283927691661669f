"""The tool loop: built-in tools, bad calls, the round bound, approvals, client tools, the invocation invariant.

Turns run on the replay provider (its calls build their arguments from the tools' schemas) and on a
live kind's recorded stream; MCP-kind tools run through `LocalGateway`, a real in-process
implementation of the loop's gateway protocol (a Python callable per tool).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from core.conversation.invocations import DENIED_RESULT
from core.conversation.services import run_cancel, run_finish, run_interrupt, runs_recover, session_create
from core.errors import ConflictError
from core.models import (
    AgentSession,
    InvocationStatus,
    McpServerSpec,
    McpTransport,
    Message,
    ModelRoute,
    Provider,
    ProviderKind,
    Run,
    RunStatus,
    ToolInvocation,
    ToolSpec,
    TraceEvent,
)
from memory.models import LongTermMemory, MemorySource
from memory.search import memory_search
from runtime.tools.gateway import McpCallOutcome, McpTool
from runtime.tools.loop import DEFAULT_MAX_TOOL_ROUNDS
from runtime.turns import turn_accept, turn_execute, turn_run
from runtime.worker.sweeper import sweep
from telemetry.models import UsageEvent
from tests.owners import op_user, plain_user
from tests.procs import ROOT, worker_env
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db

OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


def tool(name: str, *, parameters: dict[str, Any] | None = None, **runner: Any) -> ToolSpec:
    return ToolSpec.objects.create(name=name, parameters=parameters or OBJECT, **runner)


def calls(run: Run) -> list[tuple[str, str, str, bool]]:
    rows = ToolInvocation.objects.filter(run=run).order_by("id")
    return [(row.tool, row.status, row.result, row.is_error) for row in rows]


def roles(session: AgentSession) -> list[str]:
    return list(Message.objects.filter(session=session).order_by("seq").values_list("role", flat=True))


def trace(run: Run) -> list[str]:
    return list(TraceEvent.objects.filter(run=run).order_by("index").values_list("type", flat=True))


def scripted(script: list[list[dict[str, Any]]]) -> AgentSession:
    provider = Provider.objects.create(name="scripted", kind=ProviderKind.REPLAY, options={"script": script})
    ModelRoute.objects.create(
        alias="scripted", provider=provider, model_id="r", context_window_tokens=50_000, max_output_tokens=1_000
    )
    return session_create(owner=op_user(), route_alias="scripted")


class LocalGateway:
    """A real gateway of the loop's protocol: each server's tools are Python callables, run in this process."""

    def __init__(self, tools: dict[str, dict[str, Callable[[dict[str, Any]], str]]]) -> None:
        self.servers = tools
        self.called: list[tuple[str, str, dict[str, Any]]] = []

    def tools(self, server: McpServerSpec) -> list[McpTool]:
        if server.name not in self.servers:
            raise RuntimeError(f"command {server.command!r} not found")
        return [McpTool(name, f"{name} on {server.name}", OBJECT) for name in self.servers[server.name]]

    def call(self, server: McpServerSpec, tool: str, arguments: dict[str, Any], *, timeout: float) -> McpCallOutcome:
        self.called.append((server.name, tool, arguments))
        return McpCallOutcome(text=self.servers[server.name][tool](arguments), is_error=False, structured=None)


# --- built-ins, bad calls, the bound -------------------------------------------------------------


def test_a_builtin_tool_runs_and_each_model_call_has_its_usage_and_message(chat_session: AgentSession) -> None:
    tool("current_time", builtin="current_time")
    result = turn_run(session_id=chat_session.pk, user_text="/tool current_time")

    assert result.run.status == RunStatus.COMPLETED
    assert roles(chat_session) == ["user", "assistant", "tool", "assistant"]
    [(name, status, text, is_error)] = calls(result.run)
    assert (name, status, is_error) == ("current_time", InvocationStatus.DONE, False)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 \(UTC, \w+day\)", text)
    assert result.messages[-1].content == f"replay: current_time returned: {text}"
    requests = sorted(UsageEvent.objects.filter(run=result.run).values_list("request_id", flat=True))
    assert requests == [f"run:{result.run.pk}", f"run:{result.run.pk}:1"]
    invocation = ToolInvocation.objects.get(run=result.run)
    assert (invocation.call_seq, invocation.result_seq) == (2, 3)


def test_invalid_arguments_go_back_to_the_model_as_an_error_result() -> None:
    session = scripted(
        [
            [
                {"type": "tool_call", "name": "memory_search", "arguments": {"limit": "ten"}},
                {"type": "text", "text": "ok"},
            ]
        ]
    )
    schema = {"type": "object", "required": ["query"], "properties": {"query": {"type": "string"}}}
    tool("memory_search", builtin="memory_search", parameters=schema)
    result = turn_run(session_id=session.pk, user_text="find")

    assert result.run.status == RunStatus.COMPLETED
    assert calls(result.run) == [
        (
            "memory_search",
            "done",
            "invalid arguments for memory_search: (the arguments): 'query' is a required property",
            True,
        )
    ]
    assert roles(session) == ["user", "assistant", "tool", "assistant"]


@pytest.mark.fault
def test_the_round_bound_ends_the_run_with_its_reason() -> None:
    step = [{"type": "tool_call", "name": "current_time"}, {"type": "text", "text": "again"}]
    session = scripted([step * (DEFAULT_MAX_TOOL_ROUNDS + 1)])
    tool("current_time", builtin="current_time")
    result = turn_run(session_id=session.pk, user_text="loop")

    assert result.run.status == RunStatus.FAILED
    assert result.run.error == (
        "stopped after 8 rounds of tool calls (the agent's max_tool_rounds); the model still asked for current_time"
    )
    assert len(calls(result.run)) == DEFAULT_MAX_TOOL_ROUNDS
    # No call is left without its result: the ninth was never recorded.
    assert roles(session) == ["user", *(["assistant", "tool"] * DEFAULT_MAX_TOOL_ROUNDS)]


def test_a_tool_with_an_invalid_schema_is_left_out_with_a_trace_note(chat_session: AgentSession) -> None:
    tool("broken", builtin="current_time", parameters={"type": "object", "properties": {"x": {"type": "nope"}}})
    result = turn_run(session_id=chat_session.pk, user_text="/tool broken")

    notes = TraceEvent.objects.filter(run=result.run, type="tools_note").values_list("payload", flat=True)
    [note] = notes
    assert note["message"].startswith("tool 'broken' left out: its schema is not valid JSON Schema 2020-12: ")
    assert calls(result.run) == [("broken", "done", "unknown tool broken", True)]


def test_mcp_tools_without_a_client_are_left_out_and_the_turn_goes_on(chat_session: AgentSession) -> None:
    McpServerSpec.objects.create(name="everything", transport=McpTransport.STDIO, command="npx")
    result = turn_run(session_id=chat_session.pk, user_text="hello")

    assert result.run.status == RunStatus.COMPLETED
    notes = list(TraceEvent.objects.filter(run=result.run, type="tools_note").values_list("payload", flat=True))
    assert notes == [{"message": "MCP servers everything left out: MCP client unavailable"}]


def test_an_mcp_tool_runs_through_the_gateway_under_its_namespaced_name(chat_session: AgentSession) -> None:
    McpServerSpec.objects.create(name="everything", transport=McpTransport.STDIO, command="npx")
    McpServerSpec.objects.create(name="broken", transport=McpTransport.STDIO, command="nowhere")
    gateway = LocalGateway({"everything": {"echo": lambda args: f"Echo: {args.get('message', '')}"}})
    accepted_run = turn_run(session_id=chat_session.pk, user_text="/tool everything__echo hi", on_event=None)
    # The turn above had no gateway: the tool was not offered.
    assert calls(accepted_run.run) == [("everything__echo", "done", "unknown tool everything__echo", True)]

    accepted = turn_accept(session_id=chat_session.pk, user_text="/tool everything__echo hi")
    result = turn_execute(run_id=accepted.run.pk, gateway=gateway)
    assert result.run.status == RunStatus.COMPLETED
    assert gateway.called == [("everything", "echo", {})]
    assert calls(result.run) == [("everything__echo", "done", "Echo: ", False)]
    notes = list(TraceEvent.objects.filter(run=result.run, type="tools_note").values_list("payload", flat=True))
    assert notes == [{"message": "MCP server 'broken' left out: command 'nowhere' not found"}]


@override_settings(AGENTCHAT_TOOL_RESULT_MAX_CHARS=100)
def test_a_long_result_is_cut_with_a_marker(chat_session: AgentSession) -> None:
    McpServerSpec.objects.create(name="big", transport=McpTransport.STDIO, command="npx")
    gateway = LocalGateway({"big": {"dump": lambda args: "x" * 250}})
    accepted = turn_accept(session_id=chat_session.pk, user_text="/tool big__dump")
    result = turn_execute(run_id=accepted.run.pk, gateway=gateway)
    [(_, _, text, _)] = calls(result.run)
    assert text == "x" * 100 + "\n[… result cut: 150 of 250 characters not shown]"


# --- approvals and client tools -------------------------------------------------------------------


def _awaiting(session: AgentSession, text: str) -> Run:
    result = turn_run(session_id=session.pk, user_text=text)
    run = Run.objects.get(pk=result.run.pk)
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert (run.lease_owner, run.lease_expires_at) == ("", None)
    return run


def test_an_approved_call_runs_when_the_run_is_taken_again(chat_session: AgentSession, api: APIClient) -> None:
    tool("current_time", builtin="current_time", requires_approval=True)
    run = _awaiting(chat_session, "/tool current_time")
    pending = TraceEvent.objects.get(run=run, type="tools_pending").payload
    assert pending == {
        "calls": [{"id": "call_1_1_1", "name": "current_time", "arguments": {}, "waits_for": "approval"}]
    }
    # A second turn is refused while the run waits: it is open.
    refused = api.post(f"/api/sessions/{chat_session.pk}/turns/", {"text": "next"}, format="json")
    assert refused.status_code == 409

    answer = api.post(f"/api/runs/{run.pk}/approve/", {"decisions": {"call_1_1_1": True}}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["resumed"] is True
    assert answer.json()["tool_calls"][0]["status"] == "approved"

    result = turn_execute(run_id=run.pk)
    assert result.run.status == RunStatus.COMPLETED
    [(_, status, text, is_error)] = calls(run)
    assert (status, is_error) == ("done", False)
    assert roles(chat_session) == ["user", "assistant", "tool", "assistant"]
    assert Message.objects.get(session=chat_session, seq=4).content == f"replay: current_time returned: {text}"


def test_a_denied_call_answers_denied_by_the_user(chat_session: AgentSession, api: APIClient) -> None:
    tool("current_time", builtin="current_time", requires_approval=True)
    run = _awaiting(chat_session, "/tool current_time")
    assert (
        api.post(f"/api/runs/{run.pk}/approve/", {"decisions": {"call_1_1_1": False}}, format="json").status_code == 200
    )

    result = turn_execute(run_id=run.pk)
    assert result.run.status == RunStatus.COMPLETED
    assert calls(run) == [("current_time", "denied", DENIED_RESULT, True)]
    assert result.messages[-1].content == "replay: current_time returned: denied by the user"


@pytest.mark.fault
def test_approval_input_is_checked_and_another_users_run_is_not_found(
    chat_session: AgentSession, api: APIClient
) -> None:
    tool("current_time", builtin="current_time", requires_approval=True)
    run = _awaiting(chat_session, "/tool current_time")
    url = f"/api/runs/{run.pk}/approve/"

    unknown = api.post(url, {"decisions": {"call_9": True}}, format="json")
    assert (unknown.status_code, unknown.json()["fields"]) == (
        400,
        {"decisions.call_9": ["no such call in this run; use a pending call's id"]},
    )
    assert api.post(url, {"decisions": {}}, format="json").status_code == 400
    assert (
        api.post(
            f"/api/runs/{run.pk}/tool-results/", {"results": {"call_1_1_1": {"content": "x"}}}, format="json"
        ).status_code
        == 409
    )
    other = APIClient()
    other.force_authenticate(plain_user("someone"))
    assert other.post(url, {"decisions": {"call_1_1_1": True}}, format="json").status_code == 404
    assert ToolInvocation.objects.get(run=run).status == InvocationStatus.AWAITING_APPROVAL


def test_a_client_tool_waits_for_the_posted_result(chat_session: AgentSession, api: APIClient) -> None:
    schema = {"type": "object", "required": ["query"], "properties": {"query": {"type": "string"}}}
    tool("web_search", client=True, parameters=schema)
    run = _awaiting(chat_session, "/tool web_search tea prices")
    assert ToolInvocation.objects.get(run=run).arguments == {"query": "tea prices"}

    posted = api.post(
        f"/api/runs/{run.pk}/tool-results/",
        {"results": {"call_1_1_1": {"content": "<b>tea: 3 EUR</b>"}}},
        format="json",
    )
    assert (posted.status_code, posted.json()["resumed"]) == (200, True)
    result = turn_execute(run_id=run.pk)
    assert result.run.status == RunStatus.COMPLETED
    # Untrusted text: stored as it came, never interpreted.
    assert result.messages[-1].content == "replay: web_search returned: <b>tea: 3 EUR</b>"


@pytest.mark.persistence
def test_waiting_survives_a_restart_and_the_timeout_denies(chat_session: AgentSession) -> None:
    tool("current_time", builtin="current_time", requires_approval=True)
    run = _awaiting(chat_session, "/tool current_time")
    recovered = runs_recover()  # what every start does
    assert run.pk not in [*recovered.running, *recovered.queued]
    assert Run.objects.get(pk=run.pk).status == RunStatus.AWAITING_APPROVAL

    assert sweep(prune=False).approval_expired == []
    with override_settings(AGENTCHAT_APPROVAL_TIMEOUT=1):
        ToolInvocation.objects.filter(run=run).update(
            created=ToolInvocation.objects.get(run=run).created.replace(year=2020)
        )
        swept = sweep(prune=False)
    assert swept.approval_expired == [run.pk]
    assert run.pk in swept.requeued
    result = turn_execute(run_id=run.pk)
    assert result.run.status == RunStatus.COMPLETED
    [(_, status, text, _)] = calls(run)
    assert (status, text) == ("denied", "denied: no approval was given within 1 s (AGENTCHAT_APPROVAL_TIMEOUT)")


@pytest.mark.persistence
@pytest.mark.django_db(transaction=True)
def test_an_approval_resumes_the_run_in_a_worker_process(replay_route: ModelRoute, operator: User) -> None:
    tool("current_time", builtin="current_time", requires_approval=True)
    session = session_create(owner=operator, route_alias=replay_route.alias)
    run = _awaiting(session, "/tool current_time")
    api = APIClient()
    api.force_authenticate(operator)
    assert (
        api.post(f"/api/runs/{run.pk}/approve/", {"decisions": {"call_1_1_1": True}}, format="json").status_code == 200
    )

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--worker-id", "approval-test"],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while Run.objects.get(pk=run.pk).status != RunStatus.COMPLETED and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert Run.objects.get(pk=run.pk).status == RunStatus.COMPLETED, stderr[-2000:]
    assert roles(session) == ["user", "assistant", "tool", "assistant"]
    assert calls(run)[0][:2] == ("current_time", "done")


# --- the invariant --------------------------------------------------------------------------------


@pytest.mark.fault
def test_run_finish_refuses_while_a_call_is_open_and_a_cancel_closes_it(chat_session: AgentSession) -> None:
    tool("current_time", builtin="current_time", requires_approval=True)
    run = _awaiting(chat_session, "/tool current_time")
    with pytest.raises(ConflictError, match=r"has tool calls without a result \(call_1_1_1\)"):
        run_finish(run_id=run.pk, status=RunStatus.COMPLETED)

    run_cancel(run_id=run.pk, reason="changed my mind")
    assert calls(run) == [("current_time", "cancelled", "cancelled: the run was cancelled before this call ran", True)]
    assert trace(run)[-1] == "run_finished"


def test_an_interrupted_run_closes_its_open_calls(chat_session: AgentSession) -> None:
    tool("current_time", builtin="current_time", requires_approval=True)
    run = _awaiting(chat_session, "/tool current_time")
    run_interrupt(run_id=run.pk, error="interrupted: the worker stopped")
    assert calls(run) == [("current_time", "interrupted", "interrupted: the run stopped before this call ran", True)]


# --- memory tools ---------------------------------------------------------------------------------


def _memory_tools() -> None:
    tool(
        "memory_remember",
        builtin="memory_remember",
        parameters={"type": "object", "required": ["content"], "properties": {"content": {"type": "string"}}},
    )
    tool(
        "memory_forget",
        builtin="memory_forget",
        parameters={"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
    )


def test_a_model_memory_carries_its_provenance_and_is_never_pinned(chat_session: AgentSession) -> None:
    _memory_tools()
    result = turn_run(session_id=chat_session.pk, user_text="/tool memory_remember likes green tea")

    memory = LongTermMemory.objects.get()
    assert (memory.content, memory.source, memory.pinned) == ("likes green tea", MemorySource.MODEL, False)
    assert (memory.source_run_id, memory.source_session_id, memory.source_last_seq) == (
        result.run.pk,
        chat_session.pk,
        2,
    )
    assert calls(result.run) == [("memory_remember", "done", f"remembered memory #{memory.pk}", False)]


@pytest.mark.fault
def test_a_secret_is_refused_as_an_error_result(chat_session: AgentSession) -> None:
    _memory_tools()
    secret = "sk-proj-" + "RECOGNISABLE" + "0123456789abcdefghijklmnop"
    result = turn_run(session_id=chat_session.pk, user_text=f"/tool memory_remember my key is {secret}")
    assert result.run.status == RunStatus.COMPLETED
    [(_, status, text, is_error)] = calls(result.run)
    assert (status, is_error) == ("done", True)
    assert secret not in text
    assert not LongTermMemory.objects.exists()


def test_forget_is_a_soft_delete_the_user_restores(chat_session: AgentSession, api: APIClient) -> None:
    _memory_tools()
    turn_run(session_id=chat_session.pk, user_text="/tool memory_remember likes green tea")
    memory = LongTermMemory.objects.get()
    forget: list[dict[str, Any]] = [
        {"type": "tool_call", "name": "memory_forget", "arguments": {"id": memory.pk}},
        {"type": "text", "text": "ok"},
    ]
    result = turn_run(session_id=scripted([forget]).pk, user_text="forget the tea")

    assert calls(result.run) == [
        ("memory_forget", "done", f"forgot memory #{memory.pk} (the user can restore it)", False)
    ]
    assert LongTermMemory.objects.get().forgotten_at is not None
    assert memory_search("green tea", owner_id=op_user().pk) == []
    assert api.get("/api/memory/long-term/").json()["results"] == []
    assert [m["id"] for m in api.get("/api/memory/long-term/?forgotten=true").json()["results"]] == [memory.pk]

    restored = api.post(f"/api/memory/long-term/{memory.pk}/restore/")
    assert (restored.status_code, restored.json()["forgotten_at"]) == (200, None)
    assert [hit.memory.pk for hit in memory_search("green tea", owner_id=op_user().pk)] == [memory.pk]


# --- a live provider's recorded stream ------------------------------------------------------------


def test_a_live_provider_calls_an_mcp_tool_gets_its_result_and_finishes() -> None:
    McpServerSpec.objects.create(name="weather", transport=McpTransport.STDIO, command="npx")
    tool(
        "get_weather",
        mcp="weather/get_weather",
        parameters={"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}},
    )
    gateway = LocalGateway({"weather": {"get_weather": lambda args: f"sunny in {args['city']}"}})
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
    assert [(server, name) for server, name, _ in gateway.called] == [("weather", "get_weather")] * 2
    assert [(name, status, is_error) for name, status, _, is_error in calls(result.run)] == [
        ("get_weather", "done", False),
        ("get_weather", "done", False),
        ("get_time", "done", True),
    ]
    assert calls(result.run)[2][2] == "unknown tool get_time"
    sent = [(m["role"], m.get("tool_call_id"), m.get("content")) for m in second["messages"] if m["role"] == "tool"]
    assert sent == [
        ("tool", "call_weather_paris", "sunny in Paris"),
        ("tool", "call_weather_tokyo", "sunny in Tokyo"),
        ("tool", "call_time_1", "unknown tool get_time"),
    ]
    assert [tool["function"]["name"] for tool in second["tools"]] == ["get_weather", "weather__get_weather"]
    assert roles(session) == ["user", "assistant", "tool", "tool", "tool", "assistant"]
    assert UsageEvent.objects.filter(run=result.run).count() == 2
