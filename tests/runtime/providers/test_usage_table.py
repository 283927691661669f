"""Usage, exact: per provider kind, a recorded stream → the normalized usage fields → the cost in pico-dollars.

Each row streams a recording from `recordings/` through the official SDK against the local server,
takes the `Usage` event the adapter normalized, and prices it with one route's prices:
input $3, cache reads $0.30, cache writes $3.75, output $15 per million tokens (so a token priced
in the wrong category, or twice, changes the figure). None is a count the provider did not
report: it prices nothing and makes the cost partial (a lower bound), never a silent zero.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from core.conversation.events import ErrorEvent, RuntimeEvent, Usage
from core.conversation.services import session_create
from core.models import ModelRoute, Provider, ProviderKind, RunStatus
from runtime.turns import turn_run
from telemetry.models import UsageAllTime, UsageEvent
from telemetry.selectors import rollup_differences
from telemetry.services import UsageCost, usage_cost
from tests.owners import op_user
from tests.runtime.providers.conftest import SECRET, AdapterFactory, run
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db

PRICES = {
    "price_input_per_mtok": Decimal("3"),
    "price_cached_input_per_mtok": Decimal("0.30"),
    "price_cache_write_per_mtok": Decimal("3.75"),
    "price_output_per_mtok": Decimal("15"),
}
# The same prices in micro-dollars per million tokens: tokens x these = pico-dollars.
INPUT, READ, WRITE, OUTPUT = 3_000_000, 300_000, 3_750_000, 15_000_000


@dataclass(frozen=True)
class Row:
    kind: str
    path: str  # after the server URL
    recording: str
    usage: Usage | None  # None: no usage event at all
    pico_usd: int | None = None
    partial: bool = False
    key_env: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    cut_after: int | None = None


TABLE: dict[str, Row] = {
    # Responses: input_tokens already holds the 1280 cached reads; OpenAI writes its cache for free (0).
    "openai_responses": Row(
        ProviderKind.OPENAI,
        "/v1",
        "openai_responses/text.sse",
        Usage(
            input_tokens=1500,
            output_tokens=300,
            cached_input_tokens=1280,
            reasoning_tokens=256,
            cache_write_input_tokens=0,
        ),
        1280 * READ + 220 * INPUT + 300 * OUTPUT,
        key_env="OPENAI_API_KEY",
    ),
    # Chat Completions on OpenAI: prompt_tokens holds the 1024 cached reads (not added again).
    "openai_chat": Row(
        ProviderKind.OPENAI,
        "/v1",
        "openai_chat/text.sse",
        Usage(
            input_tokens=1200,
            output_tokens=40,
            cached_input_tokens=1024,
            reasoning_tokens=16,
            cache_write_input_tokens=0,
        ),
        1024 * READ + 176 * INPUT + 40 * OUTPUT,
        key_env="OPENAI_API_KEY",
        options={"api": "chat_completions"},
    ),
    # The same stream from another OpenAI-compatible server: it may bill cache writes and did not
    # say, so they are unknown; the 176 uncached tokens get the lowest price they could have had.
    "openai_compatible": Row(
        ProviderKind.OPENAI_COMPATIBLE,
        "/v1",
        "openai_chat/text.sse",
        Usage(input_tokens=1200, output_tokens=40, cached_input_tokens=1024, reasoning_tokens=16),
        1024 * READ + 176 * INPUT + 40 * OUTPUT,
        partial=True,
        key_env="LOCAL_KEY",
    ),
    # OpenRouter-style: cache writes reported inside prompt_tokens_details, all inside prompt_tokens.
    "openai_compatible_cache_write": Row(
        ProviderKind.OPENAI_COMPATIBLE,
        "/v1",
        "openai_compatible/cached.sse",
        Usage(
            input_tokens=2100,
            output_tokens=60,
            cached_input_tokens=1800,
            reasoning_tokens=20,
            cache_write_input_tokens=200,
        ),
        1800 * READ + 200 * WRITE + 100 * INPUT + 60 * OUTPUT,
        key_env="LOCAL_KEY",
    ),
    # llama.cpp's server streams no usage chunk: no usage at all, nothing priced.
    "openai_compatible_no_usage": Row(
        ProviderKind.OPENAI_COMPATIBLE, "/v1", "openai_chat/reasoning_no_usage.sse", None, key_env="LOCAL_KEY"
    ),
    # Anthropic: input 25 + cache reads 3000 + cache writes 1200, each priced once; thinking is
    # inside output_tokens and never reported apart (reasoning unknown, which prices nothing).
    "anthropic": Row(
        ProviderKind.ANTHROPIC,
        "",
        "anthropic/text.sse",
        Usage(input_tokens=4225, output_tokens=120, cached_input_tokens=3000, cache_write_input_tokens=1200),
        3000 * READ + 1200 * WRITE + 25 * INPUT + 120 * OUTPUT,
        key_env="ANTHROPIC_API_KEY",
    ),
    # Cut after message_start: the input counts arrived, the output (message_delta) never did.
    "anthropic_cut": Row(
        ProviderKind.ANTHROPIC,
        "",
        "anthropic/text.sse",
        Usage(input_tokens=4225, output_tokens=None, cached_input_tokens=3000, cache_write_input_tokens=1200),
        3000 * READ + 1200 * WRITE + 25 * INPUT,
        partial=True,
        key_env="ANTHROPIC_API_KEY",
        cut_after=9,
    ),
    # Gemini: the 1500 cached are inside promptTokenCount 2000; output = candidates 50 + thoughts 200.
    "google": Row(
        ProviderKind.GOOGLE,
        "",
        "google/text.sse",
        Usage(
            input_tokens=2000,
            output_tokens=250,
            cached_input_tokens=1500,
            reasoning_tokens=200,
            cache_write_input_tokens=0,
        ),
        1500 * READ + 500 * INPUT + 250 * OUTPUT,
        key_env="GEMINI_API_KEY",
    ),
    # Cut after the first chunk: its prompt count is final, its output count is not (unknown).
    "google_cut": Row(
        ProviderKind.GOOGLE,
        "",
        "google/text.sse",
        Usage(input_tokens=2000, output_tokens=None, cached_input_tokens=0, cache_write_input_tokens=0),
        2000 * INPUT,
        partial=True,
        key_env="GEMINI_API_KEY",
        cut_after=2,
    ),
    # Ollama reports no cached, cache-write or reasoning counts: unknown. Its 26 input tokens get
    # the lowest price an input token could have had (a cache read's), so the cost is a lower bound.
    "ollama": Row(
        ProviderKind.OLLAMA,
        "",
        "ollama/text.sse",
        Usage(input_tokens=26, output_tokens=11),
        26 * READ + 11 * OUTPUT,
        partial=True,
    ),
    # Cut before the usage chunk: nothing was reported, nothing is recorded.
    "ollama_cut": Row(ProviderKind.OLLAMA, "", "ollama/text.sse", None, cut_after=2),
}


def stream(make_adapter: AdapterFactory, row: Row) -> list[RuntimeEvent]:
    with ProviderServer(Reply.sse(row.recording, cut_after=row.cut_after)) as server:
        adapter = make_adapter(row.kind, server.url + row.path, key_env=row.key_env, options=row.options)
        return run(adapter)


def priced(usage: Usage, prices: dict[str, Decimal] = PRICES) -> UsageCost:
    return usage_cost(
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_input_tokens=usage.cache_write_input_tokens,
        output_tokens=usage.output_tokens,
        **prices,
    )


def usage_of(events: list[RuntimeEvent]) -> Usage | None:
    reported = [event for event in events if isinstance(event, Usage)]
    assert len(reported) <= 1, "a turn reports its usage once"
    return reported[0] if reported else None


@pytest.mark.parametrize("name", TABLE)
def test_recorded_stream_to_normalized_usage_to_cost(make_adapter: AdapterFactory, name: str) -> None:
    row = TABLE[name]
    events = stream(make_adapter, row)
    if row.cut_after is not None:
        assert isinstance(events[-1], ErrorEvent)
        assert events[-1].code == "stream_interrupted"
    usage = usage_of(events)
    assert usage == row.usage
    if usage is None:
        return
    assert priced(usage) == UsageCost(pico_usd=row.pico_usd, partial=row.partial)


# Uniform input prices: a token priced once costs the input price whatever its cache category, so
# the cost must be input x price + output x price exactly; a token counted twice would show.
UNIFORM = {
    "price_input_per_mtok": Decimal("3"),
    "price_cached_input_per_mtok": Decimal("3"),
    "price_cache_write_per_mtok": Decimal("3"),
    "price_output_per_mtok": Decimal("15"),
}


@pytest.mark.parametrize("name", [name for name, row in TABLE.items() if row.usage is not None])
def test_every_input_token_is_priced_exactly_once(make_adapter: AdapterFactory, name: str) -> None:
    usage = usage_of(stream(make_adapter, TABLE[name]))
    assert usage is not None
    assert usage.input_tokens is not None
    expected = usage.input_tokens * INPUT + (usage.output_tokens or 0) * OUTPUT
    assert priced(usage, UNIFORM) == UsageCost(pico_usd=expected, partial=usage.output_tokens is None)


def test_anthropic_cache_tokens_are_billed_once_not_twice_librechat_13795(make_adapter: AdapterFactory) -> None:
    """LibreChat #13795 billed Anthropic's cache reads and writes on top of an input that already held them.

    Anthropic reports them outside `input_tokens` (25 + 3000 read + 1200 written): the input is their
    sum, taken once, and the cost prices 25 + 3000 + 1200 tokens, not 3000 + 1200 of them a second time.
    """
    usage = usage_of(stream(make_adapter, TABLE["anthropic"]))
    assert usage is not None
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_input_tokens) == (4225, 3000, 1200)
    cost = priced(usage)
    assert cost.pico_usd == 3000 * READ + 1200 * WRITE + 25 * INPUT + 120 * OUTPUT
    billed_twice = 4225 * INPUT + 3000 * READ + 1200 * WRITE + 120 * OUTPUT
    assert cost.pico_usd != billed_twice


def test_gemini_cached_tokens_are_counted_once_librechat_12855(make_adapter: AdapterFactory) -> None:
    """LibreChat #12855 added Gemini's `cachedContentTokenCount` to a `promptTokenCount` that already held it.

    The input is the prompt count (2000), the 1500 cached are a part of it, and only 500 are priced
    at the input price; thoughts (200), outside `candidatesTokenCount` (50), are added to the output.
    """
    usage = usage_of(stream(make_adapter, TABLE["google"]))
    assert usage is not None
    assert usage.input_tokens == 2000  # not 2000 + 1500
    assert usage.cached_input_tokens == 1500
    assert usage.output_tokens == 250  # 50 candidates + 200 thoughts
    cost = priced(usage)
    assert cost.pico_usd == 1500 * READ + 500 * INPUT + 250 * OUTPUT
    double_counted = 1500 * READ + 2000 * INPUT + 250 * OUTPUT
    assert cost.pico_usd != double_counted


# --- through a turn: stored, rolled up and read back ---------------------------------------------


def live_route(server: ProviderServer, kind: str, path: str = "", key_env: str = "") -> ModelRoute:
    provider = Provider.objects.create(
        name="local", kind=kind, api_key_env=key_env, base_url=server.url + path, options={"max_retries": 0}
    )
    return ModelRoute.objects.create(
        alias="local",
        provider=provider,
        model_id="m-1",
        context_window_tokens=100_000,
        max_output_tokens=100,
        **PRICES,
    )


def test_ollama_turn_stores_unreported_counts_as_unknown_and_chat_says_so() -> None:
    owner = op_user()
    out = io.StringIO()
    with ProviderServer(Reply.sse("ollama/text.sse")) as server:
        live_route(server, ProviderKind.OLLAMA)
        call_command("chat", "new", "hi", "--route", "local", "--user", owner.username, stdout=out)
    assert (
        "usage: input 26 (cache read unknown, cache write unknown) · output 11 (reasoning unknown) · "
        "total 37 tokens · cost at least $0.0001728 (some counts were not reported)"
    ) in out.getvalue()
    event = UsageEvent.objects.get()
    assert (event.input_tokens, event.output_tokens, event.total_tokens) == (26, 11, 37)
    assert (event.cached_input_tokens, event.cache_write_input_tokens, event.reasoning_tokens) == (None, None, None)
    assert (event.cost_pico_usd, event.cost_partial) == (26 * READ + 11 * OUTPUT, True)
    totals = UsageAllTime.objects.get()
    assert (totals.input_tokens, totals.cached_input_tokens, totals.reasoning_tokens) == (26, 0, 0)
    assert (totals.input_tokens_unknown_events, totals.output_tokens_unknown_events) == (0, 0)
    assert totals.cached_input_tokens_unknown_events == 1
    assert totals.cache_write_input_tokens_unknown_events == 1
    assert totals.reasoning_tokens_unknown_events == 1
    assert totals.partial_cost_event_count == 1
    assert rollup_differences() == []
    # The bootstrap's usage view reads the same: sums of the known, counts of the unknown, a partial cost.
    client = APIClient()
    client.force_authenticate(user=owner)
    response = client.get("/api/bootstrap/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    telemetry = response.json()["telemetry"]
    for counts in (telemetry["all_time"], telemetry["by_model"][0]["all_time"]):
        assert (counts["input_tokens"], counts["input_tokens_unknown_events"]) == (26, 0)
        assert (counts["cached_input_tokens"], counts["cached_input_tokens_unknown_events"]) == (0, 1)
        assert counts["reasoning_tokens_unknown_events"] == counts["cache_write_input_tokens_unknown_events"] == 1
        assert (counts["cost"], counts["cost_partial"]) == ("0.000172800000", True)


def test_a_cut_stream_fails_the_run_and_records_the_usage_that_arrived(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    with ProviderServer(Reply.sse("anthropic/text.sse", cut_after=9)) as server:
        live_route(server, ProviderKind.ANTHROPIC, key_env="ANTHROPIC_API_KEY")
        session = session_create(owner=op_user(), route_alias="local")
        result = turn_run(session_id=session.pk, user_text="hi")
    assert result.run.status == RunStatus.FAILED
    event = UsageEvent.objects.get(run=result.run)
    assert (event.input_tokens, event.cached_input_tokens, event.cache_write_input_tokens) == (4225, 3000, 1200)
    assert (event.output_tokens, event.total_tokens) == (None, None)
    assert (event.cost_pico_usd, event.cost_partial) == (3000 * READ + 1200 * WRITE + 25 * INPUT, True)
    totals = UsageAllTime.objects.get()
    assert (totals.output_tokens_unknown_events, totals.total_tokens_unknown_events) == (1, 1)
    assert rollup_differences() == []
