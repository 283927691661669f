"""Import rules: idempotent per owner, atomic per conversation, a malformed file writes nothing; the report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from core.config.models import ModelRoute
from core.conversation.importing.shapes import FileMalformedError
from core.models import AgentSession, ImportedConversation, Message
from tests.core.importing.conftest import SAMPLES, run
from tests.owners import plain_user

pytestmark = pytest.mark.django_db
ALL = (
    "chatgpt_conversations.json",
    "chatgpt_split",
    "openwebui_export.json",
    "librechat_export.json",
    "librechat_tree.json",
)


def counts() -> tuple[int, int, int]:
    return AgentSession.objects.count(), Message.objects.count(), ImportedConversation.objects.count()


def test_importing_the_same_files_again_creates_nothing_and_another_owner_gets_their_own_copy(
    operator: User, replay_route: ModelRoute
) -> None:
    first = run(operator, *ALL)
    before = counts()
    second = run(operator, *ALL)

    assert (len(first.imported), first.messages, first.branches) == (8, 28, 12)
    assert counts() == before == (8, 28, 8)
    assert second.imported == []
    assert all(
        outcome.reason.startswith(("already imported as session", "mapping:", "chat.history"))
        for outcome in second.skipped
    )
    other = run(plain_user("ana"), *ALL)
    assert len(other.imported) == 8
    assert AgentSession.objects.filter(owner__username="ana").count() == 8


@pytest.mark.fault
@pytest.mark.parametrize(
    ("text", "fmt", "field", "problem"),
    [
        ('[{"title": "a", "mapping": {}}, {"title": "b"', "auto", "(file)", "is not valid JSON"),
        ('{"title": "one conversation", "mapping": {}}', "chatgpt", "(file)", "must be a JSON array of conversations"),
        ('{"schema": "agentchat-export/9", "sessions": []}', "agentchat", "schema", "is 'agentchat-export/9'"),
        ('{"sessions": []}', "auto", "(file)", "is not a ChatGPT, Open WebUI, LibreChat or Agent Chat export"),
        ("", "auto", "(file)", "is empty"),
    ],
)
def test_a_malformed_file_is_an_error_naming_the_field_and_nothing_of_any_file_is_written(
    operator: User, replay_route: ModelRoute, tmp_path: Path, text: str, fmt: str, field: str, problem: str
) -> None:
    bad = tmp_path / "conversations-bad.json"
    bad.write_text(text)

    # Detected formats: a sound file first, so its conversations would have been written by a careless reader.
    sound = ("openwebui_export.json",) if fmt == "auto" else ()
    with pytest.raises(FileMalformedError) as caught:
        run(operator, *sound, bad, fmt=fmt)

    assert field in caught.value.fields
    assert problem in caught.value.message
    assert counts() == (0, 0, 0)
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_conversations", str(bad), "--user", "op", stdout=io.StringIO())


@pytest.mark.fault
def test_a_tree_whose_every_message_points_at_a_missing_parent_is_skipped_and_the_sound_ones_imported(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    chats = json.loads((SAMPLES / "openwebui_export.json").read_text())
    orphan = json.loads(json.dumps(chats[0]))
    orphan["id"] = "orphans"
    for message in orphan["chat"]["history"]["messages"].values():
        message["parentId"] = "gone"
    orphan["chat"]["history"]["messages"]["m1"]["id"] = "m1"
    path = tmp_path / "webui.json"
    path.write_text(json.dumps([orphan, chats[0], "not a chat"]))
    out = io.StringIO()

    call_command("import_conversations", str(path), "--user", "op", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[1] == "  skipped 'Rust lifetimes': no message is a root: each points at a missing parent (e.g. 'gone')"
    assert lines[2].startswith("  imported 'Rust lifetimes': 4 messages, 2 branches -> session ")
    assert lines[3] == "  skipped '(untitled)': it is not an object"
    assert lines[4] == "1 imported, 2 skipped; 4 messages, 2 branches"


def test_dry_run_reports_what_would_be_imported_and_writes_nothing(operator: User, replay_route: ModelRoute) -> None:
    out = io.StringIO()
    call_command("import_conversations", str(SAMPLES / "librechat_tree.json"), "--dry-run", "--user", "op", stdout=out)

    assert out.getvalue().splitlines() == [
        f"{SAMPLES / 'librechat_tree.json'}: librechat",
        "  would import 'Nested export': 4 messages, 2 branches",
        "1 would import, 0 skipped; 4 messages, 2 branches",
    ]
    assert counts() == (0, 0, 0)


@pytest.mark.fault
def test_the_command_refuses_an_unknown_user_and_a_missing_file(operator: User, replay_route: ModelRoute) -> None:
    with pytest.raises(CommandError, match="--user: no account 'nobody'"):
        call_command("import_conversations", str(SAMPLES / "librechat_tree.json"), "--user", "nobody")
    with pytest.raises(CommandError, match="no such file; give the path of an export; nothing was imported"):
        call_command("import_conversations", "/nonexistent/conversations.json", "--user", "op")
