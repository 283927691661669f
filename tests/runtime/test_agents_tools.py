"""A delegated member runs with its own tools: the turn's tool loop, its calls on the child run, mirrored
into the lead's trace; tools that wait for the person are refused inside a delegation; rounds and depth bounded."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from core.conversation.services import session_create
from core.models import (
    AgentProfile,
    InvocationStatus,
    Message,
    MessageRole,
    ModelRoute,
    Provider,
    ProviderKind,
    Run,
    RunPurpose,
    RunStatus,
    Team,
    TeamMember,
    ToolInvocation,
    ToolSpec,
)
from runtime.delegation import NOT_IN_DELEGATION
from runtime.mcp.gateway import McpGateway
from runtime.turns import turn_run
from telemetry.models import UsageByAgent, UsageEvent
from telemetry.selectors import rollup_differences
from tests.owners import op_user
from tests.runtime.mcp.conftest import py_stdio
from tests.runtime.providers.servers import ProviderServer, Reply
from tests.runtime.test_agents import agent, replay, trace

pytestmark = pytest.mark.django_db


def team_of(name: str, lead: AgentProfile, *members: AgentProfile) -> Team:
    team = Team.objects.create(name=name, lead=lead)
    for position, member in enumerate((lead, *members)):
        TeamMember.objects.create(team=team, agent=member, position=position)
    return team


def checker_with(*tools: ToolSpec, **fields: Any) -> AgentProfile:
    """Member `checker` on its own replay route (replies start `checked: `), offered `tools`."""
    checker = agent("checker", replay("replay-checker", **fields.pop("options", {"prefix": "checked: "})), **fields)
    checker.tools.add(*tools)
    return checker


def team_turn(team: Team, text: str, **kwargs: Any) -> Run:
    session = session_create(owner=op_user(), team_name=team.name)
    result = turn_run(session_id=session.pk, owner=op_user(), user_text=text, **kwargs)
    return Run.objects.get(pk=result.run.pk)


def nested(run: Run) -> list[dict[str, Any]]:
    """The child events the parent's trace carries, in order."""
    return [payload["event"] for kind, payload in trace(run) if kind == "delegate"]


def test_a_member_runs_its_own_builtin_tool_in_the_turns_tool_loop(replay_route: ModelRoute) -> None:
    clock = ToolSpec.objects.create(name="current_time", builtin="current_time")
    team = team_of("desk", agent("lead", replay_route), checker_with(clock))

    run = team_turn(team, "/tool ask_checker /tool current_time")

    assert run.status == RunStatus.COMPLETED
    child = Run.objects.get(parent=run)
    assert (child.purpose, child.status, child.agent and child.agent.name) == (
        RunPurpose.DELEGATE,
        RunStatus.COMPLETED,
        "checker",
    )
    call = ToolInvocation.objects.get(run=child)
    # Stored under the lead's call, so the member's provider ids never collide with the lead's in the session.
    assert (call.tool, call.call_id, call.status, call.is_error) == (
        "current_time",
        f"{child.tool_call_id}/call_1_1_1",
        InvocationStatus.DONE,
        False,
    )
    assert "(UTC, " in call.result
    lead_call = ToolInvocation.objects.get(run=run)
    assert lead_call.result == f"checked: current_time returned: {call.result}"
    # The member's messages are its own: the session holds the lead's turn only.
    roles = list(Message.objects.filter(session=run.chat_session_id).order_by("seq").values_list("role", flat=True))
    assert roles == [MessageRole.USER, MessageRole.ASSISTANT, MessageRole.TOOL, MessageRole.ASSISTANT]
    # The lead's trace carries the member's tool round, nested, in order, with the provider's call id.
    kinds = [event["type"] for event in nested(run)]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("text_delta")
    result = next(event["payload"] for event in nested(run) if event["type"] == "tool_result")
    assert (result["tool_call_id"], result["content"]) == ("call_1_1_1", call.result)
    assert [kind for kind, _ in trace(child)] == kinds  # event for event
    # One usage event per model call of the member, counted for it; the rollups agree with the events.
    assert sorted(UsageEvent.objects.filter(run=child).values_list("request_id", flat=True)) == [
        f"run:{child.pk}",
        f"run:{child.pk}:1",
    ]
    assert UsageByAgent.objects.get(agent="checker").event_count == 2
    assert rollup_differences() == []


