"""The import and export page: upload an export from another app, watch its job, download everything.

The upload goes through the same service and worker task as `POST /api/import/` (`import_job_create`,
then `import_enqueue` after the commit); the job page polls itself with htmx until the job ends, then
shows the report. A refused upload comes back to the form with the service's own message; a file
the worker cannot read ends the job `failed` with the reason, shown on the job page.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from core.api.acting import acting_user
from core.conversation.api.export_views import EXPORT_FORMATS
from core.conversation.exporting import export_json, export_markdown, sessions_for_export
from core.conversation.importing.jobs import import_job_create, import_job_get
from core.conversation.importing.models import ImportFormat, ImportJob, ImportStatus
from core.conversation.selectors import owned
from core.errors import DomainError, InvalidInputError, NotFoundError
from runtime.worker.imports import import_enqueue
from web.views import FragmentPage

RECENT_JOBS = 20
# The report's outcomes of a conversation now in a session (imported, or grown and updated).
STORED = ("imported", "updated")
# Room for the multipart envelope around the files (as the API allows).
ENVELOPE = 65_536


def _uploads(request: HttpRequest) -> tuple[str, list[Any]]:
    """The chosen format and the uploaded files; InvalidInputError naming the field when they cannot be read."""
    cap = settings.AGENTCHAT_IMPORT_MAX_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > cap + ENVELOPE:
        raise InvalidInputError.for_field(
            "file", f"the upload is {declared} bytes; uploads are capped at {cap} bytes (AGENTCHAT_IMPORT_MAX_BYTES)"
        )
    try:
        fmt = request.POST.get("format") or ImportFormat.AUTO
        uploads = request.FILES.getlist("file")
    except MultiPartParserError as error:
        raise InvalidInputError.for_field(
            "file", f"the upload could not be read ({error}); choose the file again"
        ) from None
    return fmt, uploads


class ImportPage(LoginRequiredMixin, TemplateView):
    """`/import/`: the upload form, the user's recent imports and the links that download everything."""

    template_name = "web/import.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        owner = acting_user(self.request)
        context.update(
            page="import",
            formats=ImportFormat.choices,
            jobs=list(owned(ImportJob.objects.all(), owner).order_by("-created", "-id")[:RECENT_JOBS]),
            cap_mb=settings.AGENTCHAT_IMPORT_MAX_BYTES // (1024 * 1024),
        )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            fmt, uploads = _uploads(request)
            job = import_job_create(owner=acting_user(request), uploads=uploads, fmt=fmt)
        except DomainError as error:
            messages.error(request, str(error))
            return HttpResponseRedirect(reverse("web-import"))
        transaction.on_commit(lambda: import_enqueue(job))
        return HttpResponseRedirect(reverse("web-import-job", kwargs={"job_id": job.pk}))


class ImportJobPage(FragmentPage):
    """`/import/<id>/`: one of the user's imports; while it runs, htmx asks again for the progress alone."""

    template_name = "web/import_job.html"
    fragment_name = "web/_import_job.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        job_id: UUID = kwargs["job_id"]
        try:
            job = import_job_get(job_id=job_id, owner=acting_user(self.request))
        except NotFoundError:
            raise Http404("No such import.") from None
        report = job.report if isinstance(job.report, list) else []
        context.update(
            page="import",
            job=job,
            running=job.status in (ImportStatus.QUEUED, ImportStatus.RUNNING),
            imported=[line for line in report if isinstance(line, dict) and line.get("outcome") in STORED],
            skipped=[line for line in report if isinstance(line, dict) and line.get("outcome") not in STORED],
        )
        return context


class ExportAllView(LoginRequiredMixin, View):
    """`/export/?format=json|markdown`: every conversation of the user, streamed as it is read."""

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        chosen = request.GET.get("format", "json")
        if chosen not in EXPORT_FORMATS:
            messages.error(request, f"format: {chosen!r} is not an export format; use json or markdown")
            return HttpResponseRedirect(reverse("web-import"))
        sessions = sessions_for_export(owner=acting_user(request), session_ids=None)
        pieces = export_json(sessions) if chosen == "json" else export_markdown(sessions)
        media_type, suffix = EXPORT_FORMATS[chosen]
        response = StreamingHttpResponse(
            (piece.encode() for piece in pieces), content_type=f"{media_type}; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="agentchat-conversations.{suffix}"'
        return response
