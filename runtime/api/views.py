"""`POST /api/sessions/{id}/turns/` (queue a turn for the workers) and `POST /api/runs/{id}/retry/`."""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from core.api.acting import acting_user
from core.api.serializers import StrictInputSerializer
from core.api.views import error_response, parsed
from core.conversation.api.serializers import (
    MessageSerializer,
    RunSerializer,
)
from core.conversation.selectors import run_get
from core.conversation.services import run_retry
from core.errors import ConflictError
from core.models import Run
from runtime.turns import Accepted, turn_accept
from runtime.worker.tasks import run_enqueue


class TurnRequestSerializer(StrictInputSerializer):
    text = serializers.CharField(max_length=100_000, trim_whitespace=False)
    client_id = serializers.CharField(max_length=128, required=False, allow_null=True)


class TurnThrottle(UserRateThrottle):
    """Turns per user per minute (`AGENTCHAT_TURNS_PER_MINUTE`)."""

    scope = "turns"


class TurnAcceptedSerializer(serializers.Serializer[Accepted]):
    run = RunSerializer()
    message = MessageSerializer(help_text="The user message the run answers.")
    stream_url = serializers.SerializerMethodField(help_text="Where the run's events stream (text/event-stream).")

    def get_stream_url(self, accepted: Accepted) -> str:
        return stream_url(accepted.run)


def stream_url(run: Run) -> str:
    return f"/api/runs/{run.pk}/stream/"


class SessionTurnView(APIView):
    """Start one turn: the user's text is stored and its run queued; a worker runs it."""

    throttle_classes = [TurnThrottle]

    @extend_schema(
        operation_id="sessions_turns_create",
        request=TurnRequestSerializer,
        responses={
            200: OpenApiResponse(
                TurnAcceptedSerializer,
                description="A retry: this client_id's message already has a run (open or finished); that run "
                "as it stands now, and nothing was written or asked of the model.",
            ),
            202: OpenApiResponse(
                TurnAcceptedSerializer, description="Accepted: the message is stored and its run queued."
            ),
            400: error_response("Invalid text or client_id."),
            404: error_response("No such session."),
            409: error_response(
                "The session has an open run (named), is archived, its route is blocked or disabled, the user has "
                "too many open runs, or the client_id names a different message (or one others already follow)."
            ),
            429: error_response("Too many turns this minute (AGENTCHAT_TURNS_PER_MINUTE)."),
        },
        description=(
            "Appends the user message and queues its run, then answers at once: a worker process runs the turn "
            "(`make serve` starts them) and a client that disconnects does not stop it. Watch it at `stream_url`, "
            "or read the run (`GET /api/runs/{id}/`). Retrying with the same client_id and text never runs the "
            "model again: it answers 200 with the run that answers that message."
        ),
    )
    def post(self, request: Request, session_id: UUID) -> Response:
        data = parsed(TurnRequestSerializer, request.data)
        accepted = turn_accept(
            session_id=session_id,
            owner=acting_user(request),
            user_text=data["text"],
            client_id=data.get("client_id"),
            on_commit=run_enqueue,
        )
        code = status.HTTP_202_ACCEPTED if accepted.created else status.HTTP_200_OK
        accepted = Accepted(run=run_get(run_id=accepted.run.pk), message=accepted.message, created=accepted.created)
        return Response(TurnAcceptedSerializer(accepted).data, status=code)


class RunRetryView(APIView):
    """Run a failed or interrupted turn again, as a new attempt for the same user message."""

    throttle_classes = [TurnThrottle]

    @extend_schema(
        operation_id="runs_retry_create",
        request=None,
        responses={
            202: OpenApiResponse(TurnAcceptedSerializer, description="The new attempt, queued."),
            404: error_response("No such run."),
            409: error_response(
                "The run is not failed or interrupted, answers no message, other messages follow its message, "
                "or the session has an open run."
            ),
            429: error_response("Too many turns this minute (AGENTCHAT_TURNS_PER_MINUTE)."),
        },
    )
    def post(self, request: Request, run_id: UUID) -> Response:
        run = run_retry(run_id=run_id, owner=acting_user(request))
        transaction.on_commit(lambda: run_enqueue(run))
        fresh = run_get(run_id=run.pk)
        if fresh.message is None:  # run_retry refuses a run without a message; this keeps the types honest
            raise ConflictError.for_field("run", "answers no user message; only a chat turn's run can be retried")
        accepted = Accepted(run=fresh, message=fresh.message, created=True)
        return Response(TurnAcceptedSerializer(accepted).data, status=status.HTTP_202_ACCEPTED)
