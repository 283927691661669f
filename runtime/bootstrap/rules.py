"""The view rules: one pure function per view, from facts already read to `{state, reasons}`.

Each rule looks only at `Facts` (no query, no clock, no environment) and returns the view's
state (`empty` | `blocked` | `ready`) with sentences a person can act on. README.md
("Bootstrap") describes the same rules; change both together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.bootstrap.response import (
    ConfigSection,
    Entry,
    MemorySection,
    SessionsSection,
    ViewStatus,
    WorkersSection,
)
from telemetry.selectors import UsageOverview

# A worker is live while its heartbeat (every second) is at most this old.
WORKER_LIVE_S = 30


@dataclass(frozen=True)
class Facts:
    """What the view rules look at: everything is already read; the rules make no query."""

    pending_migrations: tuple[str, ...]
    config: ConfigSection
    sessions: SessionsSection
    memory: MemorySection
    telemetry: UsageOverview
    workers: WorkersSection = field(default_factory=WorkersSection)

    @property
    def file_path(self) -> str:
        return self.config.file.path


def _ready(reasons: Sequence[str] = ()) -> ViewStatus:
    return ViewStatus(state="ready", reasons=tuple(reasons))


def _blocked(*reasons: str) -> ViewStatus:
    return ViewStatus(state="blocked", reasons=reasons)


def _empty(*reasons: str) -> ViewStatus:
    return ViewStatus(state="empty", reasons=reasons)


def _load_hint(facts: Facts, section: str) -> str:
    """How to get records of `section` into the database, given the state of the file."""
    file = facts.config.file
    if file.state == "not_loaded":
        return f"run manage.py load_config {file.path}"
    if file.state in ("missing", "invalid"):
        return f"fix {file.path} (see the config view), then run manage.py load_config"
    return f"add [[{section}]] to {file.path} and run manage.py load_config"


def _none_ready(noun: str, items: Sequence[Entry[Any]]) -> ViewStatus:
    """Blocked with every record's reasons (`route 'fast': OPENAI_API_KEY is not set`)."""
    reasons = []
    for item in items:
        name = f"{noun} {item.key!r}"
        text = "; ".join(item.reasons)
        reasons.append(text if text.startswith(name) else f"{name}: {text}")
    return ViewStatus(state="blocked", reasons=(f"no {noun} is ready", *reasons))


def _no_ready_route_reasons(facts: Facts) -> list[str]:
    """Which keys to set (or the replay provider to enable), then what else blocks a usable route."""
    providers = {provider.key: provider for provider in facts.config.providers}
    # Enabled routes whose provider exists, each with that provider.
    usable = [
        (route, providers[route.record.provider])
        for route in facts.config.routes
        if route.record.enabled and route.record.provider in providers
    ]
    missing = sorted(
        {
            provider.record.api_key_env
            for _, provider in usable
            if provider.record.enabled and provider.credential == "missing"
        }
    )
    replay = [provider.record for provider in providers.values() if provider.record.kind == "replay"]
    fixes = [f"set {' or '.join(missing)}"] if missing else []
    if not replay:
        fixes.append("add a replay provider for offline use")
    elif not any(provider.enabled for provider in replay):
        fixes.append("enable the replay provider")
    reasons = [f"no enabled model route has a provider with credentials: {' or '.join(fixes)}"] if fixes else []
    # Routes whose provider is enabled and has its key, yet still cannot answer (e.g. invalid options).
    reasons += [
        f"route {route.key!r}: {'; '.join(route.reasons)}"
        for route, provider in usable
        if provider.record.enabled and provider.credential != "missing"
    ]
    return reasons or ["no model route is enabled: set enabled = true on a route and its provider"]


def chat_rule(facts: Facts) -> ViewStatus:
    """Blocked without a ready route; empty with no session yet; ready otherwise."""
    routes = facts.config.routes
    if not routes:
        return _blocked(f"no model route is configured: {_load_hint(facts, 'routes')}")
    if not any(route.status == "ready" for route in routes):
        return _blocked(*_no_ready_route_reasons(facts))
    default = next((route for route in routes if route.key == facts.config.default_route), None)
    if default is None:
        return _blocked(
            f"no default route: set is_default = true on one route in {facts.file_path} "
            "and run manage.py load_config (new sessions use it)"
        )
    if default.status != "ready":
        return _blocked(
            f"the default route {default.key!r} is {default.status}: {'; '.join(default.reasons)}; "
            "fix it or make a ready route the default"
        )
    if facts.workers.live == 0:
        return _blocked(
            f"no worker heartbeat in the last {WORKER_LIVE_S} s: turns would wait in the queue; "
            "start the workers (make serve, or manage.py worker)"
        )
    if facts.sessions.total == 0:
        return _empty(f"no session yet: start one (POST /api/sessions/); it will use route {default.key!r}")
    return _ready()


def _records_rule(facts: Facts, items: Sequence[Entry[Any]], noun: str, short: str, section: str) -> ViewStatus:
    """Empty without records; blocked (with every record's reasons) when none is ready; ready when one is."""
    if not items:
        return _empty(f"no {noun} is configured: {_load_hint(facts, section)}")
    if not any(item.status == "ready" for item in items):
        return _none_ready(short, items)
    return _ready()


def model_rule(facts: Facts) -> ViewStatus:
    """Empty without routes; blocked when no route is ready; ready when one is."""
    return _records_rule(facts, facts.config.routes, "model route", "route", "routes")


