"""The nine workloads of the benchmark. Each returns result rows; see bench/README.md.

Every figure with a target is a ratio of two operations measured in the same process, in the
same repetition, in alternating (rotated) order, and every figure is the median over the
repetitions. Code that another part of the project has not written yet is looked up by its
documented name; when it is missing the row says `not available: <what>` instead of a number.
"""

from __future__ import annotations

import cProfile
import functools
import importlib
import io
import itertools
import os
import pstats
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from django.db import connection

from bench import fixtures
from bench.db import BENCH_USERNAME, ROUTE_ALIAS, Databases, bulk_insert
from bench.harness import Detail, Row, Target, median, paired_ratio, rotated, row_with_target, timed, unavailable
from bench.importing import w_import
from bench.mcp_roundtrip import w16_mcp_roundtrip
from bench.page_paint import w17_page_paint
from bench.peers import AgentsSession, LangGraphThread, RawAppender, message_text, synchronous_of
from bench.turn_stream import w10_turn_stream, w12_sse_stream

ROOT = Path(__file__).resolve().parent.parent
STORAGE_LEVEL = "NORMAL"
STORAGE_SERVICE_TAIL = 1_000


@dataclass(frozen=True)
class Sizes:
    """Data sizes and repetition counts; `QUICK` is for development and the tests."""

    reps: int = 7
    # The append's peers are measured over more repetitions: one slow fsync or thread hop moves a
    # per-repetition ratio by a third on a shared machine.
    append_reps: int = 11
    append_ops: int = 500
    append_ops_full: int = 300  # at FULL every commit waits for an fsync
    checkpoint_small: int = 100
    checkpoint_large: int = 10_000
    checkpoint_ops: int = 20
    history_ops: int = 5
    restore_small: int = 200
    restore_large: int = 20_000
    restore_tail: int = 50
    restore_ops: int = 40
    path_small: int = 100
    path_large: int = 10_000
    path_tail: int = 50
    path_ops: int = 40
    bootstrap_sessions: int = 1_000
    bootstrap_messages: int = 100_000
    bootstrap_usage: int = 100_000
    bootstrap_memories: int = 10_000
    bootstrap_requests: int = 10
    telemetry_small: int = 1_000
    telemetry_large: int = 1_000_000
    summary_ops: int = 30
    memory_small: int = 1_000
    memory_large: int = 100_000
    search_ops: int = 20
    concurrency_procs: int = 4
    concurrency_appends: int = 1_000
    concurrency_reps: int = 3
    storage_small: int = 2_000
    storage_large: int = 20_000
    stream_tokens: int = 20_000
    import_conversations: int = 1_000
    import_messages: int = 100_000
    stream_reps: int = 5
    mcp_calls: int = 200
    history_small: int = 10_000
    history_large: int = 1_000_000
    history_search_ops: int = 20
    history_like_ops: int = 2


QUICK = Sizes(
    import_conversations=20,
    import_messages=400,
    reps=3,
    append_reps=3,
    append_ops=20,
    append_ops_full=10,
    checkpoint_small=10,
    checkpoint_large=200,
    checkpoint_ops=5,
    history_ops=2,
    restore_small=20,
    restore_large=400,
    restore_tail=5,
    restore_ops=5,
    path_small=20,
    path_large=400,
    path_tail=5,
    path_ops=5,
    bootstrap_sessions=10,
    bootstrap_messages=200,
    bootstrap_usage=200,
    bootstrap_memories=50,
    bootstrap_requests=3,
    telemetry_small=100,
    telemetry_large=2_000,
    summary_ops=5,
    memory_small=100,
    memory_large=1_000,
    search_ops=5,
    concurrency_procs=2,
    concurrency_appends=20,
    concurrency_reps=1,
    storage_small=20,
    storage_large=200,
    stream_tokens=2_000,
    stream_reps=2,
    mcp_calls=20,
    history_small=1_000,
    history_large=10_000,
    history_search_ops=5,
    history_like_ops=1,
)


@dataclass
class Ctx:
    """What a workload needs: the level, the sizes, the databases and where peers put their files."""

    level: str
    sizes: Sizes
    dbs: Databases
    work: Path
    profile: bool = True

    @property
    def vendor(self) -> str:
        return self.dbs.vendor

    @property
    def sqlite(self) -> bool:
        return self.vendor == "sqlite"

    def peer_file(self, name: str) -> Path:
        path = self.work / f"peer-{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return path

    def row(self, workload: int, key: str, title: str, **fields: Any) -> Row:
        return Row(workload=workload, key=key, title=title, level=self.level, vendor=self.vendor, **fields)

    def judged(self, row: Row, target: Target) -> Row:
        """Targets apply on SQLite; PostgreSQL figures are reported without one."""
        return row_with_target(row, target if self.sqlite else None)

    def no_peer(self, workload: int, key: str, title: str) -> Row:
        return self.row(workload, key, title, status="n/a: the peers store in SQLite only")

    def profile_failed(self, row: Row, fn: Callable[[], object], count: int) -> None:
        if self.profile and row.passed is False:
            row.profile = profile_text(fn, count)

    def ratio_row(
        self,
        workload: int,
        key: str,
        title: str,
        seconds: Mapping[str, Sequence[float]],
        over: tuple[str, str] = ("large", "large ms"),
        under: tuple[str, str] = ("small", "small ms"),
        *,
        target: Target | None = None,
        profiled: tuple[Callable[[], object], int] | None = None,
        over_first: bool = False,
        more: Detail | None = None,
    ) -> Row:
        """A row whose figure is the paired ratio of two timings (each `(name in seconds, label in detail)`).

        The detail shows both timings in ms (the smaller side first unless `over_first`), then `more`;
        with a `target` the row is judged, and `profiled` (the function, its op count) is profiled
        when it fails.
        """
        shown = (over, under) if over_first else (under, over)
        row = self.row(
            workload,
            key,
            title,
            figure=paired_ratio(seconds[over[0]], seconds[under[0]]),
            reps=self.sizes.reps,
            detail={**{label: ms(seconds[name]) for name, label in shown}, **(more or {})},
        )
        if target is not None:
            row = self.judged(row, target)
        if profiled is not None:
            self.profile_failed(row, *profiled)
        return row


