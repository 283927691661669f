"""`manage.py chat SESSION_OR_NEW "text"`: run one turn from the command line, streaming the reply."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from core.conversation.events import ErrorEvent, RuntimeEvent, TextDelta, ToolCall, ToolResult
from core.conversation.services import session_create
from core.management.base import DomainCommand
from core.management.owner_option import user_from_options
from core.models import RunStatus
from runtime.mcp import mcp_gateway
from runtime.turns import turn_refusal, turn_run


def cost_display(cost: Decimal) -> str:
    """Dollars as plain digits, without the exponent an exact Decimal may carry (`0E-12` → `$0`)."""
    return f"${cost.normalize():f}"


class Command(DomainCommand):
    help = (
        'Send TEXT to a session and print the reply as it streams, then the run\'s usage. Use "new" for '
        "SESSION to start a session on the default route (or --route), with --agent NAME or --team NAME to talk "
        "to an agent or a team's lead (on its route unless --route is given)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("session", help='a session id, or "new"')
        parser.add_argument("text", help="the message to send")
        parser.add_argument("--route", help="with new: the route alias (default: the default route)")
        parser.add_argument("--title", default="", help="with new: the session's title")
        parser.add_argument("--agent", help="with new: the agent the session talks to (its route unless --route)")
        parser.add_argument("--team", help="with new: the team whose lead answers (the lead's route unless --route)")
        parser.add_argument(
            "--user",
            default=None,
            help="the account the conversation belongs to (default: AGENTCHAT_OPERATOR_USERNAME or 'operator')",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        owner = user_from_options(options)
        session_ref: str = options["session"]
        if session_ref == "new":
            title = options["title"] or options["text"][:60]
            # The session exists only if its first turn may run: a refused turn writes nothing.
            with transaction.atomic():
                session = session_create(
                    owner=owner,
                    title=title,
                    route_alias=options["route"],
                    agent_name=options["agent"],
                    team_name=options["team"],
                )
                turn_refusal(session=session, user_text=options["text"])
            session_id = str(session.pk)
            talks_to = f", agent {session.agent.name}" if session.agent else ""
            talks_to += f", team {session.team.name}" if session.team else ""
            self.stdout.write(f"session {session_id} (route {session.route.alias}{talks_to})")
        else:
            if options["route"] or options["title"] or options["agent"] or options["team"]:
                raise CommandError("--route, --title, --agent and --team apply only to a new session")
            session_id = session_ref
        try:
            result = turn_run(
                session_id=session_id,
                owner=owner,
                user_text=options["text"],
                on_event=self._show,
                gateway=mcp_gateway(),
            )
        except KeyboardInterrupt:
            raise CommandError("interrupted; run `manage.py recover_runs` to close the open run") from None
        self.stdout.write("")
        run = result.run
        if run.status == RunStatus.AWAITING_APPROVAL:
            self.stdout.write(
                f"run {run.pk} awaits approval of its tool calls (or a client's results): "
                f"POST /api/runs/{run.pk}/approve/ or /tool-results/; a worker (make serve) then resumes it"
            )
            return
        if run.status != RunStatus.COMPLETED:
            raise CommandError(f"run {run.pk} {run.status}: {run.error or run.cancel_reason}")
        self.stdout.write(f"run {run.pk} completed; {len(result.messages)} messages appended")
        if result.finish_reason == "length":
            self.stdout.write("note: the reply was cut short at the route's max_output_tokens")
        elif result.finish_reason == "content_filter":
            self.stdout.write("note: the provider withheld the rest of the reply (content filter)")
        usage = result.usage
        if usage is None:
            self.stdout.write("usage: not reported by the provider")
            return
        cost = "no price on this route" if usage.cost is None else cost_display(usage.cost)
        if usage.cost is not None and usage.cost_partial:
            cost = f"at least {cost} (some counts were not reported)"

        def count(name: str) -> str:
            value = getattr(usage, name)
            return "unknown" if value is None else str(value)

        self.stdout.write(
            f"usage: input {count('input_tokens')} (cache read {count('cached_input_tokens')}, "
            f"cache write {count('cache_write_input_tokens')}) · "
            f"output {count('output_tokens')} (reasoning {count('reasoning_tokens')}) · total {count('total_tokens')} "
            f"tokens · cost {cost}"
        )

    def _show(self, event: RuntimeEvent) -> None:
        if isinstance(event, TextDelta):
            self.stdout.write(event.text, ending="")
        elif isinstance(event, ToolCall):
            self.stdout.write(f"[tool call {event.name} {event.arguments}]")
        elif isinstance(event, ToolResult):
            self.stdout.write(f"[tool result {event.content}]")
        elif isinstance(event, ErrorEvent):
            self.stderr.write(f"error: {event.message}")
        self.stdout.flush()
