"""usage_record: normalized events, exact Decimal cost, rollups in the same transaction, rejections."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from core.conversation.services import run_cancel, run_create, session_create, session_delete
from core.errors import ConflictError, InvalidInputError
from core.models import AgentSession, ModelRoute, Provider, ProviderKind, Run
from telemetry.models import UsageAllTime, UsageByDay, UsageBySession, UsageEvent
from telemetry.selectors import SessionUsage, UsageCounts, rollup_differences, usage_overview, usage_summary
from telemetry.services import usage_correct, usage_cost_pico_usd, usage_delete, usage_record
from tests.owners import op_user

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def _counts(row: Any) -> tuple[int, ...]:
    return (
        row.event_count,
        row.priced_event_count,
        row.input_tokens,
        row.cached_input_tokens,
        row.output_tokens,
        row.reasoning_tokens,
        row.total_tokens,
        row.cost_pico_usd,
    )


def test_record_stores_event_cost_and_every_rollup(usage_session: AgentSession, usage_run: Run) -> None:
    at = timezone.now() - dt.timedelta(minutes=1)
    result = usage_record(
        owner=op_user(),
        request_id="req-1",
        route_alias="gpt",
        run_id=usage_run.id,
        input_tokens=1_000,
        cached_input_tokens=400,
        output_tokens=300,
        reasoning_tokens=100,
        latency_ms=850,
        occurred_at=at,
    )
    event = result.event
    assert result.created is True
    # provider and model come from the route, the session from the run.
    assert (event.provider, event.model, event.session_id, event.run_id) == (
        "openai",
        "gpt-4o",
        usage_session.id,
        usage_run.id,
    )
    assert event.total_tokens == 1_300
    # 600 x 2.50 + 400 x 1.25 + 300 x 10.00 = 5000 USD per million tokens.
    assert event.cost == Decimal("0.005000000000")
    assert (event.day, event.day_timezone, event.latency_ms) == (at.date(), "UTC", 850)
    expected = (1, 1, 1_000, 400, 300, 100, 1_300, 5_000_000_000)
    assert _counts(UsageByDay.objects.get(day=at.date(), timezone="UTC", provider="openai", model="gpt-4o")) == expected
    assert _counts(UsageBySession.objects.get(session=usage_session)) == expected
    assert _counts(UsageAllTime.objects.get(provider="openai", model="gpt-4o")) == expected
    assert rollup_differences() == []


def test_repeated_request_id_returns_stored_event_and_counts_once(usage_session: AgentSession) -> None:
    first = usage_record(
        owner=op_user(), request_id="r", route_alias="gpt", session_id=usage_session.id, input_tokens=10
    )
    again = usage_record(
        owner=op_user(), request_id="r", route_alias="gpt", session_id=usage_session.id, input_tokens=10
    )
    assert (first.created, again.created, again.event.pk) == (True, False, first.event.pk)
    assert UsageEvent.objects.count() == 1
    assert UsageAllTime.objects.get().event_count == 1


def test_repeated_request_id_with_different_usage_is_a_conflict(priced_route: ModelRoute) -> None:
    usage_record(owner=op_user(), request_id="r", route_alias="gpt", input_tokens=10)
    with pytest.raises(ConflictError) as caught:
        usage_record(owner=op_user(), request_id="r", route_alias="gpt", input_tokens=11)
    assert caught.value.message == (
        "request_id: 'r' was already recorded with different usage; give a new request_id for a new report "
        "(a correction goes through usage_correct)"
    )
    assert UsageAllTime.objects.get().input_tokens == 10


def test_cost_arithmetic_is_exact_with_six_decimal_prices() -> None:
    # (123_457 - 100_001) x 0.15 + 100_001 x 0.075 + 98_765 x 0.6 = 70_277.475 per million tokens.
    cost = usage_cost_pico_usd(
        input_tokens=123_457,
        cached_input_tokens=100_001,
        output_tokens=98_765,
        price_input_per_mtok=Decimal("0.15"),
        price_cached_input_per_mtok=Decimal("0.075"),
        price_output_per_mtok=Decimal("0.6"),
    )
    assert cost == 70_277_475_000
    assert Decimal(cost).scaleb(-12) == Decimal("0.070277475")
    assert (
        usage_cost_pico_usd(
            input_tokens=7,
            cached_input_tokens=0,
            output_tokens=0,
            price_input_per_mtok=Decimal("3.141593"),
            price_cached_input_per_mtok=None,
            price_output_per_mtok=None,
        )
        == 21_991_151
    )


@pytest.mark.parametrize(
    ("prices", "tokens", "expected"),
    [
        # No cached price: cached tokens cost the input price.
        (("2", None, "8"), (1_000, 500, 10), 2_000_000_000 + 80_000_000),
        # No output price: an event without output is still priced (embeddings)…
        (("0.02", None, None), (5_000, 0, 0), 100_000_000),
        # …but one with output is not, rather than under-counted.
        (("0.02", None, None), (5_000, 0, 1), None),
        # No input price: only a fully cached input with a cached price can be priced.
        ((None, "1", "4"), (100, 100, 10), 100_000_000 + 40_000_000),
        ((None, "1", "4"), (100, 99, 10), None),
        ((None, None, None), (0, 0, 0), 0),
    ],
)
def test_partial_prices_price_only_events_they_fully_cover(
    prices: tuple[str | None, str | None, str | None], tokens: tuple[int, int, int], expected: int | None
) -> None:
    price_input, price_cached, price_output = (None if p is None else Decimal(p) for p in prices)
    assert (
        usage_cost_pico_usd(
            input_tokens=tokens[0],
            cached_input_tokens=tokens[1],
            output_tokens=tokens[2],
            price_input_per_mtok=price_input,
            price_cached_input_per_mtok=price_cached,
            price_output_per_mtok=price_output,
        )
        == expected
    )


def test_unpriced_event_is_counted_but_not_in_cost(replay_route: ModelRoute, priced_route: ModelRoute) -> None:
    usage_record(owner=op_user(), request_id="free", route_alias="replay", input_tokens=50, output_tokens=5)
    usage_record(owner=op_user(), request_id="paid", route_alias="gpt", input_tokens=1_000_000)
    usage_record(owner=op_user(), request_id="no-route", provider="openai", model="gpt-4o-mini", input_tokens=3)
    overview = usage_overview()
    assert overview.all_time.event_count == 3
    assert overview.all_time.unpriced_event_count == 2
    assert overview.all_time.cost == Decimal("2.500000000000")
    assert UsageEvent.objects.get(request_id="no-route").cost is None


@pytest.mark.slow
def test_thousands_of_awkward_costs_sum_exactly(priced_route: ModelRoute) -> None:
    ModelRoute.objects.filter(pk=priced_route.pk).update(
        price_input_per_mtok=Decimal("0.123457"),
        price_cached_input_per_mtok=Decimal("0.000001"),
        price_output_per_mtok=Decimal("987.654321"),
    )
    rng = random.Random(6)
    expected = Decimal(0)
    for index in range(1_000):
        inp = rng.randint(0, 200_000)
        cached = rng.randint(0, inp)
        out = rng.randint(0, 5_000)
        usage_record(
            owner=op_user(),
            request_id=f"e{index}",
            route_alias="gpt",
            input_tokens=inp,
            cached_input_tokens=cached,
            output_tokens=out,
        )
        expected += (
            (inp - cached) * Decimal("0.123457") + cached * Decimal("0.000001") + out * Decimal("987.654321")
        ) / 10**6
    assert UsageAllTime.objects.get().cost == expected
    assert usage_overview().all_time.cost == expected
    assert rollup_differences() == []


FUTURE = dt.datetime(2999, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"input_tokens": -1}, "input_tokens", "is -1; a token count is zero or more"),
        ({"output_tokens": -5}, "output_tokens", "is -5; a token count is zero or more"),
        ({"input_tokens": 2_000_000_000}, "input_tokens", "is 2000000000; at most 1,000,000,000 tokens per event"),
        (
            {"input_tokens": 3, "cached_input_tokens": 5},
            "cached_input_tokens",
            "5 is more than input_tokens 3; cached input tokens are a part of the input, so count them in "
            "input_tokens too",
        ),
        (
            {"output_tokens": 2, "reasoning_tokens": 9},
            "reasoning_tokens",
            "9 is more than output_tokens 2; reasoning tokens are a part of the output, so count them in "
            "output_tokens too",
        ),
        ({"latency_ms": -1}, "latency_ms", "is -1; give 0 to 86400000 milliseconds"),
        (
            {"occurred_at": FUTURE},
            "occurred_at",
            "2999-01-01T00:00:00+00:00 is in the future; send the time the provider call finished",
        ),
        (
            {"occurred_at": dt.datetime(2025, 1, 1, 12, 0)},
            "occurred_at",
            "has no timezone; send it in UTC (…Z) or with an offset",
        ),
        ({"request_id": "  "}, "request_id", "must be 1 to 128 characters"),
        ({"request_id": "x" * 129}, "request_id", "must be 1 to 128 characters"),
        ({"provider": "nope"}, "provider", "no provider 'nope'; use a name from /api/config/providers/"),
        ({"route_alias": "nope"}, "route", "no model route 'nope'; use an alias from /api/config/routes/"),
        (
            {"route_alias": "replay"},
            "route",
            "'replay' belongs to provider 'replay', not 'openai'; send the route the call went through",
        ),
        (
            {"session_id": "00000000-0000-0000-0000-000000000000"},
            "session",
            "no session 00000000-0000-0000-0000-000000000000; give the id of an existing session",
        ),
        ({"run_id": "not-a-uuid"}, "run", "no run not-a-uuid; give the id of an existing run"),
    ],
)
@pytest.mark.fault
def test_record_rejects_impossible_values(
    priced_route: ModelRoute, replay_route: ModelRoute, kwargs: dict[str, Any], field: str, problem: str
) -> None:
    report: dict[str, Any] = {"request_id": "r", "provider": "openai", "model": "gpt-4o", **kwargs}
    with pytest.raises(InvalidInputError) as caught:
        usage_record(owner=op_user(), **report)
    assert caught.value.fields == {field: [problem]}
    assert caught.value.message == f"{field}: {problem}"
    assert not UsageEvent.objects.exists()
    assert not UsageAllTime.objects.exists()


def test_record_requires_provider_and_model_without_route(db: None) -> None:
    with pytest.raises(InvalidInputError) as caught:
        usage_record(owner=op_user(), request_id="r")
    assert caught.value.fields == {
        "provider": ["required; name a configured provider (or give a route)"],
        "model": ["required; give the model name the provider reported (or a route)"],
    }


@pytest.mark.fault
def test_record_rejects_run_of_another_session(usage_session: AgentSession, usage_run: Run) -> None:
    other = session_create(owner=op_user(), title="other", route_alias="gpt")
    with pytest.raises(InvalidInputError) as caught:
        usage_record(
            owner=op_user(), request_id="r", route_alias="gpt", session_id=other.id, run_id=usage_run.id, input_tokens=1
        )
    assert caught.value.fields == {
        "run": [f"run {usage_run.id} belongs to session {usage_session.id}, not {other.id}; send the run's session"]
    }
    assert not UsageEvent.objects.exists()


def test_reported_model_may_differ_from_the_route_model(priced_route: ModelRoute) -> None:
    event = usage_record(
        owner=op_user(), request_id="r", route_alias="gpt", model="gpt-4o-2024-08-06", input_tokens=1_000_000
    ).event
    assert (event.provider, event.model, event.cost) == ("openai", "gpt-4o-2024-08-06", Decimal("2.500000000000"))


@override_settings(AGENTCHAT_TIMEZONE="America/Los_Angeles")
def test_day_is_cut_in_the_configured_timezone(priced_route: ModelRoute) -> None:
    # 06:30 UTC on 10 March is still 9 March in Los Angeles (UTC-7 after the DST switch).
    usage_record(
        owner=op_user(),
        request_id="late",
        route_alias="gpt",
        input_tokens=1,
        occurred_at=dt.datetime(2025, 3, 10, 6, 30, tzinfo=UTC),
    )
    usage_record(
        owner=op_user(),
        request_id="next",
        route_alias="gpt",
        input_tokens=2,
        occurred_at=dt.datetime(2025, 3, 10, 7, 30, tzinfo=UTC),
    )
    rows = list(UsageByDay.objects.order_by("day").values_list("timezone", "day", "input_tokens"))
    assert rows == [
        ("America/Los_Angeles", dt.date(2025, 3, 9), 1),
        ("America/Los_Angeles", dt.date(2025, 3, 10), 2),
    ]
    with override_settings(AGENTCHAT_TIMEZONE="Asia/Tokyo"):
        usage_record(
            owner=op_user(),
            request_id="tokyo",
            route_alias="gpt",
            input_tokens=4,
            occurred_at=dt.datetime(2025, 3, 9, 15, 30, tzinfo=UTC),  # 00:30 on 10 March in Tokyo
        )
    assert UsageByDay.objects.get(timezone="Asia/Tokyo").day == dt.date(2025, 3, 10)
    assert rollup_differences() == []


@override_settings(AGENTCHAT_TIMEZONE="Pacific/Kiritimati")
def test_summary_today_is_the_local_day(priced_route: ModelRoute) -> None:
    usage_record(owner=op_user(), request_id="now", route_alias="gpt", input_tokens=7)
    summary = usage_summary()
    local_today = timezone.localtime(timezone.now(), dt.timezone(dt.timedelta(hours=14))).date()
    assert (summary.timezone, summary.day) == ("Pacific/Kiritimati", local_today)
    assert summary.today.input_tokens == 7
    assert summary.last_7_days[-1].input_tokens == 7


def test_correct_moves_the_event_in_every_rollup(usage_session: AgentSession) -> None:
    old_day = dt.datetime(2025, 5, 1, 12, tzinfo=UTC)
    event = usage_record(
        owner=op_user(),
        request_id="r",
        route_alias="gpt",
        session_id=usage_session.id,
        input_tokens=100,
        output_tokens=10,
        occurred_at=old_day,
    ).event
    usage_record(owner=op_user(), request_id="s", route_alias="gpt", input_tokens=1, occurred_at=old_day)
    # Prices changed since: the correction keeps the prices the event was recorded with.
    ModelRoute.objects.filter(alias="gpt").update(price_input_per_mtok=Decimal("1000"))
    corrected = usage_correct(
        event_id=event.pk,
        model="gpt-4o-mini",
        input_tokens=1_000,
        cached_input_tokens=1_000,
        occurred_at=dt.datetime(2025, 5, 2, 12, tzinfo=UTC),
    )
    assert corrected.cost_pico_usd == 1_000 * 1_250_000 + 10 * 10_000_000
    assert corrected.corrected_at is not None
    assert rollup_differences() == []
    day_rows = list(UsageByDay.objects.order_by("day").values_list("day", "model", "event_count", "input_tokens"))
    assert day_rows == [(dt.date(2025, 5, 1), "gpt-4o", 1, 1), (dt.date(2025, 5, 2), "gpt-4o-mini", 1, 1_000)]
    assert UsageBySession.objects.get().input_tokens == 1_000


def test_correct_rejects_impossible_counts_and_keeps_everything(usage_session: AgentSession) -> None:
    event = usage_record(
        owner=op_user(), request_id="r", route_alias="gpt", input_tokens=10, cached_input_tokens=5
    ).event
    with pytest.raises(InvalidInputError, match=r"^cached_input_tokens: 5 is more than input_tokens 4;"):
        usage_correct(event_id=event.pk, input_tokens=4)
    assert UsageEvent.objects.get().input_tokens == 10
    assert UsageAllTime.objects.get().input_tokens == 10


def test_delete_subtracts_and_drops_empty_rollups(usage_session: AgentSession) -> None:
    first = usage_record(
        owner=op_user(), request_id="a", route_alias="gpt", session_id=usage_session.id, input_tokens=3
    ).event
    usage_record(owner=op_user(), request_id="b", route_alias="gpt", input_tokens=4)
    usage_delete(event_id=first.pk)
    assert rollup_differences() == []
    assert not UsageBySession.objects.exists()
    assert UsageAllTime.objects.get().input_tokens == 4
    assert usage_summary(session_id=usage_session.id).session == SessionUsage(session=usage_session.id)


def test_usage_survives_session_deletion_in_day_and_all_time(usage_session: AgentSession, usage_run: Run) -> None:
    usage_record(owner=op_user(), request_id="a", route_alias="gpt", run_id=usage_run.id, input_tokens=3)
    run_cancel(run_id=usage_run.id, reason="done with it")
    session_delete(session_id=usage_session.id)
    event = UsageEvent.objects.get()
    assert (event.session_id, event.run_id, event.input_tokens) == (None, None, 3)
    assert not UsageBySession.objects.exists()
    assert UsageAllTime.objects.get().input_tokens == 3
    assert rollup_differences() == []


def test_overview_reads_zeros_without_events(db: None) -> None:
    overview = usage_overview()
    assert (overview.today, overview.all_time, overview.by_model) == (UsageCounts(), UsageCounts(), [])
    assert overview.today.cost == Decimal(0)


def test_overview_is_one_query(priced_route: ModelRoute, django_assert_num_queries: Any) -> None:
    Provider.objects.create(name="anthropic", kind=ProviderKind.ANTHROPIC)
    usage_record(owner=op_user(), request_id="a", route_alias="gpt", input_tokens=3)
    usage_record(owner=op_user(), request_id="b", provider="anthropic", model="claude", input_tokens=5)
    # 1. today's rows of usage by day UNION ALL the all-time rows.
    with django_assert_num_queries(1):
        overview = usage_overview()
    assert [(m.provider, m.model, m.today.input_tokens) for m in overview.by_model] == [
        ("anthropic", "claude", 5),
        ("openai", "gpt-4o", 3),
    ]
    assert overview.today.input_tokens == 8


@override_settings(AGENTCHAT_TIMEZONE="Asia/Tokyo")
def test_overview_today_is_only_todays_rows_in_the_configured_timezone(priced_route: ModelRoute) -> None:
    usage_record(owner=op_user(), request_id="now", route_alias="gpt", input_tokens=7)
    three_days_ago = timezone.now() - dt.timedelta(days=3)
    usage_record(owner=op_user(), request_id="old", route_alias="gpt", input_tokens=100, occurred_at=three_days_ago)
    with override_settings(AGENTCHAT_TIMEZONE="UTC"):  # the same day's rows, cut in another timezone
        usage_record(owner=op_user(), request_id="utc", route_alias="gpt", input_tokens=1_000)
    overview = usage_overview()
    assert (overview.timezone, overview.today.input_tokens, overview.all_time.input_tokens) == ("Asia/Tokyo", 7, 1_107)
    assert [(m.model, m.today.event_count, m.all_time.event_count) for m in overview.by_model] == [("gpt-4o", 1, 3)]


def test_run_created_through_the_service_links(usage_session: AgentSession) -> None:
    run = run_create(session_id=usage_session.id)
    event = usage_record(
        owner=op_user(), request_id="r", route_alias="gpt", session_id=usage_session.id, run_id=run.id
    ).event
    assert (event.run_id, event.session_id) == (run.id, usage_session.id)
