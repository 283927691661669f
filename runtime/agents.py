"""What an agent brings to a turn: its instructions and skills, the tools and MCP servers it offers.

A session bound to an agent talks to it; one bound to a team talks to the team's lead
(`session_agent`). The agent decides:

- the route (the session takes the agent's route when bound, unless a route is given explicitly);
- the system instructions (`agent_instructions`): the agent's own, then each of its enabled skills'
  (inline, or read from `instructions_path` in the skills folder), in name order, each taken whole or
  left out under the token budget the turn gives it (the rest goes to the context builder);
- the tools and MCP servers offered (`agent_toolset`): its own enabled tools, then the tools of its
  enabled skills, each once; the tool loop offers these;
- for a team's lead, one `ask_<member>` tool per other member (`team_tools`), whose call runs that
  member as a child run (`runtime.delegation.delegate`).

A session without an agent behaves as before: no instructions, the tools the loop offers by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from core.conversation.contracts import estimate_tokens
from core.models import AgentProfile, AgentSession, Run, SkillSpec, Team, TeamMember, ToolSpec
from runtime.providers import ToolDefinition

# The prefix of the tool a team's lead calls to hand work to a member.
ASK_PREFIX = "ask_"
# The one field of an ask_<member> call.
ASK_SCHEMA = {
    "type": "object",
    "properties": {"request": {"type": "string", "description": "What the member should do, in full"}},
    "required": ["request"],
    "additionalProperties": False,
}


def session_agent(session: AgentSession) -> AgentProfile | None:
    """The agent a session's turns run as: its agent, its team's lead, or None (one query at most)."""
    if session.team_id is not None:
        return AgentProfile.objects.select_related("route__provider").filter(teams_led__pk=session.team_id).first()
    if session.agent_id is None:
        return None
    return AgentProfile.objects.select_related("route__provider").filter(pk=session.agent_id).first()


def _skills(agent: AgentProfile) -> list[SkillSpec]:
    return list(agent.skills.filter(enabled=True).order_by("name").prefetch_related("tools"))


def skill_text(skill: SkillSpec) -> str | None:
    """A skill's instructions: inline, or the file's text (None when the file cannot be read now)."""
    if not skill.instructions_path:
        return skill.instructions
    folder = Path(settings.AGENTCHAT_SKILLS_DIR).resolve()
    try:
        path = (folder / skill.instructions_path).resolve()
        if not path.is_relative_to(folder):
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class AgentInstructions:
    """The system text an agent adds to a turn, what it costs, and which skills it holds or left out."""

    text: str = ""
    tokens: int = 0
    skills: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()


def agent_instructions(agent: AgentProfile, *, budget_tokens: int) -> AgentInstructions:
    """The agent's instructions, then its enabled skills' in name order, each whole or left out within
    `budget_tokens` (a skill whose file cannot be read is left out: readiness blocks such an agent)."""
    sections: list[str] = []
    used = 0
    if agent.instructions.strip():
        sections.append(agent.instructions.strip())
        used = estimate_tokens(sections[0])
    taken: list[str] = []
    left: list[str] = []
    for skill in _skills(agent):
        text = skill_text(skill)
        section = f"Skill {skill.name}:\n{text.strip()}" if text and text.strip() else None
        cost = estimate_tokens(section) if section else 0
        if section is None or used + cost > budget_tokens:
            left.append(skill.name)
            continue
        sections.append(section)
        used += cost
        taken.append(skill.name)
    return AgentInstructions(text="\n\n".join(sections), tokens=used, skills=tuple(taken), left_out=tuple(left))


@dataclass(frozen=True)
class AgentToolset:
    """The tools (by name, in order) and MCP servers an agent offers."""

    tools: tuple[str, ...]
    mcp_servers: tuple[str, ...]


def agent_toolset(agent: AgentProfile) -> AgentToolset:
    """The agent's enabled tools, then those its enabled skills bring (each once), and its enabled MCP servers."""
    names = [tool.name for tool in agent.tools.filter(enabled=True).order_by("name")]
    for skill in _skills(agent):
        names += [tool.name for tool in sorted(skill.tools.all(), key=lambda t: t.name) if tool.enabled]
    servers = agent.mcp_servers.filter(enabled=True).order_by("name").values_list("name", flat=True)
    return AgentToolset(tools=tuple(dict.fromkeys(names)), mcp_servers=tuple(servers))


def agent_tool_specs(agent: AgentProfile) -> list[ToolSpec]:
    """The `ToolSpec`s of `agent_toolset(agent).tools`, in the same order."""
    names = agent_toolset(agent).tools
    specs = {spec.name: spec for spec in ToolSpec.objects.filter(name__in=names)}
    return [specs[name] for name in names if name in specs]


def ask_tool_name(member: str) -> str:
    """`ask_<member>`, within the providers' tool-name pattern (other characters become `_`)."""
    return ASK_PREFIX + re.sub(r"[^a-zA-Z0-9_-]", "_", member)[: 64 - len(ASK_PREFIX)]


def team_members(team: Team) -> list[AgentProfile]:
    """The team's members in order, the lead left out (it is the one asking)."""
    rows = TeamMember.objects.filter(team=team).exclude(agent_id=team.lead_id).select_related("agent__route__provider")
    return [row.agent for row in rows.order_by("position")]


def team_tools(team: Team) -> list[ToolDefinition]:
    """One `ask_<member>` tool per member but the lead, in member order, each taking `{"request": string}`."""
    return [
        ToolDefinition(
            name=ask_tool_name(member.name),
            description=(
                f"Ask team member {member.name!r} to do something and get its answer"
                + (f": {member.description}" if member.description else "")
            ),
            parameters=dict(ASK_SCHEMA),
        )
        for member in team_members(team)
        if member.enabled
    ]


def team_member_for_tool(team: Team, tool_name: str) -> AgentProfile | None:
    """The member an `ask_<member>` call names, or None."""
    return next((member for member in team_members(team) if ask_tool_name(member.name) == tool_name), None)


def delegation_depth(run: Run) -> int:
    """How many delegations lie above `run` (0 for a chat turn): one query per level."""
    depth, parent_id = 0, run.parent_id
    while parent_id is not None:
        depth += 1
        parent_id = Run.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    return depth


def teams_asked_from(run: Run) -> list[Team]:
    """The teams whose members `run` may ask: a chat turn's session's team (its lead runs the turn); for a
    delegated member that leads teams of its own, those (in name order) while the depth bound allows one more."""
    if run.parent_id is None:
        if run.session_id is None:
            return []
        return list(Team.objects.filter(sessions__pk=run.session_id).select_related("lead")[:1])
    if run.agent_id is None or delegation_depth(run) >= settings.AGENTCHAT_DELEGATION_MAX_DEPTH:
        return []
    return list(Team.objects.filter(lead_id=run.agent_id).select_related("lead").order_by("name"))