def find(name: str, modules: Sequence[str]) -> Callable[..., Any] | None:
    """The public function `name` from the first of `modules` that defines it, or None."""
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        candidate = getattr(module, name, None)
        if callable(candidate):
            return candidate  # type: ignore[no-any-return]
    return None


def profile_text(fn: Callable[[], object], count: int, top: int = 40) -> str:
    """The top functions by cumulative time, then by own time, over `count` calls of `fn`."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top // 2)
    lines = [line.rstrip().replace(str(ROOT) + "/", "") for line in out.getvalue().splitlines()]
    return "\n".join(line for line in lines if line.strip())


def per_op_seconds(fns: dict[str, Callable[[], object]], ops: int, reps: int) -> dict[str, list[float]]:
    """Seconds per call of each function, one list entry per repetition, in rotated order."""
    for fn in fns.values():  # warm caches and connections
        timed(fn, max(1, ops // 10))
    results: dict[str, list[float]] = {name: [] for name in fns}
    for rep in range(reps):
        for name in rotated(list(fns), rep):
            results[name].append(timed(fns[name], ops))
    return results


def alternate(
    ctx: Ctx, builds: dict[str, tuple[str, Callable[[], dict[str, Any]]]], fn: Callable[[], object], ops: int
) -> dict[str, list[float]]:
    """Seconds per call of `fn` on each of several read-only databases.

    SQLite: each database is built (or found) once, then every repetition switches to each in
    rotated order. PostgreSQL holds one data set at a time: each is loaded in turn and measured
    over all the repetitions (figures only there, no target).
    """
    seconds: dict[str, list[float]] = {name: [] for name in builds}
    if ctx.sqlite:
        for fixture_name, build in builds.values():
            ctx.dbs.fixture(fixture_name, build, shared=True)
        for rep in range(ctx.sizes.reps):
            for name in rotated(list(builds), rep):
                ctx.dbs.reopen(builds[name][0])
                timed(fn, max(1, ops // 5))
                seconds[name].append(timed(fn, ops))
        return seconds
    for name, (fixture_name, build) in builds.items():
        ctx.dbs.fixture(fixture_name, build)
        timed(fn, max(1, ops // 5))
        seconds[name] = [timed(fn, ops) for _ in range(ctx.sizes.reps)]
    return seconds


def ms(values: Sequence[float]) -> float:
    return median(values) * 1000


# --- 1. Append ------------------------------------------------------------------------------


def _bench_owner() -> Any:
    """The account the benchmark's sessions belong to (made once per fresh database)."""
    from django.contrib.auth import get_user_model

    user, _ = get_user_model()._default_manager.get_or_create(username="bench")
    return user


def w1_append(ctx: Ctx) -> list[Row]:
    from core.conversation.services import message_append, session_create

    sizes = ctx.sizes
    ctx.dbs.fresh("append")
    session_id = str(session_create(owner=_bench_owner(), title="append", route_alias=ROUTE_ALIAS).pk)
    counter = itertools.count(1)

    def ours() -> None:
        message_append(session_id=session_id, role="user", content=message_text(next(counter)))

    fns: dict[str, Callable[[], object]] = {"ours": ours}
    peers: list[Any] = []
    if ctx.sqlite:
        graph = LangGraphThread(ctx.peer_file("append-langgraph"), ctx.level)
        agents = AgentsSession(ctx.peer_file("append-agents"), ctx.level)
        raw = RawAppender(ctx.peer_file("append-raw"), ctx.level)
        peers = [graph, agents, raw]
        fns["langgraph"] = lambda: graph.put([{"role": "user", "content": message_text(next(counter))}])
        fns["agents"] = lambda: agents.add([{"role": "user", "content": message_text(next(counter))}])
        fns["raw"] = lambda: raw.append("user", message_text(next(counter)))
    ops = sizes.append_ops_full if ctx.level == "FULL" else sizes.append_ops
    try:
        seconds = per_op_seconds(fns, ops, sizes.append_reps)
        if ctx.sqlite:
            levels = {synchronous_of(graph.conn), synchronous_of(raw.conn), *agents.synchronous_levels()}
            if levels != {ctx.level}:
                raise RuntimeError(f"peer connections run at synchronous {levels}, expected {ctx.level}")
    finally:
        for peer in peers:
            peer.close()
    throughput = {name: [1 / value for value in values] for name, values in seconds.items()}
    ours_detail: Detail = {"ours ops/s": median(throughput["ours"])}
    title = "append 1 msg/txn: message_append ops/s"
    rows = [ctx.row(1, "1.ours", title, figure=median(throughput["ours"]), unit="ops/s", reps=sizes.append_reps)]
    # The append runs through transaction.atomic and Django's cursor (no bypass): it must keep up with
    # SQLiteSession.add_items (a plain sqlite3 INSERT); the LangGraph ratio is reported, not a target.
    agents_target = Target(">=", 0.8) if ctx.level == "FULL" else Target(">=", 1.0)
    comparisons = [
        ("langgraph", "append vs LangGraph SqliteSaver.put (1-msg checkpoint)", None),
        ("agents", "append vs OpenAI Agents SQLiteSession.add_items (1 item)", agents_target),
        ("raw", "append vs raw sqlite3 (same logical append)", None),
    ]
    for name, peer_title, target in comparisons:
        key = f"1.{name}"
        if not ctx.sqlite:
            rows.append(ctx.no_peer(1, key, peer_title))
            continue
        row = ctx.row(
            1,
            key,
            peer_title,
            figure=paired_ratio(throughput["ours"], throughput[name]),
            reps=sizes.append_reps,
            detail={**ours_detail, f"{name} ops/s": median(throughput[name])},
        )
        if target is not None:
            row = ctx.judged(row, target)
        ctx.profile_failed(row, ours, ops)
        rows.append(row)
    return rows


