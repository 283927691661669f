"""The browser check: a real headless Chromium logs into the admin and opens every page a person would.

The app runs as it runs for a person (`manage.py runserver` in its own process, static files
collected, the example config loaded when the project has `load_config`, the operator created by
`ensure_operator`) against the test database. Any 4xx/5xx response, failed request, console error
or page error fails the test. Screenshots land in `var/evidence/screens/`, and a summary in
`var/evidence/browser-check.json`; `make evidence` sets `AGENTCHAT_EVIDENCE_DIR` so they land in
`.buildprint/evidence/` instead, and reads the summary there.

Without Chromium the test skips with the reason, except under CI (`CI=true`), where the browser
must be there (`.ci/run` installs it with `scripts/install-browser`).
"""

from __future__ import annotations

import os
import secrets

import pytest
from django.core.management import get_commands
from django.db import connection
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from tests.procs import run_manage, worker_env
from tests.proof import browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OPERATOR = "browser-check"


def require_chromium() -> None:
    if browser.CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Chromium is missing at {browser.CHROMIUM} under CI: .ci/run must run scripts/install-browser")
    pytest.skip("Chromium is not installed: run scripts/install-browser")


def manage_ok(args: list[str], **env: str) -> str:
    result = run_manage(args, env=env)
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def session_with_messages(notes: list[str]) -> str | None:
    """Create a session and two messages through the conversation services; None (with a note) if not possible."""
    try:
        from core.conversation import services as conversation
    except ImportError as exc:
        notes.append(f"session change page not checked: core.conversation.services is missing ({exc})")
        return None
    if not (hasattr(conversation, "session_create") and hasattr(conversation, "message_append")):
        notes.append("session change page not checked: conversation services lack session_create/message_append")
        return None
    from core.errors import DomainError

    try:
        from django.contrib.auth import get_user_model

        owner = get_user_model()._default_manager.get(username=OPERATOR)
        session = conversation.session_create(owner=owner, title="Browser check session")
        conversation.message_append(session_id=session.pk, role="user", content="What does the admin show?")
        conversation.message_append(session_id=session.pk, role="assistant", content="Every stored record.")
    except DomainError as exc:
        notes.append(f"session change page not checked: session_create refused ({exc.message})")
        return None
    return str(session.pk)


def session_change_page(session_id: str | None, notes: list[str]) -> list[tuple[str, str]]:
    if session_id is None:
        return []
    try:
        return [("admin-core-agentsession-change", reverse("admin:core_agentsession_change", args=[session_id]))]
    except NoReverseMatch:
        notes.append("session change page not checked: AgentSession is not registered in the admin")
        return []


def api_pages(notes: list[str]) -> list[tuple[str, str]]:
    pages = [("api-root", "/api/")]
    try:
        resolve("/api/bootstrap/")
        pages.append(("api-bootstrap", "/api/bootstrap/"))
    except Resolver404:
        notes.append("/api/bootstrap/ not checked: the URL does not exist yet")
    pages += [("api-docs", "/api/docs/"), ("api-redoc", "/api/redoc/")]
    return pages


def test_admin_and_api_pages_render_without_errors_in_chromium() -> None:
    require_chromium()
    notes: list[str] = []
    password = secrets.token_urlsafe(18)
    manage_ok(["collectstatic", "--noinput", "--verbosity", "0"])
    if "load_config" in get_commands():
        manage_ok(["load_config"])
    else:
        notes.append("example config not loaded: manage.py load_config does not exist yet")
    manage_ok(["ensure_operator", "--username", OPERATOR], AGENTCHAT_OPERATOR_PASSWORD=password)
    extra = session_change_page(session_with_messages(notes), notes)
    pages = api_pages(notes)

    with browser.running_server(worker_env()) as server:
        report = browser.run_check(
            base_url=server.base_url, username=OPERATOR, password=password, extra_pages=extra, api_pages=pages
        )
    report.notes.extend(notes)
    report.write_summary(browser.SUMMARY_FILE, chromium=browser.chromium_version(), database_vendor=connection.vendor)
    for note in notes:
        print(f"browser check: {note}")

    assert report.problems == [], "\n".join(report.problems)
    visited = {visit.name: visit for visit in report.visits}
    assert visited["admin-index"].title.startswith("Everything Agent Chat stores")
    assert {"api-root", "api-docs", "api-redoc"} <= visited.keys()
    assert any(name.startswith("admin-auth-") for name in visited), sorted(visited)
    assert all(visit.status == 200 for visit in report.visits), [(v.name, v.status) for v in report.visits]
    for name, _path in extra:
        # "<session> | Change agent session | Agent Chat admin", with the messages (and more) inline.
        assert " | Change " in visited[name].title, visited[name].title
        assert visited[name].inline_groups >= 1, f"{name} shows no inlines"
