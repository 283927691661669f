"""Daily episodes and attachment summaries: round trips, upserts, shared content, every rejection."""

from __future__ import annotations

import datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from core.conversation.services import message_append, session_create, session_delete
from core.errors import ConflictError, InvalidInputError, NotFoundError
from core.models import AgentSession, Message
from memory.models import AttachmentContent, AttachmentSummary, DailyEpisode
from memory.services import AttachmentResult, attachment_record, episode_delete, episode_upsert
from tests.owners import op_user

pytestmark = pytest.mark.django_db

DAY = datetime.date(2025, 3, 14)
SHA = "ab" * 32


def test_episode_round_trip_and_upsert_per_day_and_session(talked_session: AgentSession) -> None:
    first = episode_upsert(
        owner=op_user(),
        day=DAY,
        timezone_name="Europe/Paris",
        summary=" Talked about coffee. ",
        source="compactor",
        session_id=talked_session.id,
        first_seq=1,
        last_seq=4,
    )
    assert first.created is True
    stored = DailyEpisode.objects.get()
    assert (stored.day, stored.timezone, stored.session_id, stored.summary, stored.first_seq, stored.last_seq) == (
        DAY,
        "Europe/Paris",
        talked_session.id,
        "Talked about coffee.",
        1,
        4,
    )
    assert (stored.token_count, stored.source) == (5, "compactor")  # 20 characters ≈ 5 tokens
    assert str(stored) == f"2025-03-14 (Europe/Paris) session {talked_session.id}"

    again = episode_upsert(
        owner=op_user(),
        day=DAY,
        timezone_name="UTC",
        summary="Rewritten.",
        source="manual",
        session_id=talked_session.id,
        token_count=9,
    )
    assert (again.created, again.record.pk) == (False, stored.pk)
    stored.refresh_from_db()
    assert (stored.summary, stored.timezone, stored.first_seq, stored.token_count, stored.source) == (
        "Rewritten.",
        "UTC",
        None,
        9,
        "manual",
    )
    assert DailyEpisode.objects.count() == 1


def test_whole_day_episode_is_unique_per_day_beside_session_ones(talked_session: AgentSession) -> None:
    whole = episode_upsert(owner=op_user(), day=DAY, timezone_name="UTC", summary="All sessions.", source="compactor")
    episode_upsert(
        owner=op_user(),
        day=DAY,
        timezone_name="UTC",
        summary="One session.",
        source="compactor",
        session_id=talked_session.id,
    )
    again = episode_upsert(
        owner=op_user(), day=DAY, timezone_name="UTC", summary="All sessions, again.", source="manual"
    )
    assert (again.created, again.record.pk) == (False, whole.record.pk)
    assert str(again.record) == "2025-03-14 (UTC) whole day"
    assert DailyEpisode.objects.count() == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        DailyEpisode.objects.create(owner=op_user(), day=DAY, timezone="UTC", summary="dup", source="manual")
    with pytest.raises(IntegrityError), transaction.atomic():
        DailyEpisode.objects.create(
            owner=op_user(), day=DAY, timezone="UTC", summary="dup", source="manual", session=talked_session
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone_name": "Mars/Olympus"}, "timezone: 'Mars/Olympus' is not a known timezone; use an IANA name"),
        ({"summary": "  "}, "summary: is empty; give some text"),
        ({"source": "robot"}, "source: 'robot' is not allowed; use one of compactor, manual"),
        ({"day": "2025-03-14"}, "day: must be a date (YYYY-MM-DD)"),
        ({"day": datetime.date(2999, 1, 1)}, "day: 2999-01-01 has not begun yet in UTC"),
        ({"token_count": -1}, "token_count: -1 is out of range"),
        ({"first_seq": 1, "last_seq": 2}, "first_seq: a message range needs a session"),
    ],
)
def test_episode_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"day": DAY, "timezone_name": "UTC", "summary": "s", "source": "manual", **kwargs}
    with pytest.raises(InvalidInputError) as caught:
        episode_upsert(owner=op_user(), **arguments)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert not DailyEpisode.objects.exists()