# --- 2. Checkpoint write --------------------------------------------------------------------

CHECKPOINT_SUMMARY = "The user is planning a trip; decisions so far: dates fixed, hotel booked, budget 2,000 EUR. " * 5
CHECKPOINT_STATE = {"cursor": {"step": 12, "tool_calls": ["search", "book"]}, "notes": ["keep replies short"] * 5}


def w2_checkpoint(ctx: Ctx) -> list[Row]:
    sizes = ctx.sizes
    title = f"checkpoint write {sizes.checkpoint_large:,} vs {sizes.checkpoint_small:,} msgs"
    checkpoint_create = find("checkpoint_create", ["core.conversation.services"])
    if checkpoint_create is None:
        return [unavailable(2, "2.ours", title, ctx.level, ctx.vendor, "core.conversation.services.checkpoint_create")]

    def build() -> dict[str, Any]:
        return {
            "small": fixtures.session_with_messages(sizes.checkpoint_small, "small"),
            "large": fixtures.session_with_messages(sizes.checkpoint_large, "large"),
        }

    meta = ctx.dbs.fixture(f"checkpoint-{sizes.checkpoint_large}", build)

    def writer(session_id: str, last_seq: int) -> Callable[[], object]:
        # A compaction checkpoint that keeps the last 20 messages: it also sums their tokens.
        def write() -> object:
            return checkpoint_create(
                session_id=session_id,
                through_seq=max(0, last_seq - 20),
                reason="compaction",
                summary=CHECKPOINT_SUMMARY,
                state=CHECKPOINT_STATE,
            )

        return write

    fns = {
        "small": writer(meta["small"], sizes.checkpoint_small),
        "large": writer(meta["large"], sizes.checkpoint_large),
    }
    seconds = per_op_seconds(fns, sizes.checkpoint_ops, sizes.reps)
    row = ctx.ratio_row(
        2, "2.ours", title, seconds, target=Target("<=", 1.2), profiled=(fns["large"], sizes.checkpoint_ops)
    )
    rows = [row]

    peer_title = f"LangGraph put, state = full history ({sizes.checkpoint_large:,} vs {sizes.checkpoint_small:,})"
    if not ctx.sqlite:
        return [*rows, ctx.no_peer(2, "2.langgraph", peer_title)]
    graph_small = LangGraphThread(ctx.peer_file("checkpoint-langgraph"), ctx.level, thread_id="small")
    graph_large = LangGraphThread(ctx.peer_file("checkpoint-langgraph-large"), ctx.level, thread_id="large")
    history_small = [{"role": "user", "content": message_text(seq)} for seq in range(1, sizes.checkpoint_small + 1)]
    history_large = [{"role": "user", "content": message_text(seq)} for seq in range(1, sizes.checkpoint_large + 1)]
    try:
        peer_seconds = per_op_seconds(
            {"small": lambda: graph_small.put(history_small), "large": lambda: graph_large.put(history_large)},
            sizes.history_ops,
            sizes.reps,
        )
    finally:
        graph_small.close()
        graph_large.close()
    rows.append(ctx.ratio_row(2, "2.langgraph", peer_title, peer_seconds))
    return rows


# --- 3. Restore -----------------------------------------------------------------------------


def w3_restore(ctx: Ctx) -> list[Row]:
    sizes = ctx.sizes
    title = f"restore {sizes.restore_large:,} vs {sizes.restore_small:,} msgs"
    peer_title = f"restore vs SQLiteSession.get_items({sizes.restore_tail}) at {sizes.restore_large:,}"
    session_restore = find("session_restore", ["core.conversation.selectors", "core.conversation.services"])
    checkpoint_create = find("checkpoint_create", ["core.conversation.services"])
    if session_restore is None or checkpoint_create is None:
        missing = "core.conversation.selectors.session_restore" if session_restore is None else "checkpoint_create"
        return [
            unavailable(3, "3.ours", title, ctx.level, ctx.vendor, missing),
            unavailable(3, "3.agents", peer_title, ctx.level, ctx.vendor, missing),
        ]

    def build() -> dict[str, Any]:
        meta: dict[str, Any] = {}
        for name, count in (("small", sizes.restore_small), ("large", sizes.restore_large)):
            session_id = fixtures.session_with_messages(count, name)
            checkpoint_create(
                session_id=session_id,
                through_seq=count - sizes.restore_tail,
                reason="compaction",
                summary=CHECKPOINT_SUMMARY,
                state=CHECKPOINT_STATE,
            )
            meta[name] = session_id
        return meta

    meta = ctx.dbs.fixture(f"restore-{sizes.restore_large}", build, shared=True)

    def restorer(session_id: str) -> Callable[[], object]:
        def restore() -> object:
            result = session_restore(session_id=session_id)
            if len(result.messages) != sizes.restore_tail:
                raise RuntimeError(f"restore returned {len(result.messages)} messages, expected {sizes.restore_tail}")
            return result

        return restore

    fns: dict[str, Callable[[], object]] = {"small": restorer(meta["small"]), "large": restorer(meta["large"])}
    agents: AgentsSession | None = None
    if ctx.sqlite:
        agents = AgentsSession(ctx.peer_file("restore-agents"), ctx.level)
        items = [{"role": "user", "content": message_text(seq)} for seq in range(1, sizes.restore_large + 1)]
        for start in range(0, len(items), 1_000):
            agents.add(items[start : start + 1_000])
        peer = agents

        def get_items() -> object:
            got = peer.get(sizes.restore_tail)
            if len(got) != sizes.restore_tail:
                raise RuntimeError(f"get_items returned {len(got)} items")
            return got

        fns["agents"] = get_items
    try:
        seconds = per_op_seconds(fns, sizes.restore_ops, sizes.reps)
    finally:
        if agents is not None:
            agents.close()
    profiled = (fns["large"], sizes.restore_ops)
    row = ctx.ratio_row(3, "3.ours", title, seconds, target=Target("<=", 1.3), profiled=profiled)
    if not ctx.sqlite:
        return [row, ctx.no_peer(3, "3.agents", peer_title)]
    peer_row = ctx.ratio_row(
        3,
        "3.agents",
        peer_title,
        seconds,
        ("large", "restore ms"),
        ("agents", "get_items ms"),
        target=Target("<=", 2.0),
        profiled=profiled,
        over_first=True,
    )
    return [row, peer_row]


