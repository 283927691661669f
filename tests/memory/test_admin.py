"""Admin for the memory tiers: changelists at constant query cost, full-text search, pin/unpin/forget actions."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from core.models import AgentSession, Message
from memory.models import AttachmentSummary, DailyEpisode, LongTermMemory
from memory.services import attachment_record, episode_upsert, memory_write
from tests.owners import op_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(operator: User) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def filled(talked_session: AgentSession) -> AgentSession:
    for index in range(30):
        memory_write(owner=op_user(), kind="fact", content=f"memory number {index} about tea", pinned=index % 5 == 0)
    for day in range(1, 11):
        episode_upsert(
            owner=op_user(), day=datetime.date(2025, 1, day), timezone_name="UTC", summary=f"day {day}", source="manual"
        )
        episode_upsert(
            owner=op_user(),
            day=datetime.date(2025, 1, day),
            timezone_name="UTC",
            summary=f"session day {day}",
            source="compactor",
            session_id=talked_session.id,
        )
    for seq in range(1, 5):
        attachment_record(
            session_id=talked_session.id,
            message_id=Message.objects.get(session=talked_session, seq=seq).pk,
            sha256=f"{seq:x}" * 64,
            kind="file",
            display_name=f"file{seq}.txt",
            mime_type="text/plain",
            size_bytes=seq,
            summary="s",
        )
    return talked_session


@pytest.mark.parametrize(
    ("url", "queries"),
    [
        # Every list: session, user, the accounts for the owner filter, then:
        # the 20 recent sessions for the session filter, capped COUNT, page SELECT (joined to the
        # source session and the owner).
        ("/admin/memory/longtermmemory/", 6),
        ("/admin/memory/longtermmemory/?kind__exact=fact&pinned=yes", 6),
        # recent sessions, the full-text filtered capped COUNT and page SELECT.
        ("/admin/memory/longtermmemory/?q=tea+number", 6),
        # recent sessions, capped COUNT, page SELECT (joined to the session and the owner), and the
        # date hierarchy's MIN/MAX day and DISTINCT dates (one row per day and session: a small table).
        ("/admin/memory/dailyepisode/", 8),
        ("/admin/memory/dailyepisode/?scope=whole_day&source__exact=manual", 8),
        # recent sessions, capped COUNT, page SELECT (joined to content and its owner, session, message).
        ("/admin/memory/attachmentsummary/", 6),
        ("/admin/memory/attachmentcontent/", 5),
    ],
)
def test_changelists_cost_a_constant_number_of_queries(
    admin_client: Client,
    filled: AgentSession,
    django_assert_num_queries: DjangoAssertNumQueries,
    url: str,
    queries: int,
) -> None:
    with django_assert_num_queries(queries):
        response = admin_client.get(url)
    assert response.status_code == 200


def test_each_tier_narrows_by_session(admin_client: Client, filled: AgentSession) -> None:
    session = str(filled.pk)
    episodes = admin_client.get("/admin/memory/dailyepisode/", {"session": session})
    assert episodes.context["cl"].result_count == 10
    assert (session, str(filled)) in [choice[:2] for choice in episodes.context["cl"].filter_specs[2].lookup_choices]
    assert admin_client.get("/admin/memory/attachmentsummary/", {"session": session}).context["cl"].result_count == 4
    memory_write(
        owner=op_user(),
        kind="fact",
        content="from the talk",
        source_session_id=filled.pk,
        source_first_seq=1,
        source_last_seq=1,
    )
    memories = admin_client.get("/admin/memory/longtermmemory/", {"session": session})
    assert [row.content for row in memories.context["cl"].result_list] == ["from the talk"]
    # A malformed id selects nothing instead of failing.
    assert admin_client.get("/admin/memory/dailyepisode/", {"session": "nope"}).context["cl"].result_count == 0


def test_memory_search_uses_every_word(admin_client: Client, filled: AgentSession) -> None:
    response = admin_client.get("/admin/memory/longtermmemory/", {"q": "number 7 tea"})
    assert response.context["cl"].result_count == 1
    assert admin_client.get("/admin/memory/longtermmemory/", {"q": "((( OR"}).context["cl"].result_count == 0
    assert admin_client.get("/admin/memory/dailyepisode/", {"q": "not-a-uuid"}).status_code == 200


def test_pin_unpin_and_forget_actions_go_through_the_services(admin_client: Client, filled: AgentSession) -> None:
    ids = list(LongTermMemory.objects.filter(pinned=False).order_by("id").values_list("id", flat=True)[:3])
    url = "/admin/memory/longtermmemory/"
    response = admin_client.post(url, {"action": "pin", "_selected_action": ids}, follow=True)
    assert "Pinned 3 memories." in response.content.decode()
    assert LongTermMemory.objects.filter(pk__in=ids, pinned=True).count() == 3
    admin_client.post(url, {"action": "unpin", "_selected_action": ids[:1]})
    assert LongTermMemory.objects.filter(pk__in=ids, pinned=True).count() == 2
    admin_client.post(url, {"action": "forget", "_selected_action": ids})
    assert not LongTermMemory.objects.filter(pk__in=ids).exists()
    episode_ids = list(DailyEpisode.objects.values_list("id", flat=True)[:2])
    admin_client.post("/admin/memory/dailyepisode/", {"action": "forget", "_selected_action": episode_ids})
    assert DailyEpisode.objects.count() == 18


def test_records_are_read_only_in_the_admin(admin_client: Client, filled: AgentSession) -> None:
    memory = LongTermMemory.objects.first()
    assert memory is not None
    assert admin_client.get("/admin/memory/longtermmemory/add/").status_code == 403
    change = admin_client.post(f"/admin/memory/longtermmemory/{memory.pk}/change/", {"content": "edited"})
    assert change.status_code == 403
    assert admin_client.get(f"/admin/memory/longtermmemory/{memory.pk}/change/").status_code == 200
    attachment = AttachmentSummary.objects.first()
    assert attachment is not None
    assert admin_client.get(f"/admin/memory/attachmentsummary/{attachment.pk}/change/").status_code == 200
