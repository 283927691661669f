"""The admin lists tool invocations read-only: run, tool, status, timing, previews of arguments and
results, filters by status and tool, search by tool name."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import DjangoAssertNumQueries

from core.conversation.invocations import NewInvocation, invocation_finish, invocations_create
from core.conversation.services import message_append, run_create
from core.models import AgentSession, InvocationStatus, ToolInvocation
from tests.site.test_admin_upkeep import assert_read_only
from tests.web.test_pages import signed_in

pytestmark = pytest.mark.django_db


def _rows(page: str) -> list[str]:
    """The tool column of each listed row, in order."""
    return re.findall(r'<td class="field-tool">([^<]*)</td>', page)


def test_tool_invocations_are_listed_filtered_and_searched_but_never_edited(
    operator: User, chat_session: AgentSession
) -> None:
    call_message = message_append(session_id=chat_session.pk, role="assistant", content="calling").record
    run = run_create(session_id=chat_session.pk, status="running")
    calculator, weather = invocations_create(
        run=run,
        call_seq=call_message.seq,
        calls=[
            NewInvocation("call-1", "calculator", {"expression": "6*7", "note": "x" * 300}, InvocationStatus.APPROVED),
            NewInvocation("call-2", "weather__forecast", {"city": "Oslo"}, InvocationStatus.AWAITING_APPROVAL),
        ],
    )
    invocation_finish(invocation_id=calculator.pk, result="42 <b>bold</b>", is_error=False)
    ToolInvocation.objects.filter(pk=calculator.pk).update(finished_at=calculator.created + timedelta(seconds=1.25))
    staff = signed_in(operator)

    page = assert_read_only(staff, "/admin/core/toolinvocation/", calculator.pk)
    assert _rows(page) == ["weather__forecast", "calculator"]
    assert f'<td class="field-run nowrap">run {run.pk} (running)</td>' in page
    assert '<td class="field-status">Done</td>' in page
    assert '<td class="field-status">Awaiting approval</td>' in page
    assert '<td class="field-duration">-</td>' in page  # still open
    assert '<td class="field-duration">1.250 s</td>' in page
    assert '<td class="field-result_preview">42 &lt;b&gt;bold&lt;/b&gt;</td>' in page
    arguments = re.findall(r'<td class="field-arguments_preview">([^<]*)</td>', page)
    assert arguments[0] == "{&quot;city&quot;: &quot;Oslo&quot;}"
    assert arguments[1].startswith("{&quot;expression&quot;: &quot;6*7&quot;")
    assert len(arguments[1].replace("&quot;", '"')) == 120  # cut to one line of PREVIEW_CHARS
    assert arguments[1].endswith("x…")

    assert _rows(staff.get("/admin/core/toolinvocation/?status=awaiting_approval").content.decode()) == [
        "weather__forecast"
    ]
    by_tool = staff.get("/admin/core/toolinvocation/?tool=calculator").content.decode()
    assert _rows(by_tool) == ["calculator"]
    assert '<a href="?tool=weather__forecast"' in by_tool  # the filter lists the tools called
    assert _rows(staff.get("/admin/core/toolinvocation/?q=weather").content.decode()) == ["weather__forecast"]
    assert _rows(staff.get("/admin/core/toolinvocation/?tool=nothing").content.decode()) == []

    detail = staff.get(f"/admin/core/toolinvocation/{weather.pk}/change/").content.decode()
    assert "Oslo" in detail
    assert ToolInvocation.objects.get(pk=weather.pk).status == InvocationStatus.AWAITING_APPROVAL


@pytest.mark.parametrize("calls", [1, 20])
def test_the_tool_invocation_list_runs_a_constant_number_of_queries(
    operator: User, chat_session: AgentSession, django_assert_num_queries: DjangoAssertNumQueries, calls: int
) -> None:
    call_message = message_append(session_id=chat_session.pk, role="assistant", content="calling").record
    run = run_create(session_id=chat_session.pk, status="running")
    invocations_create(
        run=run,
        call_seq=call_message.seq,
        calls=[NewInvocation(f"call-{n}", f"tool_{n}", {"n": n}, InvocationStatus.APPROVED) for n in range(calls)],
    )
    staff = signed_in(operator)
    # 1 the auth session, 2 the user, 3 the tools of the newest calls (the tool filter), 4 the capped count,
    # 5 the page of calls with their runs.
    with django_assert_num_queries(5):
        response = staff.get("/admin/core/toolinvocation/")
    assert response.context["cl"].result_count == calls