# --- 4. Bootstrap ---------------------------------------------------------------------------

MEMORY_KINDS = ("fact", "preference", "instruction")
PROVIDERS_MODELS = (("openai", "gpt-4.1"), ("openai", "gpt-4.1-mini"), ("anthropic", "claude-sonnet-4"))


def usage_load(count: int, session_ids: Sequence[str], *, days: int = 60) -> int:
    """`count` usage events over the last `days` days (today included), then the rollups rebuilt
    through the telemetry app's own repair path."""
    from telemetry.models import UsageEvent
    from telemetry.services import usage_rollups_rebuild

    now = datetime.now(UTC).replace(microsecond=0)
    # A pool of instants (a few per hour) keeps the per-value conversion cache small.
    instants = [now - timedelta(minutes=17 * step) for step in range(days * 24 * 60 // 17)]
    instants.reverse()  # oldest first: events arrive in time order, as they would in use
    from django.conf import settings

    zone_name = settings.AGENTCHAT_TIMEZONE
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zone_name)
    day_of = {instant: instant.astimezone(zone).date() for instant in instants}
    owner_id = _bench_owner().pk

    def event(index: int) -> dict[str, Any]:
        instant = instants[index * len(instants) // count]
        provider, model = PROVIDERS_MODELS[index % len(PROVIDERS_MODELS)]
        input_tokens = 200 + index % 1_000
        output_tokens = 50 + index % 300
        return {
            "request_id": f"bench-{index:09d}",
            "occurred_at": instant,
            "day": day_of[instant],
            "day_timezone": zone_name,
            "provider": provider,
            "model": model,
            "session": session_ids[index % len(session_ids)] if session_ids else None,
            "input_tokens": input_tokens,
            "cached_input_tokens": input_tokens // 4,
            "output_tokens": output_tokens,
            "reasoning_tokens": output_tokens // 5,
            "total_tokens": input_tokens + output_tokens,
            "latency_ms": 300 + index % 700,
            "cost_partial": False,
            "created": instant,
            "owner": owner_id,
        }

    # The columns are the keys of an event, named once beside their values.
    fields = tuple(event(0))
    rows = (tuple(event(index).values()) for index in range(count))
    inserted = bulk_insert(UsageEvent, fields, rows, batch=50_000)
    usage_rollups_rebuild()
    return inserted


def memory_contents(count: int, *, seed: int = 5) -> Iterator[str]:
    """The text of each of `count` long-term memories: 16 words drawn with Zipf frequencies from 20,000 words.

    Deterministic: the first n texts are the same whatever `count` is.
    """
    rng = random.Random(seed)
    words = fixtures.vocabulary(20_000)
    weights = list(itertools.accumulate(1 / rank for rank in range(1, len(words) + 1)))
    for _ in range(count):
        yield " ".join(rng.choices(words, cum_weights=weights, k=16))


def memories_load(count: int, *, seed: int = 5) -> int:
    """`count` long-term memories (`memory_contents`), then the accounts' tallies counted again
    through the memory app's own repair path."""
    from memory.models import LongTermMemory
    from memory.services import memory_tally_rebuild

    now = datetime.now(UTC).replace(microsecond=0)
    owner_id = _bench_owner().pk

    def rows() -> Any:
        for index, content in enumerate(memory_contents(count, seed=seed)):
            yield (MEMORY_KINDS[index % 3], content, 3, False, now, now, owner_id)

    fields = ("kind", "content", "importance", "pinned", "created", "updated", "owner")
    inserted = bulk_insert(LongTermMemory, fields, rows(), batch=20_000)
    memory_tally_rebuild()
    return inserted


def w4_bootstrap(ctx: Ctx) -> list[Row]:
    sizes = ctx.sizes
    title = "GET /api/bootstrap/ vs trivial DRF endpoint"
    count_title = "bootstrap query count: loaded vs empty database"
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    settings.ROOT_URLCONF = "bench.urls"
    try:
        from django.urls import clear_url_caches

        clear_url_caches()
        reverse("bench-trivial")
        bootstrap_url = _bootstrap_url()
    except NoReverseMatch:
        bootstrap_url = None
    if bootstrap_url is None:
        missing = "GET /api/bootstrap/ (the runtime's bootstrap endpoint)"
        return [
            unavailable(4, "4.ours", title, ctx.level, ctx.vendor, missing),
            unavailable(4, "4.queries", count_title, ctx.level, ctx.vendor, missing),
        ]
    if (
        find("memory_search", ["memory.search", "memory.selectors"]) is None
        or find("usage_rollups_rebuild", ["telemetry.services"]) is None
    ):
        missing = "memory and telemetry apps"
        return [
            unavailable(4, "4.ours", title, ctx.level, ctx.vendor, missing),
            unavailable(4, "4.queries", count_title, ctx.level, ctx.vendor, missing),
        ]

    ctx.dbs.fresh("bootstrap-empty")
    empty_queries, empty_status = _bootstrap_queries(bootstrap_url)

    def build() -> dict[str, Any]:
        session_ids = fixtures.sessions_create(sizes.bootstrap_sessions)
        per_session = sizes.bootstrap_messages // sizes.bootstrap_sessions
        fixtures.messages_load([(session_id, per_session) for session_id in session_ids])
        usage_load(sizes.bootstrap_usage, session_ids)
        memories_load(sizes.bootstrap_memories)
        return {"sessions": len(session_ids)}

    ctx.dbs.fixture(f"bootstrap-{sizes.bootstrap_messages}", build, shared=True)
    loaded_queries, loaded_status = _bootstrap_queries(bootstrap_url)
    client = _client()

    def get(url: str) -> Callable[[], object]:
        def request() -> object:
            response = client.get(url, HTTP_ACCEPT="application/json")
            if response.status_code != 200:
                raise RuntimeError(f"GET {url} answered {response.status_code}")
            return response

        return request

    fns = {"bootstrap": get(bootstrap_url), "trivial": get(reverse("bench-trivial"))}
    seconds = per_op_seconds(fns, sizes.bootstrap_requests, sizes.reps)
    row = ctx.ratio_row(
        4,
        "4.ours",
        title,
        seconds,
        ("bootstrap", "bootstrap ms"),
        ("trivial", "trivial ms"),
        target=Target("<=", 3.0),
        profiled=(fns["bootstrap"], sizes.bootstrap_requests),
        over_first=True,
    )
    same = loaded_queries == empty_queries and empty_status == loaded_status == 200
    count_row = ctx.row(
        4,
        "4.queries",
        count_title,
        figure=float(loaded_queries - empty_queries),
        unit="queries",
        detail={"empty": empty_queries, "loaded": loaded_queries, "status": loaded_status},
        reps=1,
    )
    count_row.target = "= 0"
    count_row.passed = same
    return [row, count_row]


def _bootstrap_url() -> str | None:
    from django.urls import Resolver404, resolve

    try:
        resolve("/api/bootstrap/")
    except Resolver404:
        return None
    return "/api/bootstrap/"


def _client() -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(HTTP_HOST="localhost")  # an allowed host, as a browser on this machine sends
    client.force_login(User.objects.get(username=BENCH_USERNAME))
    return client


def _bootstrap_queries(url: str) -> tuple[int, int]:
    """(queries, status) of one GET after a warm-up request."""
    from django.test.utils import CaptureQueriesContext

    client = _client()
    client.get(url, HTTP_ACCEPT="application/json")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, HTTP_ACCEPT="application/json")
    return len(captured.captured_queries), response.status_code


# --- 5. Telemetry summary -------------------------------------------------------------------


def w5_summary(ctx: Ctx) -> list[Row]:
    sizes = ctx.sizes
    title = f"telemetry summary at {sizes.telemetry_large:,} vs {sizes.telemetry_small:,} events"
    usage_summary = find("usage_summary", ["telemetry.selectors"])
    rebuild = find("usage_rollups_rebuild", ["telemetry.services"])
    if usage_summary is None or rebuild is None:
        missing = "telemetry.selectors.usage_summary" if usage_summary is None else "usage_rollups_rebuild"
        return [unavailable(5, "5.ours", title, ctx.level, ctx.vendor, missing)]

    def builder(count: int) -> Callable[[], dict[str, Any]]:
        def build() -> dict[str, Any]:
            session_ids = fixtures.sessions_create(50)
            return {"events": usage_load(count, session_ids)}

        return build

    builds = {
        "small": (f"telemetry-{sizes.telemetry_small}", builder(sizes.telemetry_small)),
        "large": (f"telemetry-{sizes.telemetry_large}", builder(sizes.telemetry_large)),
    }
    seconds = alternate(ctx, builds, usage_summary, sizes.summary_ops)
    return [
        ctx.ratio_row(
            5, "5.ours", title, seconds, target=Target("<=", 1.2), profiled=(usage_summary, sizes.summary_ops)
        )
    ]


# --- 6. Memory search -----------------------------------------------------------------------

# How many memories each query word occurs in: the same at both sizes, each more than a page of 20.
SEARCH_MATCHES = (24, 36, 48)


@functools.cache
def document_frequencies(count: int) -> dict[str, int]:
    """How many of the `count` fixture memories contain each word (computed from the texts, no query)."""
    frequencies: dict[str, int] = {}
    for content in memory_contents(count):
        for word in set(content.split()):
            frequencies[word] = frequencies.get(word, 0) + 1
    return frequencies


def search_words(small: int, large: int) -> dict[int, list[str]]:
    """One query word per SEARCH_MATCHES entry for each size, occurring in the same number of memories at both.

    The small store has few words of each frequency: its word is the one whose count is closest to
    the wanted one (ties: the more frequent word); the large store's word then has exactly that count.
    """
    small_df, large_df = document_frequencies(small), document_frequencies(large)
    chosen: dict[int, list[str]] = {small: [], large: []}
    for wanted in SEARCH_MATCHES:
        word = min(small_df, key=lambda w: (abs(small_df[w] - wanted), -small_df[w], w))
        matches = small_df[word]
        twin = min(large_df, key=lambda w: (abs(large_df[w] - matches), w))
        chosen[small].append(word)
        chosen[large].append(twin)
    return chosen


def memory_search_all(memory_search: Callable[..., Any], queries: Sequence[str]) -> list[list[Any]]:
    return [list(memory_search(query, 20)) for query in queries]


def w6_search(ctx: Ctx) -> list[Row]:
    sizes = ctx.sizes
    title = f"memory search at {sizes.memory_large:,} vs {sizes.memory_small:,} entries"
    memory_search = find("memory_search", ["memory.search", "memory.selectors", "memory.services"])
    if memory_search is None:
        return [unavailable(6, "6.ours", title, ctx.level, ctx.vendor, "memory.memory_search(query, limit)")]
    words = search_words(sizes.memory_small, sizes.memory_large)
    counts = {"small": sizes.memory_small, "large": sizes.memory_large}
    fixture_names = {name: f"memory-{count}" for name, count in counts.items()}
    loaded = {"name": "small"}  # PostgreSQL: the data set built last

    def current() -> str:
        if ctx.sqlite:  # each data set is its own file, named after the fixture
            path = Path(connection.settings_dict["NAME"])
            return next(name for name, fixture in fixture_names.items() if path.name == f"{fixture}.sqlite3")
        return loaded["name"]

    def search_all() -> object:
        return memory_search_all(memory_search, words[counts[current()]])

    def builder(name: str) -> Callable[[], dict[str, Any]]:
        def build() -> dict[str, Any]:
            loaded["name"] = name
            return {"memories": memories_load(counts[name])}

        return build

    builds = {name: (fixture_names[name], builder(name)) for name in counts}
    seconds = alternate(ctx, builds, search_all, sizes.search_ops)
    hits = {}
    for name, (fixture_name, build) in builds.items():
        if ctx.sqlite:
            ctx.dbs.reopen(fixture_name)
        else:
            ctx.dbs.fixture(fixture_name, build)
        hits[name] = sum(len(result) for result in memory_search_all(memory_search, words[counts[name]]))
    seconds = {name: [value / len(SEARCH_MATCHES) for value in values] for name, values in seconds.items()}
    matches = "/".join(str(document_frequencies(counts["small"])[w]) for w in words[counts["small"]])
    row = ctx.ratio_row(
        6,
        "6.ours",
        title,
        seconds,
        target=Target("<=", 2.0),
        profiled=(search_all, sizes.search_ops),
        more={"hits small": hits["small"], "hits large": hits["large"], "matches": matches},
    )
    return [row]


# --- 7. Concurrency -------------------------------------------------------------------------


def _workers_run(ctx: Ctx, session_id: str, procs: int, appends: int, tag: str) -> tuple[float, int]:
    """Start `procs` appender processes, release them together, wait; (seconds, errors)."""
    env = dict(os.environ)
    env["DATABASE_URL"] = ctx.dbs.url()
    env["PYTHONPATH"] = str(ROOT)
    env["DJANGO_SETTINGS_MODULE"] = "agentchat_site.settings"
    if ctx.sqlite:
        env["SQLITE_SYNCHRONOUS"] = ctx.level
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.worker", session_id, str(appends), f"{tag}-{index}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(procs)
    ]
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline().strip()
        if line != "ready":
            _, err = worker.communicate()
            raise RuntimeError(f"worker did not start: {line!r} {err[-2000:]}")
    start = time.perf_counter()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    errors = 0
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        if worker.returncode != 0:
            raise RuntimeError(f"worker failed ({worker.returncode}): {err[-2000:]}")
        errors += int(out.split()[-1])
    return time.perf_counter() - start, errors


