"""Telemetry admin: read-only, totals above the events list, no COUNT(*), constant query count."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import AgentSession
from telemetry.models import UsageEvent
from telemetry.selectors import local_day
from telemetry.services import usage_record
from tests.owners import op_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_op(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def _seed(session: AgentSession, start: int, count: int) -> None:
    # Spread between the start of today's local day and now, newest first, so that a run just after
    # midnight still seeds "today".
    today, zone_name = local_day()
    midnight = dt.datetime.combine(today, dt.time(0), tzinfo=ZoneInfo(zone_name))
    now = timezone.now()
    for n in range(start, start + count):
        usage_record(
            owner=op_user(),
            request_id=f"r{n}",
            route_alias="gpt",
            session_id=session.id,
            model="gpt-4o" if n % 2 else "gpt-4o-mini",
            input_tokens=1_000_000,
            occurred_at=midnight + (now - midnight) / (n + 2),
        )


def test_events_changelist_shows_totals_with_constant_queries(
    admin_client_op: Client, usage_session: AgentSession, django_assert_num_queries: Any
) -> None:
    _seed(usage_session, 0, 3)
    # 1-2. the signed-in session and user, 3. paginator count from the all-time rollup, 4. one page of
    # events with route and session, 5. provider choices, 6. model choices, 7. session choices (rollups),
    # 8. the all-time totals.
    with django_assert_num_queries(8):
        response = admin_client_op.get("/admin/telemetry/usageevent/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Totals (all time)" in html
    assert "<td>3000000</td>" in html  # input tokens
    assert "<td>7.5</td>" in html  # cost
    _seed(usage_session, 3, 30)
    with django_assert_num_queries(8):
        assert admin_client_op.get("/admin/telemetry/usageevent/").status_code == 200


def test_events_changelist_filters_and_totals_of_matching_events(
    admin_client_op: Client, usage_session: AgentSession
) -> None:
    _seed(usage_session, 0, 4)
    response = admin_client_op.get("/admin/telemetry/usageevent/?model=gpt-4o&day=today")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Totals (matching events)" in html
    assert "<td>2000000</td>" in html
    assert response.context["cl"].result_list.count() == 2
    bad = admin_client_op.get("/admin/telemetry/usageevent/?session=not-a-uuid")
    assert bad.status_code == 200
    assert list(bad.context["cl"].result_list) == []


def test_events_changelist_never_counts_the_events_table(admin_client_op: Client, usage_session: AgentSession) -> None:
    _seed(usage_session, 0, 2)
    with CaptureQueriesContext(connection) as queries:
        admin_client_op.get("/admin/telemetry/usageevent/")
    table = UsageEvent._meta.db_table
    assert not [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and table in q["sql"]]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/telemetry/usageevent/",
        "/admin/telemetry/usagebyday/",
        "/admin/telemetry/usagebysession/",
        "/admin/telemetry/usagealltime/",
        "/admin/telemetry/usagebypurpose/",
        "/admin/telemetry/usagebyagent/",
    ],
)
def test_telemetry_admin_is_read_only(admin_client_op: Client, usage_session: AgentSession, path: str) -> None:
    _seed(usage_session, 0, 1)
    assert admin_client_op.get(path).status_code == 200
    assert admin_client_op.get(f"{path}add/").status_code == 403
    event = UsageEvent.objects.get()
    detail = admin_client_op.get(f"/admin/telemetry/usageevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert admin_client_op.post(f"/admin/telemetry/usageevent/{event.pk}/delete/").status_code == 403
