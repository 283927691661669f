"""Real turns against a real model server on 127.0.0.1, through an `openai_compatible` route.

`make live-local` (scripts/live-local) installs llama.cpp's OpenAI-compatible server and the
SmolLM2-135M-Instruct model, serves it, and runs these tests with AGENTCHAT_LIVE_LOCAL_URL set. The
official `openai` SDK is the client; nothing is recorded or replayed. Elsewhere they are skipped,
saying so.
"""

from __future__ import annotations

import os

import pytest

from core.conversation.events import RuntimeEvent, TextDelta
from core.conversation.selectors import run_text
from core.conversation.services import session_create
from core.models import Message, ModelRoute, Provider, ProviderKind, RunStatus, TraceEvent
from runtime.turns import turn_run
from telemetry.models import UsageEvent
from tests.owners import op_user
from tests.procs import run_manage

URL = os.environ.get("AGENTCHAT_LIVE_LOCAL_URL", "")
MODEL = os.environ.get("AGENTCHAT_LIVE_LOCAL_MODEL", "smollm2")

pytestmark = [
    pytest.mark.skipif(not URL, reason="needs a local model server: run `make live-local`"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def local_route() -> ModelRoute:
    provider = Provider.objects.create(
        name="local", kind=ProviderKind.OPENAI_COMPATIBLE, base_url=URL, options={"max_retries": 1}
    )
    return ModelRoute.objects.create(
        alias="local", provider=provider, model_id=MODEL, context_window_tokens=2048, max_output_tokens=48
    )


def test_a_real_turn_streams_completes_and_records_usage(local_route: ModelRoute) -> None:
    session = session_create(owner=op_user(), title="live", route_alias=local_route.alias)
    seen: list[RuntimeEvent] = []

    result = turn_run(session_id=session.pk, user_text="Name three colours.", on_event=seen.append)

    assert result.run.status == RunStatus.COMPLETED, result.run.error
    deltas = [event for event in seen if isinstance(event, TextDelta)]
    assert len(deltas) >= 2, "the reply arrived in one piece: it did not stream"
    assert result.text.strip()
    assert "".join(delta.text for delta in deltas) == result.text == run_text(run_id=result.run.pk)
    assert list(Message.objects.filter(session=session).values_list("role", flat=True)) == ["user", "assistant"]
    assert TraceEvent.objects.filter(run=result.run, type="text_delta").count() >= 1
    # The server sends no usage while streaming: the event is recorded with its counts unknown (None),
    # or with the counts a later server version reports; never as zeros.
    usage = UsageEvent.objects.get(run_id=result.run.pk)
    assert usage.model == MODEL
    assert usage.output_tokens is None or usage.output_tokens > 0
    print(
        f"\nlive-local: {len(deltas)} deltas, {len(result.text)} characters; usage input={usage.input_tokens} "
        f"output={usage.output_tokens}: {result.text!r}"
    )


def test_the_chat_command_streams_a_real_reply(local_route: ModelRoute) -> None:
    user = op_user()
    done = run_manage(["chat", "new", "Say hello.", "--route", local_route.alias, "--user", user.username], timeout=180)

    assert done.returncode == 0, done.stderr
    run = local_route.runs.get()
    assert run.status == RunStatus.COMPLETED
    reply = run_text(run_id=run.pk)
    assert reply.strip()
    assert reply in done.stdout