def test_episode_range_is_checked_against_the_session(talked_session: AgentSession) -> None:
    with pytest.raises(InvalidInputError, match=r"^last_seq: 5 is past the session's last message \(#4\)$"):
        episode_upsert(
            owner=op_user(),
            day=DAY,
            timezone_name="UTC",
            summary="s",
            source="manual",
            session_id=talked_session.id,
            first_seq=1,
            last_seq=5,
        )
    with pytest.raises(NotFoundError, match=r"^session: no session not-a-uuid$"):
        episode_upsert(
            owner=op_user(), day=DAY, timezone_name="UTC", summary="s", source="manual", session_id="not-a-uuid"
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        DailyEpisode.objects.create(
            owner=op_user(), day=DAY, timezone="UTC", summary="s", source="manual", first_seq=1, last_seq=2
        )


def test_episode_delete(talked_session: AgentSession) -> None:
    episode = episode_upsert(owner=op_user(), day=DAY, timezone_name="UTC", summary="s", source="manual").record
    episode_delete(episode_id=episode.pk)
    assert not DailyEpisode.objects.exists()
    with pytest.raises(NotFoundError, match=r"^episode: no daily episode"):
        episode_delete(episode_id=episode.pk)


def _record(session: AgentSession, message: Message, **overrides: object) -> AttachmentResult:
    arguments: dict[str, object] = {
        "session_id": session.id,
        "message_id": message.pk,
        "sha256": SHA,
        "kind": "file",
        "display_name": "notes.txt",
        "mime_type": "text/plain",
        "size_bytes": 1200,
        "summary": "Meeting notes about the launch.",
        **overrides,
    }
    return attachment_record(**arguments)  # type: ignore[arg-type]


def test_same_content_is_summarised_once_and_shared(talked_session: AgentSession) -> None:
    first_message = Message.objects.get(session=talked_session, seq=1)
    third_message = Message.objects.get(session=talked_session, seq=3)
    first = attachment_record(
        session_id=talked_session.id,
        message_id=first_message.pk,
        sha256=SHA.upper(),
        kind="file",
        display_name="notes.txt",
        mime_type="Text/Plain",
        size_bytes=1200,
        summary="Meeting notes about the launch.",
    )
    assert (first.created, first.content_created) == (True, True)
    second = attachment_record(
        session_id=talked_session.id,
        message_id=third_message.pk,
        sha256=SHA,
        kind="file",
        display_name="copy of notes.txt",
        mime_type="text/markdown",
        size_bytes=1200,
        summary="A different summary that is not kept.",
    )
    assert (second.created, second.content_created) == (True, False)
    content = AttachmentContent.objects.get()
    assert (content.sha256, content.size_bytes, content.summary, content.token_count) == (
        SHA,
        1200,
        "Meeting notes about the launch.",
        8,
    )
    rows = list(AttachmentSummary.objects.order_by("id").values_list("message__seq", "display_name", "mime_type"))
    assert rows == [(1, "notes.txt", "text/plain"), (3, "copy of notes.txt", "text/markdown")]
    repeat = attachment_record(
        session_id=talked_session.id,
        message_id=first_message.pk,
        sha256=SHA,
        kind="file",
        display_name="notes.txt",
        mime_type="text/plain",
        size_bytes=1200,
    )
    assert (repeat.created, repeat.record.pk) == (False, first.record.pk)
    assert AttachmentSummary.objects.count() == 2


def test_content_recorded_without_summary_takes_the_first_one_given(talked_session: AgentSession) -> None:
    message = Message.objects.get(session=talked_session, seq=1)
    _record(talked_session, message, summary="")
    assert AttachmentContent.objects.get().summary == ""
    _record(
        talked_session, Message.objects.get(session=talked_session, seq=2), summary="Now summarised.", token_count=3
    )
    content = AttachmentContent.objects.get()
    assert (content.summary, content.token_count) == ("Now summarised.", 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sha256": "xyz"}, "sha256: must be 64 hex characters (the content's SHA-256)"),
        ({"sha256": "g" * 64}, "sha256: must be 64 hex characters (the content's SHA-256)"),
        ({"kind": "video"}, "kind: 'video' is not allowed; use one of file, url, image, other"),
        ({"display_name": ""}, "display_name: is empty; give some text"),
        ({"mime_type": "plain"}, "mime_type: 'plain' is not a MIME type; use type/subtype, e.g. text/plain"),
        ({"size_bytes": -5}, "size_bytes: -5 is out of range; give a whole number from 0 to 1099511627776"),
        ({"size_bytes": None}, "size_bytes: is missing; give the content's size in bytes"),
        ({"kind": "url", "uri": "ftp://x"}, "uri: a url source needs the http(s) address it was read from"),
        ({"token_count": -1}, "token_count: -1 is out of range"),
    ],
)
def test_attachment_rejects_bad_input(talked_session: AgentSession, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _record(talked_session, Message.objects.get(session=talked_session, seq=1), **overrides)
    assert str(caught.value).startswith(message)
    assert not AttachmentContent.objects.exists()
    assert not AttachmentSummary.objects.exists()


def test_attachment_message_must_belong_to_the_session(talked_session: AgentSession) -> None:
    other = session_create(owner=op_user(), title="other")
    foreign = message_append(session_id=other.id, role="user", content="x").record
    with pytest.raises(InvalidInputError, match=rf"^message: message {foreign.pk} belongs to another session"):
        _record(talked_session, foreign)
    with pytest.raises(NotFoundError, match=r"^message: no message 999999$"):
        attachment_record(
            session_id=talked_session.id,
            message_id=999_999,
            sha256=SHA,
            kind="file",
            display_name="n",
            mime_type="text/plain",
            size_bytes=1,
        )
    assert not AttachmentContent.objects.exists()


def test_the_same_sha256_with_another_size_is_a_conflict(talked_session: AgentSession) -> None:
    _record(talked_session, Message.objects.get(session=talked_session, seq=1))
    with pytest.raises(ConflictError, match=r"^size_bytes: 99 differs from the 1200 bytes recorded for this sha256$"):
        _record(talked_session, Message.objects.get(session=talked_session, seq=2), size_bytes=99)
    assert AttachmentSummary.objects.count() == 1


def test_url_sources_keep_their_address(talked_session: AgentSession) -> None:
    result = _record(
        talked_session,
        Message.objects.get(session=talked_session, seq=2),
        kind="url",
        uri="https://example.com/post",
        mime_type="text/html",
    )
    assert (result.created, result.content_created) == (True, True)
    assert AttachmentSummary.objects.get().uri == "https://example.com/post"
    assert str(AttachmentSummary.objects.get()) == "url notes.txt"


def _session_with_attachments(size: int) -> AgentSession:
    session = session_create(owner=op_user(), title=f"{size} messages", route_alias="replay")
    for number in range(size):
        message = message_append(session_id=session.pk, role="user", content=f"message {number} " * 20).record
        attachment_record(
            session_id=session.pk,
            message_id=message.pk,
            sha256=f"{number % 3:064x}",
            kind="file",
            display_name=f"notes-{number}.txt",
            mime_type="text/plain",
            size_bytes=100,
            summary="shared notes",
        )
    return session


def test_deleting_a_session_removes_its_attachment_references_without_reading_its_messages(
    chat_session: AgentSession,
) -> None:
    small, large = _session_with_attachments(3), _session_with_attachments(40)
    counts = []
    for session, size in ((small, 3), (large, 40)):
        with CaptureQueriesContext(connection) as captured:
            result = session_delete(session_id=session.pk)
        assert result.messages == size
        # Set-based statements only: the same count at 3 and 40 messages, and no row of the log read back.
        assert not [query["sql"] for query in captured.captured_queries if 'core_message"."content' in query["sql"]]
        counts.append(len(captured.captured_queries))
        assert not AttachmentSummary.objects.filter(session_id=session.pk).exists()
    assert counts[0] == counts[1]
    # The shared contents stay (other sessions may refer to them); the other session is untouched.
    assert AttachmentContent.objects.count() == 3
    assert Message.objects.filter(session=chat_session).count() == 0
    assert AgentSession.objects.filter(pk=chat_session.pk).exists()
