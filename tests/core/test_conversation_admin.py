"""The conversation admin: constant-query changelists, bounded inlines, search, actions, service-backed writes."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import DjangoAssertNumQueries

from core.admin_base import COUNT_CAP, CappedCountPaginator
from core.conversation.services import (
    checkpoint_create,
    message_append,
    run_cancel,
    run_create,
    run_event_append,
    session_archive,
    session_create,
)
from core.models import AgentSession, Checkpoint, Message, ModelRoute, Run, SessionStatus, TraceEvent
from tests.owners import op_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(db: None) -> Client:
    """Signed in as a superuser without a password (no hashing)."""
    client = Client()
    client.force_login(User.objects.create(username="admin", is_staff=True, is_superuser=True))
    return client


def _populate(rows: int) -> AgentSession:
    sessions = [session_create(owner=op_user(), title=f"session {n}") for n in range(rows)]
    first = sessions[0]
    for n in range(rows):
        message_append(session_id=first.id, role="user", content=f"message {n + 1}")
        checkpoint_create(session_id=first.id, through_seq=n + 1, reason="manual")
    for _ in range(rows):
        run = run_create(session_id=first.id, status="running")
        run_event_append(run_id=run.id, event_type="text_delta", payload={"text": "x"})
        run_cancel(run_id=run.id, reason="test")
    return first


@pytest.mark.parametrize("rows", [1, 20])
def test_changelists_run_a_constant_number_of_queries(
    admin_client: Client, replay_route: ModelRoute, django_assert_num_queries: DjangoAssertNumQueries, rows: int
) -> None:
    _populate(rows)
    # Each: 1 the auth session, 2 the user, 3 the capped count (COUNT over a LIMITed subquery),
    # 4 the page of rows with their joins.
    # Sessions and runs add 5: the accounts for the owner filter, and 6: the routes for the route filter.
    expected = {
        "/admin/core/agentsession/": 6,
        "/admin/core/message/": 4,
        "/admin/core/checkpoint/": 4,
        "/admin/core/run/": 6,
        "/admin/core/traceevent/": 4,
    }
    for url, queries in expected.items():
        with django_assert_num_queries(queries):
            response = admin_client.get(url)
        assert response.status_code == 200, url
        assert response.context["cl"].result_count == {"/admin/core/traceevent/": rows * 3}.get(url, rows)


def test_paginator_counts_no_more_than_the_cap(replay_route: ModelRoute) -> None:
    session = session_create(owner=op_user(), title="big")
    for n in range(5):
        message_append(session_id=session.id, role="user", content=str(n))
    assert CappedCountPaginator(Message.objects.all(), 2).count == 5
    assert COUNT_CAP == 10_000


def test_session_page_shows_only_the_latest_messages(admin_client: Client, chat_session: AgentSession) -> None:
    for n in range(1, 61):
        message_append(session_id=chat_session.id, role="user", content=f"line-{n:03d}")
    checkpoint_create(session_id=chat_session.id, through_seq=30, reason="compaction", summary="half way")
    run_create(session_id=chat_session.id)
    html = admin_client.get(f"/admin/core/agentsession/{chat_session.id}/change/").content.decode()
    shown = sorted(int(n) for n in re.findall(r"line-(\d{3})", html))
    assert shown == list(range(11, 61))
    assert "half way" in html
    assert "queued" in html


def test_search_by_title_and_by_message_text(admin_client: Client, replay_route: ModelRoute) -> None:
    needle = session_create(owner=op_user(), title="holiday plans")
    hay = session_create(owner=op_user(), title="groceries")
    message_append(session_id=hay.id, role="user", content="Remember the Pineapple please")
    message_append(session_id=hay.id, role="assistant", content="pineapple noted")
    session_create(owner=op_user(), title="other")

    def found(term: str) -> list[AgentSession]:
        return list(admin_client.get("/admin/core/agentsession/", {"q": term}).context["cl"].result_list)

    assert found("holiday") == [needle]
    assert found("pineapple") == [hay]  # once, though two messages match
    assert found("pi") == []  # message text is searched from 3 characters


def test_archive_and_unarchive_actions_use_the_services(admin_client: Client, replay_route: ModelRoute) -> None:
    first = session_create(owner=op_user(), title="a")
    second = session_create(owner=op_user(), title="b")
    session_archive(session_id=second.id)
    response = admin_client.post(
        "/admin/core/agentsession/",
        {"action": "archive_sessions", "_selected_action": [str(first.id), str(second.id)]},
        follow=True,
    )
    assert "Archived 1 session(s)." in response.content.decode()
    assert set(AgentSession.objects.values_list("status", flat=True)) == {SessionStatus.ARCHIVED}
    admin_client.post(
        "/admin/core/agentsession/",
        {"action": "unarchive_sessions", "_selected_action": [str(first.id), str(second.id)]},
    )
    assert set(AgentSession.objects.values_list("status", flat=True)) == {SessionStatus.ACTIVE}


def test_add_and_change_session_through_the_admin(admin_client: Client, replay_route: ModelRoute) -> None:
    response = admin_client.post("/admin/core/agentsession/add/", _form(title="  from admin ", route=replay_route.pk))
    assert response.status_code == 302
    session = AgentSession.objects.get()
    assert (session.title, session.route_id) == ("from admin", replay_route.pk)
    response = admin_client.post(
        f"/admin/core/agentsession/{session.pk}/change/", _form(title="renamed", route=replay_route.pk)
    )
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.title == "renamed"


def _form(**fields: object) -> dict[str, object]:
    """The add/change form with the (empty, read-only) inline management forms."""
    data: dict[str, object] = dict(fields)
    for prefix in ("messages", "checkpoints", "runs"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 0})
    return data


def test_delete_confirmation_summarises_and_deletes_everything(
    admin_client: Client, chat_session: AgentSession
) -> None:
    for n in range(3):
        message_append(session_id=chat_session.id, role="user", content=str(n))
    checkpoint_create(session_id=chat_session.id, through_seq=2, reason="manual")
    run = run_create(session_id=chat_session.id, status="running")
    url = f"/admin/core/agentsession/{chat_session.id}/delete/"

    blocked = admin_client.get(url).content.decode()
    assert "1 queued or running run(s): cancel them first" in blocked

    run_cancel(run_id=run.id, reason="to delete")
    page = admin_client.get(url).content.decode()
    assert "3 messages, with its checkpoints, runs and events" in page
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not AgentSession.objects.exists()
    assert (Message.objects.count(), Checkpoint.objects.count(), Run.objects.count(), TraceEvent.objects.count()) == (
        0,
        0,
        0,
        0,
    )


def test_run_page_shows_events_in_order_and_text(admin_client: Client, chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    for word in ("alpha-", "beta-", "gamma"):
        run_event_append(run_id=run.id, event_type="text_delta", payload={"text": word})
    html = admin_client.get(f"/admin/core/run/{run.id}/change/").content.decode()
    assert "alpha-beta-gamma" in html
    positions = [html.index(marker) for marker in ("run_started", "&quot;alpha-", "&quot;beta-", "&quot;gamma")]
    assert positions == sorted(positions)


def test_cancel_action_goes_through_the_service(admin_client: Client, chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.id, status="running")
    admin_client.post("/admin/core/run/", {"action": "cancel_runs", "_selected_action": [str(run.id)]})
    run.refresh_from_db()
    assert (run.status, run.cancel_reason) == ("cancelled", "cancelled in the admin by admin")


@pytest.mark.parametrize("model", ["message", "checkpoint", "run", "traceevent"])
def test_service_owned_records_cannot_be_added_or_edited(
    admin_client: Client, chat_session: AgentSession, model: str
) -> None:
    assert admin_client.get(f"/admin/core/{model}/add/").status_code == 403
