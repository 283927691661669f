"""Memory upkeep with the replay provider (deterministic summaries) and one recorded live stream:
compaction checkpoints and the prompts that use them, daily episodes, facts, usage by purpose."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from core.config.contracts import ConfigDocument, MemoryConfig
from core.config.services import config_document_apply
from core.config.validation import ConfigInvalidError, document_parse
from core.conversation.services import runs_lease_expired_interrupt, session_create
from core.models import (
    AgentSession,
    Checkpoint,
    CheckpointReason,
    Message,
    ModelRoute,
    Provider,
    ProviderKind,
    Run,
    RunPurpose,
    RunStatus,
)
from memory.context import context_inputs
from memory.models import DailyEpisode, LongTermMemory
from runtime.prompt import system_text
from runtime.turns import turn_run
from runtime.upkeep import compaction_cut, episodes_due, facts_extract, session_compact
from telemetry.models import UsageEvent
from telemetry.selectors import rollup_differences, usage_summary
from tests.owners import op_user
from tests.procs import run_manage, start_worker
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db


def memory_set(**values: Any) -> None:
    """Store a `[memory]` table the way the config file does (load_config's service)."""
    config_document_apply(document=ConfigDocument(memory=MemoryConfig(**values)), prune=False)


def small_route(replay_route: ModelRoute, **options: Any) -> ModelRoute:
    provider = replay_route.provider
    if options:
        provider = Provider.objects.create(name="slow", kind=ProviderKind.REPLAY, options=options)
    return ModelRoute.objects.create(
        alias="small", provider=provider, model_id="tiny", context_window_tokens=1000, max_output_tokens=10
    )


def long_session(route: ModelRoute) -> AgentSession:
    """A session driven past its threshold: four turns of ~200 tokens on a 1,000-token window."""
    session = session_create(owner=op_user(), route_alias=route.alias)
    for letter in "abcd":
        turn_run(session_id=session.pk, user_text=letter * 400)
    session.refresh_from_db()
    return session


@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
def test_a_session_past_its_threshold_gets_one_checkpoint_and_the_next_prompt_uses_it(
    replay_route: ModelRoute,
) -> None:
    memory_set(keep_recent_messages=2)
    session = long_session(small_route(replay_route))
    assert session.tokens_since_checkpoint > 800

    result = session_compact(session_id=session.pk)

    assert result.outcome == "written"
    checkpoint = Checkpoint.objects.get(session=session, reason=CheckpointReason.COMPACTION)
    assert checkpoint == result.checkpoint
    assert checkpoint.through_seq == 6  # eight messages, the last two kept verbatim
    # The replay provider echoes what it was asked to summarise: the folded messages, in order.
    assert checkpoint.summary.startswith("replay: Conversation to fold in:\n[#1 user] aaaa")
    assert "[#6 assistant] replay: ccc" in checkpoint.summary
    assert "[#7 " not in checkpoint.summary
    assert checkpoint.token_count > 0
    assert checkpoint.state["leaf"] == 8
    assert checkpoint.state["messages_folded"] == 6
    run = Run.objects.get(purpose=RunPurpose.COMPACTION)
    assert (run.status, run.session_id, run.lease_owner) == (RunStatus.COMPLETED, session.pk, "")
    session.refresh_from_db()
    assert session.tokens_since_checkpoint < 300  # only the two kept messages count now
    assert session_compact(session_id=session.pk).outcome == "not_due"
    assert Checkpoint.objects.filter(session=session, reason=CheckpointReason.COMPACTION).count() == 1

    nxt = turn_run(session_id=session.pk, user_text="what did I say first?")
    bundle = context_inputs(session_id=session.pk, budget_tokens=10_000, leaf=nxt.messages[0].seq)
    assert bundle.checkpoint is not None
    assert bundle.checkpoint.summary == checkpoint.summary
    assert [m.seq for m in bundle.messages] == [7, 8, 9]
    assert checkpoint.summary in system_text(bundle)
    assert nxt.usage is not None
    # The prompt held the summary and the last messages, not the eight earlier ones (~1,600 tokens).
    assert (nxt.usage.input_tokens or 0) < 1_000


@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
def test_the_next_compaction_builds_on_the_previous_summary(replay_route: ModelRoute) -> None:
    memory_set(keep_recent_messages=2)
    route = small_route(replay_route)
    session = long_session(route)
    first = session_compact(session_id=session.pk).checkpoint
    assert first is not None
    for letter in "efgh":
        turn_run(session_id=session.pk, user_text=letter * 400)
    second = session_compact(session_id=session.pk).checkpoint
    assert second is not None
    assert second.parent_id is not None
    assert second.state["previous_checkpoint"] == first.pk
    assert second.state["from_seq"] == 7  # the messages after the first cut only
    assert "Earlier summary:\n" + first.summary in second.summary


@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
def test_usage_is_tagged_by_purpose_and_the_summary_shows_every_purpose(replay_route: ModelRoute) -> None:
    session = long_session(small_route(replay_route))
    session_compact(session_id=session.pk)
    purposes = sorted(UsageEvent.objects.values_list("purpose", flat=True))
    assert purposes == ["chat", "chat", "chat", "chat", "compaction"]
    event = UsageEvent.objects.get(purpose="compaction")
    assert event.run is not None
    assert event.run.purpose == RunPurpose.COMPACTION
    assert event.session_id == session.pk
    summary = usage_summary(owner=op_user())
    by_purpose = {item.purpose: item.event_count for item in summary.by_purpose}
    assert by_purpose == {"chat": 4, "compaction": 1}
    assert rollup_differences() == []


@pytest.mark.fault
@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
def failing_summary_route() -> None:
    """Make `cheap`, a route whose every call fails with "overloaded", the `[memory]` summary route."""
    broken = Provider.objects.create(
        name="broken", kind=ProviderKind.REPLAY, options={"script": [[{"type": "error", "message": "overloaded"}]]}
    )
    ModelRoute.objects.create(
        alias="cheap", provider=broken, model_id="b", context_window_tokens=4000, max_output_tokens=100
    )
    memory_set(summary_route="cheap")


def test_a_failed_summary_leaves_the_session_usable_and_says_why(replay_route: ModelRoute, api: APIClient) -> None:
    failing_summary_route()
    session = long_session(small_route(replay_route))
    result = session_compact(session_id=session.pk)
    assert result.outcome == "failed"
    run = Run.objects.get(purpose=RunPurpose.COMPACTION)
    assert (run.status, run.error) == (RunStatus.FAILED, "cheap: overloaded")
    assert run.route is not None
    assert run.route.alias == "cheap"
    assert not Checkpoint.objects.filter(reason=CheckpointReason.COMPACTION).exists()
    assert turn_run(session_id=session.pk, user_text="still here?").run.status == RunStatus.COMPLETED
    # The memory view says why; chat lists show chat turns only, the upkeep runs when asked for.
    context = api.get(f"/api/sessions/{session.pk}/context/").json()
    assert context["compaction_error"] == "cheap: overloaded"
    chat_runs = api.get(f"/api/runs/?session={session.pk}").json()["results"]
    assert {item["purpose"] for item in chat_runs} == {"chat"}
    assert len(chat_runs) == 5
    upkeep = api.get(f"/api/runs/?session={session.pk}&purpose=compaction").json()["results"]
    assert [(item["id"], item["error"]) for item in upkeep] == [(str(run.pk), "cheap: overloaded")]
    assert api.get("/api/runs/?purpose=nap").status_code == 400


def test_the_cut_keeps_a_tool_result_with_its_call(chat_session: AgentSession) -> None:
    turn_run(session_id=chat_session.pk, user_text="/tool search cats")  # user, assistant+call, tool, assistant
    messages = list(Message.objects.filter(session=chat_session).order_by("seq"))
    assert compaction_cut(messages, keep_recent=2) == 3  # the tool message goes with its call
    assert compaction_cut(messages, keep_recent=1) == 3
    assert compaction_cut(messages, keep_recent=9) == 0


@pytest.mark.fault
@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
@pytest.mark.django_db(transaction=True)
def test_concurrent_tasks_write_one_checkpoint(replay_route: ModelRoute) -> None:
    session = long_session_slow(small_route(replay_route, delay_ms=200))
    env = {"AGENTCHAT_COMPACTION_THRESHOLD_PERCENT": "80"}
    workers = [start_worker("tests.workers.compact", [str(session.pk)], **env) for _ in range(2)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    outcomes = sorted(out.strip().splitlines()[-1] for out, _ in outputs)
    assert outcomes[-1] == "outcome written", outputs
    assert outcomes[0] in ("outcome busy", "outcome not_due"), outputs
    assert Checkpoint.objects.filter(session=session, reason=CheckpointReason.COMPACTION).count() == 1
    # The second task found the first one's run open (busy) or its checkpoint written (not due): one run.
    assert Run.objects.filter(purpose=RunPurpose.COMPACTION).count() == 1


@pytest.mark.fault
@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_task_leaves_no_partial_checkpoint(replay_route: ModelRoute) -> None:
    route = small_route(replay_route, pause_at_chunk=0, pause_ms=60_000)
    session = long_session_slow(route)
    worker = start_worker("tests.workers.compact", [str(session.pk)], AGENTCHAT_COMPACTION_THRESHOLD_PERCENT="80")
    deadline = time.monotonic() + 60
    while not Run.objects.filter(purpose=RunPurpose.COMPACTION, status=RunStatus.RUNNING).exists():
        assert time.monotonic() < deadline, worker.stderr.read() if worker.stderr else ""
        time.sleep(0.1)
    time.sleep(0.5)  # inside the model call now
    worker.kill()
    worker.wait(timeout=30)
    assert not Checkpoint.objects.filter(reason=CheckpointReason.COMPACTION).exists()
    assert not UsageEvent.objects.filter(purpose="compaction").exists()
    # The sweeper ends the dead worker's run once its lease expires; the next task then compacts.
    interrupted = runs_lease_expired_interrupt(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    run = Run.objects.get(purpose=RunPurpose.COMPACTION)
    assert interrupted == [run.pk]
    assert run.status == RunStatus.INTERRUPTED
    Provider.objects.filter(name="slow").update(options={})
    assert session_compact(session_id=session.pk).outcome == "written"


def long_session_slow(route: ModelRoute) -> AgentSession:
    """A session past its threshold written on the fast route, then moved to the slow one."""
    fast = ModelRoute.objects.create(
        alias="fast",
        provider=Provider.objects.get(name="replay"),
        model_id="f",
        context_window_tokens=1000,
        max_output_tokens=10,
    )
    session = long_session(fast)
    AgentSession.objects.filter(pk=session.pk).update(route=route)
    session.refresh_from_db()
    return session


PARIS = ZoneInfo("Europe/Paris")


def at_paris(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=PARIS)


@override_settings(AGENTCHAT_TIMEZONE="Europe/Paris")
def test_a_day_boundary_on_a_controlled_clock_writes_one_episode_per_day(chat_session: AgentSession) -> None:
    for text, moment in [("monday morning", at_paris(2, 9)), ("monday late", at_paris(2, 23, 50))]:
        turn_run(session_id=chat_session.pk, user_text=text)
        Message.objects.filter(session=chat_session, created__gt=at_paris(3, 0)).update(created=moment)
    turn_run(session_id=chat_session.pk, user_text="tuesday just after midnight")
    Message.objects.filter(session=chat_session, created__gt=at_paris(3, 12)).update(created=at_paris(3, 0, 5))

    assert [o.outcome for o in episodes_due(now=at_paris(3, 0, 1))] == ["written"]  # Monday is over
    assert [o.outcome for o in episodes_due(now=at_paris(3, 8))] == ["kept"]  # a second pass writes nothing
    assert [o.outcome for o in episodes_due(now=at_paris(4, 0, 1))] == ["written"]  # then Tuesday

    episodes = list(DailyEpisode.objects.order_by("day"))
    assert [(e.day, e.session_id, e.timezone) for e in episodes] == [
        (dt.date(2026, 3, 2), None, "Europe/Paris"),
        (dt.date(2026, 3, 3), None, "Europe/Paris"),
    ]
    assert "monday morning" in episodes[0].summary
    assert "monday late" in episodes[0].summary
    assert "tuesday" not in episodes[0].summary
    assert f"Sessions: {chat_session.pk} #1-#4" in episodes[0].summary
    assert episodes[0].session_refs == [{"session": str(chat_session.pk), "first_seq": 1, "last_seq": 4}]
    assert "tuesday just after midnight" in episodes[1].summary
    runs = Run.objects.filter(purpose=RunPurpose.EPISODE)
    assert [(r.status, r.session_id) for r in runs] == [(RunStatus.COMPLETED, None)] * 2
    assert UsageEvent.objects.filter(purpose="episode", session__isnull=True).count() == 2


@pytest.mark.django_db(transaction=True)
def test_write_episodes_rewrites_a_day_in_place_and_refuses_a_bad_day(chat_session: AgentSession) -> None:
    turn_run(session_id=chat_session.pk, user_text="an old conversation")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    Message.objects.filter(session=chat_session).update(created=old)
    day = old.date().isoformat()
    first = run_manage(["write_episodes", "--day", day])
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{day}: user {op_user().pk}: written"
    again = run_manage(["write_episodes", "--day", day])
    assert again.returncode == 0, again.stderr
    assert DailyEpisode.objects.count() == 1
    backfill = run_manage(["write_episodes", "--backfill"])
    assert backfill.stdout.strip() == f"{day}: user {op_user().pk}: kept"
    bad = run_manage(["write_episodes", "--day", "2026-13-01"])
    assert bad.returncode == 1
    assert "--day '2026-13-01' is not a date; give it as YYYY-MM-DD" in bad.stderr
    today = run_manage(["write_episodes", "--day", dt.datetime.now(ZoneInfo("UTC")).date().isoformat()])
    assert today.returncode == 1
    assert "is not over yet in UTC; give an earlier day" in today.stderr


def test_facts_are_remembered_by_key_with_provenance_and_secrets_refused(chat_session: AgentSession) -> None:
    leaked = "sk-proj-RECOGNISABLE-facts-0001"
    answer = f"home_city: Lyon\nfavourite_tea: green\napi_token: {leaked}\nNot a fact line"
    scripted = Provider.objects.create(
        name="facts", kind=ProviderKind.REPLAY, options={"script": [[{"type": "text", "text": answer}]]}
    )
    ModelRoute.objects.create(
        alias="facts", provider=scripted, model_id="f", context_window_tokens=4000, max_output_tokens=100
    )
    memory_set(extract_facts=True, summary_route="facts")
    turn = turn_run(session_id=chat_session.pk, user_text="I live in Lyon and drink green tea")
    result = facts_extract(run_id=turn.run.pk)
    assert result.outcome == "written"
    assert result.keys == ("home_city", "favourite_tea")
    assert list(result.refused) == ["api_token"]
    memories = {m.key: m for m in LongTermMemory.objects.all()}
    assert sorted(str(key) for key in memories) == ["favourite_tea", "home_city"]
    assert memories["home_city"].content == "Lyon"
    assert (memories["home_city"].source_session_id, memories["home_city"].source_first_seq) == (chat_session.pk, 1)
    assert memories["home_city"].source_last_seq == 2
    assert leaked not in str(list(Run.objects.values_list("error", flat=True)))
    facts_extract(run_id=turn.run.pk)  # asked again: the same keys are updated, never duplicated
    assert LongTermMemory.objects.count() == 2
    assert UsageEvent.objects.filter(purpose="facts").count() == 2


def test_the_memory_table_of_the_config_file_is_checked() -> None:
    with pytest.raises(ConfigInvalidError) as problems:
        document_parse(
            {"memory": {"keep_recent_messages": -1, "summary_route": "nope", "extract_fact": True, "facts_prompt": " "}}
        )
    assert {str(p) for p in problems.value.problems} == {
        "memory.keep_recent_messages: -1 is out of range; give 0 to 1000 messages",
        "memory.summary_route: 'nope': no such route; name a route of this file, or leave it out for each "
        "session's own route",
        "memory.extract_fact: unknown field; did you mean 'extract_facts'? (expected: keep_recent_messages, "
        "summary_route, extract_facts, compaction_prompt, episode_prompt, facts_prompt)",
        "memory.facts_prompt: empty; write the instructions, or leave the field out for the default",
    }
    document = document_parse({"memory": {"keep_recent_messages": 4}})
    assert document.memory == MemoryConfig(keep_recent_messages=4)


@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
def test_a_recorded_live_stream_drives_one_compaction_through_the_real_adapter(
    replay_route: ModelRoute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-RECOGNISABLE-upkeep-000000")
    session = long_session(small_route(replay_route))
    with ProviderServer(Reply.sse("openai_responses/text.sse")) as server:
        provider = Provider.objects.create(
            name="openai",
            kind=ProviderKind.OPENAI,
            api_key_env="OPENAI_API_KEY",
            base_url=server.url + "/v1",
            options={"max_retries": 0},
        )
        ModelRoute.objects.create(
            alias="gpt",
            provider=provider,
            model_id="gpt-x",
            context_window_tokens=10_000,
            max_output_tokens=100,
            price_input_per_mtok=Decimal("2.5"),
            price_output_per_mtok=Decimal("10"),
        )
        memory_set(summary_route="gpt")
        result = session_compact(session_id=session.pk)
        sent = server.requests[0].body
    assert result.outcome == "written"
    assert result.checkpoint is not None
    assert result.checkpoint.summary == "Hello, world!"
    assert "[#1 user] aaaa" in str(sent)
    event = UsageEvent.objects.get(purpose="compaction")
    assert (event.provider, event.model) == ("openai", "gpt-x")
    assert event.cost_pico_usd is not None
