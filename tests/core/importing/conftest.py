"""Shared by the import and export tests: the sample exports and a reader of a session's stored tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.conversation.importing.jobs import ImportReport, import_run
from core.models import AgentSession, ImportedConversation, Message

SAMPLES = Path(__file__).resolve().parent / "samples"


def run(owner: Any, *names: str | Path, **options: Any) -> ImportReport:
    """Import sample files (names under SAMPLES, or paths) for `owner`."""
    return import_run(
        owner=owner, paths=[SAMPLES / name if isinstance(name, str) else name for name in names], **options
    )


def session_of(source_id: str) -> AgentSession:
    return ImportedConversation.objects.select_related("session").get(source_id=source_id).session


def tree(session: AgentSession) -> list[tuple[int, int | None, str, str]]:
    """(seq, parent seq, role, content) of every message, in seq order."""
    rows = list(Message.objects.filter(session=session).order_by("seq"))
    seq_of = {row.pk: row.seq for row in rows}
    return [(row.seq, seq_of.get(row.parent_id) if row.parent_id else None, row.role, row.content) for row in rows]