def _log_check(session_id: str) -> tuple[int, int, int, int]:
    """(rows, distinct seqs, max seq, session.last_seq) of one session's log."""
    from django.db.models import Count, Max

    from core.models import AgentSession, Message

    agg = Message.objects.filter(session_id=UUID(session_id)).aggregate(
        rows=Count("id"), distinct=Count("seq", distinct=True), top=Max("seq")
    )
    last_seq = AgentSession.objects.values_list("last_seq", flat=True).get(pk=session_id)
    return agg["rows"], agg["distinct"], agg["top"] or 0, last_seq


def w7_concurrency(ctx: Ctx) -> list[Row]:
    from core.conversation.services import session_create

    sizes = ctx.sizes
    procs, appends = sizes.concurrency_procs, sizes.concurrency_appends
    single: list[float] = []
    multi: list[float] = []
    errors = gaps = 0
    for rep in range(sizes.concurrency_reps):
        ctx.dbs.fresh(f"concurrency-{rep}")
        one = str(session_create(owner=_bench_owner(), title="single", route_alias=ROUTE_ALIAS).pk)
        many = str(session_create(owner=_bench_owner(), title="many", route_alias=ROUTE_ALIAS).pk)
        connection.close()  # the workers write; this process only reads afterwards
        for mode in rotated(["single", "multi"], rep):
            if mode == "single":
                elapsed, failed = _workers_run(ctx, one, 1, appends, f"s{rep}")
                single.append(appends / elapsed)
                expected, session_id = appends, one
            else:
                elapsed, failed = _workers_run(ctx, many, procs, appends, f"m{rep}")
                multi.append(procs * appends / elapsed)
                expected, session_id = procs * appends, many
            errors += failed
            rows_count, distinct, top, last_seq = _log_check(session_id)
            if not rows_count == distinct == top == last_seq == expected:
                gaps += 1
    title = f"{procs} procs x {appends:,} appends, one session: aggregate vs 1 proc"
    row = ctx.row(
        7,
        "7.ours",
        title,
        figure=median(multi) / median(single),
        reps=sizes.concurrency_reps,
        detail={
            "aggregate ops/s": median(multi),
            "single ops/s": median(single),
            "errors": errors,
            "gapped logs": gaps,
        },
    )
    row.target = "0 errors, 0 gaps"
    row.passed = errors == 0 and gaps == 0
    return [row]


