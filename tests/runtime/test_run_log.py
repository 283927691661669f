"""The run's structured log line carries the provider's own request id, for a report to the provider."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from core.conversation.services import session_create
from core.models import ModelRoute, Provider, ProviderKind, RunStatus
from runtime.turns import RUN_LOG, turn_run
from tests.owners import op_user
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db


def _route(kind: str, base_url: str) -> None:
    provider = Provider.objects.create(
        name=kind, kind=kind, api_key_env="RUN_LOG_KEY", base_url=base_url, options={"max_retries": 0}
    )
    ModelRoute.objects.create(
        alias="logged",
        provider=provider,
        model_id="model-x",
        context_window_tokens=10_000,
        max_output_tokens=100,
        price_input_per_mtok=Decimal("1"),
    )


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == RUN_LOG.name]


@pytest.mark.parametrize(
    ("kind", "recording", "header", "suffix"),
    [
        (ProviderKind.OPENAI, "openai_responses/text.sse", "x-request-id", "/v1"),
        (ProviderKind.ANTHROPIC, "anthropic/text.sse", "request-id", ""),
    ],
)
def test_the_run_log_line_names_the_providers_request_id_of_a_completed_and_a_failed_turn(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    recording: str,
    header: str,
    suffix: str,
) -> None:
    monkeypatch.setenv("RUN_LOG_KEY", "sk-RECOGNISABLE-run-log")
    caplog.set_level("INFO", logger=RUN_LOG.name)
    answered = Reply.sse(recording, headers={header: "req_EXAMPLE_answered"})
    refused = Reply.error(400, {"error": {"message": "bad request", "type": "invalid_request_error"}})
    refused.headers[header] = "req_EXAMPLE_refused"
    with ProviderServer(answered, refused) as server:
        _route(kind, server.url + suffix)
        session = session_create(owner=op_user(), route_alias="logged")
        done = turn_run(session_id=session.pk, user_text="hi")
        failed = turn_run(session_id=session.pk, user_text="again")
    assert (done.run.status, failed.run.status) == (RunStatus.COMPLETED, RunStatus.FAILED)
    lines = _lines(caplog)
    assert [(line["run"], line["status"], line["provider_request_id"]) for line in lines] == [
        (str(done.run.pk), "completed", "req_EXAMPLE_answered"),
        (str(failed.run.pk), "failed", "req_EXAMPLE_refused"),
    ]


def test_a_provider_without_request_ids_logs_none(caplog: pytest.LogCaptureFixture, replay_route: ModelRoute) -> None:
    caplog.set_level("INFO", logger=RUN_LOG.name)
    session = session_create(owner=op_user(), route_alias=replay_route.alias)
    result = turn_run(session_id=session.pk, user_text="hi")
    assert [(line["run"], line["provider_request_id"]) for line in _lines(caplog)] == [(str(result.run.pk), None)]
