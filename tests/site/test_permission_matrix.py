"""Who may do what, for every URL the site serves: each named URL pattern (found by walking the
resolver) x every method x anonymous / another user / the owner / staff, with the status each cell
must answer. A new URL pattern without a row here fails `test_every_url_pattern_has_a_row`.

The record in a URL belongs to the owner (a user who is not staff); "staff" is the operator, who
owns none of it: through the API staff read only their own records (the admin shows everything).
Roles ask in the order anonymous, other, staff, owner, and methods in METHODS order, so a write by
the owner (a delete) comes last.
The admin's URLs are Django's own (staff only, `tests/site/test_security_boundary.py` and the
browser check walk them) and are left out here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from core.accounts.services import token_create
from core.conversation.importing.models import ImportJob
from core.conversation.services import message_append, run_create, run_event_append, session_create
from memory.services import attachment_record, episode_upsert, memory_write
from telemetry.services import usage_record
from tests.owners import op_user, plain_user

ROLES = ("anonymous", "other", "staff", "owner")
METHODS = ("get", "post", "put", "patch", "delete")

# (anonymous, other, staff, owner)
Cells = tuple[int, int, int, int]
ANY_SIGNED_IN: Cells = (401, 200, 200, 200)
OWNER_ONLY: Cells = (401, 404, 404, 200)
NOT_ALLOWED: Cells = (401, 405, 405, 405)
STAFF_READ: Cells = (401, 403, 200, 403)
STAFF_REFUSED_WRITE: Cells = (401, 403, 405, 403)


@dataclass(frozen=True)
class World:
    session: str
    run: str
    memory: int
    episode: int
    attachment: int
    token: int
    import_job: str = ""


Body = dict[str, Any] | Callable[[str, World], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    kwargs: Callable[[World], dict[str, Any]]
    cells: dict[str, Cells]
    bodies: dict[str, Body]


def row(
    kwargs: Callable[[World], dict[str, Any]] | None = None, bodies: dict[str, Body] | None = None, **cells: Cells
) -> Row:
    """Methods not named answer 405 to anyone signed in (401 to the anonymous)."""
    return Row(kwargs or (lambda w: {}), {m: cells.get(m, NOT_ALLOWED) for m in METHODS}, bodies or {})


def owners_page(kwargs: Callable[[World], dict[str, Any]]) -> Row:
    """A page about one record: its owner's only (another user's is a 404); GET only, sign-in first."""
    refused: Cells = (302, 405, 405, 405)
    return row(kwargs, get=(302, 404, 404, 200), post=refused, put=refused, patch=refused, delete=refused)


def session_pk(w: World) -> dict[str, Any]:
    return {"pk": w.session}


def run_pk(w: World) -> dict[str, Any]:
    return {"pk": w.run}


def config_rows(key: str, value: str) -> dict[str, Row]:
    return {
        "list": row(
            get=STAFF_READ,
            post=STAFF_REFUSED_WRITE,
            put=STAFF_REFUSED_WRITE,
            patch=STAFF_REFUSED_WRITE,
            delete=STAFF_REFUSED_WRITE,
        ),
        "detail": row(
            lambda w: {key: value},
            get=STAFF_READ,
            post=STAFF_REFUSED_WRITE,
            put=STAFF_REFUSED_WRITE,
            patch=STAFF_REFUSED_WRITE,
            delete=STAFF_REFUSED_WRITE,
        ),
    }


CONFIG = {
    "provider": ("name", "openai"),
    "route": ("alias", "main"),
    "tool": ("name", "web_search"),
    "skill": ("name", "notes"),
    "mcp-server": ("name", "files"),
    "agent": ("name", "researcher"),
    "team": ("name", "desk"),
}

MATRIX: dict[str, Row] = {
    # Pages outside the API.
    "index": row(
        get=(302, 200, 200, 200),
        post=(302, 405, 405, 405),
        put=(302, 405, 405, 405),
        patch=(302, 405, 405, 405),
        delete=(302, 405, 405, 405),
    ),
    # The pages (web/urls.py): read-only pages answer GET only; the memory and account pages take their
    # forms' POST (an empty one is refused with a notice, then the redirect back to the page).
    "web-chat": owners_page(lambda w: {"session_id": w.session}),
    **{
        name: row(
            get=(302, 200, 200, 200),
            post=(302, 302, 302, 302) if name in ("web-memory", "web-account", "web-import") else (302, 405, 405, 405),
            put=(302, 405, 405, 405),
            patch=(302, 405, 405, 405),
            delete=(302, 405, 405, 405),
        )
        for name in ("web-search", "web-usage", "web-memory", "web-config", "web-account", "web-import", "web-export")
    },
    # One import's progress page: its owner's only.
    "web-import-job": owners_page(lambda w: {"job_id": w.import_job}),
    "favicon.ico": row(
        get=(301, 301, 301, 301),
        post=(301, 301, 301, 301),
        put=(301, 301, 301, 301),
        patch=(301, 301, 301, 301),
        delete=(301, 301, 301, 301),
    ),
    # Django's LoginView: a form (an empty one is shown again with its errors; PUT is handled as POST).
    "login": row(
        get=(200, 200, 200, 200),
        post=(200, 200, 200, 200),
        put=(200, 200, 200, 200),
        patch=(405, 405, 405, 405),
        delete=(405, 405, 405, 405),
    ),
    # Django's LogoutView: POST only, then a redirect.
    "logout": row(
        get=(405, 405, 405, 405),
        post=(302, 302, 302, 302),
        put=(405, 405, 405, 405),
        patch=(405, 405, 405, 405),
        delete=(405, 405, 405, 405),
    ),
    # The API's description.
    "schema": row(get=ANY_SIGNED_IN),
    "swagger-ui": row(get=ANY_SIGNED_IN),
    "redoc": row(get=ANY_SIGNED_IN),
    "api-root": row(get=ANY_SIGNED_IN),
    "bootstrap": row(get=ANY_SIGNED_IN),
    "config-readiness": row(get=ANY_SIGNED_IN),
    # A probe is an operator action (a real request to the provider): staff only, a POST.
    # Permission comes before the method: other methods are a 403 to a user who is not staff.
    "config-route-probe": row(
        lambda w: {"alias": "main"},
        get=STAFF_REFUSED_WRITE,
        post=(401, 403, 200, 403),
        put=STAFF_REFUSED_WRITE,
        patch=STAFF_REFUSED_WRITE,
        delete=STAFF_REFUSED_WRITE,
    ),
    # Probing an MCP server starts its configured process: staff only, a POST (a failed start is still a 200).
    "config-mcp-server-probe": row(
        lambda w: {"name": "files"},
        get=STAFF_REFUSED_WRITE,
        post=(401, 403, 200, 403),
        put=STAFF_REFUSED_WRITE,
        patch=STAFF_REFUSED_WRITE,
        delete=STAFF_REFUSED_WRITE,
    ),
    # Accounts.
    "api-token-list": row(get=ANY_SIGNED_IN, post=(401, 201, 201, 201), bodies={"post": {"name": "laptop"}}),
    "api-token-detail": row(lambda w: {"pk": w.token}, delete=(401, 404, 404, 204)),
    # Conversations.
    "session-list": row(get=ANY_SIGNED_IN, post=(401, 201, 201, 201), bodies={"post": {"title": "new"}}),
    # The owner reaches the session; its delete is refused while its run is still open.
    "session-detail": row(
        session_pk,
        get=OWNER_ONLY,
        patch=OWNER_ONLY,
        delete=(401, 404, 404, 409),
        bodies={"patch": {"title": "renamed"}},
    ),
    "session-archive": row(session_pk, post=OWNER_ONLY),
    "session-unarchive": row(session_pk, post=(401, 404, 404, 409)),  # the owner's session is not archived
    "session-restore": row(session_pk, get=OWNER_ONLY),
    "session-leaf": row(session_pk, post=OWNER_ONLY, bodies={"post": {"seq": 1}}),
    "session-path": row(session_pk, get=OWNER_ONLY),
    "session-message-siblings": row(lambda w: {"session_id": w.session, "seq": 1}, get=OWNER_ONLY),
    # Message 1 is a user message: only an assistant reply can be regenerated.
    "session-message-regenerate": row(lambda w: {"session_id": w.session, "seq": 1}, post=(401, 404, 404, 400)),
    # The owner's session has an open run: an edit waits for it.
    "session-message-edit": row(
        lambda w: {"session_id": w.session, "seq": 1}, post=(401, 404, 404, 409), bodies={"post": {"text": "again"}}
    ),
    "session-messages": row(
        lambda w: {"session_id": w.session},
        get=OWNER_ONLY,
        post=(401, 404, 404, 201),
        bodies={"post": {"role": "user", "content": "hello"}},
    ),
    "session-checkpoints": row(
        lambda w: {"session_id": w.session},
        get=OWNER_ONLY,
        post=(401, 404, 404, 201),
        bodies={"post": {"through_seq": 1, "reason": "manual"}},
    ),
    "session-context": row(lambda w: {"session_id": w.session}, get=OWNER_ONLY),
    # The owner's session already has an open chat run: a second turn (or run) is a 409 naming it.
    "session-turns": row(
        lambda w: {"session_id": w.session}, post=(401, 404, 404, 409), bodies={"post": {"text": "hello"}}
    ),
    # Everyone searches their own messages only (tests/core/conversation/test_search.py).
    "search": row(get=ANY_SIGNED_IN, bodies={"get": {"q": "hello"}}),
    "session-export": row(lambda w: {"session_id": w.session}, get=OWNER_ONLY),
    # Imports: anyone signed in may upload (no file: a 400 naming `file`); a job is its owner's.
    "import": row(post=(401, 400, 400, 400)),
    "import-job": row(lambda w: {"job_id": w.import_job}, get=OWNER_ONLY),
    "run-list": row(
        get=ANY_SIGNED_IN, post=(401, 404, 404, 409), bodies={"post": lambda role, w: {"session": w.session}}
    ),
    # The owner's run is still open: only a failed or interrupted run is retried.
    "run-retry": row(lambda w: {"run_id": w.run}, post=(401, 404, 404, 409)),
    # The owner's run is not awaiting approval: a decision or a result is a 409.
    "run-approve": row(
        lambda w: {"run_id": w.run}, post=(401, 404, 404, 409), bodies={"post": {"decisions": {"call_1": True}}}
    ),
    "run-tool-results": row(
        lambda w: {"run_id": w.run},
        post=(401, 404, 404, 409),
        bodies={"post": {"results": {"call_1": {"content": "x"}}}},
    ),
    "run-detail": row(run_pk, get=OWNER_ONLY),
    "run-cancel": row(run_pk, post=OWNER_ONLY, bodies={"post": {"reason": "not needed"}}),
    "run-text": row(run_pk, get=OWNER_ONLY),
    # A plain Django view signing in through DRF's authenticators: the same answers as the API's views.
    "run-stream": row(lambda w: {"run_id": w.run}, get=OWNER_ONLY),
    "run-events": row(
        lambda w: {"run_id": w.run},
        get=OWNER_ONLY,
        post=(401, 404, 404, 201),
        bodies={"post": {"type": "text_delta", "payload": {"text": "Hel"}}},
    ),
    # Memory.
    "memory-long-term-list": row(
        get=ANY_SIGNED_IN, post=(401, 201, 201, 200), bodies={"post": {"kind": "fact", "content": "x", "key": "k"}}
    ),
    "memory-long-term-detail": row(
        lambda w: {"pk": w.memory},
        get=OWNER_ONLY,
        put=OWNER_ONLY,
        patch=OWNER_ONLY,
        delete=(401, 404, 404, 204),
        bodies={"put": {"kind": "fact", "content": "replaced"}, "patch": {"pinned": True}},
    ),
    "memory-long-term-forget": row(lambda w: {"pk": w.memory}, post=OWNER_ONLY),
    "memory-long-term-restore": row(lambda w: {"pk": w.memory}, post=OWNER_ONLY),
    "memory-episode-list": row(
        get=ANY_SIGNED_IN,
        post=(401, 201, 201, 201),
        bodies={"post": {"day": "2025-01-03", "timezone": "UTC", "summary": "a day", "source": "manual"}},
    ),
    "memory-episode-detail": row(lambda w: {"pk": w.episode}, get=OWNER_ONLY),
    "memory-attachment-list": row(
        get=ANY_SIGNED_IN,
        post=(401, 404, 404, 201),
        bodies={
            "post": lambda role, w: {
                "session": w.session,
                "message_seq": 1,
                "sha256": "cd" * 32,
                "kind": "file",
                "display_name": "notes.txt",
                "mime_type": "text/plain",
                "size_bytes": 3,
            }
        },
    ),
    "memory-attachment-detail": row(lambda w: {"pk": w.attachment}, get=OWNER_ONLY),
    # Usage.
    "telemetry-usage-list": row(
        get=ANY_SIGNED_IN,
        post=(401, 201, 201, 201),
        bodies={"post": lambda role, w: {"request_id": f"matrix-{role}", "route": "main", "input_tokens": 1}},
    ),
    "telemetry-summary": row(get=ANY_SIGNED_IN),
}
for _kind, (_key, _value) in CONFIG.items():
    for _suffix, _row in config_rows(_key, _value).items():
        MATRIX[f"config-{_kind}-{_suffix}"] = _row


def url_patterns(patterns: list[Any] | None = None, namespace: str = "") -> Iterator[tuple[str, str]]:
    """(key, route) of every URL pattern outside the admin: its name, or its route when it has none."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace in ("admin", "rest_framework"):
                continue
            yield from url_patterns(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            yield pattern.name or str(pattern.pattern), str(pattern.pattern)


def test_every_url_pattern_has_a_row() -> None:
    served = {key for key, _ in url_patterns()}
    assert sorted(served - set(MATRIX)) == [], "give each new URL pattern its row in MATRIX"
    assert sorted(set(MATRIX) - served) == [], "MATRIX has rows for URL patterns that no longer exist"


@pytest.fixture
def world(db: None, minimal_config: None) -> World:
    owner = plain_user("owner")
    session = session_create(owner=owner, title="owned", route_alias="main")
    message = message_append(session_id=session.pk, role="user", content="my bank PIN is 4321").record
    run = run_create(session_id=session.pk)
    run_event_append(run_id=run.pk, event_type="run_started", payload={})
    memory = memory_write(owner=owner, kind="fact", content="owned fact", key="k").memory
    episode = episode_upsert(
        owner=owner, day=dt.date(2025, 1, 2), timezone_name="UTC", summary="owned day", source="manual"
    ).record
    attachment = attachment_record(
        session_id=session.pk,
        message_id=message.pk,
        sha256="ab" * 32,
        kind="file",
        display_name="a.txt",
        mime_type="text/plain",
        size_bytes=1,
    ).record
    usage_record(owner=owner, request_id="owned-1", route_alias="main", session_id=session.pk, input_tokens=1)
    token = token_create(user=owner, name="owned").token
    job = ImportJob.objects.create(owner=owner)
    return World(str(session.pk), str(run.pk), memory.pk, episode.pk, attachment.pk, token.pk, str(job.pk))


@pytest.fixture
def minimal_config(db: None, tmp_path: Any) -> None:
    from tests.core.conftest import MINIMAL

    path = tmp_path / "agentchat.toml"
    path.write_text(MINIMAL)
    call_command("load_config", str(path), stdout=open("/dev/null", "w"))  # noqa: SIM115


def clients() -> dict[str, APIClient]:
    found: dict[str, APIClient] = {"anonymous": APIClient()}
    for role, user in (("other", plain_user("other")), ("staff", op_user()), ("owner", plain_user("owner"))):
        client = APIClient()
        client.force_authenticate(user=user)  # the API
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")  # the pages' session
        found[role] = client
    return found


def asked(name: str, method: str, world: World) -> dict[str, int]:
    entry = MATRIX[name]
    path = reverse(name, kwargs=entry.kwargs(world)) if not name.endswith(".ico") else "/favicon.ico"
    statuses = {}
    for role, client in clients().items():
        body = entry.bodies.get(method)
        data = body(role, world) if callable(body) else body
        response = getattr(client, method)(path, data, format="json")
        statuses[role] = response.status_code
    return statuses


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_each_role_gets_the_expected_status(world: World, name: str) -> None:
    """Every method of one URL (in METHODS order, so a delete comes last), each role in ROLES order."""
    expected = {method: dict(zip(ROLES, MATRIX[name].cells[method], strict=True)) for method in METHODS}
    assert {method: asked(name, method, world) for method in METHODS} == expected