# --- 8. Storage growth ----------------------------------------------------------------------


def w8_storage(ctx: Ctx) -> list[Row]:
    from core.conversation.contracts import estimate_tokens
    from core.conversation.services import message_append, session_create
    from core.models import AgentSession, Message

    sizes = ctx.sizes
    title = f"DB size after {sizes.storage_large:,} / after {sizes.storage_small:,} msgs"
    if ctx.sqlite and ctx.level != STORAGE_LEVEL:
        # A file's size does not depend on the synchronous level (a per-connection setting).
        return [ctx.row(8, "8.ours", title, status=f"n/a: size does not depend on synchronous; see {STORAGE_LEVEL}")]
    ctx.dbs.fresh("storage")
    session_id = str(session_create(owner=_bench_owner(), title="storage", route_alias=ROUTE_ALIAS).pk)
    tables = [Message._meta.db_table, AgentSession._meta.db_table]

    def append(first: int, last: int) -> None:
        for seq in range(first, last + 1):
            message_append(session_id=session_id, role=fixtures.ROLES[seq % 2], content=message_text(seq))

    # The first STORAGE_SERVICE_TAIL messages before each measurement go through message_append;
    # the rows in between are bulk inserted with exactly the values the service writes (same
    # text, role, parts, estimated token count), in seq order as appends arrive.
    tail = min(STORAGE_SERVICE_TAIL, sizes.storage_small)
    append(1, sizes.storage_small)
    small = ctx.dbs.size_bytes(tables)
    bulk_last = sizes.storage_large - tail
    now = datetime.now(UTC)
    bulk_insert(
        Message,
        fixtures.MESSAGE_FIELDS,
        (
            (session_id, seq, fixtures.ROLES[seq % 2], text, [], estimate_tokens(text), True, now)
            for seq in range(sizes.storage_small + 1, bulk_last + 1)
            for text in (message_text(seq),)
        ),
    )
    fixtures.counters_fix([session_id])
    append(bulk_last + 1, sizes.storage_large)
    large = ctx.dbs.size_bytes(tables)
    row = ctx.row(
        8,
        "8.ours",
        title,
        figure=large / small,
        reps=1,
        detail={
            "small bytes": float(small),
            "large bytes": float(large),
            "bytes/msg": (large - small) / (sizes.storage_large - sizes.storage_small),
        },
    )
    return [ctx.judged(row, Target("<=", 11.0))]


