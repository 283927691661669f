"""`POST /api/import/` (a multipart upload, imported by a worker) and `GET /api/import/{id}/` (its progress and report).

It lives in runtime because it hands the job to the workers' queue.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.acting import acting_user
from core.api.parsers import BoundedMultiPartParser
from core.api.schema import INVALID_INPUT, error_response
from core.conversation.importing.jobs import import_job_create, import_job_get
from core.conversation.importing.models import ImportFormat, ImportJob
from runtime.worker.imports import import_enqueue


class UploadTooLargeError(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"


class ImportJobSerializer(serializers.ModelSerializer[ImportJob]):
    class Meta:
        model = ImportJob
        fields = (  # noqa: SIM905 (the field names, explicit, in two lines)
            "id status format dry_run file_names size_bytes conversations_seen conversations_imported"
            " conversations_skipped messages_imported report error created started_at finished_at"
        ).split()


class ImportUploadSerializer(serializers.Serializer[Any]):
    format = serializers.ChoiceField(choices=ImportFormat.values, default=ImportFormat.AUTO)
    dry_run = serializers.BooleanField(default=False)


class ImportView(APIView):
    """Upload an export; a worker imports it and the job tells how far it got."""

    parser_classes = [BoundedMultiPartParser]

    @extend_schema(
        operation_id="import_create",
        summary="Import conversations from an uploaded export (field `file`, repeatable; `format`, `dry_run`)",
        request={
            "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        responses={
            202: ImportJobSerializer,
            400: INVALID_INPUT,
            413: error_response("Over AGENTCHAT_IMPORT_MAX_BYTES"),
        },
    )
    def post(self, request: Request) -> Response:
        cap = settings.AGENTCHAT_IMPORT_MAX_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > cap + 65_536:  # room for the multipart envelope
            raise UploadTooLargeError(f"file: the upload is {declared} bytes; uploads are capped at {cap} bytes")
        fields = ImportUploadSerializer(
            data={key: request.data[key] for key in ("format", "dry_run") if key in request.data}
        )
        fields.is_valid(raise_exception=True)
        job = import_job_create(
            owner=acting_user(request),
            uploads=request.FILES.getlist("file"),
            fmt=fields.validated_data["format"],
            dry_run=fields.validated_data["dry_run"],
        )
        transaction.on_commit(lambda: import_enqueue(job))
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportJobView(APIView):
    """One of the user's imports: its status, counters and (when done) its report."""

    @extend_schema(
        operation_id="import_retrieve",
        summary="An import's progress and report",
        parameters=[OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Import id")],
        responses={200: ImportJobSerializer, 404: error_response("Unknown import, or another user's")},
    )
    def get(self, request: Request, job_id: str) -> Response:
        return Response(ImportJobSerializer(import_job_get(job_id=job_id, owner=acting_user(request))).data)
