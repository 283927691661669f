"""One offline turn end to end: every store checked after the replay provider answers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from core.conversation.events import RuntimeEvent, TextDelta
from core.conversation.selectors import run_text
from core.conversation.services import run_cancel, session_create
from core.errors import ConflictError, InvalidInputError
from core.models import (
    AgentSession,
    Checkpoint,
    CheckpointReason,
    Message,
    ModelRoute,
    Provider,
    ProviderKind,
    Run,
    RunStatus,
    TraceEvent,
)
from memory.context import context_inputs
from runtime.management.commands.chat import cost_display
from runtime.turns import turn_accept, turn_execute, turn_run
from telemetry.models import UsageAllTime, UsageBySession, UsageEvent
from tests.owners import op_user
from tests.procs import run_manage
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db


def trace_types(run: Run) -> list[str]:
    return list(TraceEvent.objects.filter(run=run).order_by("index").values_list("type", flat=True))


def test_turn_writes_every_store(chat_session: AgentSession) -> None:
    seen: list[RuntimeEvent] = []
    result = turn_run(session_id=chat_session.pk, user_text="hello there", on_event=seen.append)

    assert result.run.status == RunStatus.COMPLETED
    assert result.text == "replay: hello there"
    messages = list(Message.objects.filter(session=chat_session).order_by("seq").values_list("seq", "role", "content"))
    assert messages == [(1, "user", "hello there"), (2, "assistant", "replay: hello there")]
    # Trace: started, the deltas, why the model stopped, usage, then exactly one terminal event, in index order.
    types = trace_types(result.run)
    assert types[0] == "run_started"
    assert types[-3:] == ["finish", "usage", "run_finished"]
    assert set(types[1:-3]) == {"text_delta"}
    assert result.finish_reason == "stop"
    assert types.count("run_finished") == 1
    assert list(TraceEvent.objects.filter(run=result.run).values_list("index", flat=True).order_by("index")) == list(
        range(1, len(types) + 1)
    )
    assert run_text(run_id=result.run.pk) == result.messages[-1].content
    assert "".join(event.text for event in seen if isinstance(event, TextDelta)) == result.text
    # Telemetry: the event and every rollup equal the streamed usage.
    usage = UsageEvent.objects.get(run=result.run)
    assert (usage.input_tokens, usage.output_tokens) == (3, 5)
    assert usage.request_id == f"run:{result.run.pk}"
    all_time = UsageAllTime.objects.get()
    assert (all_time.event_count, all_time.input_tokens, all_time.output_tokens) == (1, 3, 5)
    by_session = UsageBySession.objects.get(session=chat_session)
    assert by_session.total_tokens == 8
    assert result.messages[-1].token_count == 5
    assert result.messages[-1].token_count_estimated is False
    assert result.checkpoint is None


def test_a_call_to_a_tool_not_offered_is_answered_unknown_tool(chat_session: AgentSession) -> None:
    result = turn_run(session_id=chat_session.pk, user_text="/tool search cats")
    roles = [(m.seq, m.role) for m in result.messages]
    assert roles == [(1, "user"), (2, "assistant"), (3, "tool"), (4, "assistant")]
    assert result.messages[1].parts == [{"type": "tool_call", "id": "call_1_1_1", "name": "search", "arguments": {}}]
    assert result.messages[2].parts == [
        {"type": "tool_result", "tool_call_id": "call_1_1_1", "content": "unknown tool search", "is_error": True}
    ]
    assert result.messages[3].content == "replay: search returned: unknown tool search"
    assert trace_types(result.run)[1:3] == ["tool_call", "finish"]
    assert "tool_result" in trace_types(result.run)


def test_adapter_error_fails_run_without_assistant_message(chat_session: AgentSession) -> None:
    result = turn_run(session_id=chat_session.pk, user_text="/error provider fell over")
    run = Run.objects.get(pk=result.run.pk)
    assert (run.status, run.error) == (RunStatus.FAILED, "provider fell over")
    assert trace_types(run) == ["run_started", "error", "run_finished"]
    assert list(Message.objects.filter(session=chat_session).values_list("role", flat=True)) == ["user"]
    assert not UsageEvent.objects.exists()


def test_a_reply_cut_short_says_so_in_the_trace_the_result_and_the_api(
    replay_route: ModelRoute, api: APIClient
) -> None:
    script = [[{"type": "text", "text": "the first half of"}, {"type": "finish", "reason": "length"}]] * 2
    Provider.objects.filter(pk=replay_route.provider_id).update(options={"script": script})
    session = session_create(owner=op_user(), route_alias=replay_route.alias)
    result = turn_run(session_id=session.pk, user_text="go")
    assert (result.run.status, result.finish_reason) == (RunStatus.COMPLETED, "length")
    finish = TraceEvent.objects.get(run=result.run, type="finish")
    assert finish.payload == {"reason": "length"}
    assert result.messages[-1].content == "the first half of"
    accepted = api.post(f"/api/sessions/{session.pk}/turns/", {"text": "again"}, format="json")
    assert accepted.status_code == 202, accepted.json()
    again = turn_execute(run_id=accepted.json()["run"]["id"])  # what a worker does with the queued run
    assert again.finish_reason == "length"
    events = api.get(f"/api/runs/{again.run.pk}/events/").json()["results"]
    assert [e["payload"] for e in events if e["type"] == "finish"] == [{"reason": "length"}]


def test_usage_reported_before_a_provider_error_is_still_recorded(replay_route: ModelRoute) -> None:
    script = [
        [
            {"type": "text", "text": "half a rep"},
            {"type": "usage", "input_tokens": 40, "output_tokens": 3},
            {"type": "error", "message": "connection reset"},
        ]
    ]
    Provider.objects.filter(pk=replay_route.provider_id).update(options={"script": script})
    session = session_create(owner=op_user(), route_alias=replay_route.alias)
    result = turn_run(session_id=session.pk, user_text="go")
    run = Run.objects.get(pk=result.run.pk)
    assert (run.status, run.error) == (RunStatus.FAILED, "connection reset")
    assert trace_types(run)[-3:] == ["usage", "error", "run_finished"]
    assert result.finish_reason is None
    # No half-written reply, but the spent tokens are counted once, in the event and the rollups.
    assert list(Message.objects.filter(session=session).values_list("role", flat=True)) == ["user"]
    assert result.usage is not None
    usage = UsageEvent.objects.get(run=run)
    assert (usage.input_tokens, usage.output_tokens, usage.request_id) == (40, 3, f"run:{run.pk}")
    assert UsageBySession.objects.get(session=session).total_tokens == 43
    assert UsageAllTime.objects.get().event_count == 1


def test_cancel_mid_stream_leaves_cancelled_run(chat_session: AgentSession) -> None:
    deltas: list[RuntimeEvent] = []
    result = turn_run(
        session_id=chat_session.pk,
        user_text="a long enough message to stream in several deltas",
        on_event=deltas.append,
        should_cancel=lambda: len(deltas) >= 2,
    )
    run = Run.objects.get(pk=result.run.pk)
    assert run.status == RunStatus.CANCELLED
    assert run.cancel_reason == "cancelled while the reply was streaming"
    assert trace_types(run)[-1] == "run_finished"
    assert trace_types(run).count("run_finished") == 1
    assert list(Message.objects.filter(session=chat_session).values_list("role", flat=True)) == ["user"]
    assert not UsageEvent.objects.exists()


def test_cancel_from_outside_stops_the_stream(chat_session: AgentSession) -> None:
    def cancel_after_first_delta(event: RuntimeEvent) -> None:
        if isinstance(event, TextDelta):
            run = Run.objects.get(session=chat_session)
            if run.status == RunStatus.RUNNING:
                run_cancel(run_id=run.pk, reason="stopped from the UI")

    result = turn_run(
        session_id=chat_session.pk, user_text="stream me something long please", on_event=cancel_after_first_delta
    )
    assert (result.run.status, result.run.cancel_reason) == (RunStatus.CANCELLED, "stopped from the UI")
    assert Message.objects.filter(session=chat_session).count() == 1


@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
def test_run_end_checkpoint_written_when_threshold_crossed(replay_route: ModelRoute) -> None:
    small = ModelRoute.objects.create(
        alias="small", provider=replay_route.provider, model_id="tiny", context_window_tokens=60, max_output_tokens=10
    )
    session = session_create(owner=op_user(), route_alias=small.alias)
    first = turn_run(session_id=session.pk, user_text="x" * 40)  # 10 + 13 tokens: 38% full
    assert first.checkpoint is None
    second = turn_run(session_id=session.pk, user_text="y" * 40)  # 46 tokens: 76%
    assert second.checkpoint is None
    third = turn_run(session_id=session.pk, user_text="z" * 20)  # crosses 80%
    assert third.checkpoint is not None
    assert third.checkpoint.reason == CheckpointReason.RUN_END
    assert third.checkpoint.through_seq == 6
    assert third.checkpoint.state["run_id"] == str(third.run.pk)
    fourth = turn_run(session_id=session.pk, user_text="again")  # still over: no second checkpoint
    assert fourth.checkpoint is None
    assert Checkpoint.objects.filter(session=session).count() == 1


@override_settings(AGENTCHAT_COMPACTION_THRESHOLD_PERCENT=80)
def test_crossing_the_threshold_keeps_earlier_messages_in_the_next_prompt(replay_route: ModelRoute) -> None:
    # Each replay turn reports as input tokens the size of the prompt it was given.
    small = ModelRoute.objects.create(
        alias="small", provider=replay_route.provider, model_id="tiny", context_window_tokens=1000, max_output_tokens=10
    )
    session = session_create(owner=op_user(), route_alias=small.alias)
    turns = [turn_run(session_id=session.pk, user_text=letter * 400) for letter in "abcd"]  # ~200 tokens a turn
    assert [t.checkpoint is not None for t in turns] == [False, False, False, True]  # the 4th crossed 80%
    assert turns[-1].checkpoint is not None
    assert turns[-1].checkpoint.reason == CheckpointReason.RUN_END
    nxt = turn_run(session_id=session.pk, user_text="what did I say first?")
    bundle = context_inputs(session_id=session.pk, budget_tokens=10_000)
    assert bundle.checkpoint is None
    assert [m.seq for m in bundle.messages] == list(range(1, 11))
    assert nxt.usage is not None
    # The prompt held the eight earlier messages (about 800 tokens), not just the summary and the question.
    assert (nxt.usage.input_tokens or 0) > 800


def test_blocked_route_refused_before_anything_is_written(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = Provider.objects.create(name="openai", kind=ProviderKind.OPENAI, api_key_env="OPENAI_API_KEY")
    ModelRoute.objects.create(
        alias="gpt", provider=provider, model_id="gpt-x", context_window_tokens=1000, max_output_tokens=100
    )
    session = session_create(owner=op_user(), route_alias="gpt")
    with pytest.raises(ConflictError, match=r"^route: 'gpt' is blocked: OPENAI_API_KEY is not set$"):
        turn_run(session_id=session.pk, user_text="hi")
    assert not Message.objects.exists()
    assert not Run.objects.exists()


def test_live_route_streams_a_turn_and_a_refused_key_fails_it_clearly(
    monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    secret = "sk-test-RECOGNISABLE-turns-000000"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    refused = Reply.error(
        401, {"error": {"message": f"Incorrect API key provided: {secret}", "code": "invalid_api_key"}}
    )
    with ProviderServer(Reply.sse("openai_responses/text.sse"), refused) as server:
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
        )
        session = session_create(owner=op_user(), route_alias="gpt")
        result = turn_run(session_id=session.pk, user_text="hi")
        assert result.run.status == RunStatus.COMPLETED
        assert result.text == "Hello, world!"
        assert result.usage is not None
        failed = turn_run(session_id=session.pk, user_text="again")
    assert failed.run.status == RunStatus.FAILED
    assert "the key in OPENAI_API_KEY was refused" in failed.run.error
    assert secret not in failed.run.error


def test_turn_rejects_empty_text(chat_session: AgentSession) -> None:
    with pytest.raises(InvalidInputError, match=r"^text: empty; give the message to send$"):
        turn_run(session_id=chat_session.pk, user_text="   ")
    assert not Message.objects.exists()


def test_turn_api_accepts_the_turn_and_queues_its_run(api: APIClient, chat_session: AgentSession) -> None:
    response = api.post(f"/api/sessions/{chat_session.pk}/turns/", {"text": "hi api"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    run_id = body["run"]["id"]
    assert (body["run"]["status"], body["run"]["message_seq"], body["run"]["attempt"]) == ("queued", 1, 1)
    assert (body["message"]["seq"], body["message"]["content"]) == (1, "hi api")
    assert body["stream_url"] == f"/api/runs/{run_id}/stream/"
    result = turn_execute(run_id=run_id)  # what a worker does with the queued run
    assert result.run.status == RunStatus.COMPLETED
    assert api.get(f"/api/runs/{run_id}/text/").json()["text"] == "replay: hi api"
    assert [m.seq for m in result.messages] == [1, 2]
    assert result.usage is not None
    assert result.checkpoint is None


def test_a_second_turn_while_one_is_open_is_a_409_naming_the_open_run(
    api: APIClient, chat_session: AgentSession
) -> None:
    first = api.post(f"/api/sessions/{chat_session.pk}/turns/", {"text": "one"}, format="json").json()
    second = api.post(f"/api/sessions/{chat_session.pk}/turns/", {"text": "two"}, format="json")
    assert second.status_code == 409
    run_id = first["run"]["id"]
    assert second.json()["fields"] == {
        "session": [
            f"has an open run {run_id} (queued); wait for it to finish (GET /api/runs/{run_id}/), "
            f"or cancel it (POST /api/runs/{run_id}/cancel/) before sending another turn"
        ]
    }
    assert Message.objects.filter(session=chat_session).count() == 1


def test_cancel_of_a_queued_run_with_no_lease_ends_it_at_once(api: APIClient, chat_session: AgentSession) -> None:
    run_id = api.post(f"/api/sessions/{chat_session.pk}/turns/", {"text": "one"}, format="json").json()["run"]["id"]
    cancelled = api.post(f"/api/runs/{run_id}/cancel/", {}, format="json")
    assert cancelled.status_code == 200, cancelled.json()
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == ("cancelled", "cancelled on request")


def test_retry_api_queues_a_new_attempt_without_a_second_user_message(
    api: APIClient, chat_session: AgentSession
) -> None:
    first = api.post(f"/api/sessions/{chat_session.pk}/turns/", {"text": "/error boom"}, format="json").json()
    failed = turn_execute(run_id=first["run"]["id"])
    assert failed.run.status == RunStatus.FAILED
    retried = api.post(f"/api/runs/{failed.run.pk}/retry/", format="json")
    assert retried.status_code == 202, retried.json()
    assert (retried.json()["run"]["attempt"], retried.json()["run"]["message_seq"]) == (2, 1)
    assert Message.objects.filter(session=chat_session).count() == 1
    again = api.post(f"/api/runs/{failed.run.pk}/retry/", format="json")
    assert again.status_code == 409, again.json()
    completed = api.post(f"/api/runs/{retried.json()['run']['id']}/retry/", format="json")
    assert completed.json()["fields"]["run"] == ["is queued; only a failed or interrupted run can be retried"]


def test_turn_api_errors(api: APIClient, chat_session: AgentSession) -> None:
    missing = api.post("/api/sessions/00000000-0000-0000-0000-000000000000/turns/", {"text": "x"}, format="json")
    assert missing.status_code == 404
    empty = api.post(f"/api/sessions/{chat_session.pk}/turns/", {}, format="json")
    assert empty.status_code == 400
    assert empty.json()["fields"] == {"text": ["This field is required."]}
    unknown = api.post(f"/api/sessions/{chat_session.pk}/turns/", {"text": "x", "txet": 1}, format="json")
    assert unknown.status_code == 400
    assert "txet" in unknown.json()["fields"]
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_chat_command_streams_and_prints_usage(replay_route: ModelRoute) -> None:
    operator = User.objects.create_user(username="operator")
    result = run_manage(["chat", "new", "hello"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("session ")
    assert lines[0].endswith("(route replay)")
    assert "replay: hello" in result.stdout
    assert (
        "usage: input 2 (cache read 0, cache write 0) · output 4 (reasoning 0) · total 6 tokens · "
        "cost no price on this route"
    ) in (result.stdout)
    session = AgentSession.objects.get()
    assert (session.message_count, session.owner_id) == (2, operator.pk)  # the operator's by default
    again = run_manage(["chat", str(session.pk), "/error nope"])
    assert again.returncode == 1
    assert "failed: nope" in again.stderr


@pytest.mark.django_db(transaction=True)
def test_chat_acts_as_the_given_user_and_never_on_another_users_session(replay_route: ModelRoute) -> None:
    alice = User.objects.create_user(username="alice")
    User.objects.create_user(username="bob")
    mine = run_manage(["chat", "new", "hello", "--user", "alice"])
    assert mine.returncode == 0, mine.stderr
    session = AgentSession.objects.get()
    assert session.owner_id == alice.pk
    theirs = run_manage(["chat", str(session.pk), "let me in", "--user", "bob"])
    assert theirs.returncode == 1
    assert f"session: no session {session.pk}" in theirs.stderr
    assert AgentSession.objects.get().message_count == 2
    nobody = run_manage(["chat", "new", "hello", "--user", "nobody"])
    assert nobody.returncode == 1
    assert "--user: no account 'nobody'; give an existing user name" in nobody.stderr
    assert AgentSession.objects.count() == 1


@pytest.mark.parametrize(
    ("cost", "shown"),
    [("0E-12", "$0"), ("0.000123000000", "$0.000123"), ("1.5E+2", "$150"), ("12.340000000000", "$12.34")],
)
def test_chat_shows_cost_as_plain_dollars(cost: str, shown: str) -> None:
    assert cost_display(Decimal(cost)) == shown


@pytest.mark.django_db(transaction=True)
def test_chat_new_with_a_refused_turn_writes_nothing(monkeypatch: pytest.MonkeyPatch, replay_route: ModelRoute) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = Provider.objects.create(name="openai", kind=ProviderKind.OPENAI, api_key_env="OPENAI_API_KEY")
    ModelRoute.objects.create(
        alias="fast", provider=provider, model_id="gpt-x", context_window_tokens=1000, max_output_tokens=100
    )
    User.objects.create_user(username="operator")
    blocked = run_manage(["chat", "new", "hi", "--route", "fast"])
    assert blocked.returncode == 1
    assert "route: 'fast' is blocked: OPENAI_API_KEY is not set" in blocked.stderr
    empty = run_manage(["chat", "new", ""])
    assert empty.returncode == 1
    assert "text: empty; give the message to send" in empty.stderr
    blank = run_manage(["chat", "new", "   "])
    assert blank.returncode == 1
    assert not AgentSession.objects.exists()
    assert not Message.objects.exists()
    assert not Run.objects.exists()


def test_a_reply_without_a_usage_report_records_its_counts_as_unknown() -> None:
    """llama.cpp's server streams no usage chunk: the request still spent tokens, so they are unknown, not zero."""
    with ProviderServer(Reply.sse("openai_chat/reasoning_no_usage.sse")) as server:
        provider = Provider.objects.create(
            name="local", kind=ProviderKind.OPENAI_COMPATIBLE, base_url=server.url + "/v1", options={"max_retries": 0}
        )
        ModelRoute.objects.create(
            alias="local", provider=provider, model_id="m", context_window_tokens=10_000, max_output_tokens=100
        )
        session = session_create(owner=op_user(), route_alias="local")
        result = turn_run(session_id=session.pk, user_text="hi")

    assert result.run.status == RunStatus.COMPLETED
    event = UsageEvent.objects.get(run_id=result.run.pk)
    assert result.usage == event
    counts = (event.input_tokens, event.cached_input_tokens, event.output_tokens, event.reasoning_tokens)
    assert counts == (None, None, None, None)
    assert event.total_tokens is None
    assert event.cost_partial  # nothing known to price: whatever it shows is not the whole cost


@pytest.mark.fault
def test_a_user_with_the_most_open_runs_allowed_is_refused_another(replay_route: ModelRoute) -> None:
    first = session_create(owner=op_user(), route_alias=replay_route.alias)
    second = session_create(owner=op_user(), route_alias=replay_route.alias)
    with override_settings(AGENTCHAT_MAX_OPEN_RUNS_PER_USER=1):
        turn_accept(session_id=first.pk, user_text="queued, not yet run")
        with pytest.raises(ConflictError, match="you have 1 open runs, the most allowed at once"):
            turn_accept(session_id=second.pk, user_text="one too many")
    # Refused before anything was written: the second session has no message and no run.
    assert not Message.objects.filter(session=second).exists()
    assert not Run.objects.filter(session=second).exists()