def w9_path(ctx: Ctx) -> list[Row]:
    """The last N messages of a conversation's active path: a deep branch costs what a shallow one does."""
    from core.conversation.selectors import UNBOUNDED_BYTES, path_page

    sizes = ctx.sizes
    title = f"active path: last {sizes.path_tail} msgs at depth {sizes.path_large:,} vs {sizes.path_small:,}"

    def build() -> dict[str, Any]:
        return {
            name: fixtures.session_with_messages(count, f"path {name}")
            for name, count in (("small", sizes.path_small), ("large", sizes.path_large))
        }

    meta = ctx.dbs.fixture(f"path-{sizes.path_large}", build, shared=True)

    def reader(session_id: str, leaf: int) -> Callable[[], object]:
        def read() -> object:
            page = path_page(session_id=session_id, start_seq=leaf, limit=sizes.path_tail, budget_bytes=UNBOUNDED_BYTES)
            if len(page.messages) != sizes.path_tail or page.messages[-1].seq != leaf:
                raise RuntimeError(f"the path page held {len(page.messages)} messages, expected {sizes.path_tail}")
            return page

        return read

    fns: dict[str, Callable[[], object]] = {
        "small": reader(meta["small"], sizes.path_small),
        "large": reader(meta["large"], sizes.path_large),
    }
    seconds = per_op_seconds(fns, sizes.path_ops, sizes.reps)
    profiled = (fns["large"], sizes.path_ops)
    return [ctx.ratio_row(9, "9.ours", title, seconds, target=Target("<=", 1.3), profiled=profiled)]


# --- 11. Message search across all history --------------------------------------------------

HISTORY_FIXED_WORD = "quetzalfixed"  # in exactly HISTORY_FIXED_MATCHES messages at every size
HISTORY_FIXED_MATCHES = 50
HISTORY_COMMON_WORD = "commonplum"  # in 1% of the messages
HISTORY_SESSION_MESSAGES = 100