def test_a_members_mcp_tool_runs_through_the_gateway(replay_route: ModelRoute) -> None:
    weather = py_stdio("weather", tool_allowlist=("get_weather",))
    checker = checker_with()
    checker.mcp_servers.add(weather)
    team = team_of("desk", agent("lead", replay_route), checker)
    gateway = McpGateway()
    try:
        run = team_turn(team, "/tool ask_checker /tool weather__get_weather Paris", gateway=gateway)
    finally:
        gateway.close()
    assert run.status == RunStatus.COMPLETED
    call = ToolInvocation.objects.get(run__parent=run)
    assert (call.tool, call.arguments, call.result, call.is_error) == (
        "weather__get_weather",
        {"city": "Paris"},
        "sunny in Paris",
        False,
    )
    assert ToolInvocation.objects.get(run=run).result == "checked: weather__get_weather returned: sunny in Paris"


@pytest.mark.fault
@pytest.mark.parametrize(
    ("fields", "what"),
    [({"requires_approval": True, "builtin": "current_time"}, "the person's approval"), ({"client": True}, None)],
)
def test_a_member_tool_that_waits_for_the_person_is_refused_with_a_tool_error(
    replay_route: ModelRoute, fields: dict[str, Any], what: str | None
) -> None:
    """Nobody is asked while the lead waits on its member: the call gets an error result the member reads,
    and the member (then the lead) goes on; nothing is left awaiting."""
    tool = ToolSpec.objects.create(name="wipe", **fields)
    team = team_of("desk", agent("lead", replay_route), checker_with(tool))

    run = team_turn(team, "/tool ask_checker /tool wipe everything")

    assert run.status == RunStatus.COMPLETED
    child = Run.objects.get(parent=run)
    assert child.status == RunStatus.COMPLETED
    call = ToolInvocation.objects.get(run=child)
    refusal = NOT_IN_DELEGATION.format(tool="wipe", what=what or "a result from the client")
    assert (call.status, call.is_error, call.result) == (InvocationStatus.DONE, True, refusal)
    assert ToolInvocation.objects.get(run=run).result == f"checked: wipe returned: {refusal}"
    assert not ToolInvocation.objects.exclude(status=InvocationStatus.DONE).exists()


@pytest.mark.fault
def test_a_members_rounds_are_bounded_by_its_own_max_tool_rounds(replay_route: ModelRoute) -> None:
    clock = ToolSpec.objects.create(name="current_time", builtin="current_time")
    step = {"type": "tool_call", "name": "current_time", "arguments": {}}
    script = [[step, {"type": "text", "text": "once more"}, step, {"type": "text", "text": "done"}]]
    team = team_of("desk", agent("lead", replay_route), checker_with(clock, options={"script": script}))
    AgentProfile.objects.filter(name="checker").update(max_tool_rounds=1)

    run = team_turn(team, "/tool ask_checker what time is it")

    child = Run.objects.get(parent=run)
    stopped = (
        "stopped after 1 rounds of tool calls (the agent's max_tool_rounds); the model still asked for current_time"
    )
    assert (child.status, child.error) == (RunStatus.FAILED, stopped)
    assert ToolInvocation.objects.filter(run=child).count() == 1
    lead_call = ToolInvocation.objects.get(run=run)
    assert (lead_call.result, lead_call.is_error) == (f"'checker' failed: {stopped}", True)
    assert run.status == RunStatus.COMPLETED  # the lead read the failure and answered


def test_a_member_that_leads_a_team_asks_its_own_members_within_the_depth_bound(replay_route: ModelRoute) -> None:
    editor = agent("editor", replay("replay-editor", prefix="edited: "))
    checker = checker_with()
    team_of("subdesk", editor, checker)
    team = team_of("desk", agent("lead", replay_route), editor)

    run = team_turn(team, "/tool ask_editor /tool ask_checker is water wet?")

    child = Run.objects.get(parent=run)
    grandchild = Run.objects.get(parent=child)
    assert (grandchild.agent and grandchild.agent.name, grandchild.status) == ("checker", RunStatus.COMPLETED)
    assert grandchild.tool_call_id == ToolInvocation.objects.get(run=child).call_id
    assert ToolInvocation.objects.get(run=run).result == "edited: ask_checker returned: checked: is water wet?"
    # The lead's trace nests the grandchild's trace inside the child's.
    inner = [event["payload"] for event in nested(run) if event["type"] == "delegate"]
    assert {payload["run_id"] for payload in inner} == {str(grandchild.pk)}
    assert inner[-1]["event"] == {"type": "run_finished", "payload": {"status": "completed"}}


