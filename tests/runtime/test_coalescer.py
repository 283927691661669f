"""The trace coalescer: batched writes, the exact text back, events in order, the cancel seen by a flush."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.conversation.events import Finish, Reasoning, RuntimeEvent, TextDelta, ToolCall, Usage
from core.conversation.selectors import run_text
from core.conversation.services import run_cancel, run_create, run_event_append, run_events_append
from core.errors import ConflictError, InvalidInputError
from core.models import AgentSession, ModelRoute, Provider, Run, RunStatus, TraceEvent
from runtime.coalescer import FLUSH_BYTES, TraceCoalescer
from runtime.turns import turn_run

pytestmark = pytest.mark.django_db

# Multi-byte text of every UTF-8 width, a combining accent, an emoji sequence joined by ZWJ, CRLF.
MIXED = "héllo wörld ✓ 日本語テキスト 🙂👩‍🔬 e\u0301 \r\n tab\there 𝄞 ÿ" * 3


class Clock:
    """A clock the test moves by hand (the coalescer's time is injected, not patched)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def running_run(session: AgentSession) -> Run:
    run = run_create(session_id=session.pk, status=RunStatus.QUEUED)
    run_event_append(run_id=run.pk, event_type="run_started", payload={})
    return run


def stored(run: Run) -> list[tuple[str, dict[str, object]]]:
    return list(TraceEvent.objects.filter(run=run).order_by("index").values_list("type", "payload"))[1:]


def odd_pieces(text: str, seed: int) -> list[str]:
    """`text` cut at random code-point boundaries into pieces of 1 to 9 characters."""
    rng = random.Random(seed)
    pieces, start = [], 0
    while start < len(text):
        size = rng.randint(1, 9)
        pieces.append(text[start : start + size])
        start += size
    return pieces


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rebuilt_text_is_identical_whatever_the_chunking(chat_session: AgentSession, seed: int) -> None:
    run = running_run(chat_session)
    text = MIXED * 40  # about 9 KB of UTF-8: flushed by size more than once
    clock = Clock()
    coalescer = TraceCoalescer(run.pk, clock=clock)
    pieces = odd_pieces(text, seed)
    for piece in pieces:
        coalescer.add(TextDelta(text=piece))
    coalescer.flush()
    assert run_text(run_id=run.pk) == text
    deltas = [payload["text"] for kind, payload in stored(run) if kind == "text_delta"]
    # Merged: a few stored deltas for hundreds of pieces, each at most one piece past the 4 KB mark.
    assert len(pieces) > 1000
    assert 2 <= len(deltas) <= 4
    assert all(len(str(delta).encode()) < FLUSH_BYTES + 4 * 9 for delta in deltas)
    assert coalescer.flushes == len(deltas)


def test_a_delta_waits_at_most_the_flush_interval(chat_session: AgentSession) -> None:
    run = running_run(chat_session)
    clock = Clock()
    coalescer = TraceCoalescer(run.pk, clock=clock)
    coalescer.add(TextDelta(text="a"))
    clock.now += 0.02
    coalescer.add(TextDelta(text="b"))
    assert stored(run) == []  # 20 ms old: still buffered
    assert coalescer.flush_due() is None
    clock.now += 0.04
    assert coalescer.flush_due() is not None  # 60 ms old: due, flushed by the timer
    assert stored(run) == [("text_delta", {"text": "ab"})]
    coalescer.add(TextDelta(text="c"))
    clock.now += 0.06
    coalescer.add(TextDelta(text="d"))  # the arrival of a delta past the interval flushes too
    assert stored(run) == [("text_delta", {"text": "ab"}), ("text_delta", {"text": "cd"})]


def test_other_events_flush_the_buffer_and_keep_their_order(chat_session: AgentSession) -> None:
    run = running_run(chat_session)
    coalescer = TraceCoalescer(run.pk, clock=Clock())
    signed = {"provider": "anthropic", "signature": "sig-EXAMPLE"}
    events: list[RuntimeEvent] = [
        Reasoning(text="think ", state={"provider": "openai_chat"}),
        Reasoning(text="more", state={"provider": "openai_chat"}),
        Reasoning(text="signed", state=signed),
        TextDelta(text="Hel"),
        TextDelta(text="lo"),
        ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"}),
        TextDelta(text=" again"),
        Finish(reason="stop"),
        Usage(input_tokens=3, output_tokens=2),
    ]
    for event in events:
        coalescer.add(event)
    assert stored(run) == [
        ("reasoning", {"text": "think more", "state": {"provider": "openai_chat"}}),
        ("reasoning", {"text": "signed", "state": signed}),  # a state with a signature stays on its own event
        ("text_delta", {"text": "Hello"}),
        ("tool_call", {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}),
        ("text_delta", {"text": " again"}),
        ("finish", {"reason": "stop"}),
        # Counts the provider did not report are unknown (None), not zero.
        (
            "usage",
            {
                "input_tokens": 3,
                "output_tokens": 2,
                "cached_input_tokens": None,
                "reasoning_tokens": None,
                "cache_write_input_tokens": None,
            },
        ),
    ]
    # Written with the signed reasoning, the tool call, the finish, the usage: a flush each.
    assert coalescer.flushes == 4


def test_one_flush_is_one_transaction_of_three_statements(chat_session: AgentSession) -> None:
    run = running_run(chat_session)
    coalescer = TraceCoalescer(run.pk, clock=Clock())
    for piece in odd_pieces(MIXED, 7):
        coalescer.add(TextDelta(text=piece))
    with CaptureQueriesContext(connection) as queries:
        coalescer.flush()
    statements = [query["sql"].split()[0].upper() for query in queries.captured_queries]
    # The run row read under its lock (which is where a cancel is seen), the merged delta, the counter;
    # on PostgreSQL also `SELECT pg_notify(…)`, which wakes the run's streams at the commit.
    wake = ["SELECT"] if connection.vendor == "postgresql" else []
    written = [s for s in statements if s not in ("BEGIN", "SAVEPOINT", "RELEASE")]
    assert written == ["SELECT", "INSERT", "UPDATE", *wake]


def test_a_cancelled_run_refuses_the_flush_and_nothing_is_written(chat_session: AgentSession) -> None:
    run = running_run(chat_session)
    coalescer = TraceCoalescer(run.pk, clock=Clock())
    coalescer.add(TextDelta(text="streamed before the cancel"))
    run_cancel(run_id=run.pk, reason="stopped from the UI")
    with pytest.raises(ConflictError, match="is cancelled; a finished run takes no more events"):
        coalescer.flush()
    assert [kind for kind, _ in stored(run)] == ["run_finished"]


def test_the_batch_service_refuses_state_moves_and_bad_payloads_whole(chat_session: AgentSession) -> None:
    run = running_run(chat_session)
    with pytest.raises(InvalidInputError) as moved:
        run_events_append(run_id=run.pk, events=[("text_delta", {"text": "a"}), ("run_finished", {"status": "failed"})])
    assert moved.value.fields == {
        "events[1].type": ["run_finished moves the run's state; append it with run_event_append"]
    }
    with pytest.raises(InvalidInputError) as bad:
        run_events_append(run_id=run.pk, events=[("text_delta", {"text": "a"}), ("text_delta", {"txt": "b"})])
    assert bad.value.fields is not None
    assert "events[1].payload.text" in bad.value.fields
    assert stored(run) == []
    written = run_events_append(
        run_id=run.pk, events=[("text_delta", {"text": "a"}), ("error", {"message": "gone", "code": "x"})]
    )
    assert (written.event_count, written.error) == (3, "gone")
    assert Run.objects.get(pk=run.pk).error == "gone"


def test_a_queued_run_refuses_a_batch(chat_session: AgentSession) -> None:
    run = run_create(session_id=chat_session.pk, status=RunStatus.QUEUED)
    with pytest.raises(ConflictError, match="is queued; append run_started"):
        run_events_append(run_id=run.pk, events=[("text_delta", {"text": "a"})])


def test_a_turn_streams_a_long_multibyte_reply_in_few_writes(
    replay_route: ModelRoute, chat_session: AgentSession
) -> None:
    Provider.objects.filter(pk=replay_route.provider_id).update(options={"chunk_chars": 7})
    user_text = MIXED * 60
    result = turn_run(session_id=chat_session.pk, user_text=user_text)
    assert result.run.status == RunStatus.COMPLETED
    reply = "replay: " + user_text.strip()
    assert result.text == reply
    assert run_text(run_id=result.run.pk) == reply
    assert result.messages[-1].content == reply
    deltas = TraceEvent.objects.filter(run=result.run, type="text_delta").count()
    chunks = -(-len(reply) // 7)
    assert chunks > 400
    # Flushed by size (~4 KB) or age (50 ms): far fewer stored deltas than streamed chunks.
    assert len(reply.encode()) // FLUSH_BYTES <= deltas < chunks // 10
