"""The admin shows what the config file and the system own without letting anyone change it there:
the `[memory]` settings, the usage per purpose, and the import jobs."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.config.contracts import ConfigDocument, MemoryConfig
from core.config.services import config_document_apply
from core.models import AgentSession, ImportJob, MemorySettings
from telemetry.models import UsageByPurpose
from telemetry.services import usage_record
from tests.web.test_pages import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(operator: User) -> Client:
    return signed_in(operator)


def assert_read_only(client: Client, changelist: str, pk: object) -> str:
    """The list and the record's page answer; adding, changing and deleting are refused. Returns the list."""
    listed = client.get(changelist)
    assert listed.status_code == 200
    assert client.get(f"{changelist}add/").status_code == 403
    record = client.get(f"{changelist}{pk}/change/")
    assert record.status_code == 200
    assert 'name="_save"' not in record.content.decode()
    assert client.post(f"{changelist}{pk}/change/", {}).status_code == 403
    assert client.post(f"{changelist}{pk}/delete/", {"post": "yes"}).status_code == 403
    return listed.content.decode()


def test_the_memory_settings_are_shown_and_changed_only_in_the_config_file(staff: Client) -> None:
    config_document_apply(
        document=ConfigDocument(memory=MemoryConfig(keep_recent_messages=4, extract_facts=True)), prune=False
    )
    settings_row = MemorySettings.objects.get()
    page = assert_read_only(staff, "/admin/core/memorysettings/", settings_row.pk)
    assert re.search(r'<th class="field-keep_recent_messages"><a href="[^"]+">4</a></th>', page)
    assert '<td class="field-extract_facts"><img src="/static/admin/img/icon-yes.svg" alt="True"></td>' in page
    assert MemorySettings.objects.get().keep_recent_messages == 4


def test_usage_by_purpose_lists_each_purpose_and_filters_by_one(
    staff: Client, chat_session: AgentSession, operator: User
) -> None:
    for index, purpose in enumerate(["chat", "compaction", "compaction"]):
        usage_record(
            owner=operator,
            request_id=f"admin-{index}",
            session_id=chat_session.pk,
            route_alias="replay",
            input_tokens=10,
            purpose=purpose,
        )
    compaction = UsageByPurpose.objects.get(purpose="compaction")
    page = assert_read_only(staff, "/admin/telemetry/usagebypurpose/", compaction.pk)
    assert '<td class="field-event_count">2</td>' in page
    assert page.count('<th class="field-purpose">') == 2
    only = staff.get("/admin/telemetry/usagebypurpose/?purpose=compaction").content.decode()
    assert only.count('<th class="field-purpose">') == 1
    assert '<td class="field-event_count">2</td>' in only


def test_import_jobs_are_shown_with_their_progress_and_never_edited(staff: Client, operator: User) -> None:
    job = ImportJob.objects.create(
        owner=operator, status="failed", conversations_seen=3, conversations_imported=2, error="line 9: not JSON"
    )
    page = assert_read_only(staff, "/admin/core/importjob/", job.pk)
    assert '<td class="field-conversations_imported">2</td>' in page
    assert len(re.findall(r'<td class="field-owner[^"]*">', page)) == 1
    assert "line 9: not JSON" in staff.get(f"/admin/core/importjob/{job.pk}/change/").content.decode()
    completed = staff.get("/admin/core/importjob/?status=completed").content.decode()
    assert re.findall(r'<td class="field-owner[^"]*">', completed) == []