@pytest.mark.fault
def test_past_the_depth_bound_a_member_is_not_offered_its_teams_members(replay_route: ModelRoute) -> None:
    editor = agent("editor", replay("replay-editor", prefix="edited: "))
    team_of("subdesk", editor, checker_with())
    team = team_of("desk", agent("lead", replay_route), editor)

    with override_settings(AGENTCHAT_DELEGATION_MAX_DEPTH=1):
        run = team_turn(team, "/tool ask_editor /tool ask_checker is water wet?")

    child = Run.objects.get(parent=run)
    assert not Run.objects.filter(parent=child).exists()
    call = ToolInvocation.objects.get(run=child)
    assert (call.result, call.is_error) == ("unknown tool ask_checker", True)


def test_recorded_live_streams_drive_a_whole_team_turn_through_the_sdks(
    replay_route: ModelRoute, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lead on Anthropic (Messages) asks its member on OpenAI (Responses); both answer from recorded streams
    through the official SDKs against local servers, and the lead's final answer is built on the member's."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-RECOGNISABLE-team-lead")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-RECOGNISABLE-team-member")
    lead_replies = (Reply.sse("anthropic/team_ask.sse"), Reply.sse("anthropic/team_final.sse"))
    with ProviderServer(*lead_replies) as claude, ProviderServer(Reply.sse("openai_responses/team_member.sse")) as gpt:
        lead_route = sdk_route("claude", ProviderKind.ANTHROPIC, "ANTHROPIC_API_KEY", claude.url)
        member_route = sdk_route("gpt", ProviderKind.OPENAI, "OPENAI_API_KEY", gpt.url + "/v1")
        lead = agent("lead", lead_route, "You lead a small research desk.")
        researcher = agent("researcher", member_route, "You look facts up and answer in one sentence.")
        team = team_of("desk", lead, researcher)
        run = team_turn(team, "How hot must water get to boil?")

    assert run.status == RunStatus.COMPLETED, run.error
    answer = "Water boils at 100 °C (212 °F) at sea level."
    final = Message.objects.filter(session=run.chat_session_id).order_by("-seq").first()
    assert final is not None
    assert final.content == "According to the researcher, water boils at 100 °C at sea level."
    # The member got its instructions and the lead's request; the lead's second request carried its answer.
    member_request = json.dumps(gpt.requests[0].body, ensure_ascii=False)
    assert "You look facts up and answer in one sentence." in member_request
    assert "At what temperature does water boil at sea level? One sentence." in member_request
    assert [tool["name"] for tool in claude.requests[0].body["tools"]] == ["ask_researcher"]
    results = [
        block
        for message in claude.requests[1].body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert [(block["tool_use_id"], block["content"]) for block in results] == [("toolu_01AskResearcherEXAMPLE", answer)]
    child = Run.objects.get(parent=run)
    assert (child.tool_call_id, child.status) == ("toolu_01AskResearcherEXAMPLE", RunStatus.COMPLETED)
    assert "".join(e["payload"]["text"] for e in nested(run) if e["type"] == "text_delta") == answer
    # Tokens and cost for each agent: the lead's two calls, the member's one.
    by_agent = {row.agent: row for row in UsageByAgent.objects.all()}
    assert (by_agent["lead"].event_count, by_agent["lead"].input_tokens) == (2, 520 + 610)
    assert (by_agent["researcher"].event_count, by_agent["researcher"].input_tokens) == (1, 240)
    assert all(row.cost_pico_usd for row in by_agent.values())
    assert rollup_differences() == []


def sdk_route(alias: str, kind: str, key_env: str, base_url: str) -> ModelRoute:
    provider = Provider.objects.create(
        name=alias, kind=kind, api_key_env=key_env, base_url=base_url, options={"max_retries": 0}
    )
    return ModelRoute.objects.create(
        alias=alias,
        provider=provider,
        model_id=f"{alias}-x",
        context_window_tokens=10_000,
        max_output_tokens=100,
        price_input_per_mtok=Decimal("3"),
        price_output_per_mtok=Decimal("15"),
    )
