"""An existing database upgrades with its data: one made by the code at an earlier main, migrated
forward by today's code, reads every record back.

The old tree comes out of this repository's own history (`git archive`), and both trees run as
real `manage.py` processes on a real database: a SQLite file, or a fresh database on the
PostgreSQL server the suite runs on.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# main before the house was reorganised (core's models in core/models/, the SQLite append of its own).
BEFORE_HOUSE = "09c9fb1d78c287a20e880727cc4d986d41dfa663"
DUMPED = ["core", "memory", "telemetry", "auth.user"]
# The old tree kept API keys in clear in DRF's `authtoken` app; the upgrade hashes them into
# `core.apitoken` and drops DRF's table.
DUMPED_BEFORE = [*DUMPED, "authtoken"]

# The records that have an owner since accounts own their records (children reach it through these).
OWNED = {"core.agentsession", "core.run", "memory.longtermmemory", "memory.dailyepisode", "telemetry.usageevent"}

pytestmark = [pytest.mark.slow, pytest.mark.persistence]

MAKE_DATA = """
import datetime
from memory.services import attachment_record, episode_upsert, memory_write
from core.models import AgentSession, Message
session = AgentSession.objects.order_by("created").first()
message = Message.objects.filter(session=session).order_by("seq").first()
memory_write(kind="fact", content="The upgrade keeps oolong tea notes", key="tea")
memory_write(kind="preference", content="Answers short and plain", pinned=True)
episode_upsert(day=datetime.date(2026, 11, 1), timezone_name="UTC", summary="Talked about tea", source="manual",
               session_id=session.id)
attachment_record(session_id=session.id, message_id=message.id, sha256="ab" * 32, kind="file",
                  display_name="notes.txt", mime_type="text/plain", size_bytes=12, summary="tea notes")
"""

SIGN_IN_WITH = """
from django.db import connection
from django.test import Client
with connection.cursor() as cursor:
    tables = connection.introspection.table_names(cursor)
response = Client(HTTP_HOST="localhost").get(
    "/api/auth/tokens/", HTTP_AUTHORIZATION="Token " + KEY, REMOTE_ADDR="127.0.0.1"
)
print(response.status_code, "authtoken_token" in tables)
"""

READ_BACK = """
import json
from memory.search import memory_search
print(json.dumps([hit.memory.key for hit in memory_search("oolong")]))
"""


# Messages written before the message index existed are found through it (`core/0014_message_search`).
MESSAGE_READ_BACK = """
import json
from core.conversation.search import message_search
page = message_search(owner=None, query='"before the upgrade"')
print(json.dumps([sorted(message.seq for message in hit.messages) for hit in page.results]))
"""


def old_tree(destination: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", BEFORE_HOUSE],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A new, empty database of the kind the suite runs on."""
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"
        return
    import psycopg

    base, _, _ = server.rpartition("/")
    name = f"agentchat_upgrade_{secrets.token_hex(4)}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # nosec B608: a name this test made up
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # nosec B608


def manage(tree: Path, database_url: str, *args: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "agentchat_site.settings",
        "PYTHONPATH": str(tree),
        "SECRET_KEY": "upgrade-test-" + "k" * 40,
        "AGENTCHAT_CONFIG": str(tree / "config" / "agentchat.example.toml"),
        "AGENTCHAT_OPERATOR_PASSWORD": "upgrade-" + secrets.token_hex(8),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} in {tree.name}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def records(dump: str) -> dict[tuple[str, Any], dict[str, Any]]:
    return {(row["model"], row["pk"]): row["fields"] for row in json.loads(dump)}


def test_a_database_made_before_the_house_upgrades_and_reads_every_record_back(
    tmp_path: Path, database_url: str
) -> None:
    old = old_tree(tmp_path / "old")
    manage(old, database_url, "migrate", "--noinput")
    manage(old, database_url, "load_config")
    manage(old, database_url, "ensure_operator")
    manage(old, database_url, "chat", "new", "hello before the upgrade")
    manage(old, database_url, "chat", "new", "/tool web_search tea prices")
    manage(old, database_url, "drf_create_token", "operator")
    manage(old, database_url, "shell", "-c", MAKE_DATA)
    before = records(manage(old, database_url, "dumpdata", *DUMPED_BEFORE))
    counts = {model: sum(1 for name, _ in before if name == model) for model, _ in before}
    assert counts["core.message"] >= 5, counts
    assert counts["core.traceevent"] >= 10, counts
    assert {model for model, _ in before} >= {
        "core.agentsession",
        "core.message",
        "core.run",
        "core.traceevent",
        "core.checkpoint",
        "core.provider",
        "core.modelroute",
        "memory.longtermmemory",
        "memory.dailyepisode",
        "memory.attachmentsummary",
        "telemetry.usageevent",
        "authtoken.token",
    } - {"core.checkpoint"}

    manage(ROOT, database_url, "migrate", "--noinput")
    dump_after = manage(ROOT, database_url, "dumpdata", *DUMPED)
    after = records(dump_after)

    # Each old token is now a hashed one of the same user and creation time, and works; no key
    # stays in clear anywhere.
    old_tokens = {key[1]: before.pop(key) for key in list(before) if key[0] == "authtoken.token"}
    new_tokens = {fields["key_sha256"]: fields for (model, _), fields in after.items() if model == "core.apitoken"}
    assert len(old_tokens) == len(new_tokens) == 1
    for old_key, fields in old_tokens.items():
        hashed = new_tokens[hashlib.sha256(old_key.encode()).hexdigest()]
        assert (hashed["user"], hashed["created"], hashed["prefix"]) == (fields["user"], fields["created"], old_key[:8])
        assert old_key not in dump_after
        signed_in = manage(ROOT, database_url, "shell", "-c", f"KEY = {old_key!r}\n" + SIGN_IN_WITH)
        assert signed_in.strip().splitlines()[-1] == "200 False"

    missing = sorted(str(key) for key in before if key not in after)
    assert missing == []
    changed = {
        str(key): {
            name: (value, after[key].get(name)) for name, value in fields.items() if after[key].get(name) != value
        }
        for key, fields in before.items()
    }
    assert {key: diff for key, diff in changed.items() if diff} == {}

    # Every record made before accounts belongs to the operator now; the per-user rollup was
    # filled from the old events, so every rollup still equals its events.
    operator = next(pk for (model, pk), row in after.items() if model == "auth.user" and row["username"] == "operator")
    owners = {key: row["owner"] for key, row in after.items() if key[0] in OWNED}
    assert {model for model, _ in owners} == OWNED
    assert set(owners.values()) == {operator}
    assert "every rollup equals" in manage(ROOT, database_url, "telemetry_reconcile")

    # The upgraded database works: full-text search finds an old memory, and a new turn continues
    # an old session (the `chat` command acts as the operator by default).
    assert json.loads(manage(ROOT, database_url, "shell", "-c", READ_BACK).strip().splitlines()[-1]) == ["tea"]
    found = manage(ROOT, database_url, "shell", "-c", MESSAGE_READ_BACK).strip().splitlines()[-1]
    assert json.loads(found) == [[1, 2]]  # the user's message and the replay provider's echo of it
    session = next(key[1] for key in before if key[0] == "core.agentsession")
    reply = manage(ROOT, database_url, "chat", str(session), "hello after the upgrade")
    assert "hello after the upgrade" in reply
