"""SIGTERM to `manage.py serve` mid-turn: everything stops, and no run stays `running`.

A module of its own: no other server's workers may take its turn.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from core.accounts.services import token_create
from core.conversation.services import session_create
from core.models import Run, RunStatus, TraceEvent
from tests.owners import op_user
from tests.workers.test_serve import Api, _route, _serve, _stop, _wait

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.fault
def test_sigterm_mid_turn_stops_everything_and_leaves_no_run_running(tmp_path: Path) -> None:
    route = _route("long", pause_at_chunk=1, pause_ms=120_000)
    session = session_create(owner=op_user(), route_alias=route.alias)
    own = _serve(tmp_path, AGENTCHAT_SHUTDOWN_GRACE_S="2", AGENTCHAT_WORKERS="2")
    try:
        api = Api(own, token_create(user=op_user(), name="sigterm").key)
        run_id = api.turn(session, "keep going")["run"]["id"]
        _wait("the first delta", lambda: TraceEvent.objects.filter(run_id=run_id, type="text_delta").exists(), 60, own)
        own.process.send_signal(signal.SIGTERM)
        own.process.wait(timeout=30)
    finally:
        _stop(own)
    assert own.process.returncode == 0, own.output()
    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.INTERRUPTED
    assert run.error == "interrupted: the worker shut down before the run finished"
