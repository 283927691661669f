"""Agents and teams: sessions bound to them, skills in the prompt, delegated child runs, usage per agent."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from core.conversation.events import ToolCall
from core.conversation.services import run_cancel_request, run_create, session_create
from core.errors import InvalidInputError
from core.models import (
    AgentProfile,
    AgentSession,
    ModelRoute,
    Provider,
    ProviderKind,
    Run,
    RunPurpose,
    RunStatus,
    SkillSpec,
    Team,
    TeamMember,
    ToolInvocation,
    ToolSpec,
    TraceEvent,
)
from runtime.agents import agent_instructions, agent_toolset, session_agent, team_member_for_tool, team_tools
from runtime.delegation import delegate
from runtime.providers import PromptMessage, adapter_for
from runtime.turns import turn_run
from telemetry.models import UsageByAgent, UsageBySession, UsageEvent
from telemetry.selectors import rollup_differences
from tests.owners import op_user
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db


def replay(name: str, **options: Any) -> ModelRoute:
    """A replay provider and its route, both called `name`."""
    provider = Provider.objects.create(name=name, kind=ProviderKind.REPLAY, options=options)
    return ModelRoute.objects.create(
        alias=name, provider=provider, model_id=f"{name}-1", context_window_tokens=8_000, max_output_tokens=1_000
    )


def openai_route(server: ProviderServer, **prices: Decimal) -> ModelRoute:
    """An OpenAI (Responses) provider on the local wire server, its key in OPENAI_API_KEY, and its route `gpt`."""
    provider = Provider.objects.create(
        name="openai",
        kind=ProviderKind.OPENAI,
        api_key_env="OPENAI_API_KEY",
        base_url=server.url + "/v1",
        options={"max_retries": 0},
    )
    return ModelRoute.objects.create(
        alias="gpt", provider=provider, model_id="gpt-x", context_window_tokens=10_000, max_output_tokens=100, **prices
    )


def agent(name: str, route: ModelRoute, instructions: str = "", **fields: Any) -> AgentProfile:
    return AgentProfile.objects.create(name=name, route=route, instructions=instructions, **fields)


@pytest.fixture
def desk(replay_route: ModelRoute) -> Team:
    """A team: lead `lead` (on the default replay route), members `writer` and `checker` on routes of their own."""
    lead = agent("lead", replay_route, "You lead the desk.")
    writer = agent("writer", replay("replay-writer", script=[[{"type": "text", "text": "Drafted: three lines."}]]))
    checker = agent("checker", replay("replay-checker", prefix="checked: "), "You check facts.")
    team = Team.objects.create(name="desk", lead=lead)
    for position, member in enumerate((lead, writer, checker)):
        TeamMember.objects.create(team=team, agent=member, position=position)
    return team


def trace(run: Run) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.payload) for e in TraceEvent.objects.filter(run=run).order_by("index")]


def lead_run(team: Team) -> Run:
    """A running chat run of a session on `team` (what the turn loop holds while its lead calls tools)."""
    session = session_create(owner=op_user(), team_name=team.name)
    return run_create(session_id=session.pk, status=RunStatus.RUNNING)


def running_child(parent: Run, tool_call_id: str, **fields: Any) -> Run:
    """A delegate run of `parent` still running (what a member's run is while it streams)."""
    return run_create(
        session_id=parent.chat_session_id,
        status=RunStatus.RUNNING,
        purpose=RunPurpose.DELEGATE,
        parent=parent,
        tool_call_id=tool_call_id,
        **fields,
    )


# --- sessions bound to an agent or a team -------------------------------------------------------


def test_a_session_on_an_agent_takes_its_route_and_shows_it(api: APIClient, replay_route: ModelRoute) -> None:
    route = replay("replay-other")
    agent("helper", route)
    response = api.post("/api/sessions/", {"title": "t", "agent": "helper"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["agent"], body["team"], body["route"]) == ("helper", None, "replay-other")
    # An explicit route wins over the agent's.
    body = api.post("/api/sessions/", {"agent": "helper", "route": "replay"}, format="json").json()
    assert (body["agent"], body["route"]) == ("helper", "replay")


def test_a_session_on_a_team_runs_as_its_lead(api: APIClient, desk: Team) -> None:
    body = api.post("/api/sessions/", {"team": "desk"}, format="json").json()
    assert (body["agent"], body["team"], body["route"]) == (None, "desk", "replay")
    session = AgentSession.objects.get(pk=body["id"])
    assert session_agent(session) == desk.lead
    result = turn_run(session_id=session.pk, user_text="hello")
    assert result.run.agent_id == desk.lead_id
    assert UsageEvent.objects.get(run=result.run).agent == "lead"


@pytest.mark.fault
def test_unknown_disabled_blocked_or_both_names_are_400s_naming_the_field(
    api: APIClient, desk: Team, settings: Any, tmp_path: Path
) -> None:
    agent("off", desk.lead.route, enabled=False)
    settings.AGENTCHAT_SKILLS_DIR = tmp_path
    skill = SkillSpec.objects.create(name="notes", instructions_path="notes.md")
    broken = agent("broken", desk.lead.route)
    broken.skills.add(skill)
    cases = {
        "agent": ({"agent": "nobody"}, "no agent 'nobody'; use a name from /api/config/agents/"),
        "disabled": ({"agent": "off"}, "agent 'off' is disabled; enable it or pick another"),
        "team": ({"team": "nobody"}, "no team 'nobody'; use a name from /api/config/teams/"),
        "both": ({"agent": "lead", "team": "desk"}, "give an agent or a team, not both"),
    }
    for name, (payload, message) in cases.items():
        response = api.post("/api/sessions/", payload, format="json")
        assert response.status_code == 400, name
        field = "team" if name in ("team", "both") else "agent"
        assert response.json()["fields"] == {field: [message]}, name
    blocked = api.post("/api/sessions/", {"agent": "broken"}, format="json")
    assert blocked.status_code == 400
    assert blocked.json()["fields"]["agent"] == [
        "agent 'broken' is blocked: agent 'broken' uses skill 'notes', which is blocked (the instructions file of "
        "skill 'notes' is missing; create it or fix instructions_path); fix it or pick another"
    ]
    assert AgentSession.objects.count() == 0


def test_update_binds_and_unbinds_an_agent(api: APIClient, desk: Team) -> None:
    session_id = api.post("/api/sessions/", {}, format="json").json()["id"]
    body = api.patch(f"/api/sessions/{session_id}/", {"agent": "checker"}, format="json").json()
    assert (body["agent"], body["team"], body["route"]) == ("checker", None, "replay-checker")
    body = api.patch(f"/api/sessions/{session_id}/", {"team": "desk"}, format="json").json()
    assert (body["agent"], body["team"], body["route"]) == (None, "desk", "replay")
    body = api.patch(f"/api/sessions/{session_id}/", {"team": ""}, format="json").json()
    assert (body["agent"], body["team"]) == (None, None)


def test_bootstrap_recent_sessions_name_the_agent_and_team(api: APIClient, desk: Team, live_worker: str) -> None:
    session_create(owner=op_user(), agent_name="writer")
    session_create(owner=op_user(), team_name="desk")
    recent = api.get("/api/bootstrap/", HTTP_ACCEPT="application/json").json()["sessions"]["recent"]
    assert [(item["agent"], item["team"]) for item in recent] == [(None, "desk"), ("writer", None)]


def test_chat_new_with_an_agent_or_a_team(desk: Team, operator: User, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("chat", "new", "hello", "--agent", "checker", "--user", operator.username)
    out = capsys.readouterr().out
    assert "(route replay-checker, agent checker)" in out
    assert "checked: hello" in out
    call_command("chat", "new", "hi", "--team", "desk", "--user", operator.username)
    assert "(route replay, team desk)" in capsys.readouterr().out
    runs = Run.objects.order_by("created")
    assert [run.agent.name if run.agent else None for run in runs] == ["checker", "lead"]


# --- instructions, skills and tools --------------------------------------------------------------


def test_skills_join_the_instructions_in_name_order_within_the_budget(
    replay_route: ModelRoute, settings: Any, tmp_path: Path
) -> None:
    settings.AGENTCHAT_SKILLS_DIR = tmp_path
    (tmp_path / "b.md").write_text("Skill B from its file.")
    search = ToolSpec.objects.create(name="search")
    ToolSpec.objects.create(name="unused")
    off = ToolSpec.objects.create(name="off", enabled=False)
    a = SkillSpec.objects.create(name="a-skill", instructions="Inline skill A.")
    b = SkillSpec.objects.create(name="b-skill", instructions_path="b.md")
    big = SkillSpec.objects.create(name="c-big", instructions="word " * 4000)
    a.tools.add(search, off)
    worker = agent("worker", replay_route, "Be brief.")
    worker.skills.add(big, b, a)
    worker.tools.add(search)
    held = agent_instructions(worker, budget_tokens=200)
    assert held.text == "Be brief.\n\nSkill a-skill:\nInline skill A.\n\nSkill b-skill:\nSkill B from its file."
    assert (held.skills, held.left_out) == (("a-skill", "b-skill"), ("c-big",))
    assert agent_toolset(worker).tools == ("search",)


def test_a_skills_instructions_reach_the_provider_request(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-RECOGNISABLE-0022")
    settings.AGENTCHAT_SKILLS_DIR = tmp_path
    (tmp_path / "style.md").write_text("Always answer in RECOGNISABLE-HAIKU form.")
    with ProviderServer(Reply.sse("openai_responses/text.sse")) as server:
        route = openai_route(server)
        poet = agent("poet", route, "You are a poet.")
        poet.skills.add(SkillSpec.objects.create(name="style", instructions_path="style.md"))
        session = session_create(owner=op_user(), agent_name="poet")
        result = turn_run(session_id=session.pk, user_text="a poem please")
    assert result.run.status == RunStatus.COMPLETED, result.run.error
    sent = json.dumps(server.requests[0].body)
    assert "You are a poet." in sent
    assert "Skill style:\\nAlways answer in RECOGNISABLE-HAIKU form." in sent
    assert result.run.agent_id == poet.pk
    assert UsageByAgent.objects.get(agent="poet").event_count == 1


def test_a_session_without_an_agent_sends_no_instructions(chat_session: AgentSession) -> None:
    result = turn_run(session_id=chat_session.pk, user_text="plain")
    assert result.text == "replay: plain"
    assert result.run.agent_id is None
    assert UsageEvent.objects.get(run=result.run).agent == ""
    assert not UsageByAgent.objects.exists()


def test_team_tools_offer_each_member_but_the_lead(desk: Team) -> None:
    tools = team_tools(desk)
    assert [tool.name for tool in tools] == ["ask_writer", "ask_checker"]
    assert tools[0].parameters == {
        "type": "object",
        "properties": {"request": {"type": "string", "description": "What the member should do, in full"}},
        "required": ["request"],
        "additionalProperties": False,
    }
    assert team_member_for_tool(desk, "ask_checker") == AgentProfile.objects.get(name="checker")
    assert team_member_for_tool(desk, "ask_lead") is None


# --- delegation ------------------------------------------------------------------------------------


def test_delegate_runs_the_member_as_a_child_mirrored_into_the_parent(desk: Team) -> None:
    parent = lead_run(desk)
    writer = AgentProfile.objects.get(name="writer")
    outcome = delegate(parent_run=parent, member=writer, request="write three lines", tool_call_id="call_1")
    assert (outcome.text, outcome.is_error) == ("Drafted: three lines.", False)
    child = Run.objects.get(parent=parent)
    assert outcome.run == child
    assert (child.purpose, child.tool_call_id, child.agent_id, child.status) == (
        RunPurpose.DELEGATE,
        "call_1",
        writer.pk,
        RunStatus.COMPLETED,
    )
    assert child.route is not None
    assert child.route.alias == "replay-writer"
    assert child.session_id == parent.session_id
    child_trace = trace(child)
    assert [kind for kind, _ in child_trace] == ["run_started", "text_delta", "finish", "usage", "run_finished"]
    # The parent's trace holds the child's, event for event, after its own run_started.
    nested = [payload for kind, payload in trace(parent) if kind == "delegate"]
    assert all((p["run_id"], p["member"], p["tool_call_id"]) == (str(child.pk), "writer", "call_1") for p in nested)
    assert [(p["event"]["type"], p["event"]["payload"]) for p in nested] == [
        ("run_started", {}),
        *child_trace[1:-1],
        ("run_finished", {"status": "completed"}),
    ]
    # Usage: the child's own event, on the parent's session, counted for the member.
    event = UsageEvent.objects.get(run=child)
    assert (event.agent, event.session_id) == ("writer", parent.session_id)
    assert UsageByAgent.objects.get(agent="writer").event_count == 1
    assert UsageBySession.objects.get(session_id=parent.session_id).event_count == 1
    assert rollup_differences() == []


def test_a_scripted_lead_calls_a_member_and_reads_its_answer(replay_route: ModelRoute) -> None:
    """The lead's replay script calls ask_checker; the call goes to delegate(), whose text is the tool result."""
    call = {"type": "tool_call", "name": "ask_checker", "arguments": {"request": "is water wet?"}}
    lead = agent("boss", replay("replay-boss", script=[[call]]))
    checker = agent("checker", replay("replay-checker", prefix="checked: "))
    team = Team.objects.create(name="pair", lead=lead)
    TeamMember.objects.create(team=team, agent=lead, position=0)
    TeamMember.objects.create(team=team, agent=checker, position=1)
    parent = lead_run(team)
    adapter = adapter_for(lead.route)
    events = list(adapter.stream([PromptMessage(role="user", content="check it")], tools=team_tools(team)))
    calls = [event for event in events if isinstance(event, ToolCall)]
    member = team_member_for_tool(team, calls[0].name)
    assert member == checker
    outcome = delegate(
        parent_run=parent, member=member, request=calls[0].arguments["request"], tool_call_id=calls[0].id
    )
    assert (outcome.text, outcome.is_error) == ("checked: is water wet?", False)
    assert Run.objects.get(parent=parent).tool_call_id == calls[0].id


@pytest.mark.fault
def test_a_failing_member_returns_its_error_as_the_outcome(desk: Team) -> None:
    parent = lead_run(desk)
    checker = AgentProfile.objects.get(name="checker")
    outcome = delegate(parent_run=parent, member=checker, request="/error the archive is down", tool_call_id="c9")
    assert (outcome.text, outcome.is_error) == ("'checker' failed: the archive is down", True)
    child = Run.objects.get(parent=parent)
    assert (child.status, child.error) == (RunStatus.FAILED, "the archive is down")
    nested = [p["event"] for kind, p in trace(parent) if kind == "delegate"]
    assert nested[-2:] == [
        {"type": "error", "payload": {"message": "the archive is down", "code": "requested_error"}},
        {"type": "run_finished", "payload": {"status": "failed"}},
    ]
    assert Run.objects.get(pk=parent.pk).status == RunStatus.RUNNING  # the lead goes on


@pytest.mark.fault
def test_delegation_depth_is_bounded(desk: Team) -> None:
    parent = lead_run(desk)
    checker = AgentProfile.objects.get(name="checker")
    first = delegate(parent_run=parent, member=checker, request="one", tool_call_id="d1")
    assert first.run is not None
    # The child's run is finished; a grandchild needs a running parent, so open a running child to nest under.
    child = running_child(parent, "d2", agent=checker)
    second = delegate(parent_run=child, member=checker, request="two", tool_call_id="d3")
    assert (second.is_error, second.run is not None) == (False, True)
    assert second.run is not None
    grandchild = running_child(child, "d4", agent=checker)
    runs = Run.objects.count()
    third = delegate(parent_run=grandchild, member=checker, request="three", tool_call_id="d5")
    assert third == type(third)(
        text="cannot ask 'checker': delegations nest at most 2 deep (AGENTCHAT_DELEGATION_MAX_DEPTH); "
        "answer with what you have",
        is_error=True,
    )
    assert Run.objects.count() == runs
    with override_settings(AGENTCHAT_DELEGATION_MAX_DEPTH=0):
        assert delegate(parent_run=parent, member=checker, request="x", tool_call_id="d6").is_error


@pytest.mark.fault
def test_a_delegate_run_needs_a_running_parent_and_a_tool_call(desk: Team, chat_session: AgentSession) -> None:
    with pytest.raises(InvalidInputError) as missing:
        run_create(session_id=chat_session.pk, purpose=RunPurpose.DELEGATE)
    assert missing.value.fields == {"parent": ["a delegate run, and only one, names its parent run and tool call"]}


@pytest.mark.fault
@pytest.mark.django_db(transaction=True)
def test_cancelling_the_parent_cancels_its_open_child(replay_route: ModelRoute) -> None:
    lead = agent("boss", replay_route)
    slow = agent("slow", replay("replay-slow", pause_at_chunk=0, pause_ms=20_000))
    team = Team.objects.create(name="pair", lead=lead)
    TeamMember.objects.create(team=team, agent=lead, position=0)
    TeamMember.objects.create(team=team, agent=slow, position=1)
    parent = lead_run(team)
    outcomes: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcomes.append(
            delegate(parent_run=parent, member=slow, request="take your time", tool_call_id="c1")
        )
    )
    worker.start()
    try:
        for _ in range(200):
            if Run.objects.filter(parent=parent).exists():
                break
            threading.Event().wait(0.02)
        run_cancel_request(run_id=parent.pk, reason="the person stopped it")
    finally:
        worker.join(timeout=10)
    assert not worker.is_alive()
    child = Run.objects.get(parent=parent)
    assert (child.status, child.cancel_reason) == (
        RunStatus.CANCELLED,
        "its parent run was cancelled: the person stopped it",
    )
    assert Run.objects.get(pk=parent.pk).status == RunStatus.CANCELLED
    assert outcomes[0].is_error
    assert outcomes[0].text == "'slow' was cancelled: its parent run was cancelled: the person stopped it"


def test_a_recorded_live_stream_drives_one_delegation(desk: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    """The member's route is an OpenAI (Responses) provider answering from a recorded stream through the SDK."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-RECOGNISABLE-0023")
    with ProviderServer(Reply.sse("openai_responses/text.sse")) as server:
        route = openai_route(server, price_input_per_mtok=Decimal("2.5"), price_output_per_mtok=Decimal("10"))
        analyst = agent("analyst", route, "You analyse.")
        TeamMember.objects.create(team=desk, agent=analyst, position=3)
        parent = lead_run(desk)
        outcome = delegate(parent_run=parent, member=analyst, request="summarise", tool_call_id="call_live")
    assert (outcome.text, outcome.is_error) == ("Hello, world!", False)
    sent = server.requests[0].body
    assert "You analyse." in json.dumps(sent)
    event = UsageEvent.objects.get(run=outcome.run)
    assert event.agent == "analyst"
    assert event.input_tokens is not None
    assert event.cost_pico_usd is not None
    assert UsageByAgent.objects.get(agent="analyst").input_tokens == event.input_tokens


@pytest.mark.fault
def test_a_delegate_event_is_checked_with_the_contract_of_the_event_it_carries() -> None:
    from core.conversation.contracts import trace_payload_validate

    good = {"run_id": "r1", "member": "writer", "tool_call_id": "c1", "event": {"type": "text_delta", "payload": {}}}
    with pytest.raises(InvalidInputError) as inner:
        trace_payload_validate("delegate", good)
    assert inner.value.fields == {"payload.event.payload.text": ["required: a string"]}
    with pytest.raises(InvalidInputError) as shape:
        trace_payload_validate("delegate", {**good, "event": {"type": "text_delta"}})
    assert shape.value.fields == {"payload.event": ["must be an object with exactly a string `type` and a `payload`"]}
    nested = {
        **good,
        "event": {"type": "delegate", "payload": {**good, "event": {"type": "text_delta", "payload": {"text": "hi"}}}},
    }
    assert trace_payload_validate("delegate", nested) == nested


def test_a_turn_on_a_team_delegates_through_the_tool_loop(desk: Team) -> None:
    """A real turn on a team's session: the lead is offered ask_<member> tools; its call runs the member as
    a child run of the turn's run, and the member's answer is the tool result the lead reads."""
    session = session_create(owner=op_user(), team_name=desk.name)
    result = turn_run(session_id=session.pk, owner=op_user(), user_text="/tool ask_checker is water wet?")

    assert result.run.status == RunStatus.COMPLETED
    assert result.run.agent is not None
    assert result.run.agent.name == "lead"
    invocation = ToolInvocation.objects.get(run=result.run)
    assert (invocation.tool, invocation.arguments, invocation.result, invocation.is_error) == (
        "ask_checker",
        {"request": "is water wet?"},
        "checked: is water wet?",
        False,
    )
    child = Run.objects.get(parent=result.run)
    assert (child.purpose, child.tool_call_id, child.status) == (
        RunPurpose.DELEGATE,
        invocation.call_id,
        RunStatus.COMPLETED,
    )
    assert child.agent is not None
    assert child.agent.name == "checker"
    nested = [payload for kind, payload in trace(result.run) if kind == "delegate"]
    assert nested
    assert {p["run_id"] for p in nested} == {str(child.pk)}
    assert UsageByAgent.objects.get(agent="checker").event_count == 1
    assert rollup_differences() == []
