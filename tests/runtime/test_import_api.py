"""`POST /api/import/` and `GET /api/import/{id}/`: an upload becomes a job a worker runs; progress, report, the cap."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from core.config.models import ModelRoute
from core.conversation.importing.jobs import import_job_create, import_job_execute
from core.errors import InvalidInputError
from core.models import AgentSession, ImportJob
from tests.core.importing.conftest import SAMPLES
from tests.owners import plain_user
from tests.procs import ROOT, worker_env


@pytest.fixture
def import_dir(settings: SettingsWrapper, tmp_path: Path) -> Path:
    settings.AGENTCHAT_IMPORT_DIR = tmp_path / "imports"
    return tmp_path / "imports"


def _upload(api: APIClient, *names: str, **fields: str) -> dict[str, object]:
    files = [SimpleUploadedFile(name, (SAMPLES / name).read_bytes(), "application/json") for name in names]
    response = api.post("/api/import/", {"file": files, **fields}, format="multipart")
    assert response.status_code == 202, response.content
    body: dict[str, object] = response.json()
    return body


@pytest.mark.django_db
def test_an_upload_is_queued_then_its_job_reports_progress_and_the_outcome_only_to_its_owner(
    api: APIClient, operator: User, replay_route: ModelRoute, import_dir: Path
) -> None:
    queued = _upload(api, "chatgpt_conversations.json", "openwebui_export.json")
    assert (queued["status"], queued["file_names"], queued["conversations_seen"]) == (
        "queued",
        ["chatgpt_conversations.json", "openwebui_export.json"],
        0,
    )

    import_job_execute(job_id=str(queued["id"]))  # what the worker's task runs
    done = api.get(f"/api/import/{queued['id']}/").json()
    other = APIClient()
    other.force_authenticate(user=plain_user("cy"))

    assert {
        key: done[key] for key in ("status", "conversations_seen", "conversations_imported", "conversations_skipped")
    } == {
        "status": "completed",
        "conversations_seen": 5,
        "conversations_imported": 3,
        "conversations_skipped": 2,
    }
    assert done["messages_imported"] == 14
    assert [(line["title"], line["outcome"]) for line in done["report"]] == [
        ("Trip to Lisbon", "imported"),
        ("Recovered fragment", "imported"),
        ("Empty shell", "skipped"),
        ("Rust lifetimes", "imported"),
        ("Broken", "skipped"),
    ]
    assert AgentSession.objects.filter(owner=operator).count() == 3
    assert list(import_dir.iterdir()) == []  # the uploads are gone once imported
    assert other.get(f"/api/import/{queued['id']}/").status_code == 404
    assert api.get("/api/import/not-a-job/").status_code == 404


@pytest.mark.django_db
@pytest.mark.fault
def test_a_malformed_upload_fails_its_job_naming_the_field_and_writes_nothing(
    api: APIClient, replay_route: ModelRoute, import_dir: Path
) -> None:
    bad = SimpleUploadedFile("conversations.json", b'[{"title": "cut', "application/json")
    queued = api.post("/api/import/", {"file": [bad]}, format="multipart").json()

    import_job_execute(job_id=queued["id"])
    job = api.get(f"/api/import/{queued['id']}/").json()

    assert job["status"] == "failed"
    assert job["error"].startswith(f"{import_dir / queued['id'] / '0.upload'}: (file): is not valid JSON (")
    assert AgentSession.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.fault
def test_an_upload_over_the_cap_is_refused_before_it_is_read_and_nothing_is_kept(
    api: APIClient, replay_route: ModelRoute, import_dir: Path, settings: SettingsWrapper
) -> None:
    settings.AGENTCHAT_IMPORT_MAX_BYTES = 2_048
    big = SimpleUploadedFile("conversations.json", b"[" + b" " * 80_000 + b"]", "application/json")

    response = api.post("/api/import/", {"file": [big]}, format="multipart")

    assert response.status_code == 413
    assert response.json()["detail"].endswith("bytes; uploads are capped at 2048 bytes")
    assert ImportJob.objects.count() == 0
    # Without a declared length (a chunked body) the stored size is checked: a 400 naming the field.
    with pytest.raises(InvalidInputError) as caught:
        import_job_create(owner=plain_user("dee"), uploads=[SimpleUploadedFile("c.json", b"[" + b" " * 4_000 + b"]")])
    assert caught.value.fields == {
        "file": ["is 4002 bytes; uploads are capped at 2048 bytes (AGENTCHAT_IMPORT_MAX_BYTES)"]
    }
    assert not import_dir.exists() or list(import_dir.iterdir()) == []
    no_file = api.post("/api/import/", {"format": "chatgpt"}, format="multipart")
    assert (no_file.status_code, list(no_file.json()["fields"])) == (400, ["file"])
    bad_format = api.post("/api/import/", {"format": "csv"}, format="multipart")
    assert (bad_format.status_code, list(bad_format.json()["fields"])) == (400, ["format"])


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_imports_the_upload_in_the_background(
    api: APIClient, replay_route: ModelRoute, import_dir: Path
) -> None:
    queued = _upload(api, "librechat_tree.json")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--worker-id", "import-test"],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        job = api.get(f"/api/import/{queued['id']}/").json()
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = api.get(f"/api/import/{queued['id']}/").json()
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)

    assert (job["status"], job["conversations_imported"], job["messages_imported"]) == ("completed", 1, 4), stderr
    assert AgentSession.objects.get().title == "Nested export"
