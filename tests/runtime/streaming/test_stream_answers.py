"""What the stream endpoint answers before any stream starts: the API's statuses and error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from core.conversation.services import run_event_append, run_finish
from runtime.streaming.sse import HEARTBEAT, event_frame
from tests.runtime.streaming.conftest import owner_signed_in, run_opened

pytestmark = pytest.mark.django_db


def url(run_id: object) -> str:
    return f"/api/runs/{run_id}/stream/"


def body(response: Any) -> dict[str, Any]:
    found: dict[str, Any] = response.json()
    return found


def test_the_owner_gets_an_event_stream_that_proxies_do_not_buffer() -> None:
    owner = owner_signed_in()
    run = run_opened(owner.user)
    response = Client().get(url(run.pk), headers=owner.headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"


def test_anonymous_is_401_with_the_token_challenge() -> None:
    run = run_opened(owner_signed_in().user)
    response = Client().get(url(run.pk))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert body(response) == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
        "fields": {},
    }


def test_a_bad_token_is_401() -> None:
    run = run_opened(owner_signed_in().user)
    response = Client().get(url(run.pk), headers={"Authorization": "Token not-a-key"}, REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 401
    assert body(response)["detail"] == "Invalid token."


def test_another_users_run_and_an_unknown_run_are_404() -> None:
    run = run_opened(owner_signed_in().user)
    other = owner_signed_in("someone-else")
    for path in (url(run.pk), url("00000000-0000-0000-0000-000000000000"), url("not-a-uuid")):
        response = Client().get(path, headers=other.headers)
        assert response.status_code == 404, path
        assert body(response)["fields"] == {"run": [f"no run {path.split('/')[3]}"]}


def test_the_session_signs_in_too() -> None:
    owner = owner_signed_in()
    run = run_opened(owner.user)
    client = Client()
    client.force_login(owner.user, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get(url(run.pk)).status_code == 200


def test_only_get_is_allowed() -> None:
    owner = owner_signed_in()
    run = run_opened(owner.user)
    client = APIClient()
    client.force_authenticate(user=owner.user)
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(url(run.pk))
        assert response.status_code == 405, method
        assert body(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("query", "headers", "field", "message"),
    [
        (
            "?after=abc",
            {},
            "after",
            "'abc' is not an event index; send the `id:` of the last event received (0 for none)",
        ),
        (
            "?after=-1",
            {},
            "after",
            "'-1' is not an event index; send the `id:` of the last event received (0 for none)",
        ),
        (
            "?after=99999999999",
            {},
            "after",
            "'99999999999' is not an event index; send the `id:` of the last event received (0 for none)",
        ),
        (
            "",
            {"Last-Event-ID": "1.5"},
            "Last-Event-ID",
            "'1.5' is not an event index; send the `id:` of the last event received (0 for none)",
        ),
        ("?after=4", {}, "after", "4 is past the run's last event (3); resume from an id the stream sent"),
        (
            "",
            {"Last-Event-ID": "9"},
            "Last-Event-ID",
            "9 is past the run's last event (3); resume from an id the stream sent",
        ),
    ],
)
def test_a_bad_resume_point_is_400_naming_the_field(
    query: str, headers: dict[str, str], field: str, message: str
) -> None:
    owner = owner_signed_in()
    run = run_opened(owner.user)
    run_event_append(run_id=run.pk, event_type="text_delta", payload={"text": "x"})
    run_finish(run_id=run.pk, status="completed")
    response = Client().get(url(run.pk) + query, headers={**owner.headers, **headers})
    assert response.status_code == 400
    assert body(response) == {"detail": f"{field}: {message}", "code": "invalid", "fields": {field: [message]}}


def test_an_event_frame_is_one_sse_event_whose_data_is_one_line_of_json() -> None:
    frame = event_frame(index=7, event_type="text_delta", payload={"text": "a\nb\r\nc\u2028é"})
    assert frame == b'id: 7\nevent: text_delta\ndata: {"text":"a\\nb\\r\\nc\\u2028\\u00e9"}\n\n'
    assert HEARTBEAT == b": keep-alive\n"
