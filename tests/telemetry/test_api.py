"""The telemetry API: record (201/200/400/409), list (cursor, filters, 404), summary (rollups only, pinned queries)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AgentSession, ModelRoute, Run
from telemetry.models import UsageEvent
from telemetry.services import usage_record, usage_rollups_rebuild
from tests.owners import op_user

pytestmark = pytest.mark.django_db

AT = dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.UTC)
ZERO_COUNTS = {
    "event_count": 0,
    "priced_event_count": 0,
    "unpriced_event_count": 0,
    "partial_cost_event_count": 0,
    "input_tokens": 0,
    "cached_input_tokens": 0,
    "cache_write_input_tokens": 0,
    "output_tokens": 0,
    "reasoning_tokens": 0,
    "total_tokens": 0,
    "input_tokens_unknown_events": 0,
    "cached_input_tokens_unknown_events": 0,
    "cache_write_input_tokens_unknown_events": 0,
    "output_tokens_unknown_events": 0,
    "reasoning_tokens_unknown_events": 0,
    "total_tokens_unknown_events": 0,
    "cost": "0.000000000000",
    "cost_partial": False,
}


def _report(**extra: Any) -> dict[str, Any]:
    return {
        "request_id": "req-1",
        "route": "gpt",
        "input_tokens": 1_000,
        "cached_input_tokens": 400,
        "output_tokens": 300,
        "reasoning_tokens": 100,
        "latency_ms": 420,
        "occurred_at": "2025-06-01T09:30:00Z",
        **extra,
    }


@pytest.mark.parametrize("path", ["/api/telemetry/usage/", "/api/telemetry/summary/"])
def test_telemetry_endpoints_require_authentication(anon_api: APIClient, path: str) -> None:
    assert anon_api.get(path).status_code == 401
    assert anon_api.post(path, {}, format="json").status_code == 401


def test_post_records_event_then_repeat_returns_it(api: APIClient, usage_session: AgentSession, usage_run: Run) -> None:
    body = _report(session=str(usage_session.id), run=str(usage_run.id))
    response = api.post("/api/telemetry/usage/", body, format="json")
    assert response.status_code == 201, response.json()
    event = UsageEvent.objects.get()
    assert response.json() == {
        "id": event.pk,
        "request_id": "req-1",
        "occurred_at": "2025-06-01T09:30:00Z",
        "day": "2025-06-01",
        "day_timezone": "UTC",
        "provider": "openai",
        "model": "gpt-4o",
        "route": "gpt",
        "session": str(usage_session.id),
        "run": str(usage_run.id),
        "input_tokens": 1_000,
        "cached_input_tokens": 400,
        "cache_write_input_tokens": 0,
        "output_tokens": 300,
        "reasoning_tokens": 100,
        "total_tokens": 1_300,
        "cost": "0.005000000000",
        "cost_partial": False,
        "latency_ms": 420,
        "created": response.json()["created"],
        "corrected_at": None,
    }
    again = api.post("/api/telemetry/usage/", body, format="json")
    assert again.status_code == 200
    assert again.json() == response.json()
    assert UsageEvent.objects.count() == 1


def test_post_repeat_with_other_usage_is_409(api: APIClient, priced_route: ModelRoute) -> None:
    assert api.post("/api/telemetry/usage/", _report(), format="json").status_code == 201
    response = api.post("/api/telemetry/usage/", _report(output_tokens=301), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert response.json()["fields"] == {
        "request_id": [
            "'req-1' was already recorded with different usage; give a new request_id for a new report "
            "(a correction goes through usage_correct)"
        ]
    }


@pytest.mark.parametrize(
    ("extra", "fields"),
    [
        ({"input_tokens": -3}, {"input_tokens": ["is -3; a token count is zero or more"]}),
        (
            {"output_tokens": 5, "reasoning_tokens": 6},
            {
                "reasoning_tokens": [
                    "6 is more than output_tokens 5; reasoning tokens are a part of the output, so count them in "
                    "output_tokens too"
                ]
            },
        ),
        (
            {"route": None, "provider": "nope", "model": "m"},
            {"provider": ["no provider 'nope'; use a name from /api/config/providers/"]},
        ),
        ({"session": "not-a-uuid"}, {"session": ["Must be a valid UUID."]}),
        ({"input_tokens": "many"}, {"input_tokens": ["A valid integer is required."]}),
        ({"request_id": ""}, {"request_id": ["This field may not be blank."]}),
        (
            {"occurred_at": "2999-01-01T00:00:00Z"},
            {"occurred_at": ["2999-01-01T00:00:00+00:00 is in the future; send the time the provider call finished"]},
        ),
    ],
)
@pytest.mark.fault
def test_post_rejects_bad_reports_with_field_errors(
    api: APIClient, priced_route: ModelRoute, extra: dict[str, Any], fields: dict[str, list[str]]
) -> None:
    response = api.post("/api/telemetry/usage/", _report(**extra), format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == fields
    assert response.json()["code"] == "invalid"
    assert not UsageEvent.objects.exists()


def test_post_body_must_be_an_object(api: APIClient, priced_route: ModelRoute) -> None:
    response = api.post("/api/telemetry/usage/", [1, 2], format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def _seed(session: AgentSession, count: int) -> list[UsageEvent]:
    return [
        usage_record(
            owner=op_user(),
            request_id=f"r{n}",
            route_alias="gpt",
            session_id=session.id if n % 2 else None,
            model="gpt-4o" if n % 3 else "gpt-4o-mini",
            input_tokens=n,
            occurred_at=AT + dt.timedelta(minutes=n),
        ).event
        for n in range(count)
    ]


def test_list_is_newest_first_with_cursor_pages(api: APIClient, usage_session: AgentSession) -> None:
    events = _seed(usage_session, 5)
    first = api.get("/api/telemetry/usage/?page_size=3").json()
    assert [e["request_id"] for e in first["results"]] == ["r4", "r3", "r2"]
    second = api.get(first["next"]).json()
    assert [e["request_id"] for e in second["results"]] == ["r1", "r0"]
    assert second["next"] is None
    assert len(events) == 5


def test_list_filters_by_session_provider_and_model(api: APIClient, usage_session: AgentSession) -> None:
    _seed(usage_session, 6)
    by_session = api.get(f"/api/telemetry/usage/?session={usage_session.id}").json()["results"]
    assert [e["request_id"] for e in by_session] == ["r5", "r3", "r1"]
    by_model = api.get("/api/telemetry/usage/?provider=openai&model=gpt-4o-mini").json()["results"]
    assert [e["request_id"] for e in by_model] == ["r3", "r0"]
    assert api.get("/api/telemetry/usage/?provider=anthropic").json()["results"] == []


@pytest.mark.parametrize("session", ["00000000-0000-0000-0000-000000000000", "bogus"])
def test_list_and_summary_of_unknown_session_are_404(api: APIClient, priced_route: ModelRoute, session: str) -> None:
    for path in ("/api/telemetry/usage/", "/api/telemetry/summary/"):
        response = api.get(f"{path}?session={session}")
        assert response.status_code == 404
        assert response.json() == {
            "detail": f"session: no session {session}",
            "code": "not_found",
            "fields": {"session": [f"no session {session}"]},
        }


def test_list_query_count_is_constant(
    api: APIClient, usage_session: AgentSession, django_assert_num_queries: Any
) -> None:
    _seed(usage_session, 3)
    # 1. one page of events joined to their route (cursor pagination: no COUNT).
    with django_assert_num_queries(1):
        assert len(api.get("/api/telemetry/usage/").json()["results"]) == 3
    _seed_more = [
        usage_record(
            owner=op_user(), request_id=f"x{n}", route_alias="gpt", session_id=usage_session.id, input_tokens=1
        ).event
        for n in range(20)
    ]
    assert len(_seed_more) == 20
    with django_assert_num_queries(1):
        assert len(api.get("/api/telemetry/usage/").json()["results"]) == 23
    # 1. the session exists, 2. one page of its events.
    with django_assert_num_queries(2):
        assert len(api.get(f"/api/telemetry/usage/?session={usage_session.id}").json()["results"]) == 21


def test_summary_with_no_events_is_all_zeros(api: APIClient, db: None) -> None:
    body = api.get("/api/telemetry/summary/").json()
    today = timezone.localdate(timezone.now(), dt.UTC)
    assert body["timezone"] == "UTC"
    assert body["day"] == today.isoformat()
    assert body["today"] == ZERO_COUNTS
    assert body["all_time"] == ZERO_COUNTS
    assert [d["day"] for d in body["last_7_days"]] == [
        (today - dt.timedelta(days=n)).isoformat() for n in range(6, -1, -1)
    ]
    assert len(body["last_30_days"]) == 30
    assert all({k: v for k, v in d.items() if k != "day"} == ZERO_COUNTS for d in body["last_30_days"])
    assert (body["by_model"], body["by_provider"], body["session"]) == ([], [], None)


def test_summary_reports_today_days_models_providers_and_session(
    api: APIClient, usage_session: AgentSession, replay_route: ModelRoute
) -> None:
    now = timezone.now()
    usage_record(
        owner=op_user(),
        request_id="a",
        route_alias="gpt",
        session_id=usage_session.id,
        input_tokens=1_000_000,
        occurred_at=now,
    )
    usage_record(
        owner=op_user(), request_id="b", route_alias="gpt", output_tokens=10, occurred_at=now - dt.timedelta(days=2)
    )
    usage_record(
        owner=op_user(), request_id="c", route_alias="replay", input_tokens=5, occurred_at=now - dt.timedelta(days=40)
    )
    body = api.get(f"/api/telemetry/summary/?session={usage_session.id}").json()
    assert body["today"]["input_tokens"] == 1_000_000
    assert body["today"]["cost"] == "2.500000000000"
    assert body["all_time"]["event_count"] == 3
    assert body["all_time"]["unpriced_event_count"] == 1
    assert body["all_time"]["cost"] == "2.500100000000"
    assert [d["output_tokens"] for d in body["last_7_days"]] == [0, 0, 0, 0, 10, 0, 0]
    assert sum(d["event_count"] for d in body["last_30_days"]) == 2
    assert [
        (m["provider"], m["model"], m["today"]["event_count"], m["all_time"]["event_count"]) for m in body["by_model"]
    ] == [
        ("openai", "gpt-4o", 1, 2),
        ("replay", "replay-1", 0, 1),
    ]
    assert [(p["provider"], p["all_time"]["total_tokens"]) for p in body["by_provider"]] == [
        ("openai", 1_000_010),
        ("replay", 5),
    ]
    assert body["session"] == {
        **ZERO_COUNTS,
        "session": str(usage_session.id),
        "event_count": 1,
        "priced_event_count": 1,
        "input_tokens": 1_000_000,
        "total_tokens": 1_000_000,
        "cost": "2.500000000000",
    }


def _bulk_events(session: AgentSession, count: int) -> None:
    """`count` events over the last 30 days and three models, rolled up by a rebuild."""
    now = timezone.now()
    UsageEvent.objects.bulk_create(
        (
            UsageEvent(
                request_id=f"bulk-{n}",
                owner_id=session.owner_id,
                occurred_at=(at := now - dt.timedelta(days=n % 30)),
                day=at.date(),
                day_timezone="UTC",
                provider="openai",
                model=f"model-{n % 3}",
                session=session,
                input_tokens=n % 1_000,
                output_tokens=n % 7,
                total_tokens=n % 1_000 + n % 7,
                cost_pico_usd=n,
            )
            for n in range(count)
        ),
        batch_size=1_000,
    )
    usage_rollups_rebuild()


@pytest.mark.parametrize("count", [10, 10_000])
def test_summary_query_count_does_not_grow_with_events(
    api: APIClient, usage_session: AgentSession, django_assert_num_queries: Any, count: int
) -> None:
    _bulk_events(usage_session, count)
    # 1. usage by day for the last 30 local days, 2. usage all time, 3. usage by agent,
    # 4. the session joined to its usage, 5. usage by purpose.
    with django_assert_num_queries(5):
        body = api.get(f"/api/telemetry/summary/?session={usage_session.id}").json()
    assert body["all_time"]["event_count"] == count
    assert body["session"]["event_count"] == count
    assert sum(d["event_count"] for d in body["last_30_days"]) == count
    # 1. usage by day, 2. usage all time, 3. usage by agent, 4. usage by purpose.
    with django_assert_num_queries(4):
        assert api.get("/api/telemetry/summary/").status_code == 200
