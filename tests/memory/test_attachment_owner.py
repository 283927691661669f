"""Attachment contents are per owner (#16): the same bytes recorded by two accounts are two contents,
and neither account's context ever carries the other's summary. `memory/0007_attachment_owner`
splits a content two accounts shared into one copy each.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.accounts.selectors import operator_username
from core.conversation.services import message_append, session_create
from core.models import AgentSession, ModelRoute
from memory.context import context_inputs
from memory.models import AttachmentContent, AttachmentSummary
from memory.services import attachment_record
from tests.memory.test_owner_migration import migrate
from tests.owners import plain_user

SHA = "ab" * 32
PART = {"type": "attachment", "sha256": SHA, "name": "notes.txt", "mime_type": "text/plain"}


def talked(owner: User) -> AgentSession:
    """A session of `owner` whose first message refers to the attachment SHA."""
    session = session_create(owner=owner, title=f"{owner.username}'s")
    message_append(session_id=session.pk, role="user", content="see the file", parts=[PART], token_count=5)  # type: ignore[list-item]
    return session


def record(session: AgentSession, summary: str) -> AttachmentContent:
    return attachment_record(
        session_id=session.pk,
        message_seq=1,
        sha256=SHA,
        kind="file",
        display_name="notes.txt",
        mime_type="text/plain",
        size_bytes=1200,
        summary=summary,
    ).record.content


@pytest.mark.django_db
def test_the_same_bytes_recorded_by_two_accounts_are_two_contents(replay_route: ModelRoute) -> None:
    alice, bob = talked(plain_user("alice")), talked(plain_user("bob"))
    alices = record(alice, "Alice's bank statement: balance 4321.")
    bobs = record(bob, "")
    assert alices.pk != bobs.pk
    assert (alices.owner.username, bobs.owner.username) == ("alice", "bob")
    # Bob recorded no summary: his content has none, and Alice's is not lent to him.
    assert AttachmentContent.objects.get(pk=bobs.pk).summary == ""
    assert context_inputs(session_id=bob.pk).attachments == ()
    [seen] = context_inputs(session_id=alice.pk).attachments
    assert seen.summary == "Alice's bank statement: balance 4321."
    # Bob's own summary is his, and only his context shows it.
    record(bob, "Bob's notes.")
    assert [a.summary for a in context_inputs(session_id=bob.pk).attachments] == ["Bob's notes."]
    assert [a.summary for a in context_inputs(session_id=alice.pk).attachments] == [
        "Alice's bank statement: balance 4321."
    ]


# --- the migration ------------------------------------------------------------------------------

BEFORE = [("memory", "0005_pinned_index_by_owner")]


@pytest.fixture
def before_attachment_owner() -> Iterator[None]:
    migrate(BEFORE)
    try:
        yield
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.persistence
def test_the_migration_gives_each_account_its_own_copy(replay_route: ModelRoute, before_attachment_owner: None) -> None:
    alice, bob = talked(plain_user("alice")), talked(plain_user("bob"))
    orphan_sha = "cd" * 32
    with connection.cursor() as cursor:
        # As an older main wrote them: one content (no owner), referred to by both accounts' messages.
        for sha, summary in ((SHA, "Alice's summary, shared by mistake."), (orphan_sha, "")):
            cursor.execute(
                "INSERT INTO memory_attachmentcontent (sha256, size_bytes, summary, token_count, created, updated) "
                "VALUES (%s, 1200, %s, 7, %s, %s)",
                [sha, summary, "2025-01-01 00:00:00", "2025-01-01 00:00:00"],
            )
        cursor.execute("SELECT id FROM memory_attachmentcontent WHERE sha256 = %s", [SHA])
        (content_id,) = cursor.fetchone()
        for session in (alice, bob):
            cursor.execute("SELECT id FROM core_message WHERE session_id = %s", [session.pk.hex])
            (message_id,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO memory_attachmentsummary (session_id, message_id, content_id, kind, display_name, uri, "
                "mime_type, created) VALUES (%s, %s, %s, 'file', 'notes.txt', '', 'text/plain', %s)",
                [session.pk.hex, message_id, content_id, "2025-01-01 00:00:00"],
            )
    migrate([("memory", "0007_attachment_owner")])

    rows = sorted(AttachmentContent.objects.values_list("owner__username", "sha256", "summary", "token_count"))
    shared = "Alice's summary, shared by mistake."
    assert rows == [
        ("alice", SHA, shared, 7),
        ("bob", SHA, shared, 7),
        (operator_username(), orphan_sha, "", 7),
    ]
    # Each reference points at its own account's copy.
    for reference in AttachmentSummary.objects.select_related("session", "content"):
        assert reference.content.owner_id == reference.session.owner_id
