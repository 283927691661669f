"""A team member's delegated work is nested in the card of the lead's call that asked for it."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from core.conversation.services import run_create, run_event_append, run_events_append, session_create
from core.models import Run, RunStatus, Team, TraceEventType
from runtime.delegation import mirrored
from runtime.turns import turn_run
from tests.owners import op_user, plain_user
from tests.runtime.test_agents import desk  # noqa: F401 (the team fixture: lead, writer, checker)
from web.views import open_run_read

pytestmark = pytest.mark.django_db


def signed_in_as_op() -> Client:
    client = Client()
    client.force_login(op_user())
    return client


def test_a_reload_shows_the_members_answer_inside_the_leads_call(desk: Team) -> None:  # noqa: F811
    session = session_create(owner=op_user(), team_name=desk.name)
    result = turn_run(session_id=session.pk, owner=op_user(), user_text="/tool ask_checker is water wet?")
    assert result.run.status == RunStatus.COMPLETED
    child = Run.objects.get(parent=result.run)

    body = signed_in_as_op().get(f"/chat/{session.pk}/").content.decode()
    card = re.search(
        rf'<details class="tool" data-tool-call="{re.escape(child.tool_call_id)}"><summary>Tool call: ask_checker'
        r"</summary>(.*?)</details>\s*</details>",
        body,
        re.S,
    )
    assert card is not None, body
    nested = card.group(1)
    assert f'<details class="delegated" data-delegation="{child.tool_call_id}" open>' in nested
    assert "<span data-member>checker</span>'s work (<span data-delegation-status>completed</span>)" in nested
    assert '<div class="delegated-md"><p>checked: is water wet?</p>\n</div>' in nested
    # Another user sees none of it.
    other = Client()
    other.force_login(plain_user("ann"))
    assert other.get(f"/chat/{session.pk}/").status_code == 404


def test_a_members_answer_is_markdown_rendered_safely(desk: Team) -> None:  # noqa: F811
    session = session_create(owner=op_user(), team_name=desk.name)
    turn_run(session_id=session.pk, owner=op_user(), user_text="/tool ask_checker **sure** <script>alert(1)</script>")
    body = signed_in_as_op().get(f"/chat/{session.pk}/").content.decode()
    nested = body[body.index('<div class="delegated-md">') :]
    nested = nested[: nested.index("</div>")]
    assert "<strong>sure</strong>" in nested
    assert "<script>" not in nested
    assert "&lt;script&gt;" in nested


def test_an_open_run_shows_the_members_work_so_far_under_its_call(desk: Team) -> None:  # noqa: F811
    """Mid-stream (a reload while the member writes): the mirrored events rebuild its text under the call."""
    session = session_create(owner=op_user(), team_name=desk.name)
    parent = run_create(session_id=session.pk, status=RunStatus.RUNNING)
    child_id = parent.pk  # any id: the page reads the mirrored events, not the child's own trace
    call = {"id": "call_7", "name": "ask_writer", "arguments": {"request": "three lines"}}
    run_event_append(run_id=parent.pk, event_type=TraceEventType.TOOL_CALL, payload=call)
    run_events_append(
        run_id=parent.pk,
        events=[
            mirrored(child_id, "writer", "call_7", TraceEventType.RUN_STARTED, {}),
            mirrored(child_id, "writer", "call_7", TraceEventType.TEXT_DELTA, {"text": "Drafted: "}),
            mirrored(child_id, "writer", "call_7", TraceEventType.TEXT_DELTA, {"text": "one <b>line</b>"}),
        ],
    )
    shown = open_run_read(parent)
    work = shown.delegated["call_7"]
    assert (work.member, work.text, work.status_text) == ("writer", "Drafted: one <b>line</b>", "running")
    assert [tool.get("delegation") for tool in shown.tools] == [work]

    body = signed_in_as_op().get(f"/chat/{session.pk}/").content.decode()
    assert '<details class="tool" data-tool-call="call_7"><summary>Tool call: ask_writer</summary>' in body
    assert (
        '<details class="delegated" data-delegation="call_7" open>\n'
        "  <summary><span data-member>writer</span>'s work (<span data-delegation-status>running</span>)</summary>\n"
        '  <div class="stream-text" data-delegation-text>Drafted: one &lt;b&gt;line&lt;/b&gt;</div>'
    ) in body

    run_events_append(
        run_id=parent.pk,
        events=[mirrored(child_id, "writer", "call_7", TraceEventType.RUN_FINISHED, {"status": "completed"})],
    )
    assert open_run_read(parent).delegated["call_7"].status_text == "completed"