def history_text(index: int, count: int, rng: random.Random, words: Sequence[str]) -> str:
    """Message `index` of `count`: 12 filler words, plus the fixed word (50 spread evenly) and the common one (1%)."""
    text = " ".join(rng.choices(words, k=12))
    if index % (count // HISTORY_FIXED_MATCHES) == 0:
        text += f" {HISTORY_FIXED_WORD}"
    if index % 100 == 7:
        text += f" {HISTORY_COMMON_WORD}"
    return text


def history_load(count: int) -> dict[str, Any]:
    """`count` messages in sessions of 100 (bulk inserts), indexed for search as an import leaves them."""
    sessions = fixtures.sessions_create(count // HISTORY_SESSION_MESSAGES)
    rng = random.Random(11)
    words = fixtures.vocabulary(5_000)

    def rows() -> Iterator[tuple[Any, ...]]:
        for index in range(count):
            session_id = sessions[index // HISTORY_SESSION_MESSAGES]
            seq = index % HISTORY_SESSION_MESSAGES + 1
            text = history_text(index, count, rng, words)
            at = fixtures.EPOCH + timedelta(seconds=index)
            yield (session_id, seq, fixtures.ROLES[seq % 2], text, [], len(text) // 4, True, at)

    from core.conversation.services import message_index_catch_up
    from core.models import Message

    inserted = bulk_insert(Message, fixtures.MESSAGE_FIELDS, rows())
    fixtures.counters_fix(sessions)
    message_index_catch_up()  # SQLite; PostgreSQL's generated column indexed them as they were written
    return {"messages": inserted}


def w11_history_search(ctx: Ctx) -> list[Row]:
    sizes = ctx.sizes
    title = (
        f"message search at {sizes.history_large:,} vs {sizes.history_small:,} messages "
        f"({HISTORY_FIXED_MATCHES} matches)"
    )
    message_search = find("message_search", ["core.conversation.search"])
    if message_search is None:
        return [unavailable(11, "11.ours", title, ctx.level, ctx.vendor, "core.conversation.search.message_search")]
    counts = {"small": sizes.history_small, "large": sizes.history_large}
    fixture_names = {name: f"history-{count}" for name, count in counts.items()}
    # The seeded bench account: the same row (and id) in every data set built from the template.
    owner = _bench_owner()

    def search(word: str) -> Callable[[], list[Any]]:
        def run() -> list[Any]:
            return list(message_search(owner=owner, query=word).results)

        return run

    def builder(name: str) -> Callable[[], dict[str, Any]]:
        return lambda: history_load(counts[name])

    builds = {name: (fixture_names[name], builder(name)) for name in counts}

    fixed = search(HISTORY_FIXED_WORD)
    seconds = alternate(ctx, builds, fixed, sizes.history_search_ops)
    # The large data set, for the common word and the LIKE scan (PostgreSQL: the one loaded last).
    if ctx.sqlite:
        ctx.dbs.reopen(fixture_names["large"])
    from core.models import Message

    def like_scan() -> list[int]:
        return list(Message.objects.filter(content__contains=HISTORY_FIXED_WORD).values_list("id", flat=True))

    common = search(HISTORY_COMMON_WORD)
    pair = per_op_seconds({"like": like_scan, "index": fixed}, sizes.history_like_ops, sizes.reps)
    common_seconds = [timed(common, sizes.history_search_ops) for _ in range(sizes.reps)]
    common_page = common()
    common_matches = Message.objects.filter(content__contains=HISTORY_COMMON_WORD).count()
    like_matches = len(like_scan())
    return [
        ctx.ratio_row(
            11,
            "11.ours",
            title,
            seconds,
            target=Target("<=", 2.0),
            profiled=(fixed, sizes.history_search_ops),
            more={"matches": HISTORY_FIXED_MATCHES},
        ),
        ctx.row(
            11,
            "11.common",
            f"a 1%-common word ({common_matches:,} messages), first page at {sizes.history_large:,} messages",
            figure=ms(common_seconds),
            unit="ms",
            reps=sizes.reps,
            detail={"sessions on the page": len(common_page)},
        ),
        _paired_row(
            ctx,
            "11.like",
            f"LIKE '%…%' scan over the same {sizes.history_large:,} messages vs the index (fixed word)",
            pair,
            like_matches=like_matches,
        ),
        _paired_row(
            ctx,
            "11.fresh",
            f"search with a turn's {TURN_MESSAGES} messages not yet indexed vs an indexed search (fixed word)",
            _search_after_a_turn(fixed, sizes.reps),
        ),
    ]


def _paired_row(ctx: Ctx, key: str, title: str, seconds: dict[str, list[float]], **more: int) -> Row:
    """A workload 11 row: the ratio of the first of two paired timings to the second, with both in ms."""
    first, second = seconds
    figures = {f"{name} ms": ms(values) for name, values in seconds.items()}
    return ctx.row(
        11,
        key,
        title,
        figure=paired_ratio(seconds[first], seconds[second]),
        reps=ctx.sizes.reps,
        detail={**figures, **{name.replace("_", " "): value for name, value in more.items()}},
    )


# A turn appends a user message, tool calls and results, and the reply.
TURN_MESSAGES = 4


def _search_after_a_turn(search: Callable[[], object], reps: int) -> dict[str, list[float]]:
    """Seconds of `search` right after a turn's appends (on SQLite the search first indexes them,
    `message_index_catch_up`), paired with the same search once they are indexed."""
    from core.conversation.services import message_append

    session_id = fixtures.sessions_create(1)[0]
    times: dict[str, list[float]] = {"waiting": [], "indexed": []}
    for rep in range(reps):
        for index in range(TURN_MESSAGES):
            message_append(session_id=session_id, role="user", content=message_text(rep * TURN_MESSAGES + index))
        for name in times:
            start = time.perf_counter()
            search()
            times[name].append(time.perf_counter() - start)
    return times


# The chat page's scripts and stylesheets (web/templates/web/{base,app,chat}.html), compressed, at most this.
PAGE_BUDGET_BYTES = 150 * 1024
_STATIC_REF = re.compile(r"""{% static '([^']+\.(?:js|css))' %}""")


def w14_page_weight(ctx: Ctx) -> list[Row]:
    """Every script and stylesheet the chat page links, gzipped at level 9 as WhiteNoise serves them, against
    the 150 KB budget (a ratio: 1.0 is the budget)."""
    import gzip

    from django.contrib.staticfiles import finders

    templates = Path(__file__).resolve().parent.parent / "web" / "templates" / "web"
    names = [m for t in ("base", "app", "chat") for m in _STATIC_REF.findall((templates / f"{t}.html").read_text())]
    sizes: dict[str, int] = {}
    for name in dict.fromkeys(names):
        found = finders.find(name)
        if not isinstance(found, str):
            return [unavailable(14, "14.chat", "chat page JS+CSS", ctx.level, ctx.vendor, f"static file {name}")]
        sizes[name] = len(gzip.compress(Path(found).read_bytes(), compresslevel=9))
    total = sum(sizes.values())
    title = f"chat page JS+CSS, gzipped: {total / 1024:.1f} KB vs the {PAGE_BUDGET_BYTES // 1024} KB budget"
    row = ctx.row(14, "14.chat", title, figure=round(total / PAGE_BUDGET_BYTES, 3), detail=sizes)
    return [row_with_target(row, Target("<=", 1.0))]


def w15_context_after_compaction(ctx: Ctx) -> list[Row]:
    """Workload 15 (`bench/upkeep_context.py`, which imports this module's helpers)."""
    from bench.upkeep_context import context_after_compaction

    return context_after_compaction(ctx, 15)


WORKLOADS: dict[int, Callable[[Ctx], list[Row]]] = {
    1: w1_append,
    2: w2_checkpoint,
    3: w3_restore,
    4: w4_bootstrap,
    5: w5_summary,
    6: w6_search,
    7: w7_concurrency,
    8: w8_storage,
    9: w9_path,
    10: w10_turn_stream,
    11: w11_history_search,
    12: w12_sse_stream,
    13: lambda ctx: w_import(ctx, 13),
    14: w14_page_weight,
    15: w15_context_after_compaction,
    16: w16_mcp_roundtrip,
    17: w17_page_paint,
}

TITLES = {
    1: "append",
    2: "checkpoint write",
    3: "restore",
    4: "bootstrap",
    5: "telemetry summary",
    6: "memory search",
    7: "concurrency",
    8: "storage growth",
    9: "active path",
    10: "streamed turn",
    11: "message search",
    12: "SSE stream",
    13: "import",
    14: "chat page weight",
    15: "context after compaction",
    16: "MCP tool call",
    17: "chat page paint",
}


def run_workload(number: int, ctx: Ctx) -> list[Row]:
    """One workload; an exception becomes an `error:` row (never a number)."""
    try:
        return WORKLOADS[number](ctx)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        return [ctx.row(number, f"{number}.error", TITLES[number], status=f"error: {message}")]


def with_sizes(sizes: Sizes, **changes: int) -> Sizes:
    return replace(sizes, **changes)
