"""Route probes and the blocks they (and turns) set: a refused key, an unknown model.

The official `openai` SDK is the client; the provider is a local server on 127.0.0.1 replaying
recorded Chat Completions streams (`tests/runtime/providers/servers.py`), never a mock.
"""

from __future__ import annotations

import io
import itertools
import socket

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.config.readiness import key_fingerprint
from core.config.selectors import config_readiness
from core.conversation.services import session_create
from core.errors import ConflictError, NotFoundError
from core.models import ModelRoute, Provider, ProviderKind, RouteStatus, RunStatus
from runtime.probes import PROBE_MAX_OUTPUT_TOKENS, route_probe
from runtime.turns import turn_run
from tests.owners import op_user, plain_user
from tests.runtime.providers.servers import ProviderServer, Reply

pytestmark = pytest.mark.django_db

KEY_ENV = "PROBE_TEST_KEY"
KEY = "sk-probe-RECOGNISABLE-0001"
OTHER_KEY = "sk-probe-RECOGNISABLE-0002"
_names = itertools.count(1)


def chat_route(base_url: str, monkeypatch: pytest.MonkeyPatch, *, key: str = KEY) -> ModelRoute:
    """An OpenAI-compatible route at `base_url`, its key variable set to `key`, no retries."""
    monkeypatch.setenv(KEY_ENV, key)
    n = next(_names)
    provider = Provider.objects.create(
        name=f"local{n}",
        kind=ProviderKind.OPENAI_COMPATIBLE,
        api_key_env=KEY_ENV,
        base_url=base_url,
        options={"max_retries": 0, "timeout_s": 5},
    )
    return ModelRoute.objects.create(
        alias=f"probe{n}", provider=provider, model_id="m-1", context_window_tokens=8_000, max_output_tokens=500
    )


def error(status: int, message: str) -> Reply:
    return Reply.error(status, {"error": {"message": message, "type": "invalid_request_error"}})


def route_state(alias: str, *, redacted: bool = False) -> tuple[str, tuple[str, ...]]:
    state = next(item for item in config_readiness(redacted=redacted).routes if item.name == alias)
    return state.status, state.reasons


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there once the socket is closed


# --- the probe's outcomes -----------------------------------------------------------------------


