"""The import task: a worker imports an uploaded export (`POST /api/import/`) and keeps its job's progress."""

from __future__ import annotations

from django_tasks import task

from core.conversation.importing.jobs import import_job_execute
from core.conversation.importing.models import ImportJob


@task()
def import_conversations(job_id: str) -> str:
    """Run the queued import `job_id`; answers its final status."""
    return str(import_job_execute(job_id=job_id).status)


def import_enqueue(job: ImportJob) -> None:
    """Hand a queued import to the workers (called after the commit that queued it)."""
    import_conversations.enqueue(str(job.pk))
