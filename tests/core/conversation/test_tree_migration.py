"""A database made at the main before conversation trees upgrades: each session becomes one branch.

The old tree comes out of this repository's history (`git archive`); both trees run as real
`manage.py` processes on a real database (a SQLite file, or a fresh PostgreSQL database).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from tests.site.test_upgrade import ROOT, database_url, manage

# main just before messages had parents (core's latest migration: 0009_owners).
BEFORE_TREES = "df18c4f"

pytestmark = [pytest.mark.slow, pytest.mark.persistence]
__all__ = ["database_url"]  # the fixture, imported for this module's test

READ_TREE = """
import json
from core.models import AgentSession, Message
by_id = dict(Message.objects.values_list("id", "seq"))
print(json.dumps({
    str(s.pk): {
        "leaf": s.leaf,
        "messages": [[m.id, m.seq, by_id.get(m.parent_id)] for m in Message.objects.filter(session=s).order_by("seq")],
    }
    for s in AgentSession.objects.all()
}))
"""


def _tree_at(commit: str, destination: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def _last_json(output: str) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = json.loads(output.strip().splitlines()[-1])
    return found


def test_linear_sessions_migrate_to_one_branch_keeping_every_id(tmp_path: Path, database_url: str) -> None:
    old = _tree_at(BEFORE_TREES, tmp_path / "old")
    manage(old, database_url, "migrate", "--noinput")
    manage(old, database_url, "load_config")
    manage(old, database_url, "ensure_operator")
    first = manage(old, database_url, "chat", "new", "hello before trees")
    session = first.splitlines()[0].split()[1]
    manage(old, database_url, "chat", session, "/tool web_search tea prices")
    manage(old, database_url, "chat", "new", "a second session")
    before = manage(
        old,
        database_url,
        "shell",
        "-c",
        "import json; from core.models import Message; "
        "print(json.dumps([[str(m.session_id), m.id, m.seq] for m in Message.objects.order_by('session_id', 'seq')]))",
    )
    rows = json.loads(before.strip().splitlines()[-1])
    assert len(rows) >= 6

    manage(ROOT, database_url, "migrate", "--noinput")
    tree = _last_json(manage(ROOT, database_url, "shell", "-c", READ_TREE))
    assert sorted([sid, mid, seq] for sid, data in tree.items() for mid, seq, _ in data["messages"]) == sorted(rows)  # type: ignore[attr-defined]
    for data in tree.values():
        messages = data["messages"]
        assert isinstance(messages, list)
        seqs = [seq for _, seq, _ in messages]
        assert [parent for _, _, parent in messages] == [None, *seqs[:-1]]
        assert data["leaf"] == seqs[-1]

    # The upgraded session continues on its one branch: the new user message goes under the old last one.
    manage(ROOT, database_url, "chat", session, "hello after trees")
    after = _last_json(manage(ROOT, database_url, "shell", "-c", READ_TREE))[session]["messages"]
    assert isinstance(after, list)
    old_last = tree[session]["leaf"]
    assert [seq for _, seq, parent in after if parent == old_last] == [old_last + 1]  # type: ignore[operator]