def tools_rule(facts: Facts) -> ViewStatus:
    """Empty without tools; blocked when every tool is disabled or none has a runner; ready otherwise."""
    tools = facts.config.tools
    if not tools:
        return _empty(f"no tool is configured: {_load_hint(facts, 'tools')}")
    if not any(tool.record.enabled for tool in tools):
        return _blocked(f"every tool is disabled: set enabled = true on one in {facts.file_path}")
    if not any(tool.status == "ready" for tool in tools):
        return _blocked("no tool can run", *(reason for tool in tools for reason in tool.reasons))
    return _ready()


def skills_rule(facts: Facts) -> ViewStatus:
    """Empty without skills; ready when a ready agent has a ready skill (its instructions reach that agent's
    prompts); blocked otherwise, with what blocks each skill and that no ready agent uses a ready one."""
    skills = facts.config.skills
    if not skills:
        return _empty(f"no skill is configured: {_load_hint(facts, 'skills')}")
    usable = {skill.key for skill in skills if skill.status == "ready"}
    agents = [agent for agent in facts.config.agents if agent.status == "ready"]
    if any(usable.intersection(agent.record.skills) for agent in agents):
        return _ready()
    record_reasons = _none_ready("skill", [skill for skill in skills if skill.status != "ready"]).reasons[1:]
    return _blocked(
        "no ready agent has a ready skill: give a ready agent one in its skills list in "
        f"{facts.file_path} and run manage.py load_config",
        *record_reasons,
    )


def mcp_rule(facts: Facts) -> ViewStatus:
    """Empty without MCP servers; blocked when no server is ready (a server is ready once a probe listed its
    tools); ready when one is, saying what each ready server offers."""
    status = _records_rule(facts, facts.config.mcp_servers, "MCP server", "MCP server", "mcp_servers")
    if status.state != "ready":
        return status
    return _ready(
        [
            f"MCP server {item.key!r}: {item.probe.summary}"
            for item in facts.config.mcp_servers
            if item.status == "ready" and item.probe is not None
        ]
    )


def team_rule(facts: Facts) -> ViewStatus:
    """Empty without teams; ready when a team's lead and every member are ready; blocked otherwise, with why."""
    return _records_rule(facts, facts.config.teams, "team", "team", "teams")


def memory_rule(facts: Facts) -> ViewStatus:
    """Empty while no tier holds anything; ready otherwise (memory is never blocked)."""
    memory = facts.memory
    if not (memory.messages or memory.daily_episodes or memory.long_term or memory.attachments):
        return _empty("nothing remembered yet: messages, daily episodes and memories appear as you chat")
    return _ready()


def tokens_rule(facts: Facts) -> ViewStatus:
    """Empty until the first usage is recorded; ready after."""
    if facts.telemetry.all_time.event_count == 0:
        return _empty("no token usage recorded yet: it appears after the first model reply")
    return _ready()


def config_rule(facts: Facts) -> ViewStatus:
    """Blocked while the last load failed (every problem listed), then by the file's state (see `_file_rule`)."""
    status = _file_rule(facts)
    last = facts.config.last_load
    if last is None or not last.problems:
        return status
    problems = tuple(str(problem) for problem in last.problems)
    headline = (
        f"the last manage.py load_config of {last.file} failed"
        + (f" at {last.checked_at}" if last.checked_at else "")
        + f": the database keeps the last configuration that loaded; fix these problems, then run "
        f"manage.py load_config {last.file}"
    )
    # The file's own reasons follow, once each (an invalid file repeats the same problems).
    more = tuple(reason for reason in status.reasons if reason not in problems) if status.state == "blocked" else ()
    return _blocked(headline, *problems, *more)


def _file_rule(facts: Facts) -> ViewStatus:
    """Blocked when the file is missing, invalid, not loaded or out of date; empty when it defines nothing."""
    file = facts.config.file
    load = f"run manage.py load_config {file.path}"
    if file.state == "missing":
        return _blocked(f"the configuration file {file.path} does not exist: create it or set AGENTCHAT_CONFIG")
    if file.state == "invalid":
        shown = len(file.problems)
        more = f" (and {file.problem_count - shown} more)" if file.problem_count > shown else ""
        return _blocked(
            f"the configuration file {file.path} is invalid: fix these problems, then {load}{more}", *file.problems
        )
    if file.state == "not_loaded":
        return _blocked(f"the configuration file {file.path} was never loaded: {load}")
    if file.state == "out_of_date":
        return _blocked(f"the database differs from {file.path}: {load} (or update the file)", *file.differences)
    if file.state == "empty":
        return _empty(f"the configuration file {file.path} defines nothing: add providers and routes to it")
    return _ready()


ViewRule = Callable[[Facts], ViewStatus]
# One rule per view, in the order the response lists them. README.md ("Bootstrap") describes each.
VIEW_RULES: dict[str, ViewRule] = {
    "chat": chat_rule,
    "model": model_rule,
    "tools": tools_rule,
    "skills": skills_rule,
    "mcp": mcp_rule,
    "memory": memory_rule,
    "team": team_rule,
    "tokens": tokens_rule,
    "config": config_rule,
}


def migrate_reason(pending: Sequence[str]) -> str:
    shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
    return f"the database schema is not up to date: run manage.py migrate (pending: {shown})"


def view_states(facts: Facts) -> dict[str, ViewStatus]:
    """The state of every view; all are blocked while migrations are pending."""
    if facts.pending_migrations:
        return {name: _blocked(migrate_reason(facts.pending_migrations)) for name in VIEW_RULES}
    return {name: rule(facts) for name, rule in VIEW_RULES.items()}
