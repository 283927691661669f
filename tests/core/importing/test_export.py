"""Export: the agentchat-export/1 document, lossless through an import into an empty database; Markdown of the path."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from core.config.models import ModelRoute
from core.conversation.services import (
    checkpoint_create,
    message_append,
    session_archive,
    session_create,
    session_delete,
    session_leaf_set,
    session_update,
)
from core.models import AgentSession, Tag
from tests.core.importing.conftest import run
from tests.owners import plain_user

pytestmark = pytest.mark.django_db


def _native_session(owner: User) -> AgentSession:
    """A session made here: a branch, parts of every kind, a client id, checkpoints, tags, a pin, archived."""
    session = session_create(owner=owner, title="Made here")
    sid = session.pk
    message_append(session_id=sid, role="user", content="Add 2 and 3.", client_id="c-EXAMPLE-1")
    message_append(
        session_id=sid,
        role="assistant",
        content="",
        parts=[
            {"type": "reasoning", "text": "Use the tool.", "state": {"provider": "anthropic", "signature": "EXAMPLE"}},
            {"type": "tool_call", "id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}},
        ],
        token_count=12,
    )
    message_append(
        session_id=sid,
        role="tool",
        content="5",
        parts=[{"type": "tool_result", "tool_call_id": "call_1", "content": "5", "is_error": False}],
    )
    message_append(session_id=sid, role="assistant", content="It is 5.")
    checkpoint_create(session_id=sid, through_seq=2, reason="manual", summary="asked to add")
    message_append(session_id=sid, role="assistant", content="Five.", parent_seq=3)
    checkpoint_create(session_id=sid, through_seq=5, reason="compaction", summary="2 + 3 = 5", state={"k": [1]})
    session_leaf_set(session_id=sid, seq=4)
    session_update(session_id=sid, pinned=True, tags=["maths", "demo"])
    session_archive(session_id=sid)
    return AgentSession.objects.get(pk=sid)


def _export_all(owner: str) -> str:
    out = io.StringIO()
    call_command("export_conversations", "--all", "--format", "json", "--user", owner, stdout=out)
    return out.getvalue()


@pytest.mark.persistence
def test_export_then_import_into_an_empty_database_then_export_is_byte_identical(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    _native_session(operator)
    empty = session_create(owner=operator, title="")
    run(operator, "chatgpt_conversations.json", "openwebui_export.json", "librechat_export.json")
    first = _export_all("op")
    document = json.loads(first)
    assert document["schema"] == "agentchat-export/1"
    assert len(document["sessions"]) == 6
    assert "export" not in first.lower().replace("agentchat-export", "")  # no export time inside
    path = tmp_path / "agentchat.json"
    path.write_text(first, encoding="utf-8")
    for session in AgentSession.objects.all():
        session_delete(session_id=session.pk)
    Tag.objects.all().delete()
    assert AgentSession.objects.count() == 0

    report = run(operator, path)

    assert (len(report.imported), report.skipped) == (6, [])
    assert _export_all("op") == first
    assert AgentSession.objects.get(pk=empty.pk).message_count == 0


def test_the_json_record_of_a_session_holds_the_tree_the_leaf_tags_and_checkpoints(
    operator: User, replay_route: ModelRoute
) -> None:
    session = _native_session(operator)

    record = json.loads(_export_all("op"))["sessions"][0]

    assert {key: record[key] for key in ("id", "title", "status", "pinned", "route", "leaf", "tags", "source")} == {
        "id": str(session.pk),
        "title": "Made here",
        "status": "archived",
        "pinned": True,
        "route": "replay",
        "leaf": 4,
        "tags": ["demo", "maths"],
        "source": None,
    }
    assert [(m["seq"], m["parent_seq"], m["role"]) for m in record["messages"]] == [
        (1, None, "user"),
        (2, 1, "assistant"),
        (3, 2, "tool"),
        (4, 3, "assistant"),
        (5, 3, "assistant"),
    ]
    assert record["messages"][0]["client_id"] == "c-EXAMPLE-1"
    assert [(c["parent"], c["through_seq"], c["reason"]) for c in record["checkpoints"]] == [
        (None, 2, "manual"),
        (0, 5, "compaction"),
    ]


def test_an_exported_import_brought_back_where_it_came_from_adds_nothing(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    run(operator, "librechat_tree.json")
    path = tmp_path / "agentchat.json"
    path.write_text(_export_all("op"), encoding="utf-8")

    report = run(operator, path)

    assert [o.reason.startswith("already imported as session") for o in report.outcomes] == [True]
    assert json.loads(path.read_text())["sessions"][0]["source"] == {
        "format": "librechat",
        "id": "deadbeef-2222-4333-8444-555566667777",
    }


def test_markdown_renders_the_active_path_with_tool_calls_and_results(operator: User, replay_route: ModelRoute) -> None:
    session = _native_session(operator)
    out = io.StringIO()

    call_command("export_conversations", "--session", str(session.pk), "--format", "markdown", stdout=out, user="op")

    text = out.getvalue()
    assert text.startswith(f"# Made here\n\n- Session: `{session.pk}`\n- Route: `replay`\n")
    assert "Add 2 and 3." in text
    assert "It is 5." in text
    assert "Five." not in text  # on the other branch
    assert '**Tool call** `add` (`call_1`)\n\n```json\n{\n  "a": 2,\n  "b": 3\n}\n```' in text
    assert "**Tool result** for `call_1`\n\n```\n5\n```" in text
    assert "Use the tool." not in text  # thinking is not part of the conversation


def test_export_api_answers_the_owners_session_and_404_for_anyone_else(
    operator: User, replay_route: ModelRoute
) -> None:
    session = _native_session(operator)
    owner, other = APIClient(), APIClient()
    owner.force_authenticate(user=operator)
    other.force_authenticate(user=plain_user("bea"))
    url = f"/api/sessions/{session.pk}/export/"

    as_json = owner.get(url)
    as_markdown = owner.get(url, {"format": "markdown"})
    bad = owner.get(url, {"format": "pdf"})
    foreign = other.get(url)

    assert (as_json.status_code, as_json["Content-Type"]) == (200, "application/json; charset=utf-8")
    assert as_json["Content-Disposition"] == f'attachment; filename="session-{session.pk}.json"'
    assert json.loads(b"".join(as_json.streaming_content))["sessions"][0]["id"] == str(session.pk)  # type: ignore[attr-defined]
    assert (as_markdown.status_code, as_markdown["Content-Type"]) == (200, "text/markdown; charset=utf-8")
    assert b"".join(as_markdown.streaming_content).startswith(b"# Made here")  # type: ignore[attr-defined]
    assert (bad.status_code, list(bad.json()["fields"])) == (400, ["format"])
    assert foreign.status_code == 404


@pytest.mark.fault
def test_export_command_needs_a_session_or_all_and_refuses_another_users_session(
    operator: User, replay_route: ModelRoute
) -> None:
    session = _native_session(operator)
    plain_user("bea")
    with pytest.raises(CommandError, match="give --session ID"):
        call_command("export_conversations", "--format", "json")
    with pytest.raises(CommandError, match=f"no session {session.pk}"):
        call_command("export_conversations", "--session", str(session.pk), "--user", "bea", stdout=io.StringIO())
