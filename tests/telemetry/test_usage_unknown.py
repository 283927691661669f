"""'Not reported' is not zero: NULL counts stored, counted per field in every rollup, read back as unknown.

The priced route (conftest) costs 2.50 input / 1.25 cache read / 10 output per million tokens and
has no cache-write price (cache writes then cost the input price).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from core.models import AgentSession, ModelRoute
from telemetry.models import UsageAllTime, UsageBySession, UsageEvent
from telemetry.selectors import UsageCounts, rollup_differences
from telemetry.services import usage_correct, usage_record, usage_rollups_rebuild
from tests.owners import op_user

pytestmark = pytest.mark.django_db

# micro-dollars per million tokens: tokens x these = pico-dollars.
INPUT, READ, OUTPUT = 2_500_000, 1_250_000, 10_000_000


def _record(session: AgentSession, request_id: str, counts: dict[str, int | None]) -> UsageEvent:
    return usage_record(
        owner=op_user(),
        request_id=request_id,
        route_alias="gpt",
        session_id=session.id,
        input_tokens=counts["input_tokens"],
        cached_input_tokens=counts["cached_input_tokens"],
        cache_write_input_tokens=counts["cache_write_input_tokens"],
        output_tokens=counts["output_tokens"],
        reasoning_tokens=counts["reasoning_tokens"],
    ).event


@pytest.fixture
def mixed(usage_session: AgentSession) -> tuple[UsageEvent, UsageEvent]:
    """One event that reported only its input (an Ollama-like cut), one that reported everything."""
    unknown = _record(
        usage_session,
        "cut",
        {
            "input_tokens": 1000,
            "cached_input_tokens": None,
            "cache_write_input_tokens": None,
            "output_tokens": None,
            "reasoning_tokens": None,
        },
    )
    known = _record(
        usage_session,
        "full",
        {
            "input_tokens": 2000,
            "cached_input_tokens": 500,
            "cache_write_input_tokens": 0,
            "output_tokens": 100,
            "reasoning_tokens": 0,
        },
    )
    return unknown, known


def test_unknown_counts_are_stored_null_and_priced_as_a_lower_bound(mixed: tuple[UsageEvent, UsageEvent]) -> None:
    unknown, known = (UsageEvent.objects.get(pk=event.pk) for event in mixed)
    assert (unknown.cached_input_tokens, unknown.output_tokens, unknown.total_tokens) == (None, None, None)
    # The 1000 input tokens may have been cache reads: priced at the lowest price they could have had.
    assert (unknown.cost_pico_usd, unknown.cost_partial) == (1000 * READ, True)
    assert (known.total_tokens, known.cost_partial) == (2100, False)
    assert known.cost_pico_usd == 500 * READ + 1500 * INPUT + 100 * OUTPUT
    assert str(unknown).endswith("unknown tokens")


def test_rollups_sum_the_known_and_count_the_unknown_per_field(
    mixed: tuple[UsageEvent, UsageEvent], usage_session: AgentSession
) -> None:
    for row in (UsageAllTime.objects.get(), UsageBySession.objects.get(session=usage_session)):
        assert (row.event_count, row.priced_event_count, row.partial_cost_event_count) == (2, 2, 1)
        assert (row.input_tokens, row.input_tokens_unknown_events) == (3000, 0)
        assert (row.cached_input_tokens, row.cached_input_tokens_unknown_events) == (500, 1)
        assert (row.cache_write_input_tokens, row.cache_write_input_tokens_unknown_events) == (0, 1)
        assert (row.output_tokens, row.output_tokens_unknown_events) == (100, 1)
        assert (row.reasoning_tokens, row.reasoning_tokens_unknown_events) == (0, 1)
        assert (row.total_tokens, row.total_tokens_unknown_events) == (2100, 1)
        assert row.cost_pico_usd == 1000 * READ + 500 * READ + 1500 * INPUT + 100 * OUTPUT
    assert rollup_differences() == []
    usage_rollups_rebuild()
    assert UsageAllTime.objects.get().output_tokens_unknown_events == 1


def test_a_correction_that_fills_in_a_count_moves_it_out_of_unknown(mixed: tuple[UsageEvent, UsageEvent]) -> None:
    unknown, _ = mixed
    corrected = usage_correct(event_id=unknown.pk, output_tokens=40)
    assert (corrected.output_tokens, corrected.total_tokens, corrected.cached_input_tokens) == (40, 1040, None)
    totals = UsageAllTime.objects.get()
    assert (totals.output_tokens, totals.output_tokens_unknown_events, totals.total_tokens) == (140, 0, 3140)
    assert totals.cached_input_tokens_unknown_events == 1  # left None: kept unknown, never forgotten
    assert rollup_differences() == []


def test_tokens_text_reads_unknown() -> None:
    counts = UsageCounts(
        event_count=2, input_tokens=30, output_tokens_unknown_events=2, cached_input_tokens_unknown_events=1
    )
    assert counts.tokens_text("input_tokens") == "30"
    assert counts.tokens_text("cached_input_tokens") == "0 (+1 unknown)"
    assert counts.tokens_text("output_tokens") == "unknown"


def test_api_records_null_as_unknown_and_reads_it_back(api: APIClient, priced_route: ModelRoute) -> None:
    body: dict[str, Any] = {"request_id": "ollama-1", "route": "gpt", "input_tokens": 26, "output_tokens": 11}
    body |= {"cached_input_tokens": None, "cache_write_input_tokens": None, "reasoning_tokens": None}
    response = api.post("/api/telemetry/usage/", body, format="json")
    assert response.status_code == 201, response.json()
    event = response.json()
    assert (event["cached_input_tokens"], event["cache_write_input_tokens"], event["reasoning_tokens"]) == (
        None,
        None,
        None,
    )
    assert (event["total_tokens"], event["cost"], event["cost_partial"]) == (37, "0.000142500000", True)
    listed = api.get("/api/telemetry/usage/").json()["results"]
    assert listed[0]["cached_input_tokens"] is None
    summary = api.get("/api/telemetry/summary/").json()["all_time"]
    assert summary["cached_input_tokens_unknown_events"] == summary["reasoning_tokens_unknown_events"] == 1
    assert summary["input_tokens_unknown_events"] == 0
    assert (summary["partial_cost_event_count"], summary["cost_partial"]) == (1, True)


def test_api_refuses_cache_counts_outside_the_input(api: APIClient, priced_route: ModelRoute) -> None:
    body = {"request_id": "bad", "route": "gpt", "input_tokens": 100, "cached_input_tokens": 60}
    response = api.post("/api/telemetry/usage/", body | {"cache_write_input_tokens": 50}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "cache_write_input_tokens": [
            "50 plus cached_input_tokens 60 is more than input_tokens 100; "
            "cache writes are a part of the input, so count them in input_tokens too"
        ]
    }
    assert not UsageEvent.objects.exists()


def test_admin_shows_unknown_and_partial_costs(
    operator: User, mixed: tuple[UsageEvent, UsageEvent], usage_session: AgentSession
) -> None:
    client = Client()
    client.force_login(operator)
    html = client.get("/admin/telemetry/usageevent/").content.decode()
    assert "at least 0.00125" in html  # the event that did not report its output
    assert "unknown / unknown" in html  # its cache reads and writes
    assert "100 (+1 unknown)" in html  # the all-time output total
    assert "at least 0.006625" in html  # the all-time cost
    session_rows = client.get("/admin/telemetry/usagebysession/").content.decode()
    assert "2100 (+1 unknown)" in session_rows
