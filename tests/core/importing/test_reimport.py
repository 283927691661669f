"""A conversation imported again: unchanged, it is skipped; grown in its source, its new messages are
appended to the session it became (once, in order); changed earlier on, it is skipped with the reason."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from core.config.models import ModelRoute
from core.conversation.search import message_search
from core.conversation.services import (
    message_append,
    run_cancel,
    run_create,
    session_archive,
    session_create,
    session_delete,
)
from core.models import AgentSession, ImportedConversation, Message, Run
from tests.core.importing.conftest import run, session_of, tree
from tests.owners import plain_user

pytestmark = pytest.mark.django_db
CONVERSATION = "7a1c0d2e-0000-4000-8000-0000000000aa"

# (node id, parent id, role, text, create time): a ChatGPT conversation's mapping, in the export's order.
Turn = tuple[str, str | None, str, str, float]
FIRST: list[Turn] = [
    ("n1", None, "user", "Plan a walk in the hills", 1_700_000_001),
    ("n2", "n1", "assistant", "Start at the **old mill** and climb east.", 1_700_000_002),
]
GROWN: list[Turn] = [
    *FIRST,
    ("n3", "n2", "user", "How long does it take?", 1_700_000_100),
    ("n4", "n3", "assistant", "About three hours with a heron pond stop.", 1_700_000_101),
]


def chatgpt_file(path: Path, turns: list[Turn], *, current: str | None = None) -> Path:
    """A ChatGPT `conversations.json` holding one conversation with `turns` under its empty root."""
    mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None, "children": []}}
    for node_id, parent, role, text, created in turns:
        mapping[node_id] = {
            "id": node_id,
            "parent": parent or "root",
            "children": [],
            "message": {
                "id": node_id,
                "author": {"role": role},
                "create_time": created,
                "content": {"content_type": "text", "parts": [text]},
                "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
                "recipient": "all",
            },
        }
    conversation = {
        "conversation_id": CONVERSATION,
        "title": "Hill walk",
        "create_time": 1_700_000_000,
        "update_time": max(turn[4] for turn in turns),
        "current_node": current or turns[-1][0],
        "mapping": mapping,
    }
    path.write_text(json.dumps([conversation]), encoding="utf-8")
    return path


def stored(session: AgentSession) -> tuple[int, int, int, list[str]]:
    """The session's message_count, last_seq, leaf and its import record's source message ids."""
    session.refresh_from_db()
    record = ImportedConversation.objects.get(session=session)
    return session.message_count, session.last_seq, session.leaf, [row[0] for row in record.message_sources]


def test_a_grown_conversation_gets_only_its_new_messages_and_an_unchanged_one_is_skipped(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    run(operator, chatgpt_file(tmp_path / "first.json", FIRST))
    session = session_of(CONVERSATION)
    first_ids = list(Message.objects.filter(session=session).order_by("seq").values_list("id", flat=True))

    report = run(operator, chatgpt_file(tmp_path / "grown.json", GROWN))

    assert [(o.verdict, o.reason, o.messages, o.session) for o in report.outcomes] == [
        ("updated", "updated, 2 new messages", 2, str(session.pk))
    ]
    assert report.outcomes[0].as_json()["outcome"] == "updated"
    assert tree(session) == [
        (1, None, "user", "Plan a walk in the hills"),
        (2, 1, "assistant", "Start at the **old mill** and climb east."),
        (3, 2, "user", "How long does it take?"),
        (4, 3, "assistant", "About three hours with a heron pond stop."),
    ]
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("id", flat=True))[:2] == first_ids
    assert stored(session) == (4, 4, 4, ["n1", "n2", "n3", "n4"])
    assert session.title == "Hill walk"
    assert session.tokens_since_checkpoint == sum(
        Message.objects.filter(session=session).values_list("token_count", flat=True)
    )
    # The new messages are in the search index like any other.
    assert [hit.session.pk for hit in message_search(owner=operator, query="heron").results] == [session.pk]

    again = run(operator, chatgpt_file(tmp_path / "again.json", GROWN))
    assert [(o.verdict, o.reason) for o in again.outcomes] == [("skipped", f"already imported as session {session.pk}")]
    assert stored(session) == (4, 4, 4, ["n1", "n2", "n3", "n4"])
    assert AgentSession.objects.count() == 1


def test_a_new_branch_in_the_source_is_appended_under_its_parent_and_becomes_the_leaf(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    run(operator, chatgpt_file(tmp_path / "first.json", GROWN))
    session = session_of(CONVERSATION)
    regenerated: Turn = ("n5", "n3", "assistant", "Two hours if you skip the pond.", 1_700_000_300)

    report = run(operator, chatgpt_file(tmp_path / "branch.json", [*GROWN, regenerated], current="n5"))

    assert [o.reason for o in report.outcomes] == ["updated, 1 new message"]
    assert tree(session)[-1] == (5, 3, "assistant", "Two hours if you skip the pond.")
    assert stored(session) == (5, 5, 5, ["n1", "n2", "n3", "n4", "n5"])


def test_a_dry_run_says_what_would_be_updated_and_writes_nothing(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    run(operator, chatgpt_file(tmp_path / "first.json", FIRST))
    session = session_of(CONVERSATION)

    report = run(operator, chatgpt_file(tmp_path / "grown.json", GROWN), dry_run=True)

    assert [(o.verdict, o.reason, o.messages, o.session) for o in report.outcomes] == [
        ("updated", "would be updated, 2 new messages", 2, None)
    ]
    assert stored(session) == (2, 2, 2, ["n1", "n2"])


@pytest.mark.fault
def test_a_conversation_edited_earlier_in_its_source_is_skipped_with_the_reason_and_left_as_it_was(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    run(operator, chatgpt_file(tmp_path / "first.json", FIRST))
    session = session_of(CONVERSATION)
    edited = [(*FIRST[0][:3], "Plan a walk by the sea", FIRST[0][4]), *GROWN[1:]]
    removed = [GROWN[0], *GROWN[2:]]

    for turns in (edited, removed):
        report = run(operator, chatgpt_file(tmp_path / "edited.json", turns))
        assert [(o.verdict, o.reason) for o in report.outcomes] == [
            (
                "skipped",
                f"already imported as session {session.pk}, and its earlier messages changed in the source since "
                "(edited or removed): the session was left as it was; delete it to import the conversation afresh",
            )
        ]
        assert stored(session) == (2, 2, 2, ["n1", "n2"])
        assert tree(session)[0][3] == "Plan a walk in the hills"


@pytest.mark.fault
def test_a_session_continued_archived_or_running_here_takes_no_new_messages_from_its_source(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    grown = chatgpt_file(tmp_path / "grown.json", GROWN)
    cases: dict[str, Callable[[AgentSession], object]] = {
        "continued": lambda session: message_append(session_id=session.pk, role="user", content="and back?"),
        "archived": lambda session: session_archive(session_id=session.pk),
        "running": lambda session: run_create(session_id=session.pk, status="running"),
    }
    reasons: dict[str, list[str]] = {}
    for name, change in cases.items():
        run(operator, chatgpt_file(tmp_path / "first.json", FIRST))
        session = session_of(CONVERSATION)
        change(session)
        before = tree(session)
        reasons[name] = [o.reason for o in run(operator, grown).outcomes if not o.imported]
        assert tree(session) == before
        for open_run in Run.objects.filter(session=session, status="running"):
            run_cancel(run_id=open_run.pk, reason="the case is over")
        session_delete(session_id=session.pk)  # the next case imports afresh (its import record goes with it)
    prefix = "already imported as session "
    assert {
        name: [reason.split(", ", 1)[1] for reason in found if reason.startswith(prefix)]
        for name, found in reasons.items()
    } == {
        "continued": ["which was continued here since it was imported; its 2 new messages were not added"],
        "archived": ["which is archived: unarchive it and import again; its 2 new messages were not added"],
        "running": ["which has a run in progress: import again once it ends; its 2 new messages were not added"],
    }


def test_open_webui_and_agent_chat_exports_grow_through_the_same_path(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    from tests.core.importing.conftest import SAMPLES

    chats = json.loads((SAMPLES / "openwebui_export.json").read_text())
    chat = chats[0]
    path = tmp_path / "webui.json"
    path.write_text(json.dumps([chat]), encoding="utf-8")
    run(operator, path)
    webui = session_of(chat["id"])
    count = stored(webui)[0]
    history = chat["chat"]["history"]
    history["messages"]["m9"] = {
        "id": "m9",
        "parentId": "m4",
        "childrenIds": [],
        "role": "assistant",
        "content": "fn longest<'a>(x: &'a str) -> &'a str",
        "timestamp": 1719000100,
    }
    history["currentId"] = "m9"
    path.write_text(json.dumps([chat]), encoding="utf-8")
    assert [o.reason for o in run(operator, path).outcomes] == ["updated, 1 new message"]
    assert stored(webui)[:3] == (count + 1, count + 1, count + 1)

    # Agent Chat's own export: another account takes a copy, the session grows, the copy takes the new tail.
    native = session_create(owner=operator, title="native", route_alias=replay_route.alias)
    message_append(session_id=native.pk, role="user", content="first")
    export = tmp_path / "agentchat.json"

    def export_native() -> None:
        out = io.StringIO()
        call_command(
            "export_conversations", "--session", str(native.pk), "--format", "json", "--user", "op", stdout=out
        )
        export.write_text(out.getvalue(), encoding="utf-8")

    export_native()
    ann = plain_user("ann")
    run(ann, export)
    copy = AgentSession.objects.get(owner=ann)
    message_append(session_id=native.pk, role="assistant", content="second")
    export_native()
    assert [o.reason for o in run(ann, export).outcomes] == ["updated, 1 new message"]
    assert [row[2:] for row in tree(copy)] == [("user", "first"), ("assistant", "second")]


def test_the_command_reports_an_update_with_its_session(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    run(operator, chatgpt_file(tmp_path / "first.json", FIRST))
    session = session_of(CONVERSATION)
    out = io.StringIO()
    call_command("import_conversations", str(chatgpt_file(tmp_path / "grown.json", GROWN)), "--user", "op", stdout=out)
    assert f"  updated, 2 new messages of 'Hill walk' -> session {session.pk}\n" in out.getvalue()
    assert out.getvalue().endswith("1 imported, 0 skipped; 2 messages, 0 branches\n")