def test_a_probe_that_gets_an_answer_is_stored_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    with ProviderServer(Reply.sse("openai_chat/text.sse")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        status = route_probe(route_alias=route.alias)
    assert (status.probe_ok, status.probe_code, status.probe_message, status.probe_model) == (True, "", "", "m-1")
    assert status.probe_latency_ms is not None
    assert status.probed_at is not None
    # One minimal request: the route's model, a one-line prompt, a small output cap.
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "m-1"
    assert request.body["max_tokens"] == PROBE_MAX_OUTPUT_TOKENS
    assert request.headers["authorization"] == f"Bearer {KEY}"
    state = next(item for item in config_readiness().routes if item.name == route.alias)
    assert (state.status, state.reasons) == ("ready", ())
    assert state.probe is not None
    assert state.probe.ok
    assert state.probe.model == "m-1"


def test_a_refused_key_blocks_the_route_until_the_variable_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    with ProviderServer(error(401, "Incorrect API key provided")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        status = route_probe(route_alias=route.alias)
    assert (status.probe_ok, status.probe_code) == (False, "key_refused")
    assert KEY not in status.probe_message
    # Only an HMAC of the refused value is kept, keyed by SECRET_KEY: never the value.
    stored = RouteStatus.objects.get(route=route)
    assert stored.key_refused_env == KEY_ENV
    assert stored.key_refused_hmac == key_fingerprint(KEY) != KEY
    assert KEY not in str(RouteStatus.objects.filter(route=route).values().get())
    assert route_state(route.alias) == (
        "blocked",
        (
            f"the key in {KEY_ENV} was refused; put a working key in it (the route is usable again once the "
            "value changes) or probe the route again",
        ),
    )
    # A user who is not staff reads the record, not the variable.
    provider = route.provider.name
    assert route_state(route.alias, redacted=True) == ("blocked", (f"the key of provider {provider!r} was refused",))
    monkeypatch.setenv(KEY_ENV, OTHER_KEY)
    assert route_state(route.alias) == ("ready", ())


def test_an_unknown_model_blocks_the_route_until_a_probe_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    with ProviderServer(error(404, "The model `m-1` does not exist"), Reply.sse("openai_chat/text.sse")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        status = route_probe(route_alias=route.alias)
        assert (status.probe_ok, status.probe_code) == (False, "model_not_found")
        provider = route.provider.name
        assert route_state(route.alias) == (
            "blocked",
            (
                f"provider {provider!r} does not know model 'm-1'; fix the route's model_id, or probe the route "
                "again once the model exists",
            ),
        )
        assert route_probe(route_alias=route.alias).probe_ok is True
    assert route_state(route.alias) == ("ready", ())
    assert RouteStatus.objects.get(route=route).model_missing == ""


def test_a_server_error_is_stored_but_does_not_block(monkeypatch: pytest.MonkeyPatch) -> None:
    with ProviderServer(error(500, "upstream exploded")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        status = route_probe(route_alias=route.alias)
    assert (status.probe_ok, status.probe_code) == (False, "provider_unavailable")
    assert "HTTP 500" in status.probe_message
    assert "upstream exploded" in status.probe_message
    assert route_state(route.alias) == ("ready", ())


def test_an_unreachable_provider_is_stored_but_does_not_block(monkeypatch: pytest.MonkeyPatch) -> None:
    route = chat_route(closed_port_url(), monkeypatch)
    status = route_probe(route_alias=route.alias)
    assert (status.probe_ok, status.probe_code) == (False, "provider_unreachable")
    assert status.probe_message.startswith(f"cannot reach the OpenAI-compatible server (route {route.alias!r}) at ")
    assert route_state(route.alias) == ("ready", ())


def test_a_probe_of_an_unknown_route_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="no route named 'nope'"):
        route_probe(route_alias="nope")


def test_a_route_whose_key_is_unset_is_probed_without_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    with ProviderServer(Reply.sse("openai_chat/text.sse")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        monkeypatch.delenv(KEY_ENV)
        status = route_probe(route_alias=route.alias)
    assert (status.probe_ok, status.probe_code) == (False, "adapter_blocked")
    assert status.probe_message == f"blocked: {KEY_ENV} is not set"
    assert server.requests == []


# --- turns set and lift the same blocks ------------------------------------------------------------


def test_a_turn_refused_by_the_provider_blocks_the_route_and_the_next_turn_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ProviderServer(error(403, "Forbidden"), Reply.sse("openai_chat/text.sse")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        session = session_create(owner=op_user(), route_alias=route.alias)
        result = turn_run(session_id=session.pk, user_text="hello")
        assert result.run.status == RunStatus.FAILED
        assert RouteStatus.objects.get(route=route).key_refused_hmac == key_fingerprint(KEY)
        with pytest.raises(ConflictError, match=f"is blocked: the key in {KEY_ENV} was refused"):
            turn_run(session_id=session.pk, user_text="again")
        assert len(server.requests) == 1  # the refused turn never reached the provider
        # A new key: the route is ready again, and the turn that succeeds clears the record.
        monkeypatch.setenv(KEY_ENV, OTHER_KEY)
        assert turn_run(session_id=session.pk, user_text="again").run.status == RunStatus.COMPLETED
    stored = RouteStatus.objects.get(route=route)
    assert (stored.key_refused_env, stored.key_refused_hmac, stored.key_refused_at) == ("", "", None)


def test_a_turn_on_an_unknown_model_blocks_the_route(monkeypatch: pytest.MonkeyPatch) -> None:
    with ProviderServer(error(404, "no such model")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        session = session_create(owner=op_user(), route_alias=route.alias)
        assert turn_run(session_id=session.pk, user_text="hello").run.status == RunStatus.FAILED
    assert RouteStatus.objects.get(route=route).model_missing == "m-1"
    assert route_state(route.alias)[0] == "blocked"


# --- the command and the endpoint ----------------------------------------------------------------


def test_check_providers_prints_each_route_and_fails_when_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    with ProviderServer(Reply.sse("openai_chat/text.sse")) as good, ProviderServer(error(401, "bad key")) as bad:
        ok_route = chat_route(good.url + "/v1", monkeypatch)
        refused = chat_route(bad.url + "/v1", monkeypatch)
        out = io.StringIO()
        call_command("check_providers", route=ok_route.alias, stdout=out)
        assert out.getvalue().startswith(f"{ok_route.alias}: ok, model 'm-1' answered in ")
        out = io.StringIO()
        with pytest.raises(CommandError) as caught:
            call_command("check_providers", stdout=out)
    # Routes in alias order (probe10 before probe9).
    lines = dict(line.split(": ", 1) for line in out.getvalue().splitlines())
    assert sorted(lines) == sorted([ok_route.alias, refused.alias])
    assert lines[ok_route.alias].startswith("ok, model 'm-1' answered in ")
    assert lines[refused.alias].startswith("key_refused, model 'm-1' after ")
    assert str(caught.value) == (
        f"1 of 2 route(s) failed their probe: {refused.alias}; see each line above for what to fix"
    )


def test_check_providers_names_an_unknown_route() -> None:
    with pytest.raises(CommandError, match="no route named 'nope'; check the name"):
        call_command("check_providers", route="nope", stdout=io.StringIO())


def test_the_probe_endpoint_answers_staff_with_the_route_readiness(
    api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ProviderServer(error(401, "bad key")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        response = api.post(f"/api/config/routes/{route.alias}/probe/")
    assert response.status_code == 200
    body = response.json()
    assert (body["kind"], body["name"], body["status"]) == ("routes", route.alias, "blocked")
    assert body["reasons"][0].startswith(f"the key in {KEY_ENV} was refused")
    assert (body["probe"]["ok"], body["probe"]["code"], body["probe"]["model"]) == (False, "key_refused", "m-1")
    assert api.post("/api/config/routes/nope/probe/").status_code == 404


def test_a_non_staff_probe_is_refused_and_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """#16: probes are for staff only."""
    client = APIClient()
    client.force_authenticate(plain_user("reader"))
    with ProviderServer(Reply.sse("openai_chat/text.sse")) as server:
        route = chat_route(server.url + "/v1", monkeypatch)
        response = client.post(f"/api/config/routes/{route.alias}/probe/")
    assert response.status_code == 403
    assert server.requests == []
    assert not RouteStatus.objects.exists()


def test_readiness_shows_a_redacted_probe_to_users_who_are_not_staff(monkeypatch: pytest.MonkeyPatch) -> None:
    route = chat_route(closed_port_url(), monkeypatch)
    route_probe(route_alias=route.alias)
    client = APIClient()
    client.force_authenticate(plain_user("reader"))
    body = client.get("/api/config/readiness/").json()
    probe = next(item for item in body["routes"] if item["name"] == route.alias)["probe"]
    provider = route.provider.name
    assert probe["message"] == (
        f"the probe of route {route.alias!r} on provider {provider!r} failed (provider_unreachable)"
    )
    assert "127.0.0.1" not in str(body)


def test_loading_the_config_file_again_keeps_the_route_status(example_loaded: None) -> None:
    """The status is what the app learned, not configuration: `load_config` leaves it alone."""
    status = route_probe(route_alias="replay")
    assert status.probe_ok is True
    call_command("load_config", stdout=io.StringIO())
    kept = RouteStatus.objects.get(route__alias="replay")
    assert (kept.probe_ok, kept.probed_at) == (True, status.probed_at)
    state = next(item for item in config_readiness().routes if item.name == "replay")
    assert state.probe is not None
    assert state.probe.probed_at == status.probed_at
