"""The import and export page: an upload becomes a job the page follows; downloads hold the user's own only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django_tasks_db.models import DBTaskResult

from core.conversation.importing.jobs import import_job_execute
from core.conversation.importing.models import ImportJob, ImportStatus
from core.conversation.services import message_append, session_create
from core.models import AgentSession, ModelRoute
from tests.owners import plain_user

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parents[1] / "core" / "importing" / "samples"
CHATGPT = SAMPLES / "chatgpt_conversations.json"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, name: str, body: bytes, **fields: str) -> Any:
    return client.post("/import/", {"file": SimpleUploadedFile(name, body), **fields})


def notices(client: Client, path: str = "/import/") -> list[str]:
    body = client.get(path).content.decode()
    return re.findall(r'<div role="alert" class="notice">([^<]*)</div>', body)


def test_the_page_offers_the_upload_form_the_exports_and_is_in_the_nav(replay_route: ModelRoute) -> None:
    body = signed_in(plain_user("ann")).get("/import/").content.decode()
    assert '<a href="/import/" aria-current="page">Import/export</a>' in body
    form = '<form method="post" enctype="multipart/form-data" class="upload">'
    assert form + '<input type="hidden" name="csrfmiddlewaretoken"' in body
    assert '<input type="file" id="import-file" name="file" multiple required' in body
    assert '<option value="auto" selected>Detect from the file</option>' in body
    assert 'href="/export/?format=json" download>Download all (JSON)</a>' in body
    assert 'href="/export/?format=markdown" download>Download all (Markdown)</a>' in body
    assert "No imports yet." in body


def test_a_chatgpt_export_is_imported_by_the_worker_task_and_the_page_follows_it(
    replay_route: ModelRoute, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    ann = plain_user("ann")
    client = signed_in(ann)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "conversations.json", CHATGPT.read_bytes())
    job = ImportJob.objects.get(owner=ann)
    assert response.status_code == 302
    assert response["Location"] == f"/import/{job.pk}/"
    # Handed to the workers' queue, as the API does.
    assert DBTaskResult.objects.filter(args_kwargs__args=[str(job.pk)]).count() == 1

    # While it waits, the progress polls itself.
    waiting = client.get(f"/import/{job.pk}/").content.decode()
    assert '<h1 class="import-title">Import of conversations.json</h1>' in waiting
    assert f'hx-get="/import/{job.pk}/" hx-trigger="every 1s" hx-swap="outerHTML"' in waiting
    assert "<strong>Queued</strong>: 0 conversations read so far…" in waiting

    assert import_job_execute(job_id=job.pk).status == ImportStatus.COMPLETED
    # htmx's poll gets the progress alone, and once the job has ended it asks no more.
    done = client.get(f"/import/{job.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert done.startswith('<div id="import-job" class="import-job" data-status="completed">')
    assert "hx-trigger" not in done
    assert "<strong>Completed</strong>" in done
    lisbon = AgentSession.objects.get(owner=ann, title="Trip to Lisbon")
    assert f'<a href="/chat/{lisbon.pk}/">Trip to Lisbon</a>' in done
    assert "<h2>Skipped</h2>" in done
    assert re.search(r"<strong>Empty shell</strong>: \S", done)
    # The imported conversation opens in the chat page.
    assert client.get(f"/chat/{lisbon.pk}/").status_code == 200
    # The import page lists the job.
    listed = client.get("/import/").content.decode()
    assert f'<a href="/import/{job.pk}/">' in listed
    assert "<td>conversations.json</td><td>Completed</td>" in listed


def test_a_file_that_is_not_an_export_fails_its_job_with_the_reason(replay_route: ModelRoute) -> None:
    client = signed_in(plain_user("ann"))
    upload(client, "notes.json", b"{not json at all")
    job = ImportJob.objects.get()
    assert import_job_execute(job_id=job.pk).status == ImportStatus.FAILED
    response = client.get(f"/import/{job.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<strong>Failed</strong>" in body
    assert re.search(
        r'<p class="bad" role="alert">The import stopped, and nothing of it was written: [^<]*is not valid JSON', body
    )
    assert AgentSession.objects.count() == 0


@pytest.mark.fault
@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "file: required; send the export as a multipart file field named file"),
        ({"format": "myspace"}, "format: &#x27;myspace&#x27; is not a format; use one of auto, chatgpt"),
    ],
)
def test_a_refused_upload_comes_back_to_the_form_naming_the_problem(
    fields: dict[str, Any], problem: str, replay_route: ModelRoute
) -> None:
    client = signed_in(plain_user("ann"))
    if "format" in fields:
        fields["file"] = SimpleUploadedFile("c.json", b"[]")
    response = client.post("/import/", fields)
    assert (response.status_code, response["Location"]) == (302, "/import/")
    assert [text for text in notices(client) if text.startswith(problem)], notices(client)
    assert ImportJob.objects.count() == 0


@pytest.mark.fault
def test_an_upload_over_the_cap_is_refused_before_it_is_read(replay_route: ModelRoute, settings: Any) -> None:
    settings.AGENTCHAT_IMPORT_MAX_BYTES = 1024
    client = signed_in(plain_user("ann"))
    response = upload(client, "big.json", b"[" + b" " * 200_000 + b"]")
    assert (response.status_code, response["Location"]) == (302, "/import/")
    [shown] = notices(client)
    assert re.fullmatch(
        r"file: the upload is \d+ bytes; uploads are capped at 1024 bytes \(AGENTCHAT_IMPORT_MAX_BYTES\)", shown
    )
    assert ImportJob.objects.count() == 0


@pytest.mark.fault
def test_a_body_that_is_not_multipart_is_a_notice_not_an_error(replay_route: ModelRoute) -> None:
    client = signed_in(plain_user("ann"))
    response = client.post("/import/", data=b"--x\r\nnot a form", content_type="multipart/form-data")
    assert (response.status_code, response["Location"]) == (302, "/import/")
    [shown] = notices(client)
    assert shown.startswith("file: the upload could not be read (Invalid boundary in multipart: None)")
    assert ImportJob.objects.count() == 0


def test_the_form_needs_its_csrf_token(replay_route: ModelRoute) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(plain_user("ann"))
    assert upload(client, "c.json", b"[]").status_code == 403
    assert ImportJob.objects.count() == 0


def test_another_users_import_is_a_404(replay_route: ModelRoute) -> None:
    ann = signed_in(plain_user("ann"))
    upload(ann, "c.json", b"[]")
    job = ImportJob.objects.get()
    assert ann.get(f"/import/{job.pk}/").status_code == 200
    assert signed_in(plain_user("bob")).get(f"/import/{job.pk}/").status_code == 404
    assert "No imports yet." in signed_in(plain_user("bob")).get("/import/").content.decode()
    assert ann.get("/import/00000000-0000-4000-8000-000000000000/").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(replay_route: ModelRoute) -> None:
    for path in ("/import/", "/import/00000000-0000-4000-8000-000000000000/", "/export/?format=json"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def stream(response: Any) -> str:
    return b"".join(response.streaming_content).decode()


def test_everything_downloads_as_json_and_markdown_with_the_users_own_conversations_only(
    replay_route: ModelRoute,
) -> None:
    ann, bob = plain_user("ann"), plain_user("bob")
    mine = session_create(owner=ann, title="Mine")
    message_append(session_id=mine.pk, role="user", content="hello from ann")
    session_create(owner=bob, title="Bob's")
    client = signed_in(ann)
    response = client.get("/export/?format=json")
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="agentchat-conversations.json"'
    document = json.loads(stream(response))
    assert document["schema"] == "agentchat-export/1"
    assert [(s["title"], [m["content"] for m in s["messages"]]) for s in document["sessions"]] == [
        ("Mine", ["hello from ann"])
    ]
    markdown = client.get("/export/?format=markdown")
    assert markdown["Content-Disposition"] == 'attachment; filename="agentchat-conversations.md"'
    text = stream(markdown)
    assert text.startswith("# Mine\n")
    assert "hello from ann" in text
    assert "Bob's" not in text


@pytest.mark.fault
def test_an_unknown_export_format_is_a_notice_not_an_error(replay_route: ModelRoute) -> None:
    client = signed_in(plain_user("ann"))
    response = client.get("/export/?format=pdf")
    assert (response.status_code, response["Location"]) == (302, "/import/")
    assert notices(client) == ["format: &#x27;pdf&#x27; is not an export format; use json or markdown"]


def test_the_chat_page_downloads_its_conversation(replay_route: ModelRoute) -> None:
    ann = plain_user("ann")
    mine = session_create(owner=ann, title="Mine")
    client = signed_in(ann)
    body = client.get(f"/chat/{mine.pk}/").content.decode()
    assert f'<a href="/api/sessions/{mine.pk}/export/?format=json" download>JSON</a>' in body
    assert f'<a href="/api/sessions/{mine.pk}/export/?format=markdown" download>Markdown</a>' in body
    response = client.get(f"/api/sessions/{mine.pk}/export/?format=markdown")
    assert response.status_code == 200
    assert stream(response).startswith("# Mine\n")


def test_a_grown_conversation_uploaded_again_is_listed_as_updated_with_its_new_messages(
    replay_route: ModelRoute, tmp_path: Path
) -> None:
    from tests.core.importing.test_reimport import FIRST, GROWN, chatgpt_file

    ann = plain_user("ann")
    client = signed_in(ann)
    for turns in (FIRST, GROWN):
        upload(client, "conversations.json", chatgpt_file(tmp_path / "c.json", turns).read_bytes())
        job = ImportJob.objects.get(status=ImportStatus.QUEUED)
        import_job_execute(job_id=job.pk)
    session = AgentSession.objects.get(owner=ann)
    body = client.get(f"/import/{job.pk}/").content.decode()
    assert re.search(
        rf'<li><a href="/chat/{session.pk}/">Hill walk</a> <span class="muted">updated, 2 new messages</span></li>',
        body,
    )
    assert body.count('<ul class="report">') == 1  # the imported list only: nothing skipped
