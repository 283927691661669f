"""Each format read from samples that follow the real exports field by field: trees, leaves, branches, odd nodes."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from core.config.models import ModelRoute
from core.models import ImportedConversation, Message
from tests.core.importing.conftest import SAMPLES, run, session_of, tree

pytestmark = pytest.mark.django_db

LISBON = "6671a3f0-1c2d-8000-9e4b-3b2a1f0c9d11"
FRAGMENT = "6671a3f0-1c2d-8000-9e4b-3b2a1f0c9d22"
T = 1718000000.0


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def test_chatgpt_keeps_the_mapping_tree_the_current_leaf_models_times_and_tool_calls(
    operator: User, replay_route: ModelRoute
) -> None:
    report = run(operator, "chatgpt_conversations.json")

    assert [(o.title, o.imported, o.messages, o.branches) for o in report.outcomes] == [
        ("Trip to Lisbon", True, 8, 2),
        ("Recovered fragment", True, 2, 1),
        ("Empty shell", False, 0, 0),
    ]
    assert report.outcomes[2].reason == "mapping: missing or empty (a conversation with no messages)"
    session = session_of(LISBON)
    # The empty root, the hidden system node, the user_editable_context and the thoughts are skipped;
    # their children hang from the nearest kept message. Seqs follow the creation times.
    assert tree(session) == [
        (1, None, "user", "Plan two days in Lisbon."),
        (2, 1, "assistant", "Day 1: Alfama and Belém. Day 2: Sintra."),
        (3, 2, "user", "How far is Sintra by train?"),
        (4, 3, "assistant", "About 40 minutes from Rossio station."),
        (5, 2, "user", "What does a tram ticket cost? Compute 3 rides at 3.10."),
        (6, 5, "assistant", ""),
        (7, 6, "tool", "9.3"),
        (8, 7, "assistant", "Three rides cost €9.30."),
    ]
    assert (session.title, session.leaf, session.message_count, session.last_seq) == ("Trip to Lisbon", 8, 8, 8)
    assert (session.created, session.updated) == (at(T), at(T + 400.5))
    messages = list(Message.objects.filter(session=session).order_by("seq"))
    assert [m.created for m in messages] == [at(T + s) for s in (10.25, 20.5, 100, 110, 200, 210, 211, 220)]
    assert messages[5].parts == [
        {"type": "tool_call", "id": "a-3", "name": "python", "arguments": {"input": "print(3 * 3.10)"}}
    ]
    assert messages[6].parts == [{"type": "tool_result", "tool_call_id": "a-3", "content": "9.3", "is_error": False}]
    # The message's own slug, else the conversation's default_model_slug; users have none.
    assert ImportedConversation.objects.get(session=session).message_sources == [
        ["u-1", ""],
        ["a-1", "gpt-4o"],
        ["u-2", ""],
        ["a-2", "o3"],
        ["u-2b", ""],
        ["a-3", "gpt-4o"],
        ["t-1", ""],
        ["a-4", "gpt-4o"],
    ]
    assert session.tokens_since_checkpoint == sum(m.token_count for m in messages if m.seq in (1, 2, 5, 6, 7, 8))


def test_chatgpt_fragment_under_a_missing_parent_is_imported_as_far_as_it_is_sound(
    operator: User, replay_route: ModelRoute
) -> None:
    report = run(operator, "chatgpt_conversations.json")

    assert report.outcomes[1].reason == "1 message(s) under a missing parent left out"
    # The image pointer of the multimodal message is dropped; its text is kept.
    assert tree(session_of(FRAGMENT)) == [
        (1, None, "user", "Describe this photo"),
        (2, 1, "assistant", "A harbour at dusk."),
    ]


def test_chatgpt_split_export_in_a_folder_or_a_zip_is_one_import_with_the_conversation_level_model(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    report = run(operator, "chatgpt_split")

    assert [name.rsplit("/", 1)[-1] for name, _ in report.files] == ["conversations-000.json", "conversations-001.json"]
    assert [(o.title, o.messages) for o in report.imported] == [("Split 0", 2), ("Split 1", 2), ("Split 2", 2)]
    assert ImportedConversation.objects.get(source_id="68b0c1d2-0000-8000-a000-000000000001").message_sources == [
        ["u1", ""],
        ["a1", "gpt-5-thinking"],
    ]
    archive = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted((SAMPLES / "chatgpt_split").iterdir()):
            out.write(path, f"export/{path.name}")
        out.writestr("export/user.json", '{"id": "user-EXAMPLE"}')
    again = run(operator, archive)
    assert [o.reason for o in again.outcomes] == [
        f"already imported as session {session_of(f'68b0c1d2-0000-8000-a000-00000000000{i}').pk}" for i in range(3)
    ]


def test_openwebui_keeps_history_parent_ids_current_id_pins_and_tags_and_skips_an_empty_reply(
    operator: User, replay_route: ModelRoute
) -> None:
    report = run(operator, "openwebui_export.json")

    assert [(o.title, o.imported, o.reason) for o in report.outcomes] == [
        ("Rust lifetimes", True, ""),
        ("Broken", False, "chat.history.messages: missing; the export keeps the tree there"),
    ]
    session = session_of("2b7f1d2e-3c4a-4b5c-9d6e-7f8a9b0c1d2e")
    assert tree(session) == [
        (1, None, "user", "Explain lifetimes in one line."),
        (2, 1, "assistant", "They say how long a reference is valid."),
        (3, 1, "assistant", "A lifetime is the scope a borrow must stay within."),
        (4, 3, "user", "Example?"),
    ]
    assert (session.leaf, session.pinned, report.outcomes[0].branches) == (4, True, 2)
    assert sorted(session.tags.values_list("name", flat=True)) == ["learning", "rust"]
    assert [model for _, model in ImportedConversation.objects.get(session=session).message_sources] == [
        "",
        "llama3.1:8b",
        "qwen2.5:7b",
        "",
    ]


def test_librechat_parent_message_ids_with_agent_content_parts_and_the_newest_message_as_leaf(
    operator: User, replay_route: ModelRoute
) -> None:
    run(operator, "librechat_export.json")

    session = session_of("c0ffee00-1111-4222-8333-444455556666")
    assert tree(session) == [
        (1, None, "user", "Weather in Oslo?"),
        (2, 1, "assistant", "It is -3 °C in Oslo."),
        (3, 1, "assistant", "Let me check: -3 °C."),
        (4, 3, "user", "Thanks!"),
    ]
    assert session.leaf == 4
    assert Message.objects.get(session=session, seq=2).parts == [
        {"type": "reasoning", "text": "I should call the weather tool."},
        {"type": "tool_call", "id": "call_EXAMPLE1", "name": "get_weather", "arguments": {"city": "Oslo"}},
        {"type": "tool_result", "tool_call_id": "call_EXAMPLE1", "content": '{"temp_c": -3}', "is_error": False},
    ]


def test_librechat_nested_children_tree(operator: User, replay_route: ModelRoute) -> None:
    report = run(operator, "librechat_tree.json")

    assert (report.outcomes[0].messages, report.outcomes[0].branches) == (4, 2)
    assert tree(session_of("deadbeef-2222-4333-8444-555566667777")) == [
        (1, None, "user", "Hello"),
        (2, 1, "assistant", "Hi! How can I help?"),
        (3, 1, "assistant", "Hello there."),
        (4, 3, "user", "Bye"),
    ]


def test_untitled_conversation_is_named_by_its_first_user_message(
    operator: User, replay_route: ModelRoute, tmp_path: Path
) -> None:
    path = tmp_path / "conversations.json"
    path.write_text(
        (SAMPLES / "chatgpt_split" / "conversations-001.json")
        .read_text()
        .replace('"title": "Split 2"', '"title": null')
    )
    run(operator, path)

    assert session_of("68b0c1d2-0000-8000-a000-000000000002").title == "Question 2"
